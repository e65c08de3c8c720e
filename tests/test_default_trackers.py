"""Without ``--tracker`` / ``trackers`` a peer uses p2p-media-loader's default trackers.

Only the resolution (arguments or configuration -> tracker list) is tested: nothing here opens a
connection, and no test may ever contact those public servers.
"""

from __future__ import annotations

import logging

import pytest

from p2pml_py.apps.cli import _resolve_trackers, build_parser
from p2pml_py.apps.superpeer.config import StreamConfig, parse_config
from p2pml_py.identity import DEFAULT_TRACKERS, ProtocolVersion, default_trackers

NOVAGE = "wss://tracker.novage.com.ua"
OPENWEBTORRENT = "wss://tracker.openwebtorrent.com"
WEBTORRENT_DEV = "wss://tracker.webtorrent.dev"


def test_defaults_per_version() -> None:
    """SPEC a.1: core/core.ts DEFAULT_STREAM_CONFIG.announceTrackers; 2.3 dropped
    webtorrent.dev (commit 814cd3be)."""
    assert ProtocolVersion.V2_3.default_trackers == (NOVAGE, OPENWEBTORRENT)
    assert ProtocolVersion.V2_2.default_trackers == (NOVAGE, OPENWEBTORRENT, WEBTORRENT_DEV)
    assert set(DEFAULT_TRACKERS) == set(ProtocolVersion)
    assert default_trackers(ProtocolVersion.V2_3) == (NOVAGE, OPENWEBTORRENT)
    both = (NOVAGE, OPENWEBTORRENT, WEBTORRENT_DEV)  # the union, each once
    assert default_trackers([ProtocolVersion.V2_3, ProtocolVersion.V2_2]) == both
    assert default_trackers([ProtocolVersion.V2_2, ProtocolVersion.V2_3]) == both


@pytest.mark.parametrize(
    ("protocol", "expected", "named"),
    [
        ("2.3", (NOVAGE, OPENWEBTORRENT), "2.3's"),
        ("2.2", (NOVAGE, OPENWEBTORRENT, WEBTORRENT_DEV), "2.2's"),
        ("both", (NOVAGE, OPENWEBTORRENT, WEBTORRENT_DEV), "2.3's and 2.2's"),
    ],
)
def test_seed_without_tracker_uses_the_defaults_and_says_so(
    protocol: str, expected: tuple[str, ...], named: str, caplog: pytest.LogCaptureFixture
) -> None:
    args = build_parser().parse_args(["seed", "http://127.0.0.1:9/m.m3u8", "--protocol", protocol])
    assert args.tracker == []
    with caplog.at_level(logging.WARNING, logger="p2pml_py"):
        assert _resolve_trackers(args.tracker, args.protocol) == expected
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert message.startswith(
        f"no --tracker given: using p2p-media-loader {named} default trackers"
    )
    assert all(url in message for url in expected) and "your pages must use them too" in message
    assert record.__dict__["event"] == "default_trackers"


def test_given_trackers_are_used_alone(caplog: pytest.LogCaptureFixture) -> None:
    args = build_parser().parse_args(
        [
            "watch",
            "http://127.0.0.1:9/m.m3u8",
            "--tracker",
            "ws://127.0.0.1:8000",
            "--tracker",
            "ws://127.0.0.2:8000",
        ]
    )
    with caplog.at_level(logging.DEBUG, logger="p2pml_py"):
        trackers = _resolve_trackers(args.tracker, args.protocol)
    assert trackers == ("ws://127.0.0.1:8000", "ws://127.0.0.2:8000")
    assert not caplog.records


def test_help_names_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("seed", "watch"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert NOVAGE in text and WEBTORRENT_DEV in text, command


STREAM = '[[stream]]\nurl = "http://127.0.0.1:9/m.m3u8"\n'


@pytest.mark.parametrize(
    ("protocol", "expected"),
    [
        ("", (NOVAGE, OPENWEBTORRENT)),
        ('protocol = "2.2"\n', (NOVAGE, OPENWEBTORRENT, WEBTORRENT_DEV)),
        ('protocol = "both"\n', (NOVAGE, OPENWEBTORRENT, WEBTORRENT_DEV)),
    ],
)
def test_superpeer_stream_without_trackers_uses_the_defaults(
    protocol: str, expected: tuple[str, ...]
) -> None:
    (stream,) = parse_config(STREAM + protocol).streams
    assert stream.trackers == expected and stream.trackers_defaulted
    # The flag survives the trip to a worker process (which logs the warning).
    assert StreamConfig.from_json(stream.to_json()).trackers_defaulted
    # [defaults] trackers still win, and are not "defaulted".
    (given,) = parse_config('[defaults]\ntrackers = ["ws://127.0.0.1:8000"]\n' + STREAM).streams
    assert given.trackers == ("ws://127.0.0.1:8000",) and not given.trackers_defaulted


async def test_superpeer_worker_says_it_uses_the_defaults(caplog: pytest.LogCaptureFixture) -> None:
    from p2pml_py.apps.superpeer.worker import StreamRunner

    # Marked as defaulted, but loopback URLs: whatever the runner starts stays on this host.
    spec = StreamConfig(
        name="s",
        url="http://127.0.0.1:9/m.m3u8",
        trackers=("ws://127.0.0.1:9",),
        trackers_defaulted=True,
    )
    runner = StreamRunner(spec, rate=None)
    with caplog.at_level(logging.WARNING, logger="p2pml_py.apps.superpeer.worker"):
        runner.start()
        await runner.aclose()
    warnings = [
        r.getMessage() for r in caplog.records if r.__dict__.get("event") == "default_trackers"
    ]
    assert warnings == [
        "stream s: no trackers configured: using p2p-media-loader 2.3's default trackers: "
        "ws://127.0.0.1:9 (your pages must use them too)"
    ]
