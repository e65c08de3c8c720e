"""A fleet of super-peers: which member serves which stream, and who the members are.

Assignment (pure, no I/O)
-------------------------
Rendezvous (highest-random-weight) hashing: for every stream each member gets a weight,
the first 8 bytes (big-endian) of ``SHA-256(member + "\\n" + stream name)`` (both UTF-8; a member
id holds no whitespace, so the pair is unambiguous), and the stream is served by the ``replicas``
members of highest weight (ties, 2**-64 likely, go to the smaller id). Every member computes the
same table from the same membership with no coordination, SHA-256 is the same in every process
and Python version (``hash()`` is salted per process), and a membership change moves only the
streams whose top ``replicas`` changed: a member that leaves hands each of its streams to the
next-ranked member, one that joins takes about ``replicas / N`` of the seats and nothing else
moves. Unlike a hash ring this needs no virtual nodes to balance, and with tens of members and
hundreds of streams ranking everybody per stream costs nothing. A stream with more ``replicas``
than there are members is served by all of them.

Membership
----------
:class:`FleetConfig` names one source: a static list, a file (re-read every ``refresh`` seconds;
one member per line, a JSON list, ``{"members": [...]}``, or a Kubernetes EndpointSlice / list of
them, whose ready addresses count), or the DNS name of a Kubernetes headless Service (its A/AAAA
records are the addresses of the *ready* pods; this member's id is then its pod IP, from the
downward API). :class:`MembershipView` (sans-I/O, time passed in) keeps the last good answer:
a refresh that fails changes nothing, and the failure is reported once when it starts and once
when it ends.

The rule that avoids a deadlock: **a member always counts itself in.** Kubernetes lists a pod in
the Service only after its readiness probe passes, and readiness needs the workers up and the
trackers connected -- a member that waited for its own record before serving would never be
ready. Counting itself in, a starting member serves its share at once, while the others, who do
not see it yet, keep serving those streams too: a handover overlaps (``replicas + 1`` seeders for
a few seconds) instead of leaving a gap, and the others let go once its record appears. A member
that cannot reach its source at start-up sees only itself and serves every stream (viewers over
origin cost) until the source answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from p2pml_py.base.errors import P2PMLError

__all__ = [
    "DEFAULT_REFRESH",
    "DEFAULT_TIMEOUT",
    "FleetConfig",
    "Membership",
    "MembershipError",
    "MembershipView",
    "assign",
    "normalize_member",
    "owners",
    "parse_members",
    "rank",
    "served_by",
    "weight",
]

logger = logging.getLogger(__name__)

#: Seconds between membership refreshes: the ``ttl`` CoreDNS's kubernetes plugin gives a
#: headless Service's records by default, so a shorter one would mostly re-read cached answers.
DEFAULT_REFRESH = 5.0
#: Seconds one DNS resolution may take before the refresh counts as failed.
DEFAULT_TIMEOUT = 2.0
#: More members than any super-peer fleet needs (each serves hundreds of viewers per core); a
#: longer answer is a wrong file or name, refused rather than ranked.
MAX_MEMBERS = 1000
#: A membership file larger than this is refused unread (1000 EndpointSlice entries fit easily).
MAX_FILE_BYTES = 1 << 20
#: The longest id: a DNS name (RFC 1035) or an IPv6 address.
MAX_ID_LENGTH = 253

Source = Literal["static", "file", "dns"]


class MembershipError(P2PMLError):
    """A membership answer that cannot be used (unreadable file, bad entry, DNS failure)."""


# -- assignment ------------------------------------------------------------------------------------


def normalize_member(text: str) -> str:
    """The canonical form of a member id: IP addresses in their standard text form (so
    ``::0001`` and ``::1`` are one member), anything else lower-cased (host names). Raises
    :class:`ValueError` for an empty id, whitespace or control characters, or an id too long."""
    value = text.strip()
    if not value:
        raise ValueError("empty member id")
    if len(value) > MAX_ID_LENGTH:
        raise ValueError(f"member id longer than {MAX_ID_LENGTH} characters: {value[:40]!r}...")
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError(f"member id with whitespace or control characters: {value!r}")
    try:
        return str(ipaddress.ip_address(value.split("%", 1)[0] if ":" in value else value))
    except ValueError:
        return value.lower()


def weight(member: str, stream: str) -> int:
    """The rendezvous weight of ``member`` for ``stream`` (see the module docstring)."""
    digest = hashlib.sha256(member.encode("utf-8") + b"\n" + stream.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def rank(stream: str, members: Iterable[str]) -> list[str]:
    """Every member, the one that serves ``stream`` first."""
    return sorted(set(members), key=lambda m: (-weight(m, stream), m))


def owners(stream: str, members: Iterable[str], replicas: int = 1) -> tuple[str, ...]:
    """The members that serve ``stream``: the first ``replicas`` of :func:`rank` (all of them
    when there are fewer)."""
    if replicas < 1:
        raise ValueError("replicas must be >= 1")
    return tuple(rank(stream, members)[:replicas])


def assign(streams: Mapping[str, int], members: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """``{stream name: replicas}`` -> ``{stream name: the members serving it}``."""
    pool = frozenset(members)
    return {name: owners(name, pool, replicas) for name, replicas in streams.items()}


def served_by(member: str, streams: Mapping[str, int], members: Iterable[str]) -> list[str]:
    """The streams ``member`` serves, in the order of ``streams``."""
    pool = frozenset(members)
    return [name for name, n in streams.items() if member in owners(name, pool, n)]


# -- membership answers ----------------------------------------------------------------------------


def _checked(ids: Iterable[str]) -> frozenset[str]:
    out: set[str] = set()
    for raw in ids:
        try:
            out.add(normalize_member(raw))
        except ValueError as exc:
            raise MembershipError(str(exc)) from None
        if len(out) > MAX_MEMBERS:
            raise MembershipError(f"more than {MAX_MEMBERS} members")
    return frozenset(out)


def _slice_addresses(data: Mapping[str, Any]) -> list[str]:
    """The ready addresses of a Kubernetes EndpointSlice (``conditions.ready`` unset counts as
    ready, as the EndpointSlice API says for consumers)."""
    endpoints = data.get("endpoints") or []
    if not isinstance(endpoints, list):
        raise MembershipError("EndpointSlice: endpoints is not a list")
    out: list[str] = []
    for endpoint in endpoints:
        if not isinstance(endpoint, dict):
            raise MembershipError("EndpointSlice: an endpoint is not an object")
        conditions = endpoint.get("conditions") or {}
        if conditions.get("ready") is False:
            continue
        addresses = endpoint.get("addresses") or []
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            raise MembershipError("EndpointSlice: addresses is not a list of strings")
        out += addresses
    return out


def parse_members(text: str) -> frozenset[str]:
    """A membership file's members. Formats, told apart by the first character:

    * one id per line (blank lines and ``#`` comments skipped);
    * JSON: a list of ids, ``{"members": [ids]}``, an EndpointSlice (``kubectl get endpointslice
      NAME -o json``: the addresses of ready endpoints) or a list of them (``{"items": [...]}``).
    """
    stripped = text.strip()
    if not stripped.startswith(("[", "{")):
        lines = (line.split("#", 1)[0].strip() for line in stripped.splitlines())
        return _checked(line for line in lines if line)
    try:
        data = json.loads(stripped)
    except ValueError as exc:
        raise MembershipError(f"invalid JSON: {exc}") from None
    ids: list[str]
    if isinstance(data, dict) and "members" in data:
        data = data["members"]
    if isinstance(data, list):
        if not all(isinstance(item, str) for item in data):
            raise MembershipError("a JSON membership list must hold strings")
        ids = data
    elif isinstance(data, dict) and "endpoints" in data:
        ids = _slice_addresses(data)
    elif isinstance(data, dict) and isinstance(data.get("items"), list):
        ids = []
        for item in data["items"]:
            if not isinstance(item, dict):
                raise MembershipError("items: not a list of EndpointSlices")
            ids += _slice_addresses(item)
    else:
        raise MembershipError('expected a list, {"members": [...]} or an EndpointSlice')
    return _checked(ids)


# -- configuration ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """The ``[fleet]`` section, validated (see :mod:`p2pml_py.apps.superpeer.config`)."""

    self_id: str
    source: Source
    members: tuple[str, ...] = ()
    path: Path | None = None
    dns_name: str | None = None
    refresh: float = DEFAULT_REFRESH
    timeout: float = DEFAULT_TIMEOUT

    def describe(self) -> str:
        if self.source == "file":
            return f"file {self.path}"
        if self.source == "dns":
            return f"DNS {self.dns_name}"
        return "static list"


# -- sans-I/O refresh bookkeeping ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one refresh changed: the members (``changed``), and whether refreshes just started
    failing or just recovered (each reported once per failing spell)."""

    changed: bool = False
    started_failing: bool = False
    recovered: bool = False
    #: Seconds the failing spell lasted (with ``recovered``).
    failed_for: float = 0.0


@dataclass(slots=True)
class MembershipView:
    """The fleet as this member sees it: the last good answer plus itself."""

    self_id: str
    #: The members of the last good answer (this member may be missing from it).
    reported: frozenset[str] | None = None
    last_ok: float | None = None
    failing_since: float | None = None
    error: str | None = None
    changes: int = 0
    failures: int = 0
    members: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.members = frozenset({self.self_id})

    def succeeded(self, now: float, reported: frozenset[str]) -> Outcome:
        recovered = self.failing_since is not None
        failed_for = now - self.failing_since if self.failing_since is not None else 0.0
        self.failing_since, self.error = None, None
        self.reported, self.last_ok = reported, now
        members = reported | {self.self_id}
        changed = members != self.members
        if changed:
            self.members = members
            self.changes += 1
        return Outcome(changed=changed, recovered=recovered, failed_for=failed_for)

    def failed(self, now: float, error: str) -> Outcome:
        """Keep the last good members."""
        self.failures += 1
        self.error = error
        if self.failing_since is not None:
            return Outcome()
        self.failing_since = now
        return Outcome(started_failing=True)

    def to_json(self) -> dict[str, Any]:
        return {
            "self": self.self_id,
            "members": sorted(self.members),
            "in_membership": self.reported is not None and self.self_id in self.reported,
            "failing": self.failing_since is not None,
            "error": self.error,
            "changes": self.changes,
            "failures": self.failures,
        }


# -- I/O: reading the source -----------------------------------------------------------------------

Resolver = Callable[..., Awaitable[list[tuple[Any, ...]]]]


def _read_file(path: Path) -> frozenset[str]:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise MembershipError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise MembershipError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        return parse_members(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise MembershipError(f"{path}: not UTF-8 text") from None
    except MembershipError as exc:
        raise MembershipError(f"{path}: {exc}") from None


async def resolve_members(name: str, timeout: float, resolver: Resolver) -> frozenset[str]:
    """The A and AAAA addresses of ``name`` through ``resolver`` (the loop's ``getaddrinfo``).
    A name that does not exist is an empty answer: a headless Service with no ready pod has no
    records. Anything else that fails (timeout, server failure) raises :class:`MembershipError`.

    A timed-out lookup keeps its resolver thread until the system resolver gives up on its own
    (``resolv.conf`` timeouts); the executor's thread count bounds how many can pile up."""
    try:
        async with asyncio.timeout(timeout):
            infos = await resolver(name, None, type=socket.SOCK_STREAM)
    except TimeoutError:
        raise MembershipError(f"DNS {name}: no answer within {timeout:g} s") from None
    except socket.gaierror as exc:
        missing = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}
        if exc.errno in missing:
            return frozenset()
        raise MembershipError(f"DNS {name}: {exc.strerror or exc}") from None
    except OSError as exc:
        raise MembershipError(f"DNS {name}: {exc.strerror or exc}") from None
    return _checked(str(info[4][0]) for info in infos)


class Membership:
    """Refreshes a :class:`MembershipView` from its source and logs what changed."""

    def __init__(self, config: FleetConfig, resolver: Resolver | None = None) -> None:
        self.config = config
        self.view = MembershipView(config.self_id)
        self._resolver = resolver

    @property
    def self_id(self) -> str:
        return self.config.self_id

    @property
    def members(self) -> frozenset[str]:
        return self.view.members

    async def read(self) -> frozenset[str]:
        config = self.config
        if config.source == "static":
            return _checked(config.members)
        if config.source == "file":
            assert config.path is not None
            return await asyncio.to_thread(_read_file, config.path)
        assert config.dns_name is not None
        resolver = self._resolver or asyncio.get_running_loop().getaddrinfo
        return await resolve_members(config.dns_name, config.timeout, resolver)

    async def refresh(self, now: float) -> bool:
        """Read the source once; True when the members changed."""
        view = self.view
        try:
            reported = await self.read()
        except (MembershipError, OSError, ValueError) as exc:  # the loop must outlive any answer
            outcome = view.failed(now, str(exc))
            if outcome.started_failing:
                logger.warning(
                    "fleet: membership refresh failed, keeping %d member(s): %s",
                    len(view.members),
                    exc,
                    extra={"event": "fleet_refresh_failing", "error": str(exc)},
                )
            return False
        previous = view.members
        outcome = view.succeeded(now, reported)
        if outcome.recovered:
            logger.info(
                "fleet: membership refresh works again after %.0f s",
                outcome.failed_for,
                extra={"event": "fleet_refresh_recovered"},
            )
        if outcome.changed:
            logger.info(
                "fleet: %d member(s): %s (joined: %s; left: %s)",
                len(view.members),
                ", ".join(sorted(view.members)),
                ", ".join(sorted(view.members - previous)) or "-",
                ", ".join(sorted(previous - view.members)) or "-",
                extra={
                    "event": "fleet_members",
                    "members": ",".join(sorted(view.members)),
                    "self_listed": self.self_id in reported,
                },
            )
        return outcome.changed

    def to_json(self) -> dict[str, Any]:
        return {**self.view.to_json(), "source": self.config.describe()}
