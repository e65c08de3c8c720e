"""Locust in distributed mode on loopback: a master and two workers run virtual viewers
(``p2pml_py.loadtest``) against a synthetic origin, our tracker and a seeder
(:func:`~p2pml_py.loadtest.loopback.run_loopback`, what ``python -m p2pml_py.loadtest.loopback``
runs), and the master prints viewers, stalls and the P2P share -- the same run as on many
machines, where ``--master-host`` names the master.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from p2pml_py.loadtest.loopback import SEGMENT_SIZE, run_loopback

USERS = 4
RUN_SECONDS = 30


def _stats(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    with path.open(newline="") as file:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(file)}


async def test_master_and_two_workers_report_viewers_stalls_and_p2p_share(tmp_path: Path) -> None:
    # 60 s of VOD, longer than the run: each user watches one session, until the run stops.
    run = await run_loopback(
        tmp_path,
        users=USERS,
        workers=2,
        run_seconds=RUN_SECONDS,
        vod_segments=30,
        locust_args=("--only-summary", "--exit-code-on-error", "0"),
    )
    logs = {name: run.log(name) for name in run.logs}
    everything = "\n".join(f"--- {name}\n{text}" for name, text in logs.items())
    print(logs["master"])
    assert run.codes == (0, 0, 0), everything

    # Both workers ran viewers: each started its viewer host.
    for name in ("worker1", "worker2"):
        assert "p2pml viewer host started" in logs[name], everything
    # The master's line: viewers, stalls, P2P share.
    found = re.search(
        r"p2pml: viewers (\d+) \((\d+) failed to start\), start-up median ([\d.]+) s, "
        r"stalls (\d+), .* P2P share ([\d.]+)%",
        logs["master"],
    )
    assert found, everything
    viewers, failed, _startup, stalls, share = found.groups()
    assert (int(viewers), int(failed)) == (USERS, 0), everything
    assert float(share) > 0, everything

    # The same numbers in Locust's own CSV, summed over the workers by the master.
    rows = _stats(Path(f"{run.csv_prefix}_stats.csv"))
    assert int(rows["viewer", "startup"]["Request Count"]) == USERS
    assert int(rows["viewer", "startup"]["Failure Count"]) == 0
    stall_row = rows.get(("viewer", "stall"))
    assert (int(stall_row["Request Count"]) if stall_row else 0) == int(stalls)
    http, p2p = rows["segment", "http"], rows["segment", "p2p"]
    assert int(http["Request Count"]) > 0 and int(p2p["Request Count"]) > 0
    # Every P2P row is one whole segment of the origin.
    assert round(float(p2p["Average Content Size"])) == SEGMENT_SIZE
