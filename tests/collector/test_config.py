"""The super-peer's ``[collector]`` table: parsed into :class:`CollectorConfig`, errors name the
field and its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pml_py.apps.collector.config import CollectorConfig
from p2pml_py.apps.superpeer.config import parse_config
from p2pml_py.base.errors import ConfigError

BASE = """\
[superpeer]
workers = 1

[[stream]]
name = "news"
url = "https://cdn.example.org/news/master.m3u8"
trackers = ["wss://tracker.example.org"]
"""


def test_without_the_table_viewer_stats_are_off() -> None:
    assert parse_config(BASE).collector is None


def test_an_empty_table_turns_them_on_with_the_defaults() -> None:
    assert parse_config(BASE + "[collector]\n").collector == CollectorConfig()


def test_every_key() -> None:
    config = parse_config(
        BASE
        + """
[collector]
cors_origins = ["https://WWW.example.org/", "http://127.0.0.1:8080"]
streams = "any"
listen = "0.0.0.0:9465"
max_viewers = 50000
max_streams = 20
viewer_ttl = 300
max_viewer_mbit = 500
client_rate = 2.5
client_burst = 10
max_clients = 2000
forwarded_for = true
"""
    ).collector
    assert config == CollectorConfig(
        cors_origins=("https://www.example.org", "http://127.0.0.1:8080"),
        streams="any",
        listen=("0.0.0.0", 9465),
        max_viewers=50000,
        max_streams=20,
        viewer_ttl=300.0,
        max_viewer_mbit=500.0,
        client_rate=2.5,
        client_burst=10.0,
        max_clients=2000,
        forwarded_for=True,
    )
    assert config.max_viewer_rate == 500e6 / 8


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('cors_origins = ["www.example.org"]', "collector.cors_origins: 'www.example.org' is not"),
        ("cors_origins = [1]", "collector.cors_origins: must be a list of strings"),
        ('streams = "some"', 'collector.streams: must be "configured" or "any"'),
        ('listen = "nowhere"', 'collector.listen: must be "HOST:PORT"'),
        ("max_viewers = 0", "collector.max_viewers: must be a finite number >= 1"),
        ("max_viewers = 1.5", "collector.max_viewers: must be an integer"),
        ("viewer_ttl = -1", "collector.viewer_ttl: must be a finite number >= 1"),
        ("max_viewer_mbit = inf", "collector.max_viewer_mbit: must be a finite number"),
        ("client_rate = nan", "collector.client_rate: must be a finite number"),
        ('forwarded_for = "yes"', "collector.forwarded_for: must be true or false"),
        ("colour = 1", "collector.colour: unknown key"),
    ],
)
def test_bad_values_name_the_field_and_line(line: str, message: str) -> None:
    text = BASE + "\n[collector]\n" + line + "\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, "sp.toml")
    assert message in str(info.value)
    assert str(info.value).startswith(f"sp.toml:{text.count(chr(10))}:"), str(info.value)


def test_the_example_config_documents_the_defaults() -> None:
    """The commented ``[collector]`` of ``deploy/superpeer.example.toml``, uncommented, parses
    and its numbers are the defaults."""
    path = Path(__file__).resolve().parents[2] / "deploy" / "superpeer.example.toml"
    lines = path.read_text().splitlines()
    start = lines.index(next(line for line in lines if line.startswith("# [collector]")))
    block = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line.removeprefix("# "))
    config = parse_config(BASE + "\n".join(block) + "\n").collector
    assert config == CollectorConfig(
        cors_origins=("https://www.example.org",), listen=("0.0.0.0", 9465)
    )
