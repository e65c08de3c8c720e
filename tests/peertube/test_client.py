"""The PeerTube API client against real aiohttp servers on loopback: pace, 429 and errors,
User-Agent, listings page by page, and credentials that never leave the instance's origin."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from p2pml_py.apps.peertube.client import (
    Credentials,
    PeerTubeClient,
    credentials_middleware,
)
from p2pml_py.apps.peertube.model import PeerTubeError, parse_target
from p2pml_py.base.version import USER_AGENT


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


class FakeTime:
    """A clock and a sleep that advances it: the client's pacing without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def client(session: aiohttp.ClientSession, url: str, time: FakeTime, **kw: Any) -> PeerTubeClient:
    return PeerTubeClient(session, url, clock=time.clock, sleep=time.sleep, **kw)


async def test_pace_user_agent_and_retry_after() -> None:
    seen: list[tuple[str, str | None]] = []
    answers = iter([429, 200, 200, 200, 200, 200, 200, 200])

    async def config(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers.get("User-Agent")))
        status = next(answers)
        if status == 429:
            return web.json_response(
                {"error": "slow down"}, status=429, headers={"Retry-After": "7"}
            )
        return web.json_response({"serverVersion": "7.2.1"})

    app = web.Application()
    app.router.add_get("/api/v1/config", config)
    time = FakeTime()
    async with serve(app) as url, aiohttp.ClientSession() as session:
        api = client(session, url, time, rate=2.0, burst=2.0)
        for _ in range(6):
            assert await api.server_version() == "7.2.1"
    assert all(ua == USER_AGENT for _, ua in seen)
    assert len(seen) == 7 and api.requests == 7
    # The Retry-After wait, then the pace: the 6 requests after it, a burst of 2 then 2/s.
    assert 7.0 in time.slept
    assert time.now - 7.0 >= (6 - 2) / 2.0


@pytest.mark.parametrize(
    ("status", "words", "tries"),
    [(404, "HTTP 404: no such video", 1), (401, "give --token", 1), (503, "HTTP 503", 4)],
)
async def test_errors_say_why(status: int, words: str, tries: int) -> None:
    hits = []

    async def video(request: web.Request) -> web.Response:
        hits.append(request.match_info["id"])
        return web.Response(status=status)

    app = web.Application()
    app.router.add_get("/api/v1/videos/{id}", video)
    time = FakeTime()
    async with serve(app) as url, aiohttp.ClientSession() as session:
        with pytest.raises(PeerTubeError, match=words):
            await client(session, url, time).video("abc")
    assert len(hits) == tries


async def test_garbage_and_oversize_answers_are_errors() -> None:
    async def garbage(request: web.Request) -> web.Response:
        return web.Response(text="<html>not json</html>")

    async def huge(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"[" + b"0," * (3 * 1024 * 1024) + b"0]")

    app = web.Application()
    app.router.add_get("/api/v1/config", garbage)
    app.router.add_get("/api/v1/videos/{id}", huge)
    time = FakeTime()
    async with serve(app) as url, aiohttp.ClientSession() as session:
        api = client(session, url, time)
        with pytest.raises(PeerTubeError, match="not JSON"):
            await api.server_version()
        with pytest.raises(PeerTubeError, match="larger than"):
            await api.video("x")


async def test_a_too_long_retry_after_is_an_error_not_a_wait() -> None:
    async def config(request: web.Request) -> web.Response:
        return web.Response(status=429, headers={"Retry-After": "3600"})

    app = web.Application()
    app.router.add_get("/api/v1/config", config)
    time = FakeTime()
    async with serve(app) as url, aiohttp.ClientSession() as session:
        with pytest.raises(PeerTubeError, match="Retry-After"):
            await client(session, url, time).server_version()
    assert time.now < 60


async def test_listings_page_until_the_limit() -> None:
    asked: list[dict[str, str]] = []
    videos = [{"uuid": f"v{i}", "name": f"video {i}"} for i in range(250)]

    async def listing(request: web.Request) -> web.Response:
        asked.append(dict(request.query))
        start, count = int(request.query["start"]), int(request.query["count"])
        return web.json_response({"total": len(videos), "data": videos[start : start + count]})

    app = web.Application()
    app.router.add_get("/api/v1/videos", listing)
    app.router.add_get("/api/v1/video-channels/{handle}/videos", listing)
    time = FakeTime()
    async with serve(app) as url, aiohttp.ClientSession() as session:
        api = client(session, url, time)
        refs = await api.listing(parse_target(url + "/"), 230)
        assert [r.uuid for r in refs] == [f"v{i}" for i in range(230)]
        assert [a["count"] for a in asked] == ["100", "100", "30"]
        assert all(a["isLocal"] == "true" and a["sort"] == "-publishedAt" for a in asked)
        asked.clear()
        refs = await api.listing(parse_target(url + "/c/news"), 1000)
        assert len(refs) == 250 and len(asked) == 3 and "isLocal" not in asked[0]


async def test_credentials_go_to_the_instance_origin_only() -> None:
    got: dict[str, dict[str, str | None]] = {}

    def recorder(name: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            got[name] = {
                "auth": request.headers.get("Authorization"),
                "password": request.headers.get("x-peertube-video-password"),
            }
            return web.Response(text="ok")

        return handler

    instance, cdn = web.Application(), web.Application()
    instance.router.add_get("/static/x", recorder("instance"))
    cdn.router.add_get("/bucket/x", recorder("cdn"))
    async with serve(instance) as instance_url, serve(cdn) as cdn_url:
        for credentials, header in (
            (Credentials(token="t0k"), "auth"),
            (Credentials(video_password="pw"), "password"),
        ):
            middleware = credentials_middleware(instance_url, credentials)
            async with aiohttp.ClientSession(middlewares=(middleware,)) as session:
                for url in (instance_url + "/static/x", cdn_url + "/bucket/x"):
                    async with session.get(url) as response:
                        assert response.status == 200
            expected = "Bearer t0k" if header == "auth" else "pw"
            assert got["instance"][header] == expected
            assert got["cdn"] == {"auth": None, "password": None}
