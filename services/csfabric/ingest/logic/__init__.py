"""Ingest's pure decisions: webhook checks, refusal counts, poll windows, dedupe keys.

This is the door of the room: feeds and handlers import these names from
``csfabric.ingest.logic``, never from the ``_private`` modules behind it (one idea a file:
``_webhook`` checks a request, ``_rejects`` counts refusals, ``_poll`` places the poller's
window, ``_dedupe`` makes the keys that let an event count once).

It must not know brokers, HTTP, tracing or the clock (import-linter forbids them: the caller
passes ``now``), so every rule is unit tested on its own and the handlers stay thin.
"""

from csfabric.ingest.logic._dedupe import (
    action_fingerprint,
    dlq_msg_id,
    pushed_fingerprint,
    row_fingerprint,
    seen_key,
)
from csfabric.ingest.logic._poll import (
    api_date,
    next_watermark,
    parse_watermark,
    poll_end,
    poll_start,
    row_time,
    rows_to_process,
)
from csfabric.ingest.logic._rejects import OTHER_SOURCE, RejectCount, RejectTally, reject_audit_key
from csfabric.ingest.logic._webhook import (
    EVENT_ID_HEADER,
    EVENT_ID_LIMIT,
    EVIDENCE_LIMIT,
    SIGNATURE_HEADER,
    WEBHOOK_STATUS,
    Outcome,
    Rejection,
    check_request,
    check_signature,
    evidence_text,
    usable_header,
    webhook_signature,
)

__all__ = [
    "EVENT_ID_HEADER",
    "EVENT_ID_LIMIT",
    "EVIDENCE_LIMIT",
    "OTHER_SOURCE",
    "SIGNATURE_HEADER",
    "WEBHOOK_STATUS",
    "Outcome",
    "RejectCount",
    "RejectTally",
    "Rejection",
    "action_fingerprint",
    "api_date",
    "check_request",
    "check_signature",
    "dlq_msg_id",
    "evidence_text",
    "next_watermark",
    "parse_watermark",
    "poll_end",
    "poll_start",
    "pushed_fingerprint",
    "reject_audit_key",
    "row_fingerprint",
    "row_time",
    "rows_to_process",
    "seen_key",
    "usable_header",
    "webhook_signature",
]
