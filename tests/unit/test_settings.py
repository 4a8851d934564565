"""Settings precedence: explicit > environment > dev.json > default; secrets stay hidden."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from csfabric.kernel import FabricSettings


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("CSFABRIC_NATS_URL", "CLOUDSTACK_KEY", "CSFABRIC_CLOUDSTACK_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CSFABRIC_STATE_DIR", str(tmp_path))
    return tmp_path


def test_default_without_dev_json(state: Path) -> None:
    assert FabricSettings().nats_url == "nats://127.0.0.1:4222"
    assert FabricSettings().state_dir == state


def test_dev_json_beats_default(state: Path) -> None:
    (state / "dev.json").write_text(json.dumps({"nats_url": "nats://127.0.0.1:14222"}))
    assert FabricSettings().nats_url == "nats://127.0.0.1:14222"


def test_environment_beats_dev_json(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (state / "dev.json").write_text(json.dumps({"nats_url": "nats://127.0.0.1:14222"}))
    monkeypatch.setenv("CSFABRIC_NATS_URL", "nats://127.0.0.1:5222")
    assert FabricSettings().nats_url == "nats://127.0.0.1:5222"


def test_explicit_beats_environment(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSFABRIC_NATS_URL", "nats://127.0.0.1:5222")
    assert FabricSettings(nats_url="nats://127.0.0.1:6222").nats_url == "nats://127.0.0.1:6222"


def test_a_broken_dev_json_is_ignored(state: Path) -> None:
    (state / "dev.json").write_text("{not json")
    assert FabricSettings().nats_url == "nats://127.0.0.1:4222"


def test_cloudstack_falls_back_to_the_usual_variables(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDSTACK_KEY", "plain-key-value")
    settings = FabricSettings()
    assert settings.cloudstack_key is not None
    assert settings.cloudstack_key.get_secret_value() == "plain-key-value"
    assert "plain-key-value" not in repr(settings)
    monkeypatch.setenv("CSFABRIC_CLOUDSTACK_KEY", "fabric-key-value")
    fabric = FabricSettings().cloudstack_key
    assert fabric is not None
    assert fabric.get_secret_value() == "fabric-key-value"


def test_cluster_urls_split(state: Path) -> None:
    settings = FabricSettings(nats_url="nats://a:1, nats://b:2,")
    assert settings.nats_servers() == ["nats://a:1", "nats://b:2"]


def test_cloudstack_settings_read_their_prefixed_dev_json_keys(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from csfabric.cloudstack import CloudStackSettings

    for name in ("ENDPOINT", "SECRET"):
        monkeypatch.delenv(f"CLOUDSTACK_{name}", raising=False)
        monkeypatch.delenv(f"CSFABRIC_CLOUDSTACK_{name}", raising=False)
    (state / "dev.json").write_text(
        json.dumps(
            {
                "cloudstack_endpoint": "http://127.0.0.1:18080/client/api",
                "cloudstack_secret": "dev-secret",
                "endpoint": "http://wrong.example/client/api",
            }
        )
    )
    settings = CloudStackSettings()
    assert settings.endpoint == "http://127.0.0.1:18080/client/api"
    assert settings.secret is not None
    assert settings.secret.get_secret_value() == "dev-secret"
    monkeypatch.setenv("CLOUDSTACK_ENDPOINT", "http://127.0.0.1:8080/client/api")
    assert CloudStackSettings().endpoint == "http://127.0.0.1:8080/client/api"
