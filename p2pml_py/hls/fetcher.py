"""HTTP access to manifests and segments (aiohttp)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp

from p2pml_py.errors import SourceError

logger = logging.getLogger(__name__)

#: Manifests and playlists larger than this are refused (a playlist is text; 16 MiB is huge).
MAX_PLAYLIST_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Fetched:
    """A response body with the final URL after redirects (it feeds the swarm id)."""

    url: str
    final_url: str
    body: bytes


async def fetch(
    session: aiohttp.ClientSession,
    url: str,
    *,
    byte_range: tuple[int, int] | None = None,
    timeout: float = 10.0,
    max_bytes: int = MAX_PLAYLIST_BYTES,
) -> Fetched:
    """GET ``url`` (optionally bytes ``start..end`` inclusive), following redirects.

    Raises :class:`SourceError` with a one-line reason on any failure.
    """
    headers = {}
    if byte_range is not None:
        headers["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
    try:
        async with session.get(
            url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            if response.status >= 400:
                raise SourceError(f"{url}: HTTP {response.status} {response.reason or ''}".strip())
            if response.content_length is not None and response.content_length > max_bytes:
                raise SourceError(f"{url}: {response.content_length} bytes exceeds {max_bytes}")
            body = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > max_bytes:
                    raise SourceError(f"{url}: response exceeds {max_bytes} bytes")
            if byte_range is not None and response.status == 200:
                # The origin ignored Range: cut the range out ourselves.
                body = body[byte_range[0] : byte_range[1] + 1]
            return Fetched(url, str(response.url), bytes(body))
    except SourceError:
        raise
    except TimeoutError as exc:
        raise SourceError(f"{url}: timed out after {timeout:g} s") from exc
    except (aiohttp.ClientError, ValueError) as exc:
        raise SourceError(f"{url}: {exc.__class__.__name__}: {exc}") from exc


async def fetch_text(url: str, *, timeout: float = 10.0) -> tuple[str, str]:
    """One-off GET of a playlist: ``(text, final_url)``."""
    async with aiohttp.ClientSession() as session:
        fetched = await fetch(session, url, timeout=timeout)
    try:
        return fetched.body.decode("utf-8-sig"), fetched.final_url
    except UnicodeDecodeError as exc:
        raise SourceError(f"{url}: not UTF-8 text") from exc
