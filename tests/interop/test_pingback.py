"""Issue 21: viewer stats. Two Chromium pages (hls.js + p2p-media-loader 2.3) load the shipped
``pingback.js`` from a super-peer's collector (``[collector]``) and report to it while they play
from the super-peer and each other; the P2P share the status page shows for the stream agrees
with what the pages counted themselves (``window.p2pmlStats``, the same core events) within 5 %.
A screenshot of the status page is saved in the test's tmp dir (its path is printed and recorded
as the ``screenshot`` property)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from p2pml_py.harness.scenario import Interop
from p2pml_py.harness.trackers import Tracker
from p2pml_py.testing.processes import SuperPeerProcess

NAME = "vod"

#: The page's counters and a report sent in the same tick (flush() builds it synchronously), so
#: what the collector got is exactly what the page had counted then.
SNAPSHOT_AND_FLUSH = """async () => {
  const s = window.p2pmlStats;
  const counted = {http: s.httpBytes, p2p: s.p2pBytes, up: s.uploadedBytes};
  const status = await window.p2pmlPingback.flush();
  return JSON.stringify({...counted, status});
}"""


def viewers_of(status: dict[str, Any]) -> dict[str, Any] | None:
    streams = (status.get("viewers") or {}).get("streams", [])
    return next((s for s in streams if s["stream"] == NAME), None)


def holds(total: int) -> Callable[[dict[str, Any]], bool]:
    def check(status: dict[str, Any]) -> bool:
        stream = viewers_of(status)
        return stream is not None and stream["http_bytes"] + stream["p2p_bytes"] >= total

    return check


async def test_status_page_shows_the_viewers_p2p_share(
    interop: Interop,
    embedded_tracker: Tracker,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    manifest = interop.manifest_url(live=False)
    config = tmp_path / "superpeer.toml"
    config.write_text(
        "\n".join(
            [
                "[superpeer]",
                "workers = 1",
                'listen = "127.0.0.1:0"',
                "stats_interval = 0.5",
                "[[stream]]",
                f'name = "{NAME}"',
                f'url = "{manifest}"',
                f'trackers = ["{embedded_tracker.url}"]',
                'ice_addresses = ["127.0.0.1"]',
                'renditions = "lowest"',  # what the pages play (level 0)
                "[collector]",
                f'cors_origins = ["{interop.origin.base_url}"]',  # the pages' origin
                "",
            ]
        )
    )
    async with SuperPeerProcess(config) as sp:
        await sp.wait_log(
            lambda r: r.get("event") == "stream_serving" and r.get("stream") == NAME, 20
        )
        pingback = sp.url + "/pingback"
        pages = [
            await interop.open_page("2.3", [embedded_tracker.url], pingback=pingback)
            for _ in range(2)
        ]
        for page in pages:
            await page.wait_for("s.p2pBytes > 0 && s.position >= 4 && s.startedAt !== null", 25)
            await page.wait_for("window.p2pmlPingback !== undefined", 1)
        counted = [json.loads(await page.page.evaluate(SNAPSHOT_AND_FLUSH)) for page in pages]
        assert [c["status"] for c in counted] == [204, 204], counted
        http = sum(c["http"] for c in counted)
        p2p = sum(c["p2p"] for c in counted)
        # Later reports may add more (the pages keep playing), never less.
        status = await sp.wait_status(holds(http + p2p), 10)
        stream = viewers_of(status)
        assert stream is not None
        pages_share = p2p / (http + p2p)
        assert stream["viewers"] == 2 and stream["started"] == 2, stream
        assert stream["p2p_share"] is not None and pages_share > 0, (stream, counted)
        assert abs(stream["p2p_share"] - pages_share) <= 0.05 * pages_share, (stream, counted)
        assert stream["startup"]["count"] == 2, stream
        assert status["viewers"]["totals"]["rejected"] == 0, status["viewers"]["rejected"]

        # The status page shows the same share in its viewers table; a screenshot for people.
        tab = await pages[0].page.context.new_page()
        try:
            await tab.set_viewport_size({"width": 1400, "height": 1000})
            await tab.goto(sp.url + "/")
            row = tab.locator(f'#viewers tbody tr[data-stream="{NAME}"]')
            await row.wait_for(timeout=5000)
            await tab.wait_for_function(
                "() => Number(document.body.dataset.viewerSamples) >= 3", timeout=15_000
            )
            shown = float(await row.get_attribute("data-share") or "nan")
            assert abs(shown - pages_share) <= 0.05 * pages_share, (shown, pages_share)
            screenshot = tmp_path / "superpeer-status-viewers.png"
            await tab.screenshot(path=str(screenshot), full_page=True)
        finally:
            await tab.close()
        print(f"\nscreenshot of the status page with viewer stats: {screenshot}")
        record_property("screenshot", str(screenshot))
        assert screenshot.stat().st_size > 10_000
        assert await sp.terminate(20) == 0
    assert sp.errors() == [], sp.errors()
