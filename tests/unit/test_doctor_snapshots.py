"""``csfabric doctor``'s snapshots check: bad settings, no keys, ready."""

from __future__ import annotations

from pathlib import Path

import pytest
from csfabric.cli._doctor_snapshots import snapshots_check

pytestmark = pytest.mark.memory


@pytest.fixture(autouse=True)
def _clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSFABRIC_STATE_DIR", str(tmp_path))  # no dev.json of a running dev
    for name in ("KEY", "SECRET"):
        monkeypatch.delenv(f"CSFABRIC_CLOUDSTACK_{name}", raising=False)
        monkeypatch.delenv(f"CLOUDSTACK_{name}", raising=False)


def test_no_keys_is_not_configured() -> None:
    status, _, fix, detail = snapshots_check()
    assert status == "not configured"
    assert "CSFABRIC_CLOUDSTACK_KEY" in fix
    assert "cannot start" in detail


def test_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSFABRIC_SNAPSHOTS_COPY_MODE", "sometimes")
    status, _, _, detail = snapshots_check()
    assert status == "missing"
    assert "copy_mode" in detail


def test_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSFABRIC_CLOUDSTACK_KEY", "k")
    monkeypatch.setenv("CSFABRIC_CLOUDSTACK_SECRET", "s")
    status, _, _, detail = snapshots_check()
    assert status == "ok"
    assert "zoneids" in detail
