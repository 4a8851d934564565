"""Which SnapshotPolicies ``csfabric dr`` plans for: from the policy store (in memory and on
nats-server) or from files, paused ones included, one picked with ``--policy``."""

from __future__ import annotations

from pathlib import Path

import pytest
from csfabric.cli.dr_cloud import read_policies, store_policies
from csfabric.kernel import ConfigError, FabricSettings
from csfabric.kernel.policy import PolicyStore, load_policies

from tests.backbone import Backbone

POLICIES = """\
apiVersion: csfabric/v1
kind: SnapshotPolicy
metadata: {name: gold-15m}
spec:
  selector: {zone: zone-london, tags: {"csfabric:dr-tier": gold}}
  every: 10m
  retain: {count: 6}
  copyTo: [zone-manchester]
  rpo: 15m
---
apiVersion: csfabric/v1
kind: SnapshotPolicy
metadata: {name: local-only}
spec:
  selector: {zone: zone-london}
  every: 1h
  retain: {count: 2}
  rpo: 2h
"""


def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "dr.yaml"
    path.write_text(POLICIES)
    return path


async def test_store_policies_include_paused_ones(backbone: Backbone, tmp_path: Path) -> None:
    bus = await backbone.bus("dr")
    store = PolicyStore(bus)
    await store.apply([p.document for p in load_policies([policy_file(tmp_path)])], "tester")
    await store.set_paused("SnapshotPolicy", "gold-15m", True, "tester")
    found = await store_policies(bus)
    assert sorted(found) == ["gold-15m", "local-only"]
    assert [str(z) for z in found["gold-15m"].copy_to] == ["zone-manchester"]


async def test_files_and_the_policy_filter(tmp_path: Path) -> None:
    path = policy_file(tmp_path)
    settings = FabricSettings()
    assert sorted(await read_policies([path], None, settings)) == ["gold-15m", "local-only"]
    assert list(await read_policies([path], "gold-15m", settings)) == ["gold-15m"]
    with pytest.raises(
        ConfigError, match=r"no SnapshotPolicy named 'silver'.*gold-15m, local-only"
    ):
        await read_policies([path], "silver", settings)
