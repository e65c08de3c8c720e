"""The switch between fetch-everything and demand-driven fetching: super-peer config and
``seed --fetch``, with errors that name the field."""

from __future__ import annotations

import pytest

from p2pml_py.apps.cli import build_parser
from p2pml_py.apps.superpeer.config import StreamConfig, parse_config
from p2pml_py.base.errors import ConfigError

CONFIG = """\
[defaults]
trackers = ["wss://tracker.example.org"]
{defaults}

[[stream]]
name = "a"
url = "https://cdn.example.org/a/master.m3u8"
{stream}
"""


def parse(defaults: str = "", stream: str = "") -> StreamConfig:
    return parse_config(CONFIG.format(defaults=defaults, stream=stream), "sp.toml").streams[0]


def test_fetch_per_stream_and_global() -> None:
    assert parse().fetch == "auto"  # live on demand, VOD everything
    assert parse(defaults='fetch = "all"').fetch == "all"
    assert parse(defaults='fetch = "all"', stream='fetch = "demand"').fetch == "demand"
    spec = parse(stream='fetch = "demand"')
    assert StreamConfig.from_json(spec.to_json()) == spec
    # Changing it restarts the stream's seeder (it is part of the comparison).
    assert parse(stream='fetch = "all"') != spec


@pytest.mark.parametrize(
    ("defaults", "stream", "where"),
    [
        ("", 'fetch = "everything"', "sp.toml:8: stream[1].fetch: "),
        ('fetch = "sometimes"', "", "sp.toml:3: defaults.fetch: "),
        ("", "fetch = true", "sp.toml:8: stream[1].fetch: "),
    ],
)
def test_bad_fetch_names_the_field(defaults: str, stream: str, where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(defaults, stream)
    assert str(caught.value).startswith(where + 'must be "auto"'), caught.value


def test_seed_fetch_option(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    base = ["seed", "http://127.0.0.1/m.m3u8", "--tracker", "ws://127.0.0.1:1"]
    args = parser.parse_args(base)
    assert (args.fetch, args.demand_grace) == ("auto", 30.0)
    args = parser.parse_args([*base, "--fetch", "demand", "--demand-grace", "5"])
    assert (args.fetch, args.demand_grace) == ("demand", 5.0)
    for bad in (["--fetch", "some"], ["--demand-grace", "-1"], ["--demand-grace", "nan"]):
        with pytest.raises(SystemExit) as caught:
            parser.parse_args([*base, *bad])
        assert caught.value.code == 2
        assert f"argument {bad[0]}" in capsys.readouterr().err
