"""Readable text log lines for a terminal: chosen like JSON, redacted like JSON."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from csfabric.kernel import register_secret, resolve_log_format, setup_logging
from opentelemetry.sdk.trace import TracerProvider

SECRET = "text-Secret+/=77"


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_root(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("CSFABRIC_LOG_FORMAT", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    register_secret(SECRET)
    try:
        yield
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def test_auto_is_text_on_a_terminal_and_json_otherwise() -> None:
    assert setup_logging("svc", stream=io.StringIO()) == "json"
    assert setup_logging("svc", stream=Terminal()) == "text"
    assert resolve_log_format("auto", Terminal()) == "text"
    assert resolve_log_format(None, io.StringIO()) == "json"


def test_the_flag_beats_the_environment_and_the_environment_beats_the_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CSFABRIC_LOG_FORMAT", "text")
    piped = io.StringIO()
    assert setup_logging("svc", stream=piped) == "text"
    assert setup_logging("svc", stream=Terminal(), log_format="json") == "json"
    monkeypatch.setenv("CSFABRIC_LOG_FORMAT", "json")
    terminal = Terminal()
    setup_logging("svc", stream=terminal)
    logging.getLogger("csfabric.test").info("machine")
    assert json.loads(terminal.getvalue())["message"] == "machine"


def test_a_text_line_reads_as_time_level_service_message_fields() -> None:
    stream = io.StringIO()
    setup_logging("ingest", stream=stream, log_format="text")
    logging.getLogger("csfabric.test").warning(
        "feed %s down", "amqp", extra={"retry_in": 2.5, "url": "amqp://x y"}
    )
    [line] = stream.getvalue().splitlines()
    assert "\x1b[" not in line  # not a terminal: no colour
    time, level, service, rest = line.split(maxsplit=3)
    assert len(time) == len("12:00:00.000")
    assert (level, service) == ("WARNING", "ingest")
    assert rest == 'feed amqp down  retry_in=2.5 url="amqp://x y"'


def test_colour_on_a_terminal_unless_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Terminal()
    setup_logging("svc", stream=terminal)
    logging.getLogger("csfabric.test").error("red")
    assert "\x1b[31mERROR  \x1b[0m" in terminal.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    plain = Terminal()
    setup_logging("svc", stream=plain)
    logging.getLogger("csfabric.test").error("plain")
    assert "\x1b" not in plain.getvalue()
    assert "ERROR" in plain.getvalue()


def test_text_lines_carry_the_trace_id_and_the_exception() -> None:
    stream = io.StringIO()
    setup_logging("svc", stream=stream, log_format="text")
    tracer = TracerProvider().get_tracer(__name__)
    with tracer.start_as_current_span("work") as span:
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("csfabric.test").exception("failed")
    text = stream.getvalue()
    assert f"trace={span.get_span_context().trace_id:032x}" in text
    assert "ValueError: boom" in text
    assert text.splitlines()[0].endswith(f"trace={span.get_span_context().trace_id:032x}")


def test_text_goes_through_the_same_redaction_as_json() -> None:
    stream = io.StringIO()
    setup_logging("svc", "DEBUG", stream=stream, log_format="text")
    log = logging.getLogger("csfabric.test")
    log.info(f"in the message {SECRET} url?apikey=XYZ&signature=abc&command=listVirtualMachines")
    log.info("in the args %s and apikey=%s", SECRET, "XYZ")
    log.info("in extras", extra={"detail": f"key {SECRET}", "params": {"apikey": "XYZ"}})
    log.info("header", extra={"authorization": "Bearer XYZ", "secretkey": "XYZ"})
    try:
        raise RuntimeError(f"failed GET /client/api?apikey=XYZ&signature=abc with {SECRET}")
    except RuntimeError:
        log.exception("in an exception")
    text = stream.getvalue()
    assert text.count("***") >= 9
    assert SECRET not in text
    assert "XYZ" not in text
    assert "=abc" not in text


def test_received_control_characters_cannot_drive_the_terminal() -> None:
    terminal = Terminal()
    setup_logging("svc", stream=terminal)
    logging.getLogger("csfabric.test").info(
        "body \x1b[2J\x9b31m end", extra={"header": "a\x1b]0;title\x07b"}
    )
    line = terminal.getvalue()
    assert "\\x1b[2J" in line
    assert "\\x9b31m" in line
    assert "\\x1b]0;title\\x07b" in line
    assert "\x07" not in line
    assert "\x9b" not in line
    # Only the formatter's own colour codes remain as real escapes.
    assert line.replace("\x1b[0m", "").count("\x1b[") == 4
