"""The fleet's pure assignment (balance, minimal movement, determinism), membership answers and
their refresh bookkeeping, the ``[fleet]`` config, and the supervisor serving its share."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from p2pml_py.apps.superpeer.config import StreamConfig, parse_config
from p2pml_py.apps.superpeer.fleet import (
    MAX_MEMBERS,
    FleetConfig,
    Membership,
    MembershipError,
    MembershipView,
    assign,
    normalize_member,
    owners,
    parse_members,
    rank,
    resolve_members,
    served_by,
    weight,
)
from p2pml_py.apps.superpeer.metrics import render_metrics
from p2pml_py.apps.superpeer.supervisor import SuperPeer
from p2pml_py.base.errors import ConfigError

STREAMS = {f"stream-{i:04d}": 1 for i in range(1000)}
FIVE = ("sp-0", "sp-1", "sp-2", "sp-3", "sp-4")


# -- assignment ----------------------------------------------------------------------------------


def test_weight_is_sha256_of_member_and_stream() -> None:
    digest = hashlib.sha256(b"10.0.0.7\nnews").digest()
    assert weight("10.0.0.7", "news") == int.from_bytes(digest[:8], "big")
    # "a" + "b\nc" and "a\nb" + "c" hash alike, so an id may hold no newline:
    with pytest.raises(ValueError, match="whitespace"):
        normalize_member("a\nb")


def test_rank_ignores_order_and_duplicates() -> None:
    forward = rank("news", FIVE)
    assert rank("news", reversed(FIVE)) == forward == rank("news", [*FIVE, *FIVE])
    assert sorted(forward) == sorted(FIVE)
    assert owners("news", FIVE, 2) == tuple(forward[:2])


@pytest.mark.parametrize("replicas", [1, 2])
def test_balance_1000_streams_over_5_members(replicas: int) -> None:
    table = assign(dict.fromkeys(STREAMS, replicas), FIVE)
    assert all(len(set(o)) == replicas for o in table.values())
    load = Counter(member for o in table.values() for member in o)
    fair = len(STREAMS) * replicas / len(FIVE)  # 200 or 400 seats each
    # Binomial spread: sd = sqrt(1000 * 0.2 * 0.8) ~ 13 seats for one replica; allow ~2.5 sd.
    assert all(abs(seats - fair) <= 0.16 * fair for seats in load.values()), load
    assert set(load) == set(FIVE)


def test_a_joining_member_takes_only_its_own_share() -> None:
    before = assign(STREAMS, FIVE)
    after = assign(STREAMS, (*FIVE, "sp-5"))
    moved = {name for name in STREAMS if before[name] != after[name]}
    # Every stream that moved went to the new member, none moved between the old ones.
    assert all(after[name] == ("sp-5",) for name in moved)
    assert {name for name in STREAMS if after[name] == ("sp-5",)} == moved
    assert 1000 / 6 * 0.8 <= len(moved) <= 1000 / 6 * 1.2  # ~1/N


def test_a_leaving_member_hands_each_stream_to_the_next_ranked() -> None:
    streams = dict.fromkeys(STREAMS, 2)
    before = assign(streams, FIVE)
    after = assign(streams, [m for m in FIVE if m != "sp-2"])
    for name in STREAMS:
        if "sp-2" not in before[name]:
            assert after[name] == before[name]
        else:
            kept = tuple(m for m in before[name] if m != "sp-2")
            assert set(kept) < set(after[name])
            # The new seat goes to the member ranked third before.
            assert set(after[name]) - set(kept) == {rank(name, FIVE)[2]}
    seats = sum(1 for name in STREAMS if "sp-2" in before[name])
    assert 2 * 1000 / 5 * 0.85 <= seats <= 2 * 1000 / 5 * 1.15  # ~replicas/N of the seats


def test_more_replicas_than_members_serves_with_all() -> None:
    assert set(owners("news", ["a", "b"], 5)) == {"a", "b"}
    assert served_by("a", {"news": 3, "sport": 1}, ["a"]) == ["news", "sport"]
    with pytest.raises(ValueError):
        owners("news", ["a"], 0)


def test_assignment_is_the_same_in_another_process() -> None:
    names = [f"stream-{i}" for i in range(50)]
    code = (
        "import json, sys\n"
        "from p2pml_py.apps.superpeer.fleet import assign\n"
        "names = json.loads(sys.argv[1])\n"
        "print(json.dumps(assign(dict.fromkeys(names, 2), ['b', 'a', 'c', 'd'])))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(names)],
        env=env,
        capture_output=True,
        check=True,
        text=True,
        timeout=60,
    ).stdout
    theirs = {k: tuple(v) for k, v in json.loads(out).items()}
    assert theirs == assign(dict.fromkeys(names, 2), ["a", "b", "c", "d"])


# -- membership answers ----------------------------------------------------------------------------


def test_normalize_member() -> None:
    assert normalize_member(" SP-0.example.org ") == "sp-0.example.org"
    assert normalize_member("2001:DB8:0::1") == "2001:db8::1"
    assert normalize_member("fe80::1%eth0") == "fe80::1"
    assert normalize_member("10.0.0.1") == "10.0.0.1"
    for bad in ("", "   ", "a b", "a\tb", "x" * 254):
        with pytest.raises(ValueError):
            normalize_member(bad)


def test_parse_members_formats() -> None:
    assert parse_members("sp-0\n# a comment\n\n sp-1  # trailing\nSP-0\n") == {"sp-0", "sp-1"}
    assert parse_members("") == frozenset()
    assert parse_members('["10.0.0.1", "10.0.0.2"]') == {"10.0.0.1", "10.0.0.2"}
    assert parse_members('{"members": ["a"]}') == {"a"}
    endpoint_slice = {
        "kind": "EndpointSlice",
        "endpoints": [
            {"addresses": ["10.1.0.4"], "conditions": {"ready": True}},
            {"addresses": ["10.1.0.5"], "conditions": {"ready": False}},  # not ready yet
            {"addresses": ["10.1.0.6"]},  # no conditions: ready
        ],
    }
    assert parse_members(json.dumps(endpoint_slice)) == {"10.1.0.4", "10.1.0.6"}
    listed = {"kind": "List", "items": [endpoint_slice, {"endpoints": None}]}
    assert parse_members(json.dumps(listed)) == {"10.1.0.4", "10.1.0.6"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "must hold strings"),
        ('{"other": 1}', "expected a list"),
        ("[not json", "invalid JSON"),
        ('["a b"]', "whitespace"),
        ('{"endpoints": [{"addresses": "10.0.0.1"}]}', "addresses"),
        ("\n".join(f"m{i}" for i in range(MAX_MEMBERS + 1)), f"more than {MAX_MEMBERS}"),
    ],
)
def test_parse_members_refuses(text: str, message: str) -> None:
    with pytest.raises(MembershipError, match=message):
        parse_members(text)


def test_view_counts_itself_in_and_keeps_the_last_good_answer() -> None:
    view = MembershipView("b")
    assert view.members == {"b"}  # before any answer: alone, so it serves everything
    outcome = view.succeeded(0.0, frozenset({"a", "c"}))  # not ready yet: not listed
    assert outcome.changed and view.members == {"a", "b", "c"}
    assert not view.to_json()["in_membership"]
    assert not view.succeeded(1.0, frozenset({"a", "b", "c"})).changed  # listed now: same
    assert view.to_json()["in_membership"]

    first = view.failed(2.0, "timeout")
    assert first.started_failing and not first.changed
    again = view.failed(3.0, "timeout")
    assert again == type(again)()  # reported once per spell
    assert view.members == {"a", "b", "c"} and view.to_json()["failing"]

    back = view.succeeded(7.5, frozenset({"a", "b"}))
    assert back.recovered and back.failed_for == 5.5 and back.changed
    assert view.members == {"a", "b"} and view.error is None
    assert not view.succeeded(8.0, frozenset({"a", "b"})).recovered
    assert (view.changes, view.failures) == (2, 2)


async def test_file_source_follows_rewrites(tmp_path: Path) -> None:
    path = tmp_path / "members"
    membership = Membership(FleetConfig(self_id="b", source="file", path=path))
    assert not await membership.refresh(0.0)  # missing: failing, still alone
    assert membership.members == {"b"} and membership.view.failing_since == 0.0

    def publish(text: str) -> None:  # replaced atomically, as a kubelet updates a volume
        tmp = tmp_path / "members.tmp"
        tmp.write_text(text)
        tmp.replace(path)

    publish("a\nb\nc\n")
    assert await membership.refresh(1.0)
    assert membership.members == {"a", "b", "c"} and membership.view.failing_since is None
    publish("a\nb\n")
    assert await membership.refresh(2.0) and membership.members == {"a", "b"}
    assert not await membership.refresh(3.0)
    publish('["a", 1]')  # broken: keep a, b
    assert not await membership.refresh(4.0)
    assert membership.members == {"a", "b"} and "must hold strings" in str(membership.view.error)
    path.write_bytes(b"\xff\xfe")
    assert not await membership.refresh(5.0)
    assert "not UTF-8" in str(membership.view.error)
    assert membership.to_json()["source"] == f"file {path}"


def _addrinfo(*addresses: str) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for address in addresses:
        if ":" in address:
            out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, 0, 0, 0)))
        else:
            out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, 0)))
    return out


async def test_dns_source_answers_and_failures() -> None:
    answers: list[Any] = [
        _addrinfo("10.1.0.4", "10.1.0.5", "2001:db8::1", "10.1.0.4"),
        socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
        socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
    ]
    asked: list[tuple[Any, ...]] = []

    async def resolver(*args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        asked.append((*args, kwargs))
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        result: list[tuple[Any, ...]] = answer
        return result

    config = FleetConfig(self_id="10.1.0.5", source="dns", dns_name="sp.ns.svc.cluster.local")
    membership = Membership(config, resolver)
    assert await membership.refresh(0.0)
    assert membership.members == {"10.1.0.4", "10.1.0.5", "2001:db8::1"}
    assert asked[0][0] == "sp.ns.svc.cluster.local"
    # No ready pod: the name has no records. An empty answer, not a failure.
    assert await membership.refresh(1.0) and membership.members == {"10.1.0.5"}
    assert not await membership.refresh(2.0)  # server failure: kept, failing
    assert membership.view.failing_since == 2.0 and "Temporary" in str(membership.view.error)


async def test_dns_lookup_is_bounded_by_the_timeout() -> None:
    never = asyncio.Event()

    async def hanging(*args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        await never.wait()
        return []

    with pytest.raises(MembershipError, match=r"no answer within 0\.01 s"):
        await resolve_members("sp.ns.svc", 0.01, hanging)


async def test_dns_through_the_event_loop() -> None:
    loop = asyncio.get_running_loop()
    members = await resolve_members("localhost", 5.0, loop.getaddrinfo)
    assert "127.0.0.1" in members or "::1" in members


# -- configuration ---------------------------------------------------------------------------------

STREAMS_CONFIG = """\
[defaults]
trackers = ["wss://tracker.example.org"]
replicas = 2

[[stream]]
name = "news"
url = "https://cdn.example.org/news/master.m3u8"

[[stream]]
name = "sport"
url = "https://cdn.example.org/sport/master.m3u8"
replicas = 1

"""
FLEET_CONFIG = STREAMS_CONFIG + "[fleet]\n"


def test_fleet_config(tmp_path: Path) -> None:
    config = parse_config(
        FLEET_CONFIG + 'members_file = "members.txt"\nrefresh = 1.5\n',
        "sp.toml",
        environ={"HOSTNAME": "SP-1"},
        base_dir=tmp_path,
    )
    assert config.fleet == FleetConfig(
        self_id="sp-1", source="file", path=tmp_path / "members.txt", refresh=1.5
    )
    news, sport = config.streams
    assert (news.replicas, sport.replicas) == (2, 1)
    assert StreamConfig.from_json(news.to_json()).replicas == 2
    # replicas decides where a stream runs, not how: no restart when it changes.
    assert news == parse_config(STREAMS_CONFIG.replace("replicas = 2", ""), "x").streams[0]
    assert parse_config(STREAMS_CONFIG, "x").fleet is None

    dns = parse_config(
        FLEET_CONFIG + 'members_dns = "sp.media.svc.cluster.local"\n',
        environ={"POD_IP": "10.1.0.7"},
    )
    assert dns.fleet is not None and dns.fleet.source == "dns" and dns.fleet.self_id == "10.1.0.7"
    static = parse_config(FLEET_CONFIG + 'members = ["a", "B"]\nself = "b"\n', environ={})
    assert static.fleet is not None and static.fleet.members == ("a", "b")


@pytest.mark.parametrize(
    ("fleet", "environ", "message"),
    [
        ('members_file = "m"', {}, "sp.toml:14: fleet.self: this member's id is missing"),
        (
            'members_dns = "sp.ns.svc"\nself_from_env = "MY_IP"',
            {"POD_IP": "10.0.0.1"},
            "sp.toml:16: fleet.self_from_env: .* MY_IP is unset or empty .*status.podIP",
        ),
        ('members_dns = "sp.ns.svc"', {"POD_IP": "sp-0"}, "fleet.self: must be this pod's IP"),
        ('members_dns = "http://sp"', {"POD_IP": "10.0.0.1"}, "fleet.members_dns: must be a DNS"),
        ('members = ["a"]\nself = "c"', {}, "sp.toml:16: fleet.self: 'c' is not one of"),
        (
            'members = ["a"]\nself = "a"\nself_from_env = "X"',
            {},
            "sp.toml:17: fleet.self_from_env: set self or self_from_env, not both",
        ),
        ('members = []\nself = "c"', {}, "fleet.members: at least one"),
        ('members = ["a"]\nmembers_file = "m"', {}, "sp.toml:16: fleet.members_file: set exactly"),
        ("refresh = 2", {}, "sp.toml:14: fleet: set exactly one of"),
        ('members = ["a"]\nself = "a"\nrefresh = 0', {}, "fleet.refresh: must be a finite"),
        ('members = ["a"]\nself = "a"\nleader = 1', {}, "sp.toml:17: fleet.leader: unknown key"),
    ],
)
def test_fleet_config_errors_name_the_field(
    fleet: str, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(FLEET_CONFIG + fleet + "\n", "sp.toml", environ=environ)


def test_replicas_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"sp.toml:12: stream\[2\].replicas: must be a finite"):
        parse_config(FLEET_CONFIG.replace("replicas = 1", "replicas = 0"), "sp.toml")
    with pytest.raises(ConfigError, match=r"sp.toml:3: defaults.replicas: must be an integer"):
        parse_config(FLEET_CONFIG.replace("replicas = 2", 'replicas = "2"'), "sp.toml")


def test_upload_share_counts_only_the_streams_served_here() -> None:
    config = parse_config(STREAMS_CONFIG + "[limits]\nupload_mbit = 8\n")
    assert config.upload_rates() == {"news": 0.5e6, "sport": 0.5e6}
    assert config.upload_rates(["sport"]) == {"sport": 1e6}


# -- the supervisor serves its share -----------------------------------------------------------


async def test_supervisor_serves_what_the_membership_assigns(tmp_path: Path) -> None:
    """No worker processes are started: ``_apply`` sends to absent workers, which get their
    streams when they start; what runs is the supervisor's stream table."""
    names = [f"s{i}" for i in range(12)]
    text = '[superpeer]\nworkers = 2\n[defaults]\ntrackers = ["ws://127.0.0.1:1"]\n'
    text += "".join(
        f'[[stream]]\nname = "{n}"\nurl = "http://127.0.0.1:1/{n}.m3u8"\n' for n in names
    )
    text += '[fleet]\nmembers_file = "members"\nself = "b"\n'
    (tmp_path / "members").write_text("a\nb\nc\n")
    config = parse_config(text, "sp.toml", base_dir=tmp_path)
    sp = SuperPeer(config)
    assert sp.fleet is not None
    await sp.fleet.refresh(0.0)
    first = await sp.rebalance()
    assert first is not None and first["removed"] == []
    mine = set(served_by("b", dict.fromkeys(names, 1), "abc"))
    assert set(sp.streams) == set(first["added"]) == mine and 0 < len(mine) < len(names)

    (tmp_path / "members").write_text("b\nc\n")  # a left: b takes a's streams it ranks above c
    assert await sp.fleet.refresh(1.0)
    second = await sp.rebalance()
    assert second is not None and second["removed"] == []
    taken = {n for n in names if rank(n, "abc")[0] == "a" and rank(n, "bc")[0] == "b"}
    assert set(second["added"]) == taken and set(sp.streams) == mine | taken

    status = sp.status()["fleet"]
    assert status["self"] == "b" and status["members"] == ["b", "c"]
    assert status["assigned"] == sorted(mine | taken) and status["configured"] == 12
    assert status["owners"]["s0"] == list(owners("s0", "bc"))
    families = {f.name: f for f in text_string_to_metric_families(render_metrics(sp).decode())}
    assert families["p2pml_superpeer_fleet_members"].samples[0].value == 2
    assert families["p2pml_superpeer_fleet_streams_assigned"].samples[0].value == len(sp.streams)
    assert families["p2pml_superpeer_fleet_self_listed"].samples[0].value == 1
    assert families["p2pml_superpeer_fleet_rebalances"].samples[0].value == 2

    await sp.aclose()
    assert await sp.rebalance() is None  # nothing starts once closing
