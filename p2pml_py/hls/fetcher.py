"""HTTP access to manifests and segments (aiohttp).

One GET, no retries: retrying and counting belong to :mod:`p2pml_py.hls.source`. Failures are
classified by exception type so callers can decide what is worth retrying:
:class:`~p2pml_py.base.errors.OriginHttpError` (status), :class:`~p2pml_py.base.errors.OriginTimeoutError`
(overall timeout), :class:`~p2pml_py.base.errors.OriginStallError` (no bytes for ``stall_timeout``),
:class:`~p2pml_py.base.errors.OriginConnectionError` (refused, reset, truncated body); anything else
is a plain :class:`~p2pml_py.base.errors.SourceError`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp

from p2pml_py.base.errors import (
    OriginConnectionError,
    OriginHttpError,
    OriginStallError,
    OriginTimeoutError,
    SourceError,
)
from p2pml_py.base.version import USER_AGENT

logger = logging.getLogger(__name__)

#: Manifests and playlists larger than this are refused (a playlist is text; 16 MiB is huge).
MAX_PLAYLIST_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Validators:
    """What a conditional GET sends back to the origin (RFC 9110 section 13.1): the response's
    ``ETag`` and ``Last-Modified``, as they were."""

    etag: str | None = None
    last_modified: str | None = None

    def __bool__(self) -> bool:
        return self.etag is not None or self.last_modified is not None

    def headers(self) -> dict[str, str]:
        out = {}
        if self.etag is not None:
            out["If-None-Match"] = self.etag
        if self.last_modified is not None:
            out["If-Modified-Since"] = self.last_modified
        return out


@dataclass(frozen=True, slots=True)
class Fetched:
    """A response body with the final URL after redirects (it feeds the swarm id).

    ``not_modified``: the origin answered 304 to a conditional GET (``body`` is empty)."""

    url: str
    final_url: str
    body: bytes
    validators: Validators = Validators()
    not_modified: bool = False


async def fetch(
    session: aiohttp.ClientSession,
    url: str,
    *,
    byte_range: tuple[int, int] | None = None,
    timeout: float = 10.0,
    max_bytes: int = MAX_PLAYLIST_BYTES,
    stall_timeout: float | None = None,
    conditional: Validators | None = None,
) -> Fetched:
    """GET ``url`` (optionally bytes ``start..end`` inclusive), following redirects.

    ``timeout`` bounds the whole request; ``stall_timeout`` (if given) bounds each wait for the
    next bytes (headers included). An origin that ignores ``Range`` and answers 200 with the
    whole file is honoured: the range is cut out locally. ``conditional``: ask only for a newer
    body (304 gives :attr:`Fetched.not_modified`). Raises :class:`SourceError` (or one of
    its ``Origin*`` subclasses) with a one-line reason on any failure.
    """
    headers = {}
    if byte_range is not None:
        headers["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
    if conditional is not None:
        headers.update(conditional.headers())
    client_timeout = aiohttp.ClientTimeout(total=timeout, sock_read=stall_timeout)
    try:
        async with session.get(url, headers=headers, timeout=client_timeout) as response:
            if response.status >= 400:
                raise OriginHttpError(
                    f"{url}: HTTP {response.status} {response.reason or ''}".strip(),
                    response.status,
                )
            validators = Validators(
                response.headers.get("ETag"), response.headers.get("Last-Modified")
            )
            if response.status == 304:
                return Fetched(url, str(response.url), b"", validators, not_modified=True)
            # An origin that ignores Range sends the whole file: read only up to the range's end
            # (known and finite), whatever max_bytes says about whole responses.
            stop_after = None
            if byte_range is not None and response.status == 200:
                stop_after = byte_range[1] + 1
            elif response.content_length is not None and response.content_length > max_bytes:
                raise SourceError(f"{url}: {response.content_length} bytes exceeds {max_bytes}")
            body = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                body += chunk
                if stop_after is not None:
                    if len(body) >= stop_after:
                        break
                elif len(body) > max_bytes:
                    raise SourceError(f"{url}: response exceeds {max_bytes} bytes")
            if byte_range is not None:
                body = _cut_range(url, response.status, body, byte_range)
            return Fetched(url, str(response.url), bytes(body), validators)
    except SourceError:
        raise
    except aiohttp.ConnectionTimeoutError as exc:
        raise OriginTimeoutError(f"{url}: connect timed out") from exc
    except aiohttp.ServerTimeoutError as exc:  # sock_read: nothing arrived for stall_timeout
        raise OriginStallError(f"{url}: no bytes for {stall_timeout or 0:g} s") from exc
    except TimeoutError as exc:
        raise OriginTimeoutError(f"{url}: timed out after {timeout:g} s") from exc
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError) as exc:
        raise OriginConnectionError(f"{url}: {exc.__class__.__name__}: {exc}") from exc
    except (aiohttp.ClientError, ValueError) as exc:
        raise SourceError(f"{url}: {exc.__class__.__name__}: {exc}") from exc


def _cut_range(url: str, status: int, body: bytearray, byte_range: tuple[int, int]) -> bytearray:
    start, end = byte_range
    length = end - start + 1
    if status == 206:
        if len(body) > length:
            logger.debug("%s: 206 body of %d bytes for a %d-byte range", url, len(body), length)
            del body[length:]
        return body
    # The origin ignored Range (200 with the whole file): cut the range out ourselves.
    logger.debug("%s: origin ignored Range, cutting bytes %d-%d locally", url, start, end)
    if len(body) <= start:
        raise SourceError(f"{url}: file of {len(body)} bytes has no bytes {start}-{end}")
    return body[start : end + 1]


async def fetch_text(url: str, *, timeout: float = 10.0) -> tuple[str, str]:
    """One-off GET of a playlist: ``(text, final_url)``."""
    async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as session:
        fetched = await fetch(session, url, timeout=timeout)
    try:
        return fetched.body.decode("utf-8-sig"), fetched.final_url
    except UnicodeDecodeError as exc:
        raise SourceError(f"{url}: not UTF-8 text") from exc
