"""The collector over real HTTP on 127.0.0.1 (aiohttp server, raw sockets for what a client
library would not send): good reports, hostile ones refused and counted, CORS, bounded tables;
and the super-peer's status server with ``[collector]``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from p2pml_py.apps.collector.config import CollectorConfig
from p2pml_py.apps.collector.http import CollectorServer
from p2pml_py.apps.collector.report import Reason
from p2pml_py.apps.collector.service import PingbackService
from p2pml_py.apps.superpeer.config import parse_config
from p2pml_py.apps.superpeer.supervisor import SuperPeer
from p2pml_py.apps.superpeer.web import StatusServer
from tests.collector.helpers import STREAM, body

SITE = "http://127.0.0.1:8080"


@pytest_asyncio.fixture
async def server() -> AsyncIterator[CollectorServer]:
    config = CollectorConfig(
        streams="any", cors_origins=(SITE,), client_rate=2, client_burst=40, max_viewers=200
    )
    async with CollectorServer(PingbackService(config), "127.0.0.1", 0) as running:
        yield running


async def raw(port: int, request: bytes, *, then: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` (headers and as much body as given), then ``then``; read the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        if then:
            writer.write(then)
            try:
                await writer.drain()
            except ConnectionError:
                pass  # the server answered and closed without reading it all: fine
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)
        }
        length = int(headers.get("content-length", "0"))
        data = await asyncio.wait_for(reader.readexactly(length), 5) if length else b""
        return status, headers, data
    finally:
        writer.close()


def post_bytes(data: bytes, *, extra: str = "", content_type: str = "text/plain") -> bytes:
    return (
        f"POST /pingback HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(data)}\r\n{extra}\r\n"
    ).encode() + data


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        assert response.status == 200
        return await response.json()


async def test_a_report_shows_in_status_and_metrics(server: CollectorServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            server.url + "/pingback",
            data=body(),
            headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": SITE},
        ) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == SITE
        status = (await get_json(http, server.url + "/status"))["viewers"]
        [stream] = status["streams"]
        assert stream["stream"] == STREAM and stream["viewers"] == 1
        assert (stream["http_bytes"], stream["p2p_bytes"], stream["p2p_share"]) == (
            1_000_000,
            3_000_000,
            0.75,
        )
        async with http.get(server.url + "/metrics") as response:
            text = await response.text()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        [share] = families["p2pml_viewer_p2p_share"].samples
        assert share.labels == {"stream": STREAM} and share.value == 0.75
        assert families["p2pml_viewer_viewers"].samples[0].value == 1
        startup = {
            s.labels.get("le"): s.value for s in families["p2pml_viewer_startup_seconds"].samples
        }
        assert startup["1.0"] == 1 and startup["0.5"] == 0
        async with http.get(server.url + "/pingback.js") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/javascript")
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            assert "export function attachPingback" in await response.text()


async def test_hostile_reports_are_refused_and_counted(server: CollectorServer) -> None:
    port = server.port
    # Huge, announced: refused by its Content-Length, the body is never read.
    status, _, data = await raw(
        port,
        b"POST /pingback HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 50000000\r\n\r\n" + b"{" * 1000,
    )
    assert status == 413 and json.loads(data)["reason"] == "too_large"
    # Huge, chunked (no length): refused after MAX_BODY + 1 bytes.
    chunk = b"x" * 8192
    status, _, data = await raw(
        port,
        b"POST /pingback HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
        then=(b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 64,
    )
    assert status == 413
    cases = [
        (b"{this is not json", "malformed"),
        (body().replace(b'"p2p": 3000000', b'"p2p": NaN'), "malformed"),
        (body().replace(b'"p2p": 3000000', b'"p2p": Infinity'), "malformed"),
        (body().replace(b'"p2p": 3000000', b'"p2p": -1e999'), "type"),  # -inf: not an integer
        (body(http=-1), "range"),
        (body(up=-(10**20)), "range"),
        (body(http="lots"), "type"),
        (body(peers=[1, 2]), "type"),
        (body(stream={"a": 1}), "type"),
        (body(seq=1, t=5000, p2p=10**12), "implausible"),  # 1 TB in 5 s
    ]
    for data, reason in cases:
        status, _, answer = await raw(port, post_bytes(data))
        assert status == 400, (data, answer)
        assert json.loads(answer)["reason"] == reason, (data, answer)
    status, _, _ = await raw(port, post_bytes(body(), content_type="multipart/form-data"))
    assert status == 415
    status, _, _ = await raw(port, post_bytes(body(), extra="Origin: https://evil.example\r\n"))
    assert status == 403
    async with aiohttp.ClientSession() as http:
        viewers = (await get_json(http, server.url + "/status"))["viewers"]
    rejected = viewers["rejected"]
    assert rejected["too_large"] == 2 and rejected["malformed"] == 3 and rejected["range"] == 2
    assert rejected["type"] == 4 and rejected["implausible"] == 1
    assert rejected["content_type"] == 1 and rejected["origin"] == 1
    assert viewers["streams"] == [] and viewers["totals"]["accepted"] == 0


async def test_a_flood_from_one_client_is_rate_limited(server: CollectorServer) -> None:
    async with aiohttp.ClientSession() as http:
        statuses = []
        for i in range(150):
            async with http.post(
                server.url + "/pingback",
                data=body(f"{i:032x}"),
                headers={"Content-Type": "text/plain"},
            ) as response:
                statuses.append(response.status)
        viewers = (await get_json(http, server.url + "/status"))["viewers"]
    taken = statuses.count(204)
    assert 40 <= taken <= 50, statuses  # the burst, plus what the rate refilled meanwhile
    assert statuses.count(429) == 150 - taken
    assert viewers["rejected"]["rate_limited"] == 150 - taken
    assert viewers["streams"][0]["viewers"] == taken


async def test_preflight_and_origins(server: CollectorServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.options(
            server.url + "/pingback",
            headers={"Origin": SITE, "Access-Control-Request-Method": "POST"},
        ) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == SITE
            assert "Content-Type" in response.headers["Access-Control-Allow-Headers"]
        async with http.options(
            server.url + "/pingback", headers={"Origin": "https://evil.example"}
        ) as response:
            assert response.status == 403
            assert "Access-Control-Allow-Origin" not in response.headers


async def test_many_clients_viewers_and_streams_stay_within_the_bounds() -> None:
    config = CollectorConfig(
        streams="any", max_viewers=100, max_streams=20, max_clients=50, forwarded_for=True
    )
    service = PingbackService(config)
    async with CollectorServer(service, "127.0.0.1", 0) as server:
        async with aiohttp.ClientSession() as http:
            for i in range(600):
                async with http.post(
                    server.url + "/pingback",
                    data=body(f"{i:032x}", stream=f"bogus-{i % 40}"),
                    headers={
                        "Content-Type": "text/plain",
                        "X-Forwarded-For": f"10.0.{i >> 8}.{i & 255}",
                    },
                ) as response:
                    assert response.status in (204, 400)
            tables = (await get_json(http, server.url + "/status"))["viewers"]["tables"]
    assert tables["viewers"] == 100 and tables["streams"] == 20 and tables["clients"] == 50
    # Every request came from another address: none was rate limited, and the streams beyond
    # the table's bound (all with live viewers) were refused.
    assert service.rejected[Reason.RATE_LIMITED] == 0
    assert service.rejected[Reason.TOO_MANY_STREAMS] == 300
    assert sum(service.rejected.values()) + service.accepted == 600


CONFIG = """\
[superpeer]
workers = 1
listen = "127.0.0.1:0"

[[stream]]
name = "news"
url = "{url}?token=abc"
trackers = ["ws://127.0.0.1:1"]
"""


async def test_the_superpeer_status_server_mounts_the_collector(tmp_path: Path) -> None:
    text = CONFIG.format(url=STREAM) + '[collector]\nlisten = "127.0.0.1:0"\n'
    superpeer = SuperPeer(parse_config(text))  # not started: no worker runs
    async with StatusServer(superpeer, "127.0.0.1", 0) as status_server:
        assert status_server.public is not None
        public = status_server.public.url
        async with aiohttp.ClientSession() as http:
            for url, viewer, stream, code in (
                (status_server.url, "a" * 32, STREAM + "?token=xyz", 204),
                (public, "b" * 32, "news", 204),
                (public, "c" * 32, "https://elsewhere.example/live.m3u8", 400),
            ):
                async with http.post(
                    url + "/pingback",
                    data=body(viewer, stream=stream),
                    headers={"Content-Type": "application/json"},
                ) as response:
                    assert response.status == code, await response.text()
            viewers = (await get_json(http, status_server.url + "/status"))["viewers"]
            assert [s["stream"] for s in viewers["streams"]] == ["news"]
            assert viewers["streams"][0]["viewers"] == 2
            assert viewers["rejected"]["unknown_stream"] == 1
            async with http.get(status_server.url + "/metrics") as response:
                metrics = await response.text()
            assert 'p2pml_viewer_viewers{stream="news"} 2.0' in metrics
            assert "p2pml_superpeer_streams" in metrics
            async with http.get(public + "/metrics") as response:
                assert response.status == 404  # the public port serves the reports only
            async with http.get(public + "/pingback.js") as response:
                assert response.status == 200


async def test_without_the_table_there_is_no_collector() -> None:
    superpeer = SuperPeer(parse_config(CONFIG.format(url=STREAM)))
    async with StatusServer(superpeer, "127.0.0.1", 0) as status_server:
        async with aiohttp.ClientSession() as http:
            assert (await get_json(http, status_server.url + "/status"))["viewers"] is None
            async with http.post(status_server.url + "/pingback", data=body()) as response:
                assert response.status in (404, 405)
