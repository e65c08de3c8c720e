"""A request's answer, sans-I/O: rate limit per client, origins (CORS), size and type, stream
resolution, counted refusals; the keyed limiter; bounded memory under 10,000 bogus viewers."""

from __future__ import annotations

import tracemalloc

import pytest

from p2pml_py.apps.collector.config import CollectorConfig, normalize_origin
from p2pml_py.apps.collector.report import MAX_BODY, Reason
from p2pml_py.apps.collector.service import (
    Answer,
    PingbackService,
    client_address,
    stream_id,
    stream_resolver,
)
from p2pml_py.apps.superpeer.ratelimit import KeyedLimiter
from p2pml_py.testing.clock import FakeClock
from tests.collector.helpers import STREAM, body

HOST = "stats.example.org"


def post(
    service: PingbackService,
    data: bytes,
    now: float,
    *,
    client: str = "198.51.100.7",
    origin: str | None = None,
    content_type: str = "text/plain;charset=UTF-8",
) -> Answer:
    answer = service.admit(
        client=client,
        origin=origin,
        host=HOST,
        content_type=content_type,
        content_length=len(data),
        now=now,
    )
    if answer is not None:
        return answer
    return service.take(data, origin=origin, host=HOST, now=now, wall=now)


def test_a_report_is_taken_and_refusals_are_counted_by_reason() -> None:
    clock = FakeClock()
    service = PingbackService(CollectorConfig())
    assert post(service, body(), clock()).status == 204
    bad = post(service, body(http=-1), clock())
    assert bad.status == 400 and bad.body is not None
    assert bad.body["reason"] == "range" and bad.body["field"] == "http"
    assert post(service, b"{", clock()).status == 400
    # The same report again is stale: nothing wrong with the viewer, nothing counted twice.
    assert post(service, body(), clock()) == Answer(204, None, {"Vary": "Origin"})
    assert service.accepted == 1
    assert service.rejected[Reason.RANGE] == 1
    assert service.rejected[Reason.MALFORMED] == 1
    assert service.rejected[Reason.STALE] == 1
    status = service.status(clock(), 0.0)
    assert status["totals"]["accepted"] == 1 and status["totals"]["rejected"] == 3
    assert status["streams"][0]["stream"] == STREAM
    assert status["streams"][0]["p2p_share"] == 0.75


def test_one_client_is_rate_limited_not_the_others() -> None:
    clock = FakeClock()
    service = PingbackService(CollectorConfig(client_rate=1, client_burst=5))
    answers = [post(service, body(f"{i:032x}"), clock()).status for i in range(8)]
    assert answers == [204] * 5 + [429] * 3
    limited = post(service, body("f" * 32), clock())
    assert limited.status == 429 and limited.headers["Retry-After"] == "1"
    assert post(service, body("e" * 32), clock(), client="203.0.113.9").status == 204
    clock.advance(2)  # two tokens back
    assert post(service, body("d" * 32), clock()).status == 204
    assert service.rejected[Reason.RATE_LIMITED] == 4
    # The limiter keeps keyed hashes, not addresses.
    assert all(isinstance(k, bytes) and len(k) == 12 for k in service.limiter._buckets)


def test_origins_same_origin_by_default_listed_or_any() -> None:
    clock = FakeClock()
    own = PingbackService(CollectorConfig(client_rate=1000, client_burst=1000))
    assert post(own, body("1" * 32), clock(), origin=f"https://{HOST}").status == 204
    other = post(own, body("2" * 32), clock(), origin="https://evil.example")
    assert other.status == 403 and "Access-Control-Allow-Origin" not in other.headers
    assert post(own, body("3" * 32), clock(), origin="null").status == 403
    assert post(own, body("4" * 32), clock()).status == 204  # no Origin: not a browser page
    assert own.preflight("https://evil.example", HOST).status == 403
    assert own.rejected[Reason.ORIGIN] == 3

    site = "https://www.example.org"
    listed = PingbackService(CollectorConfig(cors_origins=(site,)))
    ok = post(listed, body(), clock(), origin=site)
    assert ok.status == 204 and ok.headers["Access-Control-Allow-Origin"] == site
    refused = post(listed, body(http=-1), clock(), origin=site)
    assert refused.status == 400 and refused.headers["Access-Control-Allow-Origin"] == site
    preflight = listed.preflight(site, HOST)
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Methods"] == "POST"
    assert preflight.headers["Access-Control-Allow-Headers"] == "Content-Type"

    anyone = PingbackService(CollectorConfig(cors_origins=("*",)))
    assert post(anyone, body(), clock(), origin="https://any.example").status == 204


def test_size_and_type_are_checked_before_the_body_is_read() -> None:
    service = PingbackService(CollectorConfig())
    big = service.admit(
        client="c",
        origin=None,
        host=HOST,
        content_type="text/plain",
        content_length=10**9,
        now=0.0,
    )
    assert big is not None and big.status == 413
    form = service.admit(
        client="c",
        origin=None,
        host=HOST,
        content_type="application/x-www-form-urlencoded",
        content_length=10,
        now=0.0,
    )
    assert form is not None and form.status == 415
    # A chunked body has no length: the handler reads MAX_BODY + 1 bytes and take() refuses it.
    assert service.take(b" " * (MAX_BODY + 1), origin=None, host=HOST, now=0, wall=0).status == 413
    assert service.rejected[Reason.TOO_LARGE] == 2
    assert service.rejected[Reason.CONTENT_TYPE] == 1


def test_streams_resolve_to_configured_names_or_are_refused() -> None:
    known = {stream_id(STREAM + "?token=secret"): "news", "news": "news"}
    service = PingbackService(CollectorConfig(), resolve=stream_resolver(known, accept_any=False))
    assert post(service, body(stream=STREAM + "?token=abc"), 0.0).status == 204
    assert post(service, body("b" * 32, stream="news"), 0.0).status == 204
    unknown = post(service, body("c" * 32, stream="https://other.example/x.m3u8"), 0.0)
    assert unknown.status == 400 and unknown.body is not None
    assert unknown.body["reason"] == "unknown_stream"
    assert [s.key for s in service.stats.streams()] == ["news"]
    anything = stream_resolver(known, accept_any=True)
    assert anything("https://other.example/x.m3u8") == "https://other.example/x.m3u8"


def test_client_address_behind_a_proxy() -> None:
    assert client_address("10.0.0.1", "203.0.113.5, 198.51.100.1", False) == "10.0.0.1"
    assert client_address("10.0.0.1", "203.0.113.5, 198.51.100.1", True) == "198.51.100.1"
    assert client_address("10.0.0.1", None, True) == "10.0.0.1"


def test_keyed_limiter_is_bounded_and_refills() -> None:
    limiter = KeyedLimiter(rate=1, burst=2, max_keys=3)
    assert [limiter.allow("a", 0.0) for _ in range(3)] == [True, True, False]
    assert limiter.allow("a", 1.0)  # a token back after a second
    for key in "bcde":
        assert limiter.allow(key, 1.0)
    assert len(limiter) == 3 and limiter.evicted == 2 and limiter.refused == 1
    with pytest.raises(ValueError):
        KeyedLimiter(rate=0, burst=1, max_keys=1)
    with pytest.raises(ValueError):
        KeyedLimiter(rate=1, burst=1, max_keys=0)


def test_origins_are_normalized() -> None:
    assert normalize_origin("https://WWW.Example.org/") == "https://www.example.org"
    assert normalize_origin("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert normalize_origin("*") == "*"
    for bad in ("www.example.org", "https://example.org/page", "ftp://x", ""):
        with pytest.raises(ValueError, match="not an origin"):
            normalize_origin(bad)


def test_ten_thousand_bogus_clients_viewers_and_streams_keep_memory_bounded() -> None:
    clock = FakeClock()
    config = CollectorConfig(
        streams="any", max_viewers=300, max_streams=50, max_clients=300, viewer_ttl=30
    )
    service = PingbackService(config)

    def flood(start: int, count: int) -> None:
        for i in range(start, start + count):
            # Every request: another client, viewer and stream; some broken, some fine.
            data = body(f"{i:032x}", stream=f"bogus-{i}") if i % 3 else body(f"{i:032x}", http=-i)
            post(service, data, clock(), client=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
            clock.advance(0.01)

    tracemalloc.start()
    try:
        flood(0, 1000)  # the tables fill to their bounds
        before, _ = tracemalloc.get_traced_memory()
        flood(1000, 10_000)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert service.stats.viewer_count <= 300 and service.stats.stream_count <= 50
    assert len(service.limiter) == 300
    assert sum(service.rejected.values()) + service.accepted == 11_000
    assert service.rejected[Reason.RANGE] > 3600
    # 10,000 more hostile requests once the tables are full: no growth beyond noise.
    assert after - before < 50_000, after - before
