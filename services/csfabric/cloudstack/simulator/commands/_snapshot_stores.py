"""A snapshot's copies, one per zone's image store: rendering, copying, the limit check.

What CloudStack's snapshot_view and SnapshotManagerImpl do with snapshot_store_ref rows,
kept apart from the command handlers in ``_snapshots``: list rows (one per snapshot, or per
store with ``showunique=false``), copies that take ``World.copy_latency`` fabric seconds
(the destination is ``Creating`` meanwhile), and the snapshot-count limit of allocSnapshot.
Primary-storage copies are not modelled: the simulator's snapshots live on secondary
storage once backed up, as with ``snapshot.backup.to.secondary`` (the default).
"""

from __future__ import annotations

from csfabric.cloudstack.simulator._call import Call, Json, cs_date, render_tag
from csfabric.cloudstack.simulator._errors import permission_denied
from csfabric.cloudstack.simulator._limits import check_limit
from csfabric.cloudstack.simulator._state import Snapshot, SnapshotStore, Tag, Volume

SNAPSHOT_CLASS = "com.cloud.storage.Snapshot"
# States in which a snapshot counts against its owner's limit: the count is incremented
# once the snapshot is taken (SnapshotManagerImpl.createSnapshot), decremented on delete.
_UNCOUNTED = {"Allocated", "Creating", "Destroyed", "Error"}


def counted(snap: Snapshot) -> bool:
    """Whether the snapshot counts against its owner's snapshot limit."""
    return snap.state not in _UNCOUNTED


def image_store(call: Call, zone_id: str) -> tuple[str, str]:
    """(uuid, name) of the zone's one image store: derived, stable for the world."""
    zone = call.world.zones[zone_id]
    return call.world.stable_id(f"imagestore/{zone_id}"), f"{zone.name}-secondary"


def tag_index(call: Call) -> dict[str, list[Tag]]:
    """Snapshot id → its tags, built once per list call (the fabric lists by tag a lot)."""
    index: dict[str, list[Tag]] = {}
    for tag in call.world.tags:
        if tag.resourcetype == "Snapshot":
            index.setdefault(tag.resourceid, []).append(tag)
    return index


def render_snapshot(
    call: Call,
    snap: Snapshot,
    zone_id: str,
    *,
    unique: bool = True,
    job: bool = False,
    tags: list[Tag] | None = None,
) -> Json:
    """SnapshotResponse: a list row (SnapshotJoinDaoImpl) or, with ``job``, a job result
    (ApiResponseHelper.createSnapshotResponse, the only one with ``snapshottype``)."""
    w = call.world
    vol = w.volumes.get(snap.volumeid)
    zone = w.zones[zone_id]
    out: Json = {"id": snap.id}
    out |= w.owner_of(snap.account_id)
    if job:
        out["snapshottype"] = snap.intervaltype
    out |= {
        "volumeid": snap.volumeid,
        "volumename": vol.name if vol else "",
        "volumetype": snap.volumetype,
        "volumestate": vol.state if vol else "Expunged",
        "created": cs_date(snap.created),
        "name": snap.name,
        "intervaltype": snap.intervaltype,
        "state": snap.state,
    }
    store = snap.stores.get(zone_id)
    if not unique and store is not None:
        owner = w.accounts[snap.account_id]
        if call.account.accounttype == 1 or owner.id == call.account.id or owner.project_id:
            out["status"] = _status(snap, store)
    size = snap.size
    # Primitive longs: always written; the per-store rows leave the physical size unset.
    out["physicalsize"] = size if unique else 0
    out |= {"zoneid": zone.id, "zonename": zone.name, "revertable": False, "virtualsize": size}
    if not unique and store is not None:
        if call.account.accounttype == 1:  # ResponseView.Full: root admins only
            store_id, store_name = image_store(call, zone_id)
            out |= {"datastoreid": store_id, "datastorename": store_name}
        out["datastorestate"] = store.state
        if call.account.accounttype == 1:
            out["datastoretype"] = "Image"
        out["downloaddetails"] = {
            "downloadPercent": str(store.percent),
            "downloadState": store.download or "",
        }
    rendered = call.tags(snap.id) if tags is None else [render_tag(w, t) for t in tags]
    out |= {"tags": rendered, "hasannotations": False}
    return out


def _status(snap: Snapshot, store: SnapshotStore) -> str:
    # SnapshotJoinDaoImpl.getSnapshotStatus
    if store.download is None or store.download == "DOWNLOADED":
        return snap.state
    if store.download == "DOWNLOAD_IN_PROGRESS":
        return f"{store.percent}% Downloaded"
    return store.state


Row = tuple[Snapshot, str, list[Tag]]  # (snapshot, zone of the row, its tags)


def list_rows(call: Call, snaps: list[Snapshot], zone: str | None, unique: bool) -> list[Row]:
    """snapshot_view rows (``tags[n].key/value`` filtered), rendered later, page only:
    destroyed snapshots and removed copies are not in the view."""
    index = tag_index(call)
    wanted = call.tag_filter()
    rows: list[Row] = []
    for snap in snaps:
        tags = index.get(snap.id, [])
        if wanted:
            have = {t.key: t.value for t in tags}
            if any(have.get(k) != v for k, v in wanted.items()):
                continue
        zones = [z for z in snap.stores if zone is None or z == zone]
        rows.extend((snap, zone_id, tags) for zone_id in (zones[:1] if unique else zones))
    return rows


# -- call-time checks (CreateSnapshotCmd.getEntityOwnerId, allocSnapshot) -----------------


def check_owner_active(call: Call, vol: Volume) -> None:
    acct = call.world.accounts[vol.account_id]
    proj = call.world.projects.get(acct.project_id or "")
    if proj is not None and proj.state != "Active":
        raise permission_denied(
            f"Can't add resources to the project id={call.world.db_id(proj.id)} in "
            f"state={proj.state} as it's no longer active"
        )


def check_snapshot_limit(call: Call, vol: Volume) -> None:
    """allocSnapshot's check for one more snapshot of the volume's owner."""
    w = call.world
    used = sum(1 for s in w.snapshots.values() if s.account_id == vol.account_id and counted(s))
    check_limit(w, vol.account_id, 3, used)


# -- copies ---------------------------------------------------------------------------------


async def copy_to_zones(call: Call, snap: Snapshot, zone_ids: list[str]) -> list[str]:
    """Copy a backed-up snapshot to other zones' image stores; the zones that failed.

    Each destination is ``Creating`` (download in progress) for ``World.copy_latency``
    seconds, then ``Ready``.  A copy already Ready there is kept (checkAndProcessSnapshot-
    AlreadyExistInStore); one deleted while it was downloading fails, as does every copy to
    a zone in ``World.copy_fail_zones`` (its store row stays, ``Failed``, as CloudStack's
    OperationFailed transition leaves it).
    """
    w = call.world
    pending: dict[str, SnapshotStore] = {}
    failed: list[str] = []
    for zone_id in zone_ids:
        store = snap.stores.get(zone_id)
        if store is not None and store.state == "Ready":
            continue
        pending[zone_id] = SnapshotStore(zone_id, "Creating", "DOWNLOAD_IN_PROGRESS")
        snap.stores[zone_id] = pending[zone_id]
    if pending:
        await call.emitter.clock.sleep(w.copy_latency)
    for zone_id, mine in pending.items():
        store = snap.stores.get(zone_id)
        if store is not mine:  # deleted meanwhile (or another copy took over the row)
            failed.append(zone_id)
        elif zone_id in w.copy_fail_zones:
            store.state, store.download = "Failed", "DOWNLOAD_ERROR"
            failed.append(zone_id)
        else:
            store.state, store.download, store.percent = "Ready", "DOWNLOADED", 100
            await call.emitter.usage(
                "SNAPSHOT.COPY",
                zone_id=zone_id,
                resource_class=SNAPSHOT_CLASS,
                resource_uuid=snap.id,
                account_id=snap.account_id,
            )
    return failed
