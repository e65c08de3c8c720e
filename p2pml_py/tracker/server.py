"""Embedded WebTorrent tracker: WebSocket signalling plus HTTP ``/announce`` and ``/scrape``.

One ``websockets`` server serves both on a single port: WebSocket upgrades (any path, as
``bittorrent-tracker``'s ``ws`` server accepts) carry the JSON signalling of
:mod:`p2pml_py.tracker.messages`; a plain ``GET /announce`` or ``GET /scrape`` is answered in
``process_request`` with a bencoded body like ``bittorrent-tracker`` ``server.js onHttpRequest``.
All swarm logic lives in the sans-I/O :class:`~p2pml_py.tracker.registry.SwarmRegistry`; this
module only moves text between sockets and it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast
from urllib.parse import unquote_to_bytes

import bencode
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from p2pml_py.base.aio import Notifier, Service, TaskGroup
from p2pml_py.base.errors import LocalProtocolError, TrackerProtocolError
from p2pml_py.tracker.messages import (
    EVENTS,
    MAX_MESSAGE_CHARS,
    Announce,
    AnswerRelay,
    ScrapeRequest,
    TrackerFailure,
    TrackerMessage,
    encode,
    is_binary_id,
    parse_client_message,
)
from p2pml_py.tracker.registry import DEFAULT_INTERVAL, RegistryLimits, SwarmRegistry

__all__ = ["TrackerServer", "TrackerServerStats", "run_tracker"]

logger = logging.getLogger(__name__)

#: ``common.js DEFAULT_ANNOUNCE_PEERS`` / ``MAX_ANNOUNCE_PEERS`` for HTTP announces.
_HTTP_DEFAULT_NUMWANT: Final = 50
_HTTP_MAX_NUMWANT: Final = 82
_MAX_QUERY_BYTES: Final = 4096


@dataclass(frozen=True, slots=True)
class TrackerServerStats:
    """A snapshot of the server's counters."""

    swarms: int
    peers: int
    connections: int
    messages: int
    rejects: int
    offers_relayed: int
    answers_relayed: int
    http_requests: int
    peers_expired: int


class TrackerServer(Service):
    """An embedded WebTorrent tracker; use ``async with TrackerServer() as server``.

    ``server.url`` (``ws://host:port``) and ``server.port`` are valid once started.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        interval: int = DEFAULT_INTERVAL,
        limits: RegistryLimits | None = None,
        max_message_size: int = MAX_MESSAGE_CHARS,
        expire_every: float | None = None,
        max_connections: int = 10_000,
        send_timeout: float = 5.0,
        full_scrape: bool = False,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._registry = SwarmRegistry(interval=interval, limits=limits, full_scrape=full_scrape)
        self._max_message_size = max_message_size
        self._expire_every = expire_every if expire_every is not None else interval / 2
        self._max_connections = max_connections
        self._send_timeout = send_timeout
        self.slow_peers_dropped = 0
        self._server: Server | None = None
        self._tasks = TaskGroup(logger)  # the expiry loop
        self._closed = False
        self._conn_ids = itertools.count(1)
        self._conns: dict[int, ServerConnection] = {}
        self._port = 0
        self.messages = 0
        self.rejects = 0
        self.http_requests = 0
        self.peers_expired = 0
        self._changed = Notifier()

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._server is not None:
            raise LocalProtocolError("tracker server already started")
        if self._closed:
            raise LocalProtocolError("tracker server is closed")
        self._server = await serve(
            self._handle_connection,
            self.host,
            self._requested_port,
            process_request=self._process_request,
            max_size=self._max_message_size,
            # bittorrent-tracker's ws server disables permessage-deflate too; it also keeps
            # a compressed frame from expanding past max_size inside the decompressor.
            compression=None,
            server_header="p2pml_py",
        )
        self._port = self._server.sockets[0].getsockname()[1]
        self._tasks.spawn(self._expire_loop(), name="tracker-expire")
        logger.info("tracker listening on %s", self.url)

    async def aclose(self) -> None:
        """Stop serving and drop every connection. Idempotent; if the caller is cancelled
        meanwhile, calling it again finishes the job."""
        self._closed = True
        await self._tasks.aclose()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def port(self) -> int:
        if self._server is None:
            raise LocalProtocolError("tracker server not started")
        return int(self._port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    @property
    def registry(self) -> SwarmRegistry:
        return self._registry

    def stats(self) -> TrackerServerStats:
        return TrackerServerStats(
            swarms=self._registry.swarm_count,
            peers=self._registry.peer_count,
            connections=len(self._conns),
            messages=self.messages,
            rejects=self.rejects,
            offers_relayed=self._registry.offers_relayed,
            answers_relayed=self._registry.answers_relayed,
            http_requests=self.http_requests,
            peers_expired=self.peers_expired,
        )

    def _notify(self) -> None:
        self._changed.notify()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` is true, re-checking after every message, close or expiry.

        Bound it with ``asyncio.timeout``; it waits forever otherwise.
        """
        await self._changed.wait_until(predicate)

    # -- WebSocket ------------------------------------------------------------------------------

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(self._expire_every)
            removed = self._registry.expire(time.monotonic())
            if removed:
                self.peers_expired += removed
                self._notify()
                logger.debug("forgot %d silent peers", removed)

    async def _handle_connection(self, ws: ServerConnection) -> None:
        if len(self._conns) >= self._max_connections:
            self.rejects += 1
            await ws.close(1013, "too many connections")
            return
        conn = next(self._conn_ids)
        self._conns[conn] = ws
        logger.debug("tracker connection %d from %s", conn, ws.remote_address)
        try:
            async for data in ws:
                self.messages += 1
                await self._handle_message(conn, ws, data)
                self._notify()
        except ConnectionClosed as exc:
            # Oversized messages end here (close code 1009); the socket is gone either way.
            logger.debug("tracker connection %d closed: %s", conn, exc)
        finally:
            del self._conns[conn]
            self._registry.disconnect(conn)
            self._notify()

    async def _handle_message(self, conn: int, ws: ServerConnection, data: str | bytes) -> None:
        try:
            msg = parse_client_message(data, max_offers=self._registry.limits.max_offers)
            now = time.monotonic()
            if isinstance(msg, Announce):
                outgoing = self._registry.announce(conn, msg, now)
            elif isinstance(msg, AnswerRelay):
                outgoing = self._registry.answer(conn, msg, now)
            else:
                assert isinstance(msg, ScrapeRequest)
                await self._send(ws, self._registry.scrape(msg))
                return
        except TrackerProtocolError as exc:
            self.rejects += 1
            logger.debug("tracker connection %d: rejected message: %s", conn, exc)
            info_hash = _info_hash_hint(data)
            action = "announce" if info_hash is not None else None
            await self._send(ws, TrackerFailure(str(exc), info_hash=info_hash, action=action))
            return
        for item in outgoing:
            target = ws if item.conn == conn else self._conns.get(cast(int, item.conn))
            if target is not None:
                await self._send(target, item.message)

    async def _send(self, ws: ServerConnection, message: TrackerMessage) -> None:
        # A target that went away between lookup and send is not an error of the sender. A
        # target that does not read would make every sender wait on its full buffer: drop it.
        try:
            async with asyncio.timeout(self._send_timeout):
                await ws.send(encode(message))
        except ConnectionClosed:
            pass
        except TimeoutError:
            self.slow_peers_dropped += 1
            logger.info("dropping tracker connection %s: not reading", ws.remote_address)
            ws.transport.abort()

    # -- HTTP -----------------------------------------------------------------------------------

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        path, _, query = request.path.partition("?")
        if path not in ("/announce", "/scrape"):
            return ws.respond(404, "Not Found\n")
        self.http_requests += 1
        try:
            if len(query) > _MAX_QUERY_BYTES:
                raise TrackerProtocolError("query too long")
            params = _parse_query(query)
            if path == "/announce":
                body = self._http_announce(params, ws.remote_address)
            else:
                body = self._http_scrape(params)
        except TrackerProtocolError as exc:
            self.rejects += 1
            body = {"failure reason": str(exc)}
        headers = Headers()
        headers["Content-Type"] = "text/plain"
        encoded: bytes = bencode.encode(body)
        headers["Content-Length"] = str(len(encoded))
        return Response(200, "OK", headers, encoded)

    def _http_announce(self, params: Mapping[str, list[str]], remote: Any) -> dict[Any, Any]:
        info_hash = _single_id(params, "info_hash")
        peer_id = _single_id(params, "peer_id")
        port = _query_int(params, "port", None)
        if port is None or not 0 < port <= 65535:
            raise TrackerProtocolError("invalid port")
        left = _query_int(params, "left", None)
        numwant = min(_query_int(params, "numwant", _HTTP_DEFAULT_NUMWANT) or 0, _HTTP_MAX_NUMWANT)
        compact = _query_int(params, "compact", 0)
        event_values = params.get("event", [])
        event = event_values[0] if event_values and event_values[0] else None
        if event is not None and event not in EVENTS:
            raise TrackerProtocolError("invalid event")
        ip = str(remote[0]) if isinstance(remote, tuple) and remote else ""
        if ip.startswith("::ffff:"):
            ip = ip[len("::ffff:") :]
        complete, incomplete, peers = self._registry.http_announce(
            info_hash,
            peer_id,
            ip,
            port,
            event=event,
            left=left,
            numwant=numwant,
            now=time.monotonic(),
        )
        body: dict[Any, Any] = {
            "complete": complete,
            "incomplete": incomplete,
            "interval": self._registry.interval,
        }
        if compact == 1:
            packed = b""
            for peer in peers:
                parts = peer.ip.split(".")
                if len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts):
                    packed += bytes(int(p) for p in parts) + peer.port.to_bytes(2, "big")
            body["peers"] = packed
        else:
            body["peers"] = [
                {"peer id": peer.peer_id.encode("latin-1"), "ip": peer.ip, "port": peer.port}
                for peer in peers
            ]
        return body

    def _http_scrape(self, params: Mapping[str, list[str]]) -> dict[Any, Any]:
        hashes = params.get("info_hash", [])
        for value in hashes:
            if not is_binary_id(value):
                raise TrackerProtocolError("invalid info_hash")
        response = self._registry.scrape(ScrapeRequest(tuple(hashes)))
        return {
            "files": {
                f.info_hash.encode("latin-1"): {
                    "complete": f.complete,
                    "incomplete": f.incomplete,
                    "downloaded": f.downloaded,
                }
                for f in response.files
            },
            "flags": {"min_request_interval": self._registry.interval},
        }


def _info_hash_hint(data: str | bytes) -> str | None:
    """The announce's info_hash if it is readable, for ``failure reason`` replies."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if isinstance(obj, dict) and obj.get("action") == "announce":
        value = obj.get("info_hash")
        if is_binary_id(value):
            assert isinstance(value, str)
            return value
    return None


def _parse_query(query: str) -> dict[str, list[str]]:
    """Split a query string the way BitTorrent clients write it: values are %-escaped bytes.

    Each value becomes a binary string (bytes mapped 1:1 to U+0000..U+00FF), as
    ``common-node.js querystringParse`` (with ``unescape``) gives bittorrent-tracker.
    """
    params: dict[str, list[str]] = {}
    if not query:
        return params
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        name = unquote_to_bytes(key.replace("+", " ")).decode("latin-1")
        params.setdefault(name, []).append(
            unquote_to_bytes(value.replace("+", " ")).decode("latin-1")
        )
    return params


def _single_id(params: Mapping[str, list[str]], key: str) -> str:
    values = params.get(key, [])
    if len(values) != 1 or not is_binary_id(values[0]):
        raise TrackerProtocolError(f"invalid {key}")
    return values[0]


def _query_int(params: Mapping[str, list[str]], key: str, default: int | None) -> int | None:
    values = params.get(key, [])
    if not values or values[0] == "":
        return default
    text = values[0]
    if not text.isascii() or not text.isdigit() or len(text) > 16:
        raise TrackerProtocolError(f"invalid {key}")
    return int(text)


async def run_tracker(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run an embedded tracker until cancelled (for ``p2pml-py tracker``)."""
    async with TrackerServer(host, port) as server:
        logger.info(
            "WebTorrent tracker running at %s (HTTP: http://%s:%d/announce)",
            server.url,
            host,
            server.port,
        )
        await asyncio.Future()
