"""Config parsing and validation (line numbers), upload shares, the token bucket and the gate."""

from __future__ import annotations

import pytest

from p2pml_py.apps.superpeer.config import StreamConfig, parse_config
from p2pml_py.apps.superpeer.ratelimit import UploadGate
from p2pml_py.base.bucket import TokenBucket
from p2pml_py.base.errors import ConfigError
from p2pml_py.engine.store import SegmentStore

GOOD = """\
[superpeer]
workers = 3
listen = "0.0.0.0:9500"

[limits]
upload_mbit = 30
store_mb = 600

[defaults]
trackers = ["wss://tracker.example.org"]
protocol = "both"
max_peers = 40

[[stream]]
name = "news"
url = "https://cdn.example.org/news/master.m3u8"
renditions = [0, 2]
upload_mbit = 5

[[stream]]
url = "https://cdn.example.org/sport/master.m3u8"
swarm_id = "sport"
protocol = "2.2"
ice_servers = ["stun:stun.example.org:3478", "turn:u:p@turn.example.org?transport=tcp"]
ice_addresses = ["203.0.113.7"]
store_mb = 300
"""


def test_good_config_and_defaults() -> None:
    config = parse_config(GOOD, "sp.toml")
    assert config.workers == 3
    assert (config.listen_host, config.listen_port) == ("0.0.0.0", 9500)
    news, sport = config.streams
    assert news.name == "news" and news.renditions == (0, 2)
    assert news.protocol == ("2.3", "2.2") and news.max_peers == 40
    assert news.line == 14 and sport.line == 20
    assert sport.name == sport.url  # the URL names a stream without a name
    assert sport.protocol == ("2.2",) and sport.swarm_id == "sport" and sport.renditions is None
    assert sport.ice_addresses == ("203.0.113.7",) and len(sport.ice_servers) == 2
    # 30 Mbit/s shared by 2 streams: 15 each, news caps itself at 5.
    rates = config.upload_rates()
    assert rates[news.name] == pytest.approx(5e6 / 8)
    assert rates[sport.name] == pytest.approx(15e6 / 8)
    assert StreamConfig.from_json(news.to_json()) == news
    # Server-sized defaults: 1000 peers per swarm, 1000 connections per worker process.
    assert config.max_connections == 1000
    plain = parse_config(GOOD.replace("max_peers = 40\n", ""))
    assert [s.max_peers for s in plain.streams] == [1000, 1000]
    assert (
        parse_config(
            GOOD.replace("store_mb = 600", "store_mb = 600\nmax_connections = 300")
        ).max_connections
        == 300
    )


def test_equality_ignores_line_and_upload_rate() -> None:
    """A reload restarts a stream only when a setting its seeder was built with changed."""
    a = parse_config(GOOD).streams[0]
    moved = parse_config("\n\n" + GOOD.replace("upload_mbit = 5", "upload_mbit = 9")).streams[0]
    assert moved.line != a.line and moved.upload_mbit != a.upload_mbit
    assert moved == a
    assert parse_config(GOOD.replace("renditions = [0, 2]", "renditions = [0]")).streams[0] != a


@pytest.mark.parametrize(
    ("edit", "line", "field"),
    [
        (("max_peers = 40", "max_peers = 0"), 12, "defaults.max_peers"),
        (("renditions = [0, 2]", 'renditions = "some"'), 17, "stream[1].renditions"),
        (('protocol = "2.2"', 'protocol = "3"'), 23, "stream[2].protocol"),
        (('swarm_id = "sport"', 'swarm_id = "sport"\ncolour = 1'), 23, "stream[2].colour"),
        (("203.0.113.7", "not-an-ip"), 25, "stream[2].ice_addresses"),
        (("stun:stun.example.org:3478", "http://x"), 24, "stream[2].ice_servers"),
        (
            ('url = "https://cdn.example.org/sport', 'url = "ftp://cdn.example.org/sport'),
            21,
            "stream[2].url",
        ),
        (("workers = 3", "workers = 1.5"), 2, "superpeer.workers"),
        (('listen = "0.0.0.0:9500"', 'listen = "nope"'), 3, "superpeer.listen"),
        (("store_mb = 600", "store_mb = 500"), 7, "limits.store_mb"),
        (("store_mb = 600", "store_mb = 600\nmax_connections = 0"), 8, "limits.max_connections"),
        (
            ('trackers = ["wss://tracker.example.org"]', 'trackers = ["http://t"]'),
            10,
            "defaults.trackers",
        ),
        (("upload_mbit = 5", "upload_mbit = -1"), 18, "stream[1].upload_mbit"),
    ],
)
def test_errors_name_the_field_and_its_line(edit: tuple[str, str], line: int, field: str) -> None:
    text = GOOD.replace(*edit)
    assert text != GOOD
    with pytest.raises(ConfigError) as info:
        parse_config(text, "sp.toml")
    message = str(info.value)
    assert message.startswith(f"sp.toml:{line}: {field}:"), message
    assert info.value.line == line
    assert isinstance(info.value, ValueError)


def test_structural_errors() -> None:
    with pytest.raises(ConfigError, match=r"sp.toml:3: invalid TOML"):
        parse_config("[superpeer]\nworkers = 1\nlisten = \n", "sp.toml")
    with pytest.raises(ConfigError, match=r"at least one \[\[stream\]\]"):
        parse_config("[superpeer]\nworkers = 1\n")
    # No trackers at all means p2p-media-loader's defaults (tests/test_default_trackers.py).
    with pytest.raises(ConfigError, match=r"<config>:3: stream\[1\]\.trackers: at least one"):
        parse_config('[[stream]]\nurl = "http://x/m.m3u8"\ntrackers = []\n')
    with pytest.raises(ConfigError, match=r":5: stream\[2\]: url is missing"):
        parse_config(
            '[[stream]]\nurl = "http://x/m.m3u8"\ntrackers = ["ws://t"]\n\n[[stream]]\nname = "b"\n'
        )
    dup = 'trackers = ["ws://t"]\n[[stream]]\nurl = "http://x/m.m3u8"\n[[stream]]\nurl = "http://x/m.m3u8"\n'
    with pytest.raises(
        ConfigError, match=r":6: stream\[2\].url: 'http://x/m.m3u8' is already used by stream\[1\]"
    ):
        parse_config(dup.replace('trackers = ["ws://t"]\n', '[defaults]\ntrackers = ["ws://t"]\n'))
    with pytest.raises(ConfigError, match=r":1: colour: unknown section"):
        parse_config('colour = "blue"\n[[stream]]\nurl = "http://x/m.m3u8"\n')


def test_token_bucket_limits_the_long_run_rate() -> None:
    bucket = TokenBucket(rate=1000.0, burst=2000.0, now=0.0)
    taken = 0
    now = 0.0
    while now < 100.0:
        if bucket.take(300, now):
            taken += 300
        now += 0.01
    # 100 s at 1000 B/s, plus the initial burst and one request of debt.
    assert 100_000 <= taken <= 100_000 + 2000 + 300
    assert not bucket.take(1, now) or bucket.tokens > -300


def test_upload_gate_refuses_when_empty_and_delegates() -> None:
    store = SegmentStore(10_000_000)
    store.put(1, b"x" * 1_500_000)
    store.put(2, b"y" * 1_500_000)
    now = [0.0]
    gate = UploadGate(store, rate=1_000_000.0, clock=lambda: now[0])
    assert gate.ids() == (1, 2) and 1 in gate and len(gate) == 2 and gate.size == 3_000_000
    assert gate.get(1) is not None  # burst 2 MB
    assert gate.get(2) is not None  # goes into debt
    assert gate.get(1) is None and gate.refused == 1
    now[0] = 1.1  # debt repaid
    assert gate.get(1) is not None
    assert gate.get(99) is None and gate.refused == 1  # absent is not a refusal
    gate.set_rate(None)
    assert all(gate.get(1) is not None for _ in range(10))


def test_shipped_example_config_is_valid() -> None:
    from pathlib import Path

    from p2pml_py.apps.superpeer.config import load_config

    path = Path(__file__).resolve().parents[2] / "deploy" / "superpeer.example.toml"
    config = load_config(path)
    assert [s.name for s in config.streams] == ["news", "sport"]
    assert config.streams[1].max_peers == 100 and config.streams[0].protocol == ("2.3", "2.2")


def test_ice_port_range_from_defaults_reaches_the_worker_and_names_its_line() -> None:
    from p2pml_py.apps.superpeer.worker import peer_options

    text = GOOD.replace("max_peers = 40\n", "max_peers = 40\nice_port_range = [40000, 40999]\n")
    config = parse_config(text, "sp.toml")
    assert [s.ice_port_range for s in config.streams] == [(40000, 40999)] * 2
    spec = config.streams[0]
    assert StreamConfig.from_json(spec.to_json()) == spec  # through the worker channel
    assert peer_options(spec).rtc.ice_port_range == (40000, 40999)
    assert parse_config(GOOD).streams[0].ice_port_range is None
    bad = GOOD.replace("max_peers = 40\n", 'max_peers = 40\nice_port_range = "50000-40000"\n')
    with pytest.raises(ConfigError) as caught:
        parse_config(bad, "sp.toml")
    assert str(caught.value) == (
        "sp.toml:13: defaults.ice_port_range: must satisfy 1024 <= LOW <= HIGH <= 65535, "
        "got 50000-40000"
    )
