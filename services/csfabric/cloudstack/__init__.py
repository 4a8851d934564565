"""CloudStack: the API client (over ``cs``'s AIOCloudStack), native event models, simulator.

Empty for now; the client and the simulator arrive in a later issue.  Like ``events``,
this package may import ``csfabric.kernel`` and nothing else of ours.
"""
