"""Sanity checks of a remote offer or answer before any WebRTC object exists (sans-I/O).

Any peer in a swarm can make the tracker relay any text as its SDP. :func:`check_remote_sdp` runs
before :class:`~p2pml_py.rtc.aiortc_backend.factory.RtcFactory` creates an
``RTCPeerConnection`` (no socket bound, no task started), so an unusable offer costs one pass over
at most :data:`MAX_SDP_CHARS` characters and is refused with :class:`RtcSdpError` naming what is
wrong. What it refuses is what no browser sends; the limits follow from what one can:

* **Size.** :data:`MAX_SDP_CHARS`, the tracker's own bound (``tracker.messages.MAX_SDP_CHARS``;
  a test keeps the two equal). A data-channel-only SDP is 1-3 KB; wt-tracker's whole WebSocket
  frame is at most 64 KiB (``maxPayloadLength`` in ``src/uws-tracker.ts``) and a browser's
  announce carries 5 offers in one frame, so a browser's offer that needed more than ~13 KB would
  not even reach the tracker.
* **Text.** No control characters other than CR and LF, and none of the other characters
  :meth:`str.splitlines` breaks lines at: aiortc splits with it, so our line view and aiortc's
  stay the same. Every line is ``<letter>=<value>`` (RFC 8866 section 5), the first ``v=0``.
* **One data-channel section.** p2p-media-loader's peers (simple-peer, ``core/p2p/peer.ts``)
  negotiate one data channel and no media: exactly one ``m=application`` section over
  ``UDP/DTLS/SCTP`` (or the legacy ``DTLS/SCTP``). An ``m=audio``/``m=video`` section would make
  aiortc set up an RTP receiver, with a decoder thread, for what the remote sends.
* **ICE credentials.** ``a=ice-ufrag`` 4-256 and ``a=ice-pwd`` 22-256 characters (RFC 8839
  section 5.4; Firefox refuses the same in ``SdpHelper::ValidateTransportAttributes``), visible
  ASCII.
* **DTLS.** At least one ``a=fingerprint`` with a hash aiortc can check (sha-256/384/512), of the
  hash's length; ``a=setup`` present in an offer (Firefox requires it too) and never
  ``holdconn``; ``actpass`` only in offers. Without a fingerprint aiortc fails an assertion in a
  background task once ICE has connected, after the connection held a handshake slot.
* **SCTP.** ``a=sctp-port`` (legacy: the format) 1-65535: aiortc has no default and packs it
  into every SCTP packet header from a background task. ``a=max-message-size`` a non-negative
  integer (RFC 8841 section 6).
* **a=mid** 1-32 token characters: aiortc echoes it into our answer twice (``a=mid``,
  ``a=group:BUNDLE``). Browsers use ``0`` (Chromium and Firefox; older releases ``data`` and
  ``sdparta_0``).
* **Candidates**, at most :data:`MAX_CANDIDATES`, each well formed (RFC 8839 section 5.1:
  foundation, component 1-256, transport, priority 1-2^32-1, address, port 0-65535, ``typ``,
  type host/srflx/prflx/relay), with at most :data:`MAX_MDNS_NAMES` different mDNS names.

A candidate aioice could only waste probes on -- an address that is unspecified, multicast or
broadcast, a host name that is neither an IP address nor an mDNS name, UDP port 0 -- is dropped
rather than refused: the rest of the offer may still connect, and no browser loses its peer over
it. An SDP left without any candidate is refused: it is complete by protocol (simple-peer sends
it once ICE gathering is over), and aioice drops an ICE component the remote gave no candidate
for, so it could never connect.

Finally the text goes through aiortc's own parser (``aiortc.sdp.SessionDescription.parse``, the
first thing ``setRemoteDescription`` does), so any SDP it would choke on is refused here as well,
and the checks above look at exactly what aiortc will use.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final, Literal

from aiortc.sdp import SessionDescription, candidate_from_sdp

from p2pml_py.base.errors import RtcSdpError

__all__ = [
    "MAX_CANDIDATES",
    "MAX_MDNS_NAMES",
    "MAX_SDP_CHARS",
    "RemoteSdp",
    "check_remote_sdp",
]

#: Largest remote SDP, in characters: the tracker's bound (``tracker.messages.MAX_SDP_CHARS``).
MAX_SDP_CHARS: Final = 32 * 1024
#: Most ``a=candidate`` lines in one SDP. A browser lists one host candidate per local address
#: and transport (UDP; Chromium adds TCP; libwebrtc uses at most 5 IPv6 networks,
#: ``kDefaultMaxIPv6Networks``), one server-reflexive candidate per network, and relay
#: candidates per TURN server and transport (at most 32 servers: the W3C ``iceServers`` bound,
#: libwebrtc's ``kMaxTurnServers``). p2p-media-loader's default configuration (two STUN servers,
#: no TURN) gives fewer than 10; and the 13 KB an SDP can have inside wt-tracker's 64 KiB
#: announce (see the module docstring) hold ~100 of Chromium's candidate lines.
MAX_CANDIDATES: Final = 128
#: Most different mDNS host names (``<uuid>.local``) in one SDP. Browsers hide each local
#: address behind one name, so this counts local addresses; each name costs us one multicast
#: query on our LAN and up to a second of waiting (aioice ``MDnsProtocol.resolve``).
MAX_MDNS_NAMES: Final = 16

#: Control characters, and the other characters :meth:`str.splitlines` breaks lines at.
_BAD_CHAR_RE = re.compile("[\x00-\x09\x0b\x0c\x0e-\x1f\x7f\x85\u2028\u2029]")
_LINE_RE = re.compile(r"[a-z]=")
_MEDIA_RE = re.compile(r"m=application [0-9]{1,5} (?:UDP/DTLS/SCTP|DTLS/SCTP) \S")
_ICE_CREDENTIAL_RE = re.compile(r"[\x21-\x7e]+")
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]{1,32}")
_DIGITS_RE = re.compile(r"[0-9]{1,19}")
_FINGERPRINT_RE = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*")
#: aiortc's DTLS transport checks these (``X509_DIGEST_ALGORITHMS``); bytes per digest.
_DIGEST_BYTES: Final = {"sha-256": 32, "sha-384": 48, "sha-512": 64}
#: aioice's test for an mDNS candidate (``mdns.MDNS_HOSTNAME_RE``).
_MDNS_RE = re.compile(r"[a-zA-Z0-9-]{1,63}\.local")
_FOUNDATION_RE = re.compile(r"[a-zA-Z0-9+/]{1,32}")
_CANDIDATE_TYPES: Final = frozenset({"host", "srflx", "prflx", "relay"})
_ROLES: Final = {
    # aiortc's DTLS role per a=setup value (sdp.DTLS_SETUP_ROLE), by description type.
    "offer": ("auto", "client", "server"),
    "answer": ("client", "server"),
}
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")

Kind = Literal["offer", "answer"]


@dataclass(frozen=True, slots=True)
class RemoteSdp:
    """A remote SDP that passed :func:`check_remote_sdp`."""

    #: The text to hand to aiortc: the SDP as received, less the dropped candidate lines.
    sdp: str
    #: Candidate lines kept and dropped (unusable addresses or ports).
    candidates: int
    dropped_candidates: int


def _fail(kind: str, why: str) -> RtcSdpError:
    return RtcSdpError(f"{kind} SDP {why}")


def _candidate_usable(line: str, kind: str, mdns_names: set[str]) -> bool:
    """Check one ``a=candidate:`` line; False for a well-formed candidate nobody can reach."""
    value = line[len("a=candidate:") :]
    fields = value.split()
    if len(fields) < 8 or fields[6] != "typ":
        raise _fail(kind, f"has a malformed candidate (RFC 8839 section 5.1): {line[:80]!r}")
    foundation, component, transport, priority, host, port, _, type_ = fields[:8]
    bad = ""
    if not _FOUNDATION_RE.fullmatch(foundation):
        bad = "foundation"
    elif not _DIGITS_RE.fullmatch(component) or not 1 <= int(component) <= 256:
        bad = "component"
    elif transport.lower() not in ("udp", "tcp"):
        bad = "transport"
    elif not _DIGITS_RE.fullmatch(priority) or not 1 <= int(priority) < 2**32:
        bad = "priority"
    elif not _DIGITS_RE.fullmatch(port) or int(port) > 65535:
        bad = "port"
    elif type_ not in _CANDIDATE_TYPES:
        bad = "type"
    else:
        extensions = fields[8:]
        for name, ext_value in zip(extensions[::2], extensions[1::2], strict=False):
            if name == "rport" and (not _DIGITS_RE.fullmatch(ext_value) or int(ext_value) > 65535):
                bad = "rport"
    if bad:
        raise _fail(kind, f"has a candidate with a bad {bad}: {line[:80]!r}")
    try:
        candidate_from_sdp(value)  # what aiortc will do with it
    except Exception as exc:  # aiortc parses with int(), split(), asserts
        raise _fail(kind, f"has a candidate aiortc cannot parse: {line[:80]!r}") from exc
    if _MDNS_RE.fullmatch(host):
        mdns_names.add(host.lower())
        if len(mdns_names) > MAX_MDNS_NAMES:
            raise _fail(kind, f"has more than {MAX_MDNS_NAMES} mDNS candidate names")
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # aioice ignores names it cannot resolve; so do we
    if address.is_unspecified or address.is_multicast or address == _BROADCAST:
        return False
    return not (transport.lower() == "udp" and port == "0")


def _scan_lines(sdp: str, kind: str) -> tuple[list[str] | None, int, int]:
    """Line checks and candidates; (kept lines or None when nothing was dropped, kept, dropped)."""
    lines = sdp.splitlines()
    if not lines or lines[0] != "v=0":
        raise _fail(kind, f"does not start with 'v=0': {sdp[:40]!r}")
    media = 0
    candidates = 0
    dropped = 0
    mdns_names: set[str] = set()
    kept: list[str] = []
    for line in lines:
        if not line:
            kept.append(line)
            continue
        if not _LINE_RE.match(line):
            raise _fail(kind, f"has a line that is not '<letter>=<value>': {line[:40]!r}")
        if line.startswith("m="):
            media += 1
            if media > 1:
                raise _fail(kind, "has more than one m= section (browsers send one data channel)")
            if not _MEDIA_RE.match(line):
                raise _fail(
                    kind,
                    "has no data-channel section: m=application <port> UDP/DTLS/SCTP "
                    f"(or DTLS/SCTP) expected, got {line[:60]!r}",
                )
        elif line.startswith("a=candidate:"):
            candidates += 1
            if candidates > MAX_CANDIDATES:
                raise _fail(kind, f"has more than {MAX_CANDIDATES} candidates")
            if not _candidate_usable(line, kind, mdns_names):
                dropped += 1
                continue
        kept.append(line)
    if media == 0:
        raise _fail(kind, "has no data-channel (m=application ... SCTP) section")
    if candidates == dropped:
        # aioice gives up a component the remote lists no candidate for (_prune_components),
        # and then gathers none of its own: such an SDP can never connect.
        raise _fail(kind, "has no usable candidate (non-trickle: every candidate is in the SDP)")
    return (kept if dropped else None), candidates - dropped, dropped


def _parse(sdp: str, kind: str) -> SessionDescription:
    try:
        return SessionDescription.parse(sdp)
    except Exception as exc:  # a pure parser on remote text: any failure means malformed
        raise _fail(kind, f"cannot be parsed: {exc!r}") from exc


def _check_media(description: SessionDescription, kind: Kind) -> None:
    """The data-channel section as aiortc parsed it (session-level values already merged)."""
    media = description.media[0]
    ice = media.ice
    assert ice is not None  # aiortc's parser sets it for every section
    for name, value, low in (("ice-ufrag", ice.usernameFragment, 4), ("ice-pwd", ice.password, 22)):
        if value is None:
            raise _fail(kind, f"has no a={name}")
        if not low <= len(value) <= 256 or not _ICE_CREDENTIAL_RE.fullmatch(value):
            raise _fail(kind, f"has an a={name} that is not {low}-256 visible ASCII characters")
    # aiortc drops the DTLS parameters, fingerprints and all, of a section without a=setup.
    role = None if media.dtls is None else media.dtls.role
    if role not in _ROLES[kind]:
        setup = {"auto": "actpass", "client": "active", "server": "passive"}.get(str(role))
        allowed = "actpass, active or passive" if kind == "offer" else "active or passive"
        raise _fail(kind, f"has a=setup:{setup or '(none)'}; an {kind} needs {allowed}")
    assert media.dtls is not None
    supported = 0
    for fingerprint in media.dtls.fingerprints:
        size = _DIGEST_BYTES.get(fingerprint.algorithm.lower())
        if size is None:
            continue  # aiortc ignores hashes it does not know
        value = fingerprint.value
        if not _FINGERPRINT_RE.fullmatch(value) or len(value) != 3 * size - 1:
            raise _fail(kind, f"has a malformed {fingerprint.algorithm} a=fingerprint")
        supported += 1
    if not supported:
        raise _fail(kind, "has no a=fingerprint with sha-256, sha-384 or sha-512")
    mid = media.rtp.muxId
    if mid is not None and not _TOKEN_RE.fullmatch(mid):
        raise _fail(kind, "has an a=mid that is not 1-32 token characters")
    if media.profile == "DTLS/SCTP":
        port = str(media.fmt[0])
    else:
        port = "" if media.sctp_port is None else str(media.sctp_port)
    if not _DIGITS_RE.fullmatch(port) or not 1 <= int(port) <= 65535:
        raise _fail(kind, f"has no SCTP port in 1-65535 (a=sctp-port), got {port[:20]!r}")
    caps = media.sctpCapabilities
    if caps is not None and caps.maxMessageSize < 0:
        raise _fail(kind, "has a negative a=max-message-size")


def check_remote_sdp(sdp: object, kind: Kind) -> RemoteSdp:
    """Check a remote offer or answer; the text to apply, or :class:`RtcSdpError` saying why not.

    Runs in time linear in ``len(sdp)`` and refuses anything longer than :data:`MAX_SDP_CHARS`
    before looking at it.
    """
    if not isinstance(sdp, str):
        raise _fail(kind, f"must be a str, not {type(sdp).__name__}")
    if len(sdp) > MAX_SDP_CHARS:
        raise _fail(kind, f"is longer than {MAX_SDP_CHARS} characters ({len(sdp)})")
    bad = _BAD_CHAR_RE.search(sdp)
    if bad is not None:
        raise _fail(kind, f"has a control character {bad.group()!r} at {bad.start()}")
    kept, candidates, dropped = _scan_lines(sdp, kind)
    text = sdp if kept is None else "\r\n".join(kept) + "\r\n"
    description = _parse(text, kind)
    _check_media(description, kind)
    return RemoteSdp(text, candidates, dropped)
