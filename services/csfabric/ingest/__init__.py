"""Ingest: every CloudStack event feed onto the JetStream backbone, once, as CloudEvents.

Run with ``csfabric run ingest``; see README.md for the settings and the feeds.
"""
