"""The ``csfabric`` CLI in-process (typer's CliRunner), and the service registry behind it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from csfabric import __version__
from csfabric.cli import app
from csfabric.devstack import mask_url
from csfabric.kernel import ConfigError
from csfabric.kernel.service import ServiceContext
from csfabric.kernel.service import _registry as registry
from typer.testing import CliRunner

from tests.servers import free_port

REPO_SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
SECRET = "sekrit123"

runner = CliRunner()


async def _noop_setup(ctx: ServiceContext) -> None:
    return None


@pytest.fixture
def fake_service() -> Iterator[str]:
    registry.register("fake-svc", _noop_setup)
    try:
        yield "fake-svc"
    finally:
        registry.unregister("fake-svc")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No CSFABRIC_*/CLOUDSTACK_* from the outer environment, and no dev.json to find."""
    import os

    for name in list(os.environ):
        if name.startswith(("CSFABRIC_", "CLOUDSTACK_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CSFABRIC_STATE_DIR", str(tmp_path / "state"))
    return tmp_path


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"csfabric {__version__}"


def test_run_unknown_service_lists_the_available_ones(fake_service: str) -> None:
    result = runner.invoke(app, ["run", "nosuch"])
    assert result.exit_code == 2
    assert "unknown service 'nosuch'" in result.output
    assert fake_service in result.output
    assert "ingest" in result.output  # installed through the csfabric.services entry point


def test_run_unknown_service_with_none_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    # A bare installation: no entry points in the services group.
    monkeypatch.setattr(registry, "entry_points", lambda group: [])
    assert registry.available() == {}
    result = runner.invoke(app, ["run", "nosuch"])
    assert result.exit_code == 2
    assert "none installed yet" in result.output
    assert registry.SERVICES_GROUP in result.output


def test_registry_register_and_load(fake_service: str) -> None:
    spec = registry.available()[fake_service]
    assert spec.origin == "registered"
    assert spec.load() is _noop_setup
    by_name = registry.register("by-name", "tests.unit.test_cli:_noop_setup")
    try:
        assert by_name.load() is _noop_setup
    finally:
        registry.unregister("by-name")


@pytest.mark.parametrize("target", ["no_colon", "tests.unit.test_cli:missing", "nosuch.mod:x"])
def test_registry_bad_target_is_a_config_error(target: str) -> None:
    with pytest.raises(ConfigError, match="service 'broken'"):
        registry.ServiceSpec("broken", target, "registered").load()


@pytest.mark.parametrize("name", ["Upper", "1st", "with_underscore", "", "x" * 41])
def test_registry_rejects_bad_names(name: str) -> None:
    with pytest.raises(ConfigError):
        registry.register(name, _noop_setup)


def test_schemas_check_passes_on_the_committed_schemas() -> None:
    result = runner.invoke(app, ["schemas", "check", "--dir", str(REPO_SCHEMAS)])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output


def test_schemas_check_names_stale_missing_and_extra_files(tmp_path: Path) -> None:
    copy = tmp_path / "schemas"
    shutil.copytree(REPO_SCHEMAS, copy)
    assert runner.invoke(app, ["schemas", "check", "--dir", str(copy)]).exit_code == 0

    stale = copy / "cloudevent.schema.json"
    stale.write_text(stale.read_text().replace('"title"', '"tidle"', 1))
    (copy / "dead-letter.schema.json").unlink()
    (copy / "old.schema.json").write_text("{}\n")

    result = runner.invoke(app, ["schemas", "check", "--dir", str(copy)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert f"  stale    {copy / 'cloudevent.schema.json'}" in lines
    assert f"  missing  {copy / 'dead-letter.schema.json'}" in lines
    assert f"  extra    {copy / 'old.schema.json'}" in lines
    assert '-      "tidle": "Data"' in lines  # the diff is shown

    as_json = runner.invoke(app, ["schemas", "check", "--dir", str(copy), "--json"])
    assert as_json.exit_code == 1
    report = json.loads(as_json.output)
    assert report == {
        "ok": False,
        "directory": str(copy),
        "stale": ["cloudevent.schema.json"],
        "missing": ["dead-letter.schema.json"],
        "extra": ["old.schema.json"],
    }

    # export repairs all three
    exported = runner.invoke(app, ["schemas", "export", "--out", str(copy), "--json"])
    assert exported.exit_code == 0
    assert json.loads(exported.output)["removed"] == ["old.schema.json"]
    assert runner.invoke(app, ["schemas", "check", "--dir", str(copy)]).exit_code == 0


def test_exported_schemas_are_deterministic(tmp_path: Path) -> None:
    runner.invoke(app, ["schemas", "export", "--out", str(tmp_path)])
    for path in sorted(tmp_path.iterdir()):
        text = path.read_text()
        assert text.endswith("}\n")
        canonical = json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False)
        assert text == canonical + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "audit-record.schema.json",
        "cloudevent.schema.json",
        "cloudstack-action.schema.json",
        "cloudstack-alert.schema.json",
        "cloudstack-state.schema.json",
        "cloudstack-usage.schema.json",
        "dead-letter.schema.json",
        "dr-drill-requested.schema.json",
        "environment-created.schema.json",
        "environment-extended.schema.json",
        "environment-released.schema.json",
        "maintenance-ended.schema.json",
        "maintenance-scheduled.schema.json",
        "maintenance-started.schema.json",
        "policy-SnapshotPolicy.schema.json",
        "policy-base.schema.json",
        "policy-document.schema.json",
    ]


def test_doctor_json_reports_unreachable_nats_without_secrets(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setenv("CSFABRIC_NATS_URL", f"nats://user:{SECRET}@127.0.0.1:{port}")
    monkeypatch.setenv("CSFABRIC_CLOUDSTACK_SECRET", SECRET)
    monkeypatch.setenv("CSFABRIC_CLOUDSTACK_KEY", "apikey-" + SECRET)

    result = runner.invoke(app, ["doctor", "--json"])

    assert result.exit_code == 1, result.output
    assert SECRET not in result.output
    report = json.loads(result.stdout)
    assert report["ok"] is False
    checks = {check["component"]: check for check in report["checks"]}
    nats = checks["NATS JetStream"]
    assert nats["status"] == "unreachable"
    assert nats["required"] is True
    assert "CSFABRIC_NATS_URL" in nats["fix"]
    assert nats["target"] == f"nats://user:***@127.0.0.1:{port}"
    assert checks["Kafka"]["status"] == "not configured"
    assert "CSFABRIC_KAFKA_BOOTSTRAP" in checks["Kafka"]["fix"]
    assert checks["nats-server binary"]["status"] == "ok"
    assert {c["status"] for c in report["checks"]} <= {
        "ok",
        "missing",
        "unreachable",
        "not configured",
    }


def test_doctor_checks_configured_endpoints_and_masks_them(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = free_port()
    monkeypatch.setenv("CSFABRIC_NATS_URL", f"nats://127.0.0.1:{free_port()}")
    monkeypatch.setenv(
        "CSFABRIC_CLOUDSTACK_ENDPOINT", f"http://admin:{SECRET}@127.0.0.1:{closed}/client/api"
    )
    monkeypatch.setenv("CSFABRIC_KAFKA_BOOTSTRAP", f"127.0.0.1:{closed}")

    result = runner.invoke(app, ["doctor"])  # the rich table

    assert result.exit_code == 1
    assert SECRET not in result.output
    assert "CloudStack API" in result.output
    assert "unreachable" in result.output


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
        ("nats://u:p@h:1,nats://u:p@h:2", "nats://u:***@h:1,nats://u:***@h:2"),
        ("nats://token@h:4222", "nats://***@h:4222"),
        ("amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:***@127.0.0.1:5672/"),
        ("http://h/path?x=a@b", "http://h/path?x=a@b"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_simulator_keys_env_prints_exports_for_eval(clean_env: Path) -> None:
    state = clean_env / "sim"
    state.mkdir()
    keys = {"admin": {"apikey": "AK-1", "secretkey": "SK/1+="}}
    (state / "simulator-keys.json").write_text(
        json.dumps({"http://127.0.0.1:18080/client/api": keys})
    )
    keys_cmd = ["simulator", "keys", "--state-dir", str(state), "--env"]
    result = runner.invoke(app, [*keys_cmd, "admin"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        "export CLOUDSTACK_ENDPOINT=http://127.0.0.1:18080/client/api "
        "CLOUDSTACK_KEY=AK-1 CLOUDSTACK_SECRET=SK/1+="
    )
    missing = runner.invoke(
        app, ["simulator", "keys", "--env", "nobody", "--state-dir", str(state)]
    )
    assert missing.exit_code == 1
    assert "one of: admin" in missing.output
