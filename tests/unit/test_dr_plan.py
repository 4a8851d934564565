"""The recovery plan (``csfabric.dr.plan``): listings in, steps and blocked reasons out."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from csfabric.dr import (
    BACKED_UP,
    DR_NETWORK_TAG,
    Copy,
    Inventory,
    Network,
    Offering,
    PlanVm,
    SnapshotPolicy,
    SnapshotVolume,
    Template,
    VolumeRef,
    plan,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LON, MAN = "z-lon", "z-man"
GOLD = {"csfabric:dr-tier": "gold"}


def policy(copy_to: tuple[str, ...] = ("zone-manchester",), **selector: object) -> SnapshotPolicy:
    sel = {"zone": "zone-london", "tags": GOLD, **selector}
    return SnapshotPolicy.model_validate(
        {
            "selector": sel,
            "every": "10m",
            "retain": {"count": 6},
            "copyTo": list(copy_to),
            "rpo": "15m",
        }
    )


def vol(name: str, vm: str | None = None, kind: str = "DATADISK", **tags: str) -> VolumeRef:
    return VolumeRef(
        id=f"v-{name}",
        name=name,
        zone_id=LON,
        zone_name="zone-london",
        type=kind,
        account="admin",
        tags=tags or GOLD,
        virtualmachine_id=vm,
    )


def copy(volume: str, minutes_ago: int, state: str = BACKED_UP, zone: str = MAN) -> Copy:
    created = NOW - timedelta(minutes=minutes_ago)
    return Copy(f"s-{volume}-{minutes_ago}", f"v-{volume}", zone, created, state)


VM = PlanVm(
    id="vm-1",
    name="ledger",
    zone_id=LON,
    service_offering_id="so-small",
    service_offering_name="Small Instance",
    template_id="t-lon",
    template_name="CentOS",
    network_ids=("n-lon",),
    network_names=("ledger-net",),
    account="admin",
    domain_id="d-root",
)


def inventory(**over: object) -> Inventory:
    base: dict[str, object] = {
        "dr_zone_id": MAN,
        "dr_zone_name": "zone-manchester",
        "volumes": [vol("ledger-data", "vm-1"), vol("scratch", **{"csfabric:dr-tier": "bronze"})],
        "vms": {"vm-1": VM},
        "dr_copies": [
            copy("ledger-data", 30),
            copy("ledger-data", 5),
            copy("ledger-data", 1, "Copying"),
        ],
        "templates": [Template("t-lon", "CentOS", LON), Template("t-man", "CentOS", MAN)],
        "networks": [Network("n-man", "ledger-net", MAN, "admin")],
        "offerings": [Offering("so-small", "Small Instance")],
    }
    return Inventory(**(base | over))  # type: ignore[arg-type]


def test_newest_complete_copy_in_the_dr_zone_is_restored() -> None:
    got = plan({"gold": policy()}, inventory(), NOW)
    assert [r.volume_name for r in got.volumes] == ["ledger-data"]  # bronze scratch untouched
    step = got.volumes[0]
    # The 1-minute copy is still copying: the 5-minute one is the newest complete.
    assert step.params == {
        "name": "dr-ledger-data",
        "snapshotid": "s-ledger-data-5",
        "zoneid": MAN,
        "account": "admin",
        "domainid": "d-root",
    }
    assert step.data_age_s == 300
    assert step.policy == "gold"
    assert got.complete
    assert got.policies == ("gold",)


def test_vm_redeployed_with_its_offering_template_by_name_and_network() -> None:
    got = plan({"gold": policy()}, inventory(), NOW)
    (vm,) = got.vms
    assert vm.params["templateid"] == "t-man"  # same name, the DR zone's own id
    assert vm.params["serviceofferingid"] == "so-small"
    assert vm.params["networkids"] == "n-man"
    assert vm.params["zoneid"] == MAN
    assert vm.params["name"] == "dr-ledger"
    assert vm.attach == ("v-ledger-data",)


@pytest.mark.parametrize(
    ("copies", "reason"),
    [
        ([], "no complete copy in zone-manchester"),
        ([copy("ledger-data", 2, "Copying")], "(1 still copying)"),
        ([copy("ledger-data", 2, zone=LON)], "no complete copy in zone-manchester"),
    ],
)
def test_a_volume_without_a_complete_dr_copy_is_blocked_with_why(
    copies: list[Copy], reason: str
) -> None:
    got = plan({"gold": policy()}, inventory(dr_copies=copies), NOW)
    assert not got.volumes
    assert not got.vms
    (blocked,) = got.blocked
    assert blocked.kind == "volume"
    assert blocked.name == "ledger-data"
    assert reason in blocked.reason
    assert not got.complete


@pytest.mark.parametrize(
    ("copy_to", "planned"),
    [(("zone-manchester",), 1), ((MAN,), 1), (("zone-elsewhere",), 0), ((), 0)],
)
def test_only_policies_copying_to_the_zone_count(copy_to: tuple[str, ...], planned: int) -> None:
    got = plan({"gold": policy(copy_to)}, inventory(), NOW)
    assert len(got.volumes) == planned
    assert got.policies == (("gold",) if planned else ())


@pytest.mark.parametrize(
    ("networks", "expect", "blocked"),
    [
        ([Network("n-man", "ledger-net", MAN, "admin")], "n-man", None),
        ([Network("n-x", "other", MAN, "bob", tags={DR_NETWORK_TAG: "ledger-net"})], "n-x", None),
        ([Network("n-x", "other", MAN, "bob", tags={DR_NETWORK_TAG: "n-lon"})], "n-x", None),
        ([Network("n-own", "admin-dr", MAN, "admin")], "n-own", None),
        (
            [
                Network("n-sh", "guest", MAN, "root", type="Shared"),
                Network("n-own", "a", MAN, "admin"),
            ],
            "n-own",
            None,
        ),
        ([Network("n-sh", "guest", MAN, "root", type="Shared")], "n-sh", None),
        ([Network("n-lon2", "ledger-net", LON, "admin")], None, "no network in zone-manchester"),
        ([Network("n-bob", "bob-net", MAN, "bob")], None, "no network in zone-manchester"),
    ],
)
def test_network_same_name_then_tag_then_owners(
    networks: list[Network], expect: str | None, blocked: str | None
) -> None:
    got = plan({"gold": policy()}, inventory(networks=networks), NOW)
    if expect is None:
        assert not got.vms
        assert [b.kind for b in got.blocked] == ["vm"]
        assert blocked is not None
        assert blocked in got.blocked[0].reason
    else:
        assert got.vms[0].params["networkids"] == expect
    # The volume is restored either way: its data does not depend on the VM.
    assert len(got.volumes) == 1


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"templates": [Template("t-man", "Ubuntu", MAN)]}, "no template named 'CentOS'"),
        ({"offerings": [Offering("so-big", "Big", (MAN,))]}, "offering Small Instance"),
        ({"offerings": [Offering("so-small", "Small Instance", (LON,))]}, "offering Small"),
        ({"vms": {}}, "VM not found"),
    ],
)
def test_a_vm_that_cannot_be_redeployed_is_blocked(over: dict[str, object], reason: str) -> None:
    got = plan({"gold": policy()}, inventory(**over), NOW)
    assert not got.vms
    assert [b.kind for b in got.blocked] == ["vm"]
    assert reason in got.blocked[0].reason


def test_missing_listings_fall_back_to_the_vm_row_and_say_so() -> None:
    got = plan({"gold": policy()}, inventory(templates=None, networks=None, offerings=None), NOW)
    (vm,) = got.vms
    assert vm.params["templateid"] == "t-lon"
    assert vm.params["serviceofferingid"] == "so-small"
    assert "networkids" not in vm.params
    text = " ".join(got.notes)
    for command in ("listTemplates", "listNetworks", "listServiceOfferings"):
        assert command in text
    assert len(got.notes) == 3  # said once, however many VMs


def test_several_volumes_of_one_vm_attach_in_name_order_root_noted() -> None:
    volumes = [vol("b-data", "vm-1"), vol("a-data", "vm-1"), vol("root", "vm-1", kind="ROOT")]
    copies = [copy("b-data", 3), copy("a-data", 4), copy("root", 5)]
    got = plan({"gold": policy()}, inventory(volumes=volumes, dr_copies=copies), NOW)
    assert [r.volume_name for r in got.volumes] == ["a-data", "b-data", "root"]
    (vm,) = got.vms
    assert vm.attach == ("v-a-data", "v-b-data", "v-root")
    assert any("ROOT" in n for n in vm.notes)


def test_project_volumes_are_restored_into_their_project() -> None:
    project_vm = replace(VM, project_id="p-1", account=None)
    volume = vol("ledger-data", "vm-1").model_copy(update={"project_id": "p-1", "project": "alpha"})
    got = plan(
        {"gold": policy()},
        inventory(
            volumes=[volume],
            vms={"vm-1": project_vm},
            networks=[Network("n-p", "alpha-dr", MAN, None, "p-1")],
        ),
        NOW,
    )
    assert got.volumes[0].params["projectid"] == "p-1"
    assert "account" not in got.volumes[0].params
    assert got.vms[0].params["projectid"] == "p-1"
    assert got.vms[0].params["networkids"] == "n-p"  # the project's own network there


def test_a_volume_two_policies_cover_is_planned_once_by_the_first_name() -> None:
    got = plan({"zeta": policy(), "alpha": policy()}, inventory(), NOW)
    assert [r.policy for r in got.volumes] == ["alpha"]
    assert got.policies == ("alpha", "zeta")


def test_a_detached_volume_is_restored_for_its_own_account() -> None:
    volume = vol("reports")
    inv = inventory(volumes=[volume], dr_copies=[copy("reports", 9)], domain_ids={volume.id: "d-2"})
    got = plan({"gold": policy()}, inv, NOW)
    assert got.volumes[0].params["account"] == "admin"
    assert got.volumes[0].params["domainid"] == "d-2"
    assert not got.vms


@pytest.mark.parametrize(("tag", "restored"), [("gold", True), ("silver", False), (None, False)])
def test_a_volume_no_longer_listed_is_restored_from_its_policys_copies(
    tag: str | None, restored: bool
) -> None:
    gone = replace(copy("vanished", 7), policy=tag)
    inv = inventory(
        dr_copies=[gone],
        snapshot_volumes={"v-vanished": SnapshotVolume("vanished", "DATADISK", "ops", "d-9")},
    )
    got = plan({"gold": policy()}, inv, NOW)
    # ledger-data is listed and has no copy here: blocked either way.
    assert [b.name for b in got.blocked] == ["ledger-data"]
    if restored:
        (step,) = got.volumes
        assert step.volume_name == "vanished"
        assert step.params == {
            "name": "dr-vanished",
            "snapshotid": gone.snapshot_id,
            "zoneid": MAN,
            "account": "ops",
            "domainid": "d-9",
        }
        assert any("not listed any more" in n for n in got.notes)
    else:
        assert not got.volumes


def test_long_names_stay_valid_host_names() -> None:
    long = replace(VM, name="x" * 63)
    got = plan({"gold": policy()}, inventory(vms={"vm-1": long}), NOW)
    assert len(got.vms[0].params["name"]) == 63
    assert got.vms[0].params["name"].startswith("dr-")
