"""``csfabric doctor``'s snapshots check: bad settings, no keys, ready."""

from __future__ import annotations

from pathlib import Path

import pytest
from csfabric.cli.doctor_dr import snapshots_check

pytestmark = pytest.mark.memory


@pytest.fixture(autouse=True)
def _clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSFABRIC_STATE_DIR", str(tmp_path))  # no dev.json of a running dev
    for name in ("KEY", "SECRET"):
        monkeypatch.delenv(f"CSFABRIC_CLOUDSTACK_{name}", raising=False)
        monkeypatch.delenv(f"CLOUDSTACK_{name}", raising=False)


def test_no_keys_is_not_configured_and_not_required() -> None:
    check = snapshots_check()
    assert check.status == "not configured"
    assert not check.failed
    assert "CSFABRIC_CLOUDSTACK_KEY" in check.fix
    assert "cannot start" in check.detail


def test_bad_setting_is_named_and_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSFABRIC_SNAPSHOTS_COPY_MODE", "sometimes")
    check = snapshots_check()
    assert check.status == "missing"
    assert check.failed
    assert "copy_mode" in check.detail


def test_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSFABRIC_CLOUDSTACK_KEY", "k")
    monkeypatch.setenv("CSFABRIC_CLOUDSTACK_SECRET", "s")
    check = snapshots_check()
    assert check.status == "ok"
    assert "zoneids" in check.detail
