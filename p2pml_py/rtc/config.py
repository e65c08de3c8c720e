"""Settings for the WebRTC side of a peer, validated when they are built.

Standard library only: the factory turns these values into aiortc objects.

ICE server URLs
---------------
One string per server, in the URI forms of RFC 7064 / RFC 7065 with the TURN credentials written as
URL user info (so that a whole server fits in one command-line argument)::

    stun:HOST[:PORT]                                  (port 3478 by default)
    turn:USER:PASSWORD@HOST[:PORT][?transport=udp|tcp] (port 3478, transport udp by default)
    turns:USER:PASSWORD@HOST[:PORT][?transport=tcp]    (port 5349, transport tcp)

USER and PASSWORD are percent-decoded, so ``%40`` stands for ``@`` and ``%3A`` for ``:``. An IPv6
HOST is written in brackets (``stun:[2001:db8::1]:3478``). aiortc uses only the first STUN and the
first TURN server of the list (``aiortc/rtcicetransport.py connection_kwargs``); later ones of the
same kind are accepted but ignored.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

__all__ = [
    "DEFAULT_CONSENT_TIMEOUT",
    "DEFAULT_HIGH_WATERMARK",
    "MAX_CONSENT_TIMEOUT",
    "MIN_CONSENT_TIMEOUT",
    "IceServer",
    "RtcConfig",
    "parse_ice_server",
    "parse_port_range",
    "port_range_size",
]

#: `send()` waits while more than this many bytes are queued in the data channel. Browsers use
#: 64 KiB (simple-peer ``MAX_BUFFERED_AMOUNT``); aiortc's pure-Python SCTP is slower to drain, and
#: a larger queue keeps it busy between event-loop turns.
DEFAULT_HIGH_WATERMARK = 1024 * 1024
#: A link's ``send`` also waits while this many messages are queued in the backend: each queued
#: message costs memory beyond its bytes. A full watermark of segment data is 16 messages of
#: 64 KiB; only small commands get near this.
DEFAULT_MAX_QUEUED_MESSAGES = 256

#: The smallest ``a=max-message-size`` a peer may advertise: PML sends data chunks of 65535 bytes
#: (``core/core.ts webRtcMaxMessageSize``), and SPEC (b) asks for >= 65536.
MIN_MAX_MESSAGE_SIZE = 65536
MAX_MAX_MESSAGE_SIZE = 1 << 30

#: Seconds a connected remote may leave our ICE consent checks unanswered before it counts as
#: gone (``RtcConfig.consent_timeout``). A live peer answers a check within one round trip: a
#: browser's ICE agent answers binding requests itself, whatever the page does, and idle data
#: channels are answered like busy ones. 7.5 s is three of our checks (2.5 s apart, see
#: :mod:`p2pml_py.rtc.aiortc_backend.tuning`) in a row with no answer, so a peer killed or cut
#: off gives its slot back within 7.5 s of its last answer: inside the 10 s a dead peer may
#: hold a slot, with room for a loaded event loop.
DEFAULT_CONSENT_TIMEOUT = 7.5
#: RFC 7675 section 5.1: consent to send expires 30 s after the last answer; nobody may keep
#: sending longer, so a longer timeout would mean nothing.
MAX_CONSENT_TIMEOUT = 30.0
#: A remote is only taken for gone after two checks in a row went unanswered, which takes at
#: least two check intervals; a shorter timeout would promise what the checks cannot tell.
MIN_CONSENT_TIMEOUT = 5.0

_SERVER_RE = re.compile(
    r"(?P<scheme>stun|turns?):"
    r"(?:(?P<userinfo>[^@/?]*)@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^:\[\]@/?]+)"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?:\?transport=(?P<transport>[a-z]+))?"
)
_DEFAULT_PORTS = {"stun": 3478, "turn": 3478, "turns": 5349}


@dataclass(frozen=True, slots=True)
class IceServer:
    """One STUN or TURN server, parsed from its URL."""

    scheme: str  # "stun", "turn" or "turns"
    host: str  # without brackets for IPv6
    port: int
    username: str | None = None
    password: str | None = None
    transport: str | None = None  # "udp"/"tcp" for TURN, None for STUN

    def url(self) -> str:
        """The URL without credentials, in the form aiortc's ``RTCIceServer.urls`` accepts."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = f"?transport={self.transport}" if self.scheme == "turn" else ""
        return f"{self.scheme}:{host}:{self.port}{query}"


def parse_ice_server(url: str) -> IceServer:
    """Parse one ICE server URL (see the module docstring); raise ``ValueError`` if malformed."""
    match = _SERVER_RE.fullmatch(url)
    if match is None:
        raise ValueError(
            f"ice_servers: {url!r} is not 'stun:HOST[:PORT]' or "
            "'turn[s]:USER:PASSWORD@HOST[:PORT][?transport=udp|tcp]'"
        )
    scheme = match["scheme"]
    host = match["host"]
    if host.startswith("["):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"ice_servers: {url!r} has a malformed IPv6 host") from None
    port = int(match["port"]) if match["port"] else _DEFAULT_PORTS[scheme]
    if not 1 <= port <= 65535:
        raise ValueError(f"ice_servers: {url!r} has port {port} outside 1-65535")
    transport = match["transport"]
    userinfo = match["userinfo"]
    if scheme == "stun":
        if userinfo is not None:
            raise ValueError(f"ice_servers: {url!r}: a STUN URL takes no credentials")
        if transport is not None:
            raise ValueError(f"ice_servers: {url!r}: a STUN URL takes no transport")
        return IceServer(scheme=scheme, host=host, port=port)
    if userinfo is None or ":" not in userinfo:
        raise ValueError(f"ice_servers: {url!r}: a TURN URL needs USER:PASSWORD@ before the host")
    username, _, password = userinfo.partition(":")
    if transport is None:
        transport = "udp" if scheme == "turn" else "tcp"
    # aiortc drops other combinations silently (rtcicetransport.py connection_kwargs).
    allowed = ("udp", "tcp") if scheme == "turn" else ("tcp",)
    if transport not in allowed:
        raise ValueError(f"ice_servers: {url!r}: transport must be one of {', '.join(allowed)}")
    return IceServer(
        scheme=scheme,
        host=host,
        port=port,
        username=unquote(username),
        password=unquote(password),
        transport=transport,
    )


def parse_port_range(value: object) -> tuple[int, int]:
    """``[low, high]``, ``(low, high)`` or ``"low-high"`` -> ``(low, high)``, both included, in
    1024..65535 (below 1024 a non-root process may not bind); ``ValueError`` names the field."""
    pair: object = value
    if isinstance(value, str):
        low_text, sep, high_text = value.partition("-")
        if not sep or not low_text.strip().isdigit() or not high_text.strip().isdigit():
            raise ValueError(f'ice_port_range: must be "LOW-HIGH" or [LOW, HIGH], got {value!r}')
        pair = (int(low_text), int(high_text))
    if (
        not isinstance(pair, list | tuple)
        or len(pair) != 2
        or not all(isinstance(p, int) and not isinstance(p, bool) for p in pair)
    ):
        raise ValueError(f"ice_port_range: must be [LOW, HIGH] (two integers), got {value!r}")
    low, high = pair
    if not 1024 <= low <= high <= 65535:
        raise ValueError(
            f"ice_port_range: must satisfy 1024 <= LOW <= HIGH <= 65535, got {low}-{high}"
        )
    return (low, high)


def port_range_size(port_range: tuple[int, int]) -> int:
    """How many ports ``(low, high)`` holds."""
    return port_range[1] - port_range[0] + 1


def _check_timeout(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number of seconds > 0, not {value!r}")


@dataclass(frozen=True, slots=True)
class RtcConfig:
    """How a peer builds WebRTC connections.

    * ``ice_servers``: STUN/TURN URLs (module docstring). Empty: host candidates only, no traffic
      to any server -- what tests and LAN setups want. (Browsers running PML default to Google's
      and Twilio's STUN servers, ``core/core.ts``.)
    * ``ice_addresses``: the local IP addresses ICE gathers host candidates on. Empty: what aioice
      finds by itself (every interface address except 127.0.0.1 and ::1). List ``"127.0.0.1"``
      to talk to browsers on the same machine.
    * ``ice_timeout``: seconds allowed for ICE gathering (non-trickle SDP is only complete after
      it); simple-peer gives up waiting after 5 s (``ICECOMPLETE_TIMEOUT``).
    * ``open_timeout``: seconds from applying the remote SDP to an open data channel.
    * ``max_message_size``: the ``a=max-message-size`` we advertise, and the largest message we
      accept; a larger one closes the link.
    * ``high_watermark``: ``send()`` waits while more bytes than this are queued.
    * ``early_buffer_bytes``: how many bytes received before ``set_receiver`` are kept; more
      closes the link. A browser sends one announcement on connect (SPEC d.8, <= ~135 KB) and
      then waits for ours before it requests anything.
    * ``backend``: which registered transport builds the connections (``aiortc``, the default;
      others with :func:`p2pml_py.rtc.transport.register_backend`).
    * ``ice_port_range``: ``(low, high)``, both included: the UDP ports host candidates are
      bound to, so that a firewall rule or a Kubernetes ``hostPort`` list can open exactly
      those. ``None``: any port the kernel picks (aioice binds port 0). Each connection takes
      one port per gathered address while it is open, so the range must hold the process's
      peer connections (:func:`port_range_size`); when every port is taken, gathering fails
      with a clear error instead of using another port.
    * ``consent_timeout``: seconds a connected remote may answer none of our ICE consent checks
      (RFC 7675 binding requests, every 2.5 s) before its connection is closed as unresponsive
      and its slot freed; at least two checks in a row must have gone unanswered. A peer that
      vanishes without closing (killed, unplugged, asleep) sends no close, so this is how it
      is noticed. RFC 7675 section 5.1 lets consent stand 30 s after the last answer (aioice
      gives up after 6 checks 5 s apart; libwebrtc calls a connection dead after 30 s without
      a packet, ``DEAD_CONNECTION_RECEIVE_TIMEOUT``); releasing earlier is our policy: a live
      remote answers each check within a round trip, so several missed in a row on loopback,
      a LAN or the internet means it is gone, and a seeder that waits 30 s refuses new viewers
      meanwhile. An idle peer is not affected: consent is answered by the remote's ICE agent,
      not by its application. In 5..30 (:data:`DEFAULT_CONSENT_TIMEOUT`).
    """

    ice_servers: tuple[str, ...] = ()
    ice_addresses: tuple[str, ...] = ()
    ice_timeout: float = 5.0
    open_timeout: float = 10.0
    max_message_size: int = 262144
    high_watermark: int = DEFAULT_HIGH_WATERMARK
    early_buffer_bytes: int = 1024 * 1024
    #: The transport backend that builds connections (:func:`p2pml_py.rtc.transport.open_transport`).
    backend: str = "aiortc"
    ice_port_range: tuple[int, int] | None = None
    consent_timeout: float = DEFAULT_CONSENT_TIMEOUT
    parsed_ice_servers: tuple[IceServer, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.ice_servers, str) or isinstance(self.ice_addresses, str):
            raise TypeError("ice_servers and ice_addresses must be tuples of strings, not a str")
        object.__setattr__(self, "ice_servers", tuple(self.ice_servers))
        object.__setattr__(self, "ice_addresses", tuple(self.ice_addresses))
        object.__setattr__(
            self, "parsed_ice_servers", tuple(parse_ice_server(u) for u in self.ice_servers)
        )
        normalized: list[str] = []
        for address in self.ice_addresses:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(
                    f"ice_addresses: {address!r} is not an IPv4 or IPv6 address"
                ) from None
            if ip.is_unspecified or ip.is_multicast:
                raise ValueError(
                    f"ice_addresses: {address!r} is not a unicast address of an interface"
                )
            if str(ip) not in normalized:
                normalized.append(str(ip))
        object.__setattr__(self, "ice_addresses", tuple(normalized))
        if self.ice_port_range is not None:
            object.__setattr__(self, "ice_port_range", parse_port_range(self.ice_port_range))
        _check_timeout("ice_timeout", self.ice_timeout)
        _check_timeout("open_timeout", self.open_timeout)
        _check_timeout("consent_timeout", self.consent_timeout)
        if not MIN_CONSENT_TIMEOUT <= self.consent_timeout <= MAX_CONSENT_TIMEOUT:
            raise ValueError(
                f"consent_timeout must be in {MIN_CONSENT_TIMEOUT:g}..{MAX_CONSENT_TIMEOUT:g} "
                f"seconds (RFC 7675 lets consent stand 30 s), not {self.consent_timeout!r}"
            )
        for name, value, low, high in (
            ("max_message_size", self.max_message_size, MIN_MAX_MESSAGE_SIZE, MAX_MAX_MESSAGE_SIZE),
            ("high_watermark", self.high_watermark, 1, 1 << 31),
            ("early_buffer_bytes", self.early_buffer_bytes, 0, 1 << 31),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
            if not low <= value <= high:
                raise ValueError(f"{name} must be in {low}..{high}, not {value}")
