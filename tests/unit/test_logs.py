"""JSON lines carry trace ids, and secrets never reach the output."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from csfabric.kernel import get_logger, redact, register_secret, setup_logging
from opentelemetry.sdk.trace import TracerProvider

SECRET = "hmac-Secret+/=42"


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    register_secret(SECRET)
    setup_logging("test-svc", "DEBUG", stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_is_json_with_the_core_keys(output: io.StringIO) -> None:
    logging.getLogger("csfabric.test").info("hello %s", "world", extra={"vm": "i-2-3-VM"})
    [line] = lines(output)
    assert line["message"] == "hello world"
    assert line["level"] == "INFO"
    assert line["logger"] == "csfabric.test"
    assert line["service"] == "test-svc"
    assert line["vm"] == "i-2-3-VM"
    assert line["time"].endswith("Z")
    assert "trace_id" not in line


def test_a_line_inside_a_span_carries_its_ids(output: io.StringIO) -> None:
    tracer = TracerProvider().get_tracer(__name__)
    with tracer.start_as_current_span("work") as span:
        logging.getLogger("csfabric.test").warning("inside")
    [line] = lines(output)
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert line["span_id"] == format(span.get_span_context().span_id, "016x")


def test_setup_is_idempotent(output: io.StringIO) -> None:
    setup_logging("test-svc", "DEBUG", stream=output)
    logging.getLogger("csfabric.test").info("once")
    assert len(lines(output)) == 1


def test_secrets_are_redacted_everywhere(output: io.StringIO) -> None:
    log = logging.getLogger("csfabric.test")
    log.info(f"in the message {SECRET} url?apikey=XYZ&signature=abc&command=listVirtualMachines")
    log.info("in the args %s and apikey=%s", SECRET, "XYZ")
    log.info("in extras", extra={"detail": f"key {SECRET}", "params": {"apikey": "XYZ"}})
    log.info("header", extra={"authorization": "Bearer XYZ"})
    log.info("json %s", json.dumps({"apiKey": "XYZ", "signature": "abc", "command": "x"}))
    try:
        raise RuntimeError(f"failed GET /client/api?apikey=XYZ&signature=abc with {SECRET}")
    except RuntimeError:
        log.exception("in an exception")

    text = output.getvalue()
    records = lines(output)
    assert len(records) == 6
    assert SECRET not in text
    assert "XYZ" not in text
    assert "=abc" not in text  # "abc" alone would also match unrelated text, e.g. a path
    assert '"abc"' not in text
    assert "listVirtualMachines" in text  # only credentials are masked, not the request
    assert records[1]["message"] == "in the args *** and apikey=***"
    assert records[2]["params"] == {"apikey": "***"}
    assert records[3]["authorization"] == "***"
    assert "RuntimeError" in records[5]["exc"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("apikey=XYZ&signature=abc", "apikey=***&signature=***"),
        ("API_KEY=XYZ secretKey=abc", "API_KEY=*** secretKey=***"),
        ('{"password": "p\\"w", "user": "bob"}', '{"password": "***", "user": "bob"}'),
        ("{'token': 'XYZ'}", "{'token': '***'}"),
        ("Authorization: Bearer XYZ", "Authorization: Bearer ***"),
        ("cloudstack_secret=XYZ", "cloudstack_secret=***"),
        ("tokens=5 and no secrets here", "tokens=5 and no secrets here"),
    ],
)
def test_redact_patterns(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_registered_secret_is_masked_url_encoded_too() -> None:
    register_secret(SECRET)
    assert redact("x=hmac-Secret%2B%2F%3D42") == "x=***"
    assert redact(f"plain {SECRET}.") == "plain ***."


def test_a_logger_is_named_by_the_module_s_public_name() -> None:
    assert get_logger("csfabric.kernel.bus._consumer").name == "csfabric.kernel.bus.consumer"
    assert get_logger("csfabric.kernel._leases").name == "csfabric.kernel.leases"
    assert get_logger("csfabric.ingest.feeds.webhook").name == "csfabric.ingest.feeds.webhook"


# Modules the speed and test-double work still has open; each moves to get_logger(__name__)
# when that work lands (then its name leaves this set).
PRIVATE_NAMES_PENDING: set[str] = set()


def test_no_log_line_names_a_private_module() -> None:
    """The ``logger`` of a log line is read and filtered on by people: it must not show
    ``_private`` segments, which change whenever a module moves behind a door (the
    restructure turned ``csfabric.dev`` into ``csfabric.devstack._supervisor``)."""
    import importlib
    import pkgutil

    import csfabric

    for module in pkgutil.walk_packages(csfabric.__path__, "csfabric."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    private = {
        name
        for name in logging.Logger.manager.loggerDict
        if name.startswith("csfabric.") and any(p.startswith("_") for p in name.split("."))
    }
    assert private <= PRIVATE_NAMES_PENDING, sorted(private - PRIVATE_NAMES_PENDING)
    assert "csfabric.dev" in logging.Logger.manager.loggerDict
