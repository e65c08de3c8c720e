"""What the collector answers to a request, decided without I/O: the HTTP handlers
(:mod:`p2pml_py.apps.collector.http`) pass the request's parts and the time, and send the
:class:`Answer` back.

The order of the checks is the order of their cost: the client's rate limit first (a flood is
refused before anything else is looked at), then the page's origin, the body's size and type,
the report itself, its stream, and last what it adds to the aggregates. Every refusal is counted
by :class:`~p2pml_py.apps.collector.report.Reason`.

CORS (Fetch standard, "CORS protocol"): a browser sends a cross-origin report whatever the
server answers -- ``sendBeacon`` and a ``text/plain`` ``fetch`` need no preflight -- so the
allowed origins are enforced here, on the request's ``Origin``, not left to the browser. Allowed
cross-origin pages get ``Access-Control-Allow-Origin`` so they may read the answer. Browsers
send ``Origin`` with every cross-origin POST; a request without one is not from another site's
page (curl, a server) and is taken like a same-origin one.

Client addresses are only used as rate-limit keys, and only as a keyed hash (a random key per
process), in the limiter's bounded table (:class:`~p2pml_py.apps.superpeer.ratelimit.KeyedLimiter`).
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from p2pml_py.apps.collector.aggregate import ViewerStats
from p2pml_py.apps.collector.config import CollectorConfig
from p2pml_py.apps.collector.report import MAX_BODY, Reason, Rejected, parse_report
from p2pml_py.apps.superpeer.ratelimit import KeyedLimiter

__all__ = ["Answer", "PingbackService", "client_address", "stream_id", "stream_resolver"]

#: Body types a report may come with: ``sendBeacon(url, string)`` sends ``text/plain``, and so
#: does the module's ``fetch`` (a CORS-safelisted type: no preflight); other clients may say JSON.
CONTENT_TYPES: Final = frozenset({"text/plain", "application/json"})
_STATUS: Final[Mapping[Reason, int]] = {
    Reason.TOO_LARGE: 413,
    Reason.RATE_LIMITED: 429,
    Reason.ORIGIN: 403,
    Reason.CONTENT_TYPE: 415,
    # A late or replayed report: the viewer did nothing wrong, its newer report counted.
    Reason.STALE: 204,
}
#: Preflight answers may be cached this long (Chromium caps it at 2 hours).
PREFLIGHT_MAX_AGE: Final = "7200"


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer: status, JSON body (``None``: empty) and headers."""

    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def client_address(remote: str | None, forwarded_for: str | None, trust_forwarded: bool) -> str:
    """The client's address: the connection's, or behind a trusted proxy the last hop of
    ``X-Forwarded-For`` (the one the proxy appended; earlier ones are the client's own claims)."""
    if trust_forwarded and forwarded_for:
        last = forwarded_for.rsplit(",", 1)[-1].strip()
        if last:
            return last[:64]
    return remote or ""


def stream_id(url: str) -> str:
    """What the module reports for a manifest URL: without query and fragment (they often hold
    per-viewer tokens)."""
    return url.split("#", 1)[0].split("?", 1)[0]


def stream_resolver(known: Mapping[str, str], *, accept_any: bool) -> Callable[[str], str | None]:
    """Resolve a report's stream id through ``known`` (stream id or name -> key: the super-peer's
    stream names); an id not in it is its own key with ``accept_any``, else refused."""

    def resolve(stream: str) -> str | None:
        key = known.get(stream) or known.get(stream_id(stream))
        if key is not None:
            return key
        return stream if accept_any else None

    return resolve


class PingbackService:
    """Reports in, answers out. ``resolve`` maps a report's stream id to the key its aggregates
    are kept under, or ``None`` to refuse the stream (default: every id is its own key)."""

    def __init__(
        self,
        config: CollectorConfig,
        *,
        resolve: Callable[[str], str | None] | None = None,
    ) -> None:
        self.config = config
        self.stats = ViewerStats(config)
        self.limiter = KeyedLimiter(config.client_rate, config.client_burst, config.max_clients)
        self.resolve: Callable[[str], str | None] = resolve or (lambda stream: stream)
        self.rejected: dict[Reason, int] = dict.fromkeys(Reason, 0)
        self.accepted = 0
        self._key = secrets.token_bytes(16)

    # -- origins -------------------------------------------------------------------------------

    def origin_allowed(self, origin: str | None, host: str | None) -> bool:
        if origin is None:
            return True  # not a browser page of another site (see the module docstring)
        allowed = self.config.cors_origins
        if "*" in allowed:
            return True
        normalized = origin.strip().lower()
        if normalized in allowed:
            return True
        # Same origin: the page was served by the host it posts to. The scheme is left out:
        # behind a TLS-terminating proxy the request reaches us as http.
        _, sep, rest = normalized.partition("://")
        return bool(sep) and host is not None and rest == host.strip().lower()

    def cors_headers(self, origin: str | None, host: str | None) -> dict[str, str]:
        """``Access-Control-Allow-Origin`` for an allowed cross-origin page; nothing otherwise."""
        if origin is None or not self.origin_allowed(origin, host):
            return {"Vary": "Origin"}
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

    def preflight(self, origin: str | None, host: str | None) -> Answer:
        """``OPTIONS``: a page that posts ``application/json`` asks first."""
        if origin is None or not self.origin_allowed(origin, host):
            return self._refuse(Rejected(Reason.ORIGIN, "origin not allowed"), {"Vary": "Origin"})
        return Answer(
            204,
            headers={
                **self.cors_headers(origin, host),
                "Access-Control-Allow-Methods": "POST",
                "Access-Control-Allow-Headers": "Content-Type",
                "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
            },
        )

    # -- reports -------------------------------------------------------------------------------

    def admit(
        self,
        *,
        client: str,
        origin: str | None,
        host: str | None,
        content_type: str,
        content_length: int | None,
        now: float,
    ) -> Answer | None:
        """The checks before the body is read; ``None``: read it (at most ``MAX_BODY + 1``
        bytes) and call :meth:`take`."""
        cors = self.cors_headers(origin, host)
        digest = hashlib.blake2b(client.encode(), key=self._key, digest_size=12).digest()
        if not self.limiter.allow(digest, now):
            wait = str(max(1, math.ceil(1 / self.config.client_rate)))
            return self._refuse(
                Rejected(Reason.RATE_LIMITED, "too many reports from this client"),
                {**cors, "Retry-After": wait},
            )
        if not self.origin_allowed(origin, host):
            return self._refuse(Rejected(Reason.ORIGIN, "origin not allowed"), cors)
        if content_length is not None and content_length > MAX_BODY:
            return self._refuse(
                Rejected(Reason.TOO_LARGE, f"the body is larger than {MAX_BODY} bytes"), cors
            )
        if content_type.split(";", 1)[0].strip().lower() not in CONTENT_TYPES:
            return self._refuse(
                Rejected(Reason.CONTENT_TYPE, "send text/plain or application/json"), cors
            )
        return None

    def take(
        self, body: bytes, *, origin: str | None, host: str | None, now: float, wall: float
    ) -> Answer:
        """Parse, check and add one report body (after :meth:`admit`)."""
        cors = self.cors_headers(origin, host)
        try:
            report = parse_report(body)
            key = self.resolve(report.stream)
            if key is None:
                raise Rejected(
                    Reason.UNKNOWN_STREAM, "stream: not one of this collector's", "stream"
                )
            self.stats.add(report, key, now)
        except Rejected as exc:
            return self._refuse(exc, cors)
        self.accepted += 1
        self.stats.sample(now, wall)
        return Answer(204, headers=cors)

    def _refuse(self, exc: Rejected, headers: dict[str, str]) -> Answer:
        self.rejected[exc.reason] += 1
        status = _STATUS.get(exc.reason, 400)
        return Answer(status, None if status == 204 else exc.to_json(), headers)

    # -- reading -------------------------------------------------------------------------------

    def status(self, now: float, wall: float) -> dict[str, Any]:
        """The ``viewers`` section of ``/status``."""
        self.stats.sample(now, wall)
        return {
            "streams": [s.to_json() for s in self.stats.streams()],
            "totals": {
                **self.stats.totals(),
                "accepted": self.accepted,
                "rejected": sum(self.rejected.values()),
            },
            "rejected": {reason.value: n for reason, n in self.rejected.items()},
            "history": list(self.stats.history),
            "tables": {
                "viewers": self.stats.viewer_count,
                "max_viewers": self.config.max_viewers,
                "viewers_evicted": self.stats.viewers_evicted,
                "streams": self.stats.stream_count,
                "max_streams": self.config.max_streams,
                "streams_evicted": self.stats.streams_evicted,
                "clients": len(self.limiter),
                "max_clients": self.config.max_clients,
            },
            "cors_origins": list(self.config.cors_origins),
        }
