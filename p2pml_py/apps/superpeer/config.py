"""The super-peer's TOML configuration: parsed, validated up front, with line numbers in errors.

Standard library only. ``tomllib`` reports syntax errors with a line but hands back plain dicts,
so :class:`_Lines` finds the line of every table header and key in the text itself; a semantic
error then reads ``superpeer.toml:14: stream[2].max_peers: must be an integer >= 1, got 0``.

Layout (see ``deploy/superpeer.example.toml``)::

    [superpeer]   workers, listen ("host:port" of /metrics, /status and the status page)
    [limits]      process-wide caps: upload_mbit (shared by the streams), store_mb (sum checked),
                  max_connections (peer connections of each worker process, all its streams)
    [defaults]    any per-stream key below, used where a stream does not set it
    [[stream]]    name, url, path, swarm_id, renditions, protocol, trackers, ice_servers,
                  ice_addresses, ice_port_range, max_peers, upload_mbit, store_mb, replicas,
                  fetch, validate, integrity, revalidate
    [fleet]       self or self_from_env, and one of members, members_file, members_dns;
                  refresh, timeout (see :mod:`p2pml_py.apps.superpeer.fleet`)
    [collector]   viewer stats (``POST /pingback``, :mod:`p2pml_py.apps.collector`): cors_origins,
                  streams, listen, max_viewers, max_streams, viewer_ttl, max_viewer_mbit,
                  client_rate, client_burst, max_clients, forwarded_for

``renditions`` takes the selectors of ``seed --rendition`` (:mod:`p2pml_py.hls.select`), checked
here and resolved once the manifest is loaded. A stream without ``trackers`` (here or in
``[defaults]``) uses p2p-media-loader's defaults for its ``protocol``
(:data:`p2pml_py.identity.DEFAULT_TRACKERS`), as pages without ``announceTrackers`` do.

Two :class:`StreamConfig` compare equal when every setting that needs a restart of that
stream's seeder is equal; a reload restarts exactly the streams that differ (the upload rate is
applied live and ``replicas`` only decides where the stream runs: neither is part of that
comparison).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from p2pml_py.apps.collector.config import CollectorConfig, normalize_origin
from p2pml_py.apps.superpeer.fleet import (
    DEFAULT_REFRESH,
    DEFAULT_TIMEOUT,
    MAX_MEMBERS,
    FleetConfig,
    normalize_member,
)
from p2pml_py.base.errors import ConfigError, SourceError
from p2pml_py.base.limits import SERVER_MAX_CONNECTIONS, SERVER_MAX_PEERS
from p2pml_py.hls.files import LocalFiles
from p2pml_py.hls.select import SELECTOR_HELP, parse_selector
from p2pml_py.identity import ProtocolVersion, default_trackers
from p2pml_py.roles.demand import FetchMode
from p2pml_py.rtc.config import parse_ice_server, parse_port_range

__all__ = ["StreamConfig", "SuperPeerConfig", "load_config", "parse_config"]

_PROTOCOLS = {"2.3": ("2.3",), "2.2": ("2.2",), "both": ("2.3", "2.2")}
_STREAM_KEYS = (
    "trackers",
    "protocol",
    "swarm_id",
    "renditions",
    "ice_servers",
    "ice_addresses",
    "ice_port_range",
    "max_peers",
    "upload_mbit",
    "store_mb",
    "replicas",
    "fetch",
    "validate",
    "integrity",
    "revalidate",
)
#: What a [[peertube]] table may set for the streams it makes: the rest (trackers, protocol,
#: swarm id, renditions, checks) comes from the instance, as its players take them.
_PEERTUBE_STREAM_KEYS = tuple(
    key
    for key in _STREAM_KEYS
    if key not in ("trackers", "protocol", "swarm_id", "renditions", "validate", "integrity")
)
_FLEET_SOURCES = ("members", "members_file", "members_dns")
_SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "superpeer": ("workers", "listen", "stats_interval"),
    "limits": ("upload_mbit", "store_mb", "max_connections"),
    "fleet": ("self", "self_from_env", *_FLEET_SOURCES, "refresh", "timeout"),
    "collector": (
        "cors_origins",
        "streams",
        "listen",
        "max_viewers",
        "max_streams",
        "viewer_ttl",
        "max_viewer_mbit",
        "client_rate",
        "client_burst",
        "max_clients",
        "forwarded_for",
    ),
    "defaults": _STREAM_KEYS,
    "stream": ("name", "url", "path", *_STREAM_KEYS),
    "peertube": ("urls", "limit", "probe", *_PEERTUBE_STREAM_KEYS),
}
_HEADER_RE = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(?:#.*)?$")
_DNS_NAME_RE = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.\-]*[A-Za-z0-9])?\.?$")
_KEY_RE = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]*\")\s*=")


def _port_range_json(value: Any) -> tuple[int, int] | None:
    return None if value is None else (int(value[0]), int(value[1]))


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """One stream the super-peer seeds (validated)."""

    name: str
    url: str
    trackers: tuple[str, ...]
    protocol: tuple[str, ...] = ("2.3",)
    swarm_id: str | None = None
    #: Rendition selectors (:mod:`p2pml_py.hls.select`): rendition numbers as ints, the others
    #: in their canonical spelling (``"lowest"``, ``"640x360"``, ``"800k"``); ``None``: all.
    renditions: tuple[int | str, ...] | None = None
    ice_servers: tuple[str, ...] = ()
    ice_addresses: tuple[str, ...] = ()
    #: UDP ports of the host candidates, ``(low, high)`` (``RtcConfig.ice_port_range``).
    ice_port_range: tuple[int, int] | None = None
    max_peers: int = SERVER_MAX_PEERS
    store_mb: float = 256.0
    #: What to fetch from the origin: ``auto`` (live on demand, VOD all), ``all`` or ``demand``
    #: (:mod:`p2pml_py.roles.demand`).
    fetch: str = "auto"
    #: How segments are checked: ``container`` or ``length`` (:mod:`p2pml_py.hls.guard`).
    validate: str = "container"
    #: The site's integrity list (``segments-sha256.json``): URL or file path.
    integrity: str | None = None
    #: Seconds after which a held VOD segment is revalidated (``None``: never).
    revalidate: float | None = 3600.0
    #: The stream's master playlist on disk, read instead of fetching ``url`` (which stays the
    #: URL pages load: :mod:`p2pml_py.hls.files`); ``None``: over HTTP.
    path: str | None = None
    #: The stream's own upload cap in Mbit/s (``None``: none); see :meth:`SuperPeerConfig.upload_rates`.
    upload_mbit: float | None = field(default=None, compare=False)
    #: Members of a fleet that serve this stream (:mod:`p2pml_py.apps.superpeer.fleet`).
    replicas: int = field(default=1, compare=False)
    line: int = field(default=0, compare=False)
    #: ``trackers`` was not configured: these are p2p-media-loader's defaults for ``protocol``.
    trackers_defaulted: bool = field(default=False, compare=False)
    #: The only info hashes this stream may announce (``None``: any); set for streams made
    #: from ``[[peertube]]`` (:attr:`p2pml_py.engine.streams.PeerOptions.only_info_hashes`).
    info_hashes: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StreamConfig:
        renditions = data.get("renditions")
        return cls(
            name=str(data["name"]),
            url=str(data["url"]),
            trackers=tuple(data["trackers"]),
            protocol=tuple(data["protocol"]),
            swarm_id=data.get("swarm_id"),
            renditions=None
            if renditions is None
            else tuple(_selector_value(r) for r in renditions),
            ice_servers=tuple(data.get("ice_servers", ())),
            ice_addresses=tuple(data.get("ice_addresses", ())),
            ice_port_range=_port_range_json(data.get("ice_port_range")),
            max_peers=int(data["max_peers"]),
            store_mb=float(data["store_mb"]),
            fetch=str(data.get("fetch", "auto")),
            validate=str(data.get("validate", "container")),
            integrity=data.get("integrity"),
            revalidate=data.get("revalidate", 3600.0),
            path=data.get("path"),
            upload_mbit=data.get("upload_mbit"),
            replicas=int(data.get("replicas", 1)),
            line=int(data.get("line", 0)),
            trackers_defaulted=bool(data.get("trackers_defaulted", False)),
            info_hashes=None if data.get("info_hashes") is None else tuple(data["info_hashes"]),
        )


def _selector_value(value: Any) -> int | str:
    # A rendition number stays an int (as in ``renditions = [0, 2]``), the rest canonical text.
    selector = parse_selector(value)
    return selector.number if selector.kind == "number" else selector.text


@dataclass(frozen=True, slots=True)
class SuperPeerConfig:
    streams: tuple[StreamConfig, ...]
    workers: int
    listen_host: str = "127.0.0.1"
    listen_port: int = 9464
    #: Seconds between the workers' stats reports (and the status page's samples).
    stats_interval: float = 1.0
    upload_mbit_total: float | None = None
    store_mb_total: float | None = None
    #: Peer connections of one worker process, every swarm of its streams together.
    max_connections: int = SERVER_MAX_CONNECTIONS
    #: ``None``: no ``[fleet]``, this process serves every stream.
    fleet: FleetConfig | None = None
    source: str = "<config>"
    #: ``[[peertube]]`` tables: resolved into more streams when the super-peer starts or
    #: reloads (:mod:`p2pml_py.apps.superpeer.peertube`); ``streams`` holds the result then.
    peertube: tuple[PeerTubeSource, ...] = ()
    #: ``[collector]``: viewer stats on the status server; ``None``: off.
    collector: CollectorConfig | None = None

    def upload_rates(self, names: Collection[str] | None = None) -> dict[str, float | None]:
        """Upload cap of every stream in bytes/s: its own, or an equal share of the total if
        that is lower; ``None`` = unlimited. ``names``: only these streams (the ones a fleet
        member serves) share the total."""
        streams = [s for s in self.streams if names is None or s.name in names]
        share = None
        if self.upload_mbit_total is not None and streams:
            share = self.upload_mbit_total / len(streams)
        out: dict[str, float | None] = {}
        for stream in streams:
            caps = [c for c in (stream.upload_mbit, share) if c is not None]
            out[stream.name] = min(caps) * 1e6 / 8 if caps else None
        return out


class _Lines:
    """Line numbers of table headers and keys, found in the TOML text."""

    def __init__(self, text: str) -> None:
        # (kind, table name, first line, last line) for every table; "" is the root table.
        self.tables: list[tuple[str, int, int]] = []
        self._lines = text.splitlines()
        current = ("", 1)
        for number, line in enumerate(self._lines, start=1):
            match = _HEADER_RE.match(line)
            if match is not None and not line.lstrip().startswith("#"):
                self.tables.append((current[0], current[1], number - 1))
                current = (match.group(2).strip(), number)
        self.tables.append((current[0], current[1], len(self._lines)))

    def table(self, name: str, index: int = 0) -> tuple[int, int] | None:
        found = [(start, end) for table, start, end in self.tables if table == name]
        return found[index] if index < len(found) else None

    def header(self, name: str, index: int = 0) -> int | None:
        span = self.table(name, index)
        return None if span is None else span[0]

    def key(self, name: str, key: str, index: int = 0) -> int | None:
        span = self.table(name, index)
        if span is None:
            return None
        start, end = span
        for number in range(start, end + 1):
            match = _KEY_RE.match(self._lines[number - 1])
            if match is not None and match.group(1).strip('"') == key:
                return number
        return start


class _Checker:
    def __init__(self, source: str, lines: _Lines) -> None:
        self.source = source
        self.lines = lines

    def fail(self, table: str, index: int, key: str | None, message: str) -> ConfigError:
        line = self.lines.key(table, key, index) if key else self.lines.header(table, index)
        where = f"{table}[{index + 1}]" if table in ("stream", "peertube") else table
        field_name = f"{where}.{key}" if key else where
        prefix = f"{self.source}:{line}" if line else self.source
        return ConfigError(f"{prefix}: {field_name}: {message}", line)


def _number(
    check: _Checker, table: str, index: int, key: str, value: Any, *, integer: bool, low: float
) -> float:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        want = "an integer" if integer else "a number"
        raise check.fail(table, index, key, f"must be {want}, got {value!r}")
    if not value >= low or value != value or value in (float("inf"),):
        raise check.fail(table, index, key, f"must be a finite number >= {low:g}, got {value!r}")
    return float(value)


def _strings(check: _Checker, table: str, index: int, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise check.fail(table, index, key, f"must be a list of strings, got {value!r}")
    return tuple(value)


def _stream(
    check: _Checker,
    index: int,
    raw: Mapping[str, Any],
    defaults: Mapping[str, Any],
    base_dir: Path | None = None,
    table: str = "stream",
) -> StreamConfig:
    merged = {**defaults, **raw}

    def origin(key: str) -> tuple[str, int]:
        # Report a bad inherited value at its line in [defaults].
        return (table, index) if key in raw else ("defaults", 0)

    def fail(key: str, message: str) -> ConfigError:
        where, at = origin(key)
        return check.fail(where, at, key, message)

    url = merged.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        if url is None:
            raise check.fail(table, index, None, "url is missing (the HLS manifest URL)")
        raise fail("url", f"must be an http:// or https:// manifest URL, got {url!r}")
    path: str | None = None
    if "path" in raw:
        value = raw["path"]
        if not isinstance(value, str) or not value.strip():
            raise fail("path", f"must be a directory or master playlist path, got {value!r}")
        local = Path(value).expanduser()
        if not local.is_absolute() and base_dir is not None:
            local = base_dir / local  # relative to the configuration file
        try:
            path = str(LocalFiles(local, url).master)
        except SourceError as exc:
            raise fail("path", str(exc)) from None
    name = merged.get("name", url)
    if not isinstance(name, str) or not name or len(name) > 200:
        raise fail("name", f"must be a non-empty string, got {name!r}")

    protocol = merged.get("protocol", "2.3")
    if protocol not in _PROTOCOLS:
        raise fail("protocol", f'must be "2.3", "2.2" or "both", got {protocol!r}')

    # No trackers: the ones pages announce to when they set no announceTrackers (the worker
    # says so in its log).
    defaulted = "trackers" not in merged
    if defaulted:
        trackers = default_trackers(ProtocolVersion.parse(v) for v in _PROTOCOLS[protocol])
    else:
        where, at = origin("trackers")
        trackers = _strings(check, where, at, "trackers", merged["trackers"])
    if not trackers:
        raise fail("trackers", "at least one tracker URL is needed")
    for url_ in trackers:
        if not url_.startswith(("ws://", "wss://")):
            raise fail("trackers", f"{url_!r} is not a WebSocket tracker URL (ws:// or wss://)")

    swarm_id = merged.get("swarm_id")
    if swarm_id is not None and (not isinstance(swarm_id, str) or not swarm_id):
        raise fail("swarm_id", f"must be a non-empty string, got {swarm_id!r}")

    # Checked here, resolved when the seeder has loaded the manifest (p2pml_py.hls.select).
    renditions_raw = merged.get("renditions", "all")
    items = renditions_raw if isinstance(renditions_raw, list) else [renditions_raw]
    try:
        if not items:
            raise ValueError("the list is empty")
        values = tuple(dict.fromkeys(_selector_value(item) for item in items))
    except ValueError as exc:
        raise fail(
            "renditions",
            f'must be "all", a selector or a list of them ({SELECTOR_HELP}); '
            f"{renditions_raw!r}: {exc}",
        ) from None
    renditions = None if "all" in values else values

    where, at = origin("ice_servers")
    ice_servers = _strings(check, where, at, "ice_servers", merged.get("ice_servers", []))
    for server in ice_servers:
        try:
            parse_ice_server(server)
        except ValueError as exc:
            raise fail("ice_servers", str(exc).removeprefix("ice_servers: ")) from None
    where, at = origin("ice_addresses")
    ice_addresses = _strings(check, where, at, "ice_addresses", merged.get("ice_addresses", []))
    for address in ice_addresses:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise fail("ice_addresses", f"{address!r} is not an IP address") from None
        if ip.is_unspecified or ip.is_multicast:
            raise fail("ice_addresses", f"{address!r} is not a unicast interface address")

    ice_port_range: tuple[int, int] | None = None
    if "ice_port_range" in merged:
        try:
            ice_port_range = parse_port_range(merged["ice_port_range"])
        except ValueError as exc:
            raise fail("ice_port_range", str(exc).removeprefix("ice_port_range: ")) from None

    where, at = origin("max_peers")
    max_peers = int(
        _number(
            check,
            where,
            at,
            "max_peers",
            merged.get("max_peers", SERVER_MAX_PEERS),
            integer=True,
            low=1,
        )
    )
    where, at = origin("store_mb")
    store_mb = _number(
        check, where, at, "store_mb", merged.get("store_mb", 256), integer=False, low=1
    )
    fetch = merged.get("fetch", "auto")
    try:
        FetchMode.parse(fetch)
    except ValueError:
        raise fail(
            "fetch",
            f'must be "auto" (live: demand, VOD: all), "all" or "demand", got {fetch!r}',
        ) from None
    validate = merged.get("validate", "container")
    if validate not in ("container", "length"):
        raise fail("validate", f'must be "container" or "length", got {validate!r}')
    integrity = merged.get("integrity")
    if integrity is not None and (not isinstance(integrity, str) or not integrity.strip()):
        raise fail("integrity", f"must be a URL or a file path, got {integrity!r}")
    revalidate: float | None = 3600.0
    if "revalidate" in merged:
        where, at = origin("revalidate")
        revalidate = _number(
            check, where, at, "revalidate", merged["revalidate"], integer=False, low=0
        )
        if revalidate == 0:
            revalidate = None  # 0 turns revalidation off
    upload_mbit: float | None = None
    if "upload_mbit" in merged:
        where, at = origin("upload_mbit")
        upload_mbit = _number(
            check, where, at, "upload_mbit", merged["upload_mbit"], integer=False, low=0.001
        )
    where, at = origin("replicas")
    replicas = int(
        _number(check, where, at, "replicas", merged.get("replicas", 1), integer=True, low=1)
    )
    if replicas > MAX_MEMBERS:
        raise fail("replicas", f"must be at most {MAX_MEMBERS} (the largest fleet), got {replicas}")
    return StreamConfig(
        name=name,
        url=url,
        trackers=trackers,
        protocol=_PROTOCOLS[protocol],
        swarm_id=swarm_id,
        renditions=renditions,
        ice_servers=ice_servers,
        ice_addresses=ice_addresses,
        ice_port_range=ice_port_range,
        max_peers=max_peers,
        store_mb=store_mb,
        fetch=fetch,
        validate=validate,
        integrity=integrity,
        revalidate=revalidate,
        path=path,
        upload_mbit=upload_mbit,
        replicas=replicas,
        line=check.lines.header(table, index) or 0,
        trackers_defaulted=defaulted,
    )


@dataclass(frozen=True, slots=True)
class PeerTubeSource:
    """A ``[[peertube]]`` table: PeerTube URLs (:func:`p2pml_py.apps.peertube.model.
    parse_target`), how many videos per listing, and the settings of the streams it makes."""

    urls: tuple[str, ...]
    limit: int
    probe: bool
    #: Stream settings (``max_peers``, ``store_mb``, ...): a checked template whose url,
    #: trackers, protocol, swarm id and integrity list each video replaces.
    template: StreamConfig
    line: int = field(default=0, compare=False)


def _peertube(
    check: _Checker, index: int, raw: Mapping[str, Any], defaults: Mapping[str, Any]
) -> PeerTubeSource:
    from p2pml_py.apps.peertube.model import parse_target

    table = "peertube"
    urls_raw = raw.get("urls")
    if urls_raw is None:
        raise check.fail(
            table, index, None, "urls is missing (PeerTube video/channel/instance URLs)"
        )
    urls = _strings(
        check, table, index, "urls", urls_raw if isinstance(urls_raw, list) else [urls_raw]
    )
    if not urls:
        raise check.fail(table, index, "urls", "at least one URL is needed")
    for url in urls:
        try:
            parse_target(url)
        except ValueError as exc:
            raise check.fail(table, index, "urls", str(exc)) from None
    limit = int(_number(check, table, index, "limit", raw.get("limit", 10), integer=True, low=1))
    if limit > 1000:
        raise check.fail(table, index, "limit", f"must be at most 1000, got {limit}")
    probe = raw.get("probe", True)
    if not isinstance(probe, bool):
        raise check.fail(table, index, "probe", f"must be true or false, got {probe!r}")
    inherited = {k: v for k, v in defaults.items() if k in _PEERTUBE_STREAM_KEYS}
    settings = {k: v for k, v in raw.items() if k in _PEERTUBE_STREAM_KEYS}
    # The stream checks, on a placeholder url and tracker the instance's replace.
    template = _stream(
        check,
        index,
        {**settings, "url": "https://peertube.invalid/", "trackers": ["wss://peertube.invalid/"]},
        inherited,
        table=table,
    )
    return PeerTubeSource(
        urls=urls,
        limit=limit,
        probe=probe,
        template=template,
        line=check.lines.header(table, index) or 0,
    )


def _listen(check: _Checker, value: Any, table: str = "superpeer") -> tuple[str, int]:
    if not isinstance(value, str):
        raise check.fail(table, 0, "listen", f'must be "HOST:PORT", got {value!r}')
    host, sep, port_text = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise check.fail(table, 0, "listen", f'must be "HOST:PORT", got {value!r}')
    return host, int(port_text)


def _fleet(
    check: _Checker, table: Mapping[str, Any], environ: Mapping[str, str], base_dir: Path | None
) -> FleetConfig:
    def fail(key: str | None, message: str) -> ConfigError:
        return check.fail("fleet", 0, key, message)

    given = [key for key in _FLEET_SOURCES if key in table]
    if len(given) != 1:
        raise fail(
            given[1] if len(given) > 1 else None,
            "set exactly one of members (a list), members_file (a path) or members_dns "
            "(a headless Service's DNS name)",
        )
    key = given[0]
    value = table[key]
    members: tuple[str, ...] = ()
    path: Path | None = None
    dns_name: str | None = None
    if key == "members":
        raw = _strings(check, "fleet", 0, key, value)
        try:
            members = tuple(dict.fromkeys(normalize_member(m) for m in raw))
        except ValueError as exc:
            raise fail(key, str(exc)) from None
        if not members:
            raise fail(key, "at least one member is needed")
        if len(members) > MAX_MEMBERS:
            raise fail(key, f"at most {MAX_MEMBERS} members")
    elif not isinstance(value, str) or not value.strip():
        raise fail(key, f"must be a non-empty string, got {value!r}")
    elif key == "members_file":
        path = Path(value)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path  # relative to the configuration file
    else:
        dns_name = value.strip()
        if len(dns_name) > 253 or not _DNS_NAME_RE.match(dns_name):
            raise fail(
                key, f"must be a DNS name like sp.NAMESPACE.svc.cluster.local, got {value!r}"
            )

    # This member's id: written down, or read from the environment (the downward API in a pod).
    if "self" in table and "self_from_env" in table:
        raise fail("self_from_env", "set self or self_from_env, not both")
    self_key = "self_from_env" if "self_from_env" in table else "self"
    if "self" in table:
        self_raw = table["self"]
        if not isinstance(self_raw, str):
            raise fail("self", f"must be a string, got {self_raw!r}")
    else:
        variable = table.get("self_from_env", "POD_IP" if dns_name else "HOSTNAME")
        if not isinstance(variable, str) or not variable:
            raise fail("self_from_env", f"must be an environment variable name, got {variable!r}")
        self_raw = environ.get(variable, "")
        if not self_raw.strip():
            hint = (
                f" (in Kubernetes: env {variable} from the downward API, fieldRef status.podIP)"
                if dns_name
                else ""
            )
            raise fail(
                self_key,
                f"this member's id is missing: fleet.self is not set and the environment "
                f"variable {variable} is unset or empty{hint}",
            )
    try:
        self_id = normalize_member(self_raw)
    except ValueError as exc:
        raise fail(self_key, str(exc)) from None
    if dns_name is not None:
        try:
            ipaddress.ip_address(self_id)
        except ValueError:
            raise fail(
                self_key,
                f"must be this pod's IP address with members_dns (the Service's records are "
                f"pod IPs), got {self_id!r}",
            ) from None
    if members and self_id not in members:
        raise fail(self_key, f"{self_id!r} is not one of fleet.members")

    refresh = _number(
        check, "fleet", 0, "refresh", table.get("refresh", DEFAULT_REFRESH), integer=False, low=0.1
    )
    timeout = _number(
        check, "fleet", 0, "timeout", table.get("timeout", DEFAULT_TIMEOUT), integer=False, low=0.1
    )
    return FleetConfig(
        self_id=self_id,
        source="static" if members else "file" if path is not None else "dns",
        members=members,
        path=path,
        dns_name=dns_name,
        refresh=refresh,
        timeout=timeout,
    )


def _collector(check: _Checker, table: Mapping[str, Any]) -> CollectorConfig:
    """``[collector]``: the viewer-stats collector on the status server (and on ``listen``)."""
    defaults = CollectorConfig()

    def fail(key: str, message: str) -> ConfigError:
        return check.fail("collector", 0, key, message)

    origins = []
    for origin in _strings(check, "collector", 0, "cors_origins", table.get("cors_origins", [])):
        try:
            origins.append(normalize_origin(origin))
        except ValueError as exc:
            raise fail("cors_origins", str(exc)) from None
    streams = table.get("streams", defaults.streams)
    if streams not in ("configured", "any"):
        raise fail("streams", f'must be "configured" or "any", got {streams!r}')
    listen = None
    if "listen" in table:
        listen = _listen(check, table["listen"], "collector")
    forwarded_for = table.get("forwarded_for", False)
    if not isinstance(forwarded_for, bool):
        raise fail("forwarded_for", f"must be true or false, got {forwarded_for!r}")

    def number(key: str, *, integer: bool, low: float) -> float:
        value = table.get(key, getattr(defaults, key))
        return _number(check, "collector", 0, key, value, integer=integer, low=low)

    return CollectorConfig(
        cors_origins=tuple(dict.fromkeys(origins)),
        streams=streams,
        listen=listen,
        max_viewers=int(number("max_viewers", integer=True, low=1)),
        max_streams=int(number("max_streams", integer=True, low=1)),
        max_clients=int(number("max_clients", integer=True, low=1)),
        viewer_ttl=number("viewer_ttl", integer=False, low=1),
        max_viewer_mbit=number("max_viewer_mbit", integer=False, low=0.001),
        client_rate=number("client_rate", integer=False, low=0.001),
        client_burst=number("client_burst", integer=False, low=1),
        forwarded_for=forwarded_for,
    )


def parse_config(
    text: str,
    source: str = "<config>",
    *,
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> SuperPeerConfig:
    """Parse and validate a configuration; :class:`ConfigError` names the field and its line.

    ``environ`` (default: the process environment) supplies ``[fleet] self_from_env``;
    a relative ``members_file`` or stream ``path`` is taken from ``base_dir`` (load_config: the file's directory).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        line = int(match.group(1)) if match else None
        raise ConfigError(f"{source}:{line or '?'}: invalid TOML: {exc}", line) from None
    check = _Checker(source, _Lines(text))

    for key in data:
        if key not in _SECTION_KEYS:
            raise ConfigError(
                f"{source}:{check.lines.key('', key) or check.lines.header(key) or '?'}: "
                f"{key}: unknown section or key (expected {', '.join(_SECTION_KEYS)})",
                check.lines.header(key),
            )
    for section in ("superpeer", "limits", "defaults", "fleet", "collector"):
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise check.fail(section, 0, None, "must be a table")
        for key in table:
            if key not in _SECTION_KEYS[section]:
                raise check.fail(section, 0, key, "unknown key")
    raw_streams = data.get("stream", [])
    raw_peertube = data.get("peertube", [])
    for table, raws in (("stream", raw_streams), ("peertube", raw_peertube)):
        if not isinstance(raws, list):
            raise ConfigError(f"{source}: {table}: must be [[{table}]] tables")
        for index, raw in enumerate(raws):
            for key in raw:
                if key not in _SECTION_KEYS[table]:
                    raise check.fail(table, index, key, "unknown key")
    if not raw_streams and not raw_peertube:
        raise ConfigError(
            f"{source}: stream: at least one [[stream]] (or [[peertube]]) table is needed"
        )

    defaults = data.get("defaults", {})
    streams = [_stream(check, i, raw, defaults, base_dir) for i, raw in enumerate(raw_streams)]
    peertube = tuple(_peertube(check, i, raw, defaults) for i, raw in enumerate(raw_peertube))
    seen: dict[str, int] = {}
    for index, stream in enumerate(streams):
        if stream.name in seen:
            key = "name" if "name" in raw_streams[index] else "url"
            raise check.fail(
                "stream",
                index,
                key,
                f"{stream.name!r} is already used by stream[{seen[stream.name] + 1}]",
            )
        seen[stream.name] = index

    top = data.get("superpeer", {})
    workers = top.get("workers", os.cpu_count() or 1)
    workers = int(_number(check, "superpeer", 0, "workers", workers, integer=True, low=1))
    host, port = _listen(check, top.get("listen", "127.0.0.1:9464"))
    interval = _number(
        check,
        "superpeer",
        0,
        "stats_interval",
        top.get("stats_interval", 1.0),
        integer=False,
        low=0.05,
    )
    limits = data.get("limits", {})
    upload_total = store_total = None
    if "upload_mbit" in limits:
        upload_total = _number(
            check, "limits", 0, "upload_mbit", limits["upload_mbit"], integer=False, low=0.001
        )
    if "store_mb" in limits:
        store_total = _number(
            check, "limits", 0, "store_mb", limits["store_mb"], integer=False, low=1
        )
        wanted = sum(s.store_mb for s in streams)
        if wanted > store_total:
            raise check.fail(
                "limits",
                0,
                "store_mb",
                f"the streams ask for {wanted:g} MB of held segments in total, more than {store_total:g}",
            )
    max_connections = int(
        _number(
            check,
            "limits",
            0,
            "max_connections",
            limits.get("max_connections", SERVER_MAX_CONNECTIONS),
            integer=True,
            low=1,
        )
    )
    fleet = None
    if "fleet" in data:
        fleet = _fleet(check, data["fleet"], os.environ if environ is None else environ, base_dir)
    collector = _collector(check, data["collector"]) if "collector" in data else None
    return SuperPeerConfig(
        streams=tuple(streams),
        peertube=peertube,
        collector=collector,
        max_connections=max_connections,
        fleet=fleet,
        workers=workers,
        listen_host=host,
        listen_port=port,
        stats_interval=interval,
        upload_mbit_total=upload_total,
        store_mb_total=store_total,
        source=source,
    )


def load_config(path: str | Path) -> SuperPeerConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    return parse_config(text, str(path), base_dir=path.parent)


def dumps_stream(stream: StreamConfig) -> str:
    return json.dumps(stream.to_json())
