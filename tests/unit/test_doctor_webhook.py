"""``csfabric doctor``'s row for ingest's webhook signatures (item 11): checked, refused to
start, or — loudly — unsigned."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from csfabric.cli import app
from typer.testing import CliRunner

from tests.servers import free_port

runner = CliRunner()
ROW = "ingest webhook signatures"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(("CSFABRIC_", "CLOUDSTACK_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CSFABRIC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CSFABRIC_NATS_URL", f"nats://127.0.0.1:{free_port()}")
    return monkeypatch


def row() -> dict[str, object]:
    result = runner.invoke(app, ["doctor", "--json"])
    checks = {c["component"]: c for c in json.loads(result.stdout)["checks"]}
    return checks[ROW]


def test_no_secret_says_ingest_will_not_start(env: pytest.MonkeyPatch) -> None:
    check = row()
    assert check["status"] == "not configured"
    assert "refuses to start" in str(check["detail"])
    assert "CSFABRIC_INGEST_WEBHOOK_SECRET_FILE" in str(check["fix"])


def test_allow_unsigned_is_a_loud_warning(env: pytest.MonkeyPatch) -> None:
    env.setenv("CSFABRIC_INGEST_WEBHOOK_ALLOW_UNSIGNED", "true")
    check = row()
    assert check["status"] == "missing"
    assert "UNSIGNED" in str(check["detail"])


def test_a_secret_file_is_ok_and_never_shown(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("the-webhook-secret\n")
    env.setenv("CSFABRIC_CLOUDSTACK_WEBHOOK_SECRET_FILE", str(secret))
    check = row()
    assert check["status"] == "ok"
    assert check["target"] == str(secret)
    assert "the-webhook-secret" not in json.dumps(check)
    secret.write_text("\n")
    empty = row()
    assert empty["status"] == "missing"
    assert empty["required"] is True


def test_the_secret_of_a_running_csfabric_dev_is_found(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "webhook-secret"
    secret.write_text("s\n")
    state = tmp_path / "state"
    state.mkdir()
    (state / "dev.json").write_text(json.dumps({"cloudstack_webhook_secret_file": str(secret)}))
    assert row()["status"] == "ok"
