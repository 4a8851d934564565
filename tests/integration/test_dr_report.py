"""``csfabric dr report``: evidence published through the kernel's Auditor and the bus, read
back from the streams (in memory and on nats-server), rendered, and opened in headless
Chromium.  A missing Chromium fails the test with the command that installs it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from csfabric.cli.dr_drill import DR_SERVICE, record_on
from csfabric.cli.dr_evidence import ReportData, read_report
from csfabric.cli.dr_html import render_html
from csfabric.dr import (
    ALERT_BREACH,
    ALERT_RECOVERED,
    DECISION_EVIDENCE,
    DrillResult,
    DrillStep,
    RpoBreach,
    RpoEvidence,
    RpoSample,
)
from csfabric.kernel import Auditor, SteppedClock
from csfabric.kernel.bus import Bus
from csfabric.kernel.testing import MemoryNats, memory_bus

from tests.backbone import Backbone
from tests.servers import NatsServerProcess

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
START, END = T0 - timedelta(hours=1), T0 + timedelta(hours=2)
CHROMIUM_HINT = "install it with: sudo apt-get install -y chromium"
# Achieved RPO (s) of three gold volumes at each 10-minute boundary; None = no copy yet.
GOLD_ROWS = [
    (300.0, 200.0, None),
    (360.0, 240.0, 100.0),
    (420.0, 300.0, 160.0),
    (480.0, 960.0, 220.0),
    (540.0, 1020.0, 280.0),
    (600.0, 300.0, 340.0),
]


def evidence(policy: str, at: datetime, rows: tuple[float | None, ...], rpo: float) -> RpoEvidence:
    samples = [
        RpoSample(
            volume_id=f"v{i}",
            volume_name=f"{policy}-vol-{i}",
            achieved_rpo_s=r,
            breach=r is not None and r > rpo,
        )
        for i, r in enumerate(rows)
    ]
    return RpoEvidence(policy=policy, at=at, rpo_s=rpo, dr_zone="zone-manchester", volumes=samples)


async def publish_history(replication: Bus, dr: Bus, clock: SteppedClock) -> None:
    """What replication and a drill would have written: evidence, alerts, a drill, noise."""
    audit = Auditor(replication)

    async def record(ev: RpoEvidence) -> None:
        await clock.advance(max((ev.at - clock.now()).total_seconds(), 0))
        await audit.emit(
            action_key=f"ev:{ev.policy}:{ev.at.isoformat()}",
            decision=DECISION_EVIDENCE,
            reason="window boundary",
            policy=ev.policy,
            evidence=ev.model_dump(mode="json"),
        )

    await record(evidence("gold-15m", T0 - timedelta(hours=3), (100.0,), 900))  # out of range
    for i, rows in enumerate(GOLD_ROWS):
        await record(evidence("gold-15m", T0 + timedelta(minutes=10 * i), rows, 900))
    for i in range(2):
        await record(evidence("silver-1h", T0 + timedelta(minutes=30 * i), (1200.0, 600.0), 3600))
    # The same window recorded twice (a redelivery) counts once.
    await record(evidence("silver-1h", T0, (1200.0, 600.0), 3600))
    # A large policy's window in two parts (replication splits big evidence): one point.
    whole = evidence("big", T0, (100.0, 200.0, 2000.0, 400.0), 900)
    for part in (whole.volumes[:2], whole.volumes[2:]):
        piece = whole.model_copy(update={"volumes": part})
        await audit.emit(
            action_key=f"ev:big:{part[0].volume_id}",
            decision=DECISION_EVIDENCE,
            reason="part",
            policy="big",
            evidence=piece.model_dump(mode="json"),
        )
    breach = RpoBreach(
        policy="gold-15m",
        volume_id="v1",
        volume_name="gold-15m-vol-1",
        rpo_s=900,
        achieved_rpo_s=960,
        since=T0 + timedelta(minutes=30),
        cause="copySnapshot failed: 530 secondary storage unavailable",
    )
    healed = breach.model_copy(update={"ended": T0 + timedelta(minutes=50), "achieved_rpo_s": 300})
    still = breach.model_copy(
        update={
            "volume_id": "v9",
            "volume_name": "ledger",
            "since": T0 + timedelta(minutes=55),
            "cause": "no copy",
        }
    )
    for subject, alert in (
        (ALERT_BREACH, breach),
        (ALERT_RECOVERED, healed),
        (ALERT_BREACH, still),
    ):
        await replication.publish(subject, alert.model_dump_json().encode())
    await replication.publish("csfabric.audit.replication", b"{not json")
    step = DrillStep(
        name="createVolume dr-ledger", started=T0, finished=T0 + timedelta(minutes=3), ok=True
    )
    drill = DrillResult(
        id="drill-1",
        zone="zone-manchester",
        started=T0 + timedelta(minutes=20),
        finished=T0 + timedelta(minutes=25),
        target_rto_s=3600,
        measured_rto_s=180,
        volumes_restored=1,
        vms_redeployed=0,
        ok=True,
        cleaned_up=True,
        steps=[step],
    )
    await record_on(dr, drill)


def check_data(data: ReportData) -> None:
    gold = data.points["gold-15m"]
    assert [p.at for p in gold] == [T0 + timedelta(minutes=10 * i) for i in range(6)]
    assert [p.worst_s for p in gold] == [max(r for r in rows if r) for rows in GOLD_ROWS]
    assert [p.in_breach for p in gold] == [0, 0, 0, 1, 1, 0]
    assert gold[0].without_copy == 1
    assert gold[4].p95_s == 1020.0  # nearest rank of three is the largest
    assert len(data.points["silver-1h"]) == 2
    (big,) = data.points["big"]
    assert (big.volumes, big.worst_s, big.in_breach) == (4, 2000.0, 1)
    assert [(b.volume_id, b.end) for b in data.breaches] == [
        ("v1", T0 + timedelta(minutes=50)),
        ("v9", None),
    ]
    assert data.breaches[0].cause.startswith("copySnapshot failed")
    assert [d.id for d in data.drills] == ["drill-1"]
    assert data.unreadable == 1


async def test_report_reads_evidence_breaches_and_drills(backbone: Backbone) -> None:
    clock = SteppedClock(T0 - timedelta(hours=4))
    replication = await backbone.bus("replication", clock=clock)
    dr = await backbone.bus(DR_SERVICE, clock=clock)
    await publish_history(replication, dr, clock)
    check_data(await read_report(replication.js, START, END))
    narrow = await read_report(replication.js, T0 + timedelta(minutes=52), END)
    assert [b.volume_id for b in narrow.breaches] == ["v9"]  # v1 healed before the range
    assert not narrow.drills


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            f"headless Chromium is needed to check the report renders; {CHROMIUM_HINT}",
            pytrace=False,
        )
    return found


def dump_dom(page: Path, profile: Path) -> str:
    args = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--dump-dom",
        page.as_uri(),
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


async def test_report_page_renders_in_headless_chromium(tmp_path: Path) -> None:
    server = MemoryNats()
    clock = SteppedClock(T0 - timedelta(hours=4))
    replication = await memory_bus(server, service="replication", clock=clock)
    dr = await memory_bus(server, service=DR_SERVICE, clock=clock)
    await publish_history(replication, dr, clock)
    page = tmp_path / "report.html"
    text = render_html(await read_report(replication.js, START, END))
    page.write_text(text, encoding="utf-8")
    assert not re.search(r"""(src|href)=["']https?://""", text)  # nothing fetched at view time
    assert "<script" not in text
    dom = await asyncio.to_thread(dump_dom, page, tmp_path / "chromium")
    charts = re.findall(r"<figure class=\"rpo-chart\" data-policy=\"([^\"]+)\">\s*<svg", dom)
    assert charts == ["big", "gold-15m", "silver-1h"]
    # Drawn: each chart has its two data lines and the target line as SVG paths.
    first = dom[dom.index('data-policy="gold-15m"') : dom.index('data-policy="silver-1h"')]
    assert first.count("<path") >= 3
    assert "achieved RPO" in first
    assert len(re.findall(r'<tr class="breach">', dom)) == 2
    assert "secondary storage unavailable" in dom
    assert re.search(r"<tr class=\"drill\"><td>drill-1</td>.*?pass", dom)


async def test_cli_writes_the_page_and_json_from_nats_server(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    clock = SteppedClock(T0 - timedelta(hours=4))
    replication = await Bus.connect(nats_server.url, service="replication", clock=clock)
    dr = await Bus.connect(nats_server.url, service=DR_SERVICE, clock=clock)
    try:
        from csfabric.kernel.bus import ensure_streams

        await ensure_streams(replication.js)
        await publish_history(replication, dr, clock)
    finally:
        await replication.close()
        await dr.close()
    page = tmp_path / "dr.html"
    env = os.environ | {"CSFABRIC_NATS_URL": nats_server.url, "CSFABRIC_STATE_DIR": str(tmp_path)}
    args = [
        sys.executable,
        "-m",
        "csfabric.cli",
        "dr",
        "report",
        "--from",
        START.isoformat(),
        "--to",
        END.isoformat(),
        "--html",
        str(page),
        "--json",
    ]
    done = await asyncio.to_thread(
        subprocess.run, args, capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert len(body["rpo"]["gold-15m"]) == 6
    assert [b["end"] for b in body["breaches"]] == [(T0 + timedelta(minutes=50)).isoformat(), None]
    assert body["drills"][0]["measured_rto_s"] == 180
    assert "<svg" in page.read_text(encoding="utf-8")
    bad = await asyncio.to_thread(
        subprocess.run,
        [*args[:4], "report", "--from", "yesterday-ish", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "bad time 'yesterday-ish'" in bad.stderr
