"""Hostile SDP: mutations of a real offer or answer, as data (for hypothesis) and as a catalogue.

A mutation is a list of operations applied in order to the lines of an SDP that aiortc made
(:func:`real_sdps`). Operations are plain tuples, so hypothesis can draw and shrink them and the
end-to-end test can replay them. Also here: browser-shaped SDPs (Chromium's and Firefox's data-
channel offers, with their candidate styles) that the checker must always accept.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import ipaddress
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from aioice import ice as aioice_ice
from aiortc import RTCPeerConnection
from hypothesis import strategies as st

import p2pml_py.rtc.aiortc_backend.factory as factory_module
from p2pml_py.rtc import RtcConfig
from p2pml_py.rtc.aiortc_backend import RtcFactory

#: Connections that have not opened within a quarter second (on loopback they open in ~50 ms)
#: fail, so that a mutation that breaks ICE or DTLS costs little time.
LOOPBACK_FAST = RtcConfig(ice_addresses=("127.0.0.1",), ice_timeout=5.0, open_timeout=0.25)

Op = tuple[Any, ...]
#: Most candidates a live case adds (aioice probes each for up to open_timeout).
MAX_LIVE_CANDIDATES = 40

# -- the real SDPs ------------------------------------------------------------------------------


async def _make_real() -> tuple[str, str]:
    factory = RtcFactory(LOOPBACK_FAST)
    outgoing = await factory.create_offer()
    incoming = await factory.accept_offer(outgoing.sdp)
    await incoming.aclose()
    await outgoing.aclose()
    return outgoing.sdp, incoming.sdp


@functools.cache
def real_sdps() -> tuple[str, str]:
    """(offer, answer) that aiortc made on 127.0.0.1, once per process (in a thread of its own,
    so that sync and async tests alike can call it)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _make_real()).result()


# -- browser-shaped SDPs ------------------------------------------------------------------------


def _hex_pairs(rng: random.Random, count: int) -> str:
    return ":".join(f"{rng.randrange(256):02X}" for _ in range(count))


def _public_ipv4(rng: random.Random) -> str:
    return f"{rng.randint(1, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randint(1, 254)}"


def browser_sdp(seed: int, *, kind: str = "offer", firefox: bool = False) -> str:
    """A data-channel SDP shaped like Chromium's (or Firefox's), non-trickle as simple-peer
    publishes it, with a seeded mix of mDNS, IPv4, IPv6, TCP, srflx and relay candidates."""
    rng = random.Random(seed)
    names = [f"{rng.getrandbits(128):032x}" for _ in range(rng.randint(1, 4))]
    names = [f"{n[:8]}-{n[8:12]}-{n[12:16]}-{n[16:20]}-{n[20:]}.local" for n in names]
    candidates: list[str] = []
    port = rng.randint(1024, 65535 - 4)  # the host candidates take port .. port + 3
    udp = "UDP" if firefox else "udp"
    tcp = "TCP" if firefox else "tcp"
    for index, name in enumerate(names):
        candidates.append(f"{index + 1} 1 {udp} 2122260223 {name} {port + index} typ host")
        candidates.append(f"{index + 10} 1 {tcp} 1518280447 {name} 9 typ host tcptype active")
    for index in range(rng.randint(0, 3)):
        address = _public_ipv4(rng)
        candidates.append(
            f"{index + 20} 1 {udp} 1686052607 {address} {rng.randint(1, 65535)} typ srflx "
            f"raddr 0.0.0.0 rport 0"
        )
    for index in range(rng.randint(0, 2)):
        address = str(ipaddress.IPv6Address((0x2001 << 112) | rng.getrandbits(96)))
        candidates.append(f"{index + 30} 1 {udp} 2122262783 {address} {port} typ host")
    for index in range(rng.randint(0, 6)):
        address = _public_ipv4(rng)
        candidates.append(
            f"{index + 40} 1 {udp} 41885439 {address} {rng.randint(1, 65535)} typ relay "
            f"raddr 203.0.113.7 rport {rng.randint(1, 65535)}"
        )
    if not firefox:
        candidates = [f"{c} generation 0 network-id {rng.randint(1, 9)}" for c in candidates]
    ufrag = "".join(rng.choice("abcdefABCDEF0123456789+/") for _ in range(8 if firefox else 4))
    pwd = "".join(rng.choice("abcdefABCDEF0123456789+/") for _ in range(32 if firefox else 24))
    setup = "actpass" if kind == "offer" else rng.choice(["active", "passive"])
    fingerprint = f"a=fingerprint:sha-256 {_hex_pairs(rng, 32)}"
    session = [
        "v=0",
        f"o=- {rng.getrandbits(62)} 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
    ]
    if firefox:
        session += ["a=sendrecv", fingerprint, "a=group:BUNDLE 0", "a=msid-semantic:WMS *"]
    else:
        session += ["a=group:BUNDLE 0", "a=extmap-allow-mixed", "a=msid-semantic: WMS"]
    media = [
        f"m=application {port} UDP/DTLS/SCTP webrtc-datachannel",
        f"c=IN IP4 {'0.0.0.0' if not firefox else '203.0.113.7'}",
        *(f"a=candidate:{c}" for c in candidates),
    ]
    if firefox:
        media += ["a=sendrecv", "a=end-of-candidates"]
    media += [f"a=ice-ufrag:{ufrag}", f"a=ice-pwd:{pwd}"]
    if not firefox:
        media.append(fingerprint)
    media += [f"a=setup:{setup}", "a=mid:0", "a=sctp-port:5000"]
    media.append(f"a=max-message-size:{1073741823 if firefox else 262144}")
    return "\r\n".join(session + media) + "\r\n"


# -- operations ---------------------------------------------------------------------------------

#: Lines a hostile peer might put anywhere.
HOSTILE_LINES = [
    "a=setup:active",
    "a=setup:passive",
    "a=setup:actpass",
    "a=setup:holdconn",
    "a=setup:",
    "a=fingerprint:sha-1 AB:CD",
    "a=fingerprint:sha-256 00",
    "a=fingerprint:sha-256",
    "a=fingerprint:",
    "a=fingerprint:sha-256 " + ":".join(["ZZ"] * 32),
    "a=fingerprint:sha-512 " + ":".join(["AB"] * 64),
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "m=application 0 UDP/DTLS/SCTP webrtc-datachannel",
    "m=application 9 DTLS/SCTP 5000",
    "m=application 9 DTLS/SCTP x",
    "m=application 9 TCP/DTLS/SCTP webrtc-datachannel",
    "m=application 9 RTP/AVP 0",
    "m=application 99999999 UDP/DTLS/SCTP webrtc-datachannel",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111",
    "m=video 9 UDP/TLS/RTP/SAVPF 96",
    "a=rtpmap:111 opus/48000/2",
    "a=rtpmap:96 VP8/90000",
    "a=rtcp-mux",
    "a=sctp-port:0",
    "a=sctp-port:70000",
    "a=sctp-port:-1",
    "a=sctp-port:\uff15\uff10\uff10\uff10",
    "a=sctp-port:abc",
    "a=sctpmap:5000 webrtc-datachannel 1024",
    "a=sctpmap:x y",
    "a=max-message-size:-1",
    "a=max-message-size:0",
    "a=max-message-size:" + "9" * 30,
    "a=max-message-size:x",
    "a=ice-ufrag:\u00e9\u00e9\u00e9\u00e9",
    "a=ice-ufrag:ab",
    "a=ice-ufrag:" + "u" * 300,
    "a=ice-ufrag:",
    "a=ice-pwd:short",
    "a=ice-pwd:" + "p" * 300,
    "a=ice-pwd:" + "=" * 24,
    "a=ice-lite",
    "a=ice-options:trickle",
    "a=end-of-candidates",
    "a=mid:",
    "a=mid:" + "m" * 100,
    "a=mid:a b",
    "a=mid:\u00e9",
    "a=mid:1",
    "a=group:BUNDLE 0 1 2",
    "a=group:BUNDLE",
    "a=msid-semantic:",
    "c=IN IP4",
    "c=IN IP7 1.2.3.4",
    "c=IN IP4 999.999.999.999",
    "a=rtcp:abc",
    "a=extmap:x",
    "a=ssrc:1 cname:x",
    "a=ssrc-group:FID 1 2",
    "a=sendonly",
    "a=inactive",
    "a=candidate:",
    "a=candidate:1 1 udp 1 127.0.0.1",
    "a=candidate:1 1 udp 1 127.0.0.1 9 host host",
    "a=candidate:1 x udp 1 127.0.0.1 9 typ host",
    "a=candidate:1 1 udp x 127.0.0.1 9 typ host",
    "a=candidate:1 1 udp 1 127.0.0.1 x typ host",
    "a=candidate:1 1 udp 1 127.0.0.1 9 typ host raddr",
    "a=candidate:1 1 udp 1 127.0.0.1 9 typ srflx raddr 1.2.3.4 rport x",
    "a=candidate:1 1 udp 1 127.0.0.1 9 typ bogus",
    "a=candidate:1 1 sctp 1 127.0.0.1 9 typ host",
    "a=candidate:1 0 udp 1 127.0.0.1 9 typ host",
    "a=candidate:1 1 udp 0 127.0.0.1 9 typ host",
    "a=candidate:1 1 udp 99999999999 127.0.0.1 9 typ host",
    "a=candidate:1 1 udp 1 127.0.0.1 65536 typ host",
    "a=candidate:1 1 udp 1 127.0.0.1 -1 typ host",
    "a=candidate:1 1 udp 1 \uff11\uff12\uff17.0.0.1 9 typ host",
    "a=candidate:1 1 udp 1 127.0.0.1 \uff19 typ host",
    "a=candidate:\u00e9 1 udp 1 127.0.0.1 9 typ host",
    "x",
    "garbage",
    "v=1",
    "o=",
    "s=\u540d\u524d",
    "i=\u00e9\u00e9",
    "a=\u00e9:\u00e9",
    "A=b",
    " a=setup:active",
    "a=candidate:1 1 udp 2130706431 127.0.0.1 1 typ host",
    "a=candidate:1 1 udp 2130706431 127.0.0.1 65535 typ host",
    "a=candidate:1 2 udp 2130706431 127.0.0.1 9 typ host",
    "a=candidate:1 1 tcp 2130706431 127.0.0.1 9 typ host tcptype passive",
    "a=candidate:1 1 udp 2130706431 ::1 9 typ host",
    "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ prflx",
    "a",
    "=",
]

#: Addresses and ports for candidate lines: good, unusable and malformed.
HOSTS = [
    "127.0.0.1",
    "127.0.0.2",
    "0.0.0.0",
    "255.255.255.255",
    "224.0.0.251",
    "239.255.255.250",
    "::",
    "::1",
    "ff02::1",
    "fe80::1",
    "fe80::1%1",
    "192.0.2.1",
    "999.1.1.1",
    "1.2.3",
    "example.com",
    "abc.local",
    "-.local",
    "x" * 70 + ".local",
    "\uff11\uff12\uff17.0.0.1",
    "127.0.0.1\u00e9",
]
PORTS = ["0", "1", "9", "5353", "65535", "65536", "-1", "99999999999", "x", "\uff19"]

candidate_lines = st.builds(
    lambda foundation, component, transport, priority, host, port, typ, ext: (
        f"a=candidate:{foundation} {component} {transport} {priority} {host} {port} typ {typ}" + ext
    ),
    st.sampled_from(["1", "abc+/", "x" * 40, "\u00e9"]),
    st.sampled_from(["1", "2", "0", "257", "x"]),
    st.sampled_from(["udp", "UDP", "tcp", "tls", "sctp"]),
    st.sampled_from(["1", "2130706431", "4294967295", "4294967296", "0", "x"]),
    st.one_of(st.sampled_from(HOSTS), st.ip_addresses().map(str)),
    st.one_of(st.sampled_from(PORTS), st.integers(0, 65535).map(str)),
    st.sampled_from(["host", "srflx", "prflx", "relay", "bogus"]),
    st.sampled_from(
        [
            "",
            " generation 0",
            " raddr 0.0.0.0 rport 0",
            " raddr x rport x",
            " tcptype active",
            " rport",
        ]
    ),
)

hostile_lines = st.one_of(
    st.sampled_from(HOSTILE_LINES),
    candidate_lines,
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="ascii"), max_size=40).map(lambda t: "a=" + t),
)

ops: st.SearchStrategy[Op] = st.one_of(
    # line edits; indexes are taken modulo the number of lines
    st.tuples(st.just("drop"), st.integers(0, 100)),
    st.tuples(
        st.just("drop-prefix"),
        st.sampled_from(
            [
                "a=fingerprint",
                "a=setup",
                "a=ice-",
                "a=candidate",
                "a=mid",
                "a=sctp-port",
                "m=",
                "c=",
                "a=end-of-candidates",
                "v=",
                "a=max-message-size",
            ]
        ),
    ),
    st.tuples(st.just("dup"), st.integers(0, 100), st.integers(1, 3)),
    st.tuples(st.just("insert"), st.integers(0, 100), hostile_lines),
    st.tuples(st.just("replace"), st.integers(0, 100), hostile_lines),
    st.tuples(st.just("token"), st.integers(0, 100), st.integers(0, 10), st.text(max_size=12)),
    st.tuples(st.just("swap"), st.integers(0, 100), st.integers(0, 100)),
    # the catalogue's big and structural ones
    st.tuples(
        st.just("candidates"),
        # now and then the 10,000 (hypothesis favours the bounds)
        st.integers(1, 300).map(lambda n: 10_000 if n == 300 else n),
        candidate_lines,
        st.booleans(),
    ),
    st.tuples(st.just("mdns"), st.integers(1, 40)),
    st.tuples(
        st.just("pad"),
        st.integers(1, 40_000).map(lambda n: 1_000_000 if n == 40_000 else n),
        st.booleans(),
    ),
    st.tuples(st.just("endings"), st.sampled_from(["\n", "\r", "\r\n\r\n", "\n\r"])),
    st.tuples(st.just("truncate"), st.integers(0, 100)),
    st.tuples(st.just("setup"), st.sampled_from(["active", "passive", "actpass", "holdconn"])),
    st.tuples(st.just("fingerprint"), st.sampled_from(["flip", "sha-1", "short", "none"])),
    st.tuples(st.just("credentials"), st.sampled_from(["ufrag", "pwd"]), st.text(max_size=30)),
)
mutations = st.lists(ops, min_size=1, max_size=5)

#: Mutations for the cases that go through aiortc: fewer plain garbage (the checker's tests have
#: plenty), more that keep an SDP plausible enough to be applied, answered and connected; no
#: mDNS names (each costs aioice's 1 s resolution timeout here; they have a test of their own).
live_ops: st.SearchStrategy[Op] = st.one_of(
    st.tuples(st.just("drop"), st.integers(0, 100)),
    st.tuples(st.just("dup"), st.integers(0, 100), st.integers(1, 2)),
    st.tuples(st.just("insert"), st.integers(0, 100), st.sampled_from(HOSTILE_LINES)),
    st.tuples(st.just("insert"), st.integers(0, 100), candidate_lines),
    st.tuples(st.just("replace"), st.integers(0, 100), candidate_lines),
    st.tuples(
        st.just("candidates"), st.integers(1, MAX_LIVE_CANDIDATES), candidate_lines, st.booleans()
    ),
    st.tuples(st.just("setup"), st.sampled_from(["active", "passive", "actpass", "holdconn"])),
    st.tuples(st.just("fingerprint"), st.sampled_from(["flip", "sha-1", "short", "none"])),
    st.tuples(
        st.just("credentials"),
        st.sampled_from(["ufrag", "pwd"]),
        st.text(alphabet="abcXYZ019+/=$", min_size=3, max_size=30),
    ),
    st.tuples(st.just("endings"), st.sampled_from(["\n", "\r\n\r\n"])),
)
live_mutations = st.lists(live_ops, min_size=1, max_size=3)


def _at(lines: list[str], index: int) -> int:
    return index % len(lines) if lines else 0


def _numbered_candidate(line: str, number: int) -> str:
    """``line`` with its address made unique (so aioice keeps every one)."""
    fields = line.split(" ")
    if len(fields) > 4:
        fields[4] = f"10.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}"
    return " ".join(fields)


def apply(sdp: str, mutation: list[Op]) -> str:
    """The SDP after each operation of ``mutation`` in turn."""
    lines = sdp.splitlines()
    ending = "\r\n"
    for op in mutation:
        name = op[0]
        if name == "drop" and lines:
            del lines[_at(lines, op[1])]
        elif name == "drop-prefix":
            lines = [line for line in lines if not line.startswith(op[1])]
        elif name == "dup" and lines:
            index = _at(lines, op[1])
            lines[index:index] = [lines[index]] * op[2]
        elif name == "insert":
            lines.insert(_at(lines, op[1]) + 1 if lines else 0, op[2])
        elif name == "replace" and lines:
            lines[_at(lines, op[1])] = op[2]
        elif name == "token" and lines:
            index = _at(lines, op[1])
            tokens = lines[index].split(" ")
            tokens[op[2] % len(tokens)] = op[3]
            lines[index] = " ".join(tokens)
        elif name == "swap" and lines:
            a, b = _at(lines, op[1]), _at(lines, op[2])
            lines[a], lines[b] = lines[b], lines[a]
        elif name == "candidates":
            added = [_numbered_candidate(op[2], n) if op[3] else op[2] for n in range(op[1])]
            lines += added
        elif name == "mdns":
            lines += [
                f"a=candidate:{n} 1 udp 2122260223 {n:08x}-0000-4000-8000-000000000000.local "
                f"{40000 + n} typ host"
                for n in range(op[1])
            ]
        elif name == "pad":
            if op[2]:
                lines.append("a=x-pad:" + "p" * op[1])
            else:
                lines += ["a=x-pad:" + "p" * 100] * (op[1] // 110 + 1)
        elif name == "endings":
            ending = op[1]
        elif name == "truncate":
            text = ending.join(lines)
            lines = text[: len(text) * op[1] // 100].split(ending) if ending else [text]
        elif name == "setup":
            lines = [f"a=setup:{op[1]}" if x.startswith("a=setup:") else x for x in lines]
        elif name == "fingerprint":
            lines = [_fingerprint(x, op[1]) for x in lines]
        elif name == "credentials":
            prefix = f"a=ice-{op[1]}:"
            lines = [prefix + op[2] if x.startswith(prefix) else x for x in lines]
    return ending.join(lines) + ending


def _fingerprint(line: str, how: str) -> str:
    if not line.startswith("a=fingerprint:"):
        return line
    algorithm, _, value = line[len("a=fingerprint:") :].partition(" ")
    if how == "flip":
        return f"a=fingerprint:{algorithm} " + (
            "00" + value[2:] if value[:2] != "00" else "FF" + value[2:]
        )
    if how == "sha-1":
        return f"a=fingerprint:sha-1 {value}"
    if how == "short":
        return f"a=fingerprint:{algorithm} {value[:20]}"
    return ""


#: Named mutations of the issue's list, for the end-to-end test and the deterministic cases.
CATALOGUE: dict[str, list[Op]] = {
    "missing-fingerprint": [("drop-prefix", "a=fingerprint")],
    "unknown-fingerprint-hash": [("fingerprint", "sha-1")],
    "wrong-fingerprint": [("fingerprint", "flip")],
    "10000-candidates": [("candidates", 10_000, "a=candidate:1 1 udp 1 10.0.0.1 9 typ host", True)],
    "300-short-candidates": [
        ("candidates", 300, "a=candidate:1 1 udp 1 10.0.0.1 9 typ host", True)
    ],
    "17-mdns-names": [("mdns", 17)],
    "1MB-sdp": [("pad", 1_000_000, False)],
    "1MB-line": [("pad", 1_000_000, True)],
    "setup-active": [("setup", "active")],
    "setup-passive": [("setup", "passive")],
    "setup-holdconn": [("setup", "holdconn")],
    "no-setup": [("drop-prefix", "a=setup")],
    "bogus-addresses": [
        ("insert", 0, f"a=candidate:{n} 1 udp 1 {host} {port} typ host")
        for n, (host, port) in enumerate(
            [
                ("0.0.0.0", 9),
                ("255.255.255.255", 9),
                ("224.0.0.251", 5353),
                ("::", 9),
                ("127.0.0.1", 0),
                ("example.com", 9),
                ("ff02::1", 9),
            ]
        )
    ],
    "bad-port": [("replace", -1, "a=candidate:1 1 udp 1 127.0.0.1 65536 typ host")],
    "no-m-section": [("drop-prefix", "m=")],
    "two-m-sections": [("dup", 6, 1)],
    "audio-section": [
        ("replace", 6, "m=audio 9 UDP/TLS/RTP/SAVPF 111"),
        ("insert", 6, "a=rtpmap:111 opus/48000/2"),
        ("insert", 6, "a=rtcp-mux"),
    ],
    "video-section-too": [
        ("insert", 100, "m=video 9 UDP/TLS/RTP/SAVPF 96"),
        ("insert", 100, "a=rtpmap:96 VP8/90000"),
    ],
    "rtp-protocol": [("token", 6, 2, "RTP/AVP")],
    "garbage-lines": [("insert", 3, "garbage"), ("insert", 8, "\u00e9\u00e9")],
    "non-ascii-ufrag": [("credentials", "ufrag", "\u00e9\u00e9\u00e9\u00e9")],
    "non-ascii-session-name": [("replace", 2, "s=\u540d\u524d")],
    "no-ice-credentials": [("drop-prefix", "a=ice-")],
    "sctp-port-70000": [("drop-prefix", "a=sctp-port"), ("insert", 8, "a=sctp-port:70000")],
    "no-sctp-port": [("drop-prefix", "a=sctp-port")],
    "huge-mid": [("drop-prefix", "a=mid"), ("insert", 7, "a=mid:" + "m" * 100)],
    "nul-byte": [("insert", 2, "s=\x00")],
    "lf-endings": [("endings", "\n")],
}


# -- bookkeeping --------------------------------------------------------------------------------


@contextmanager
def recording_pcs() -> Iterator[list[RTCPeerConnection]]:
    """Every RTCPeerConnection the factory creates while inside, in creation order."""
    created: list[RTCPeerConnection] = []

    def make(*args: Any, **kwargs: Any) -> RTCPeerConnection:
        pc = RTCPeerConnection(*args, **kwargs)
        created.append(pc)
        return pc

    with mock.patch.object(factory_module, "RTCPeerConnection", make):
        yield created


def forget_mdns_state() -> None:
    """Let the next event loop use aioice's mDNS resolver afresh.

    aioice keeps, per thread, one ``asyncio.Lock`` around its shared mDNS socket
    (``aioice.ice._mdns``); the lock binds to the first event loop that waits on it, and every
    test runs its own loop, so a later test would get ``RuntimeError: ... is bound to a different
    event loop`` (which the factory reports as ``RtcError``). A process running one loop per
    thread, as ``seed`` does, never meets this.
    """
    state = aioice_ice._mdns
    if getattr(state, "protocol", None) is None:
        state.__dict__.clear()


def open_sockets() -> int:
    """Sockets this process holds open (each ICE candidate is a UDP socket)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            continue  # closed meanwhile (the listing's own descriptor)
    return count


def other_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
