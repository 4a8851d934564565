"""Kafka record keys (resource uuid, else the NATS subject) and the bridge settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from csfabric.kernel import make_event
from csfabric.kernel.kafka import DEFAULT_BOOTSTRAP, KafkaBridgeSettings, record_key


@pytest.mark.parametrize(
    ("type_", "subject", "key"),
    [
        ("cloudstack.action.VM.CREATE", "5e1f0c2a-vm", b"5e1f0c2a-vm"),
        ("cloudstack.action.VM.CREATE", None, b"csfabric.cloudstack.action.VM.CREATE"),
        ("cloudstack.alert.ALERT.COMPUTE.HOST", "zone-1", b"zone-1"),
        ("environment.created", "ci-1234", b"ci-1234"),
        ("environment.created", None, b"csfabric.lifecycle.environment.created"),
    ],
)
def test_key_is_the_resource_else_the_subject(type_: str, subject: str | None, key: bytes) -> None:
    event = make_event(type=type_, source="/test", id="e-1", subject=subject)
    assert record_key(event) == key


def test_key_is_utf8() -> None:
    event = make_event(type="environment.created", source="/test", id="e-2", subject="ümgebung")
    assert record_key(event) == "ümgebung".encode()


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CSFABRIC_STATE_DIR", str(tmp_path))
    for name in ("BOOTSTRAP", "TOPIC_IN", "GROUP_ID", "RAW_OUT"):
        monkeypatch.delenv(f"CSFABRIC_KAFKA_{name}", raising=False)
    return tmp_path


def test_settings_defaults(state_dir: Path) -> None:
    settings = KafkaBridgeSettings()
    assert settings.bootstrap == DEFAULT_BOOTSTRAP
    assert settings.topics_in() == ["csfabric.lifecycle"]
    assert (settings.group_id, settings.topic_out) == ("csfabric-bridge", "csfabric.events")
    assert (settings.subject_out, settings.raw_out) == ("csfabric.lifecycle.>", False)


def test_settings_env_beats_dev_json_beats_default(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (state_dir / "dev.json").write_text(json.dumps({"kafka_bootstrap": "127.0.0.1:19092"}))
    assert KafkaBridgeSettings().bootstrap == "127.0.0.1:19092"

    monkeypatch.setenv("CSFABRIC_KAFKA_BOOTSTRAP", "127.0.0.1:29092")
    monkeypatch.setenv("CSFABRIC_KAFKA_TOPIC_IN", "cloudstack, lifecycle ,")
    monkeypatch.setenv("CSFABRIC_KAFKA_RAW_OUT", "true")
    settings = KafkaBridgeSettings()
    assert settings.bootstrap == "127.0.0.1:29092"
    assert settings.topics_in() == ["cloudstack", "lifecycle"]
    assert settings.raw_out is True
    assert KafkaBridgeSettings(bootstrap="127.0.0.1:1").bootstrap == "127.0.0.1:1"
