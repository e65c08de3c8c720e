"""A stream's files on disk, read as if they were fetched from the URL the pages load.

A site with a VOD library (or a live packager writing into a directory) can run its seeder on
the origin host and let it read the files directly: no origin egress at all. What the pages see
must not change: the swarm id is made of the manifest URL the pages load, and every segment id
of a VOD is its URL's position in the playlist the pages parse (``core/p2p/peer.ts`` matches
segments by those ids). So the playlists are parsed *as if loaded from* the public URL, and
:class:`LocalFiles` maps each resulting public URL back to a file:

* the public manifest URL is the given master playlist file;
* any other URL of the same scheme and host whose path lies under the manifest URL's directory
  is the file at that relative path under the master file's directory (percent-escapes
  decoded, query and fragment ignored, as a static file server does);
* anything else -- another host, a path outside that directory, ``..``, a symlink that leads out
  of the directory -- is refused with an error naming the URL: nothing outside the root is ever
  read.

:meth:`LocalFiles.read` answers like :func:`p2pml_py.hls.fetcher.fetch` does: a
:class:`~p2pml_py.hls.fetcher.Fetched` whose validators come from the file's inode, size and
modification time (an ``ETag`` and ``Last-Modified``), so conditional revalidation of held VOD
segments works as over HTTP; byte ranges read only the range. Nothing is cached: a live
playlist rewritten on disk (ffmpeg's ``-hls_flags delete_segments`` writes a temporary file and
renames it) is read anew at every reload.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import stat
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from p2pml_py.base.errors import OriginHttpError, OriginTimeoutError, SourceError
from p2pml_py.hls.fetcher import MAX_PLAYLIST_BYTES, Fetched, Validators

__all__ = ["MASTER_NAMES", "LocalFiles", "find_master"]

#: Names a directory's master playlist is looked up by, in order (then: the only ``*.m3u8``).
MASTER_NAMES = ("master.m3u8", "index.m3u8")


def find_master(path: str | Path) -> Path:
    """The master playlist ``path`` names: the file itself, or in a directory ``master.m3u8``,
    else ``index.m3u8``, else its only ``*.m3u8``. :class:`SourceError` names what was found
    when none fits."""
    given = Path(path).expanduser()
    try:
        mode = given.stat().st_mode
    except OSError as exc:
        raise SourceError(f"{given}: {exc.strerror or exc}") from None
    if stat.S_ISREG(mode):
        if not os.access(given, os.R_OK):
            raise SourceError(f"{given}: not readable")
        return given.absolute()
    if not stat.S_ISDIR(mode):
        raise SourceError(f"{given}: not a playlist file or a directory")
    for name in MASTER_NAMES:
        candidate = given / name
        if candidate.is_file():
            return find_master(candidate)
    try:
        playlists = sorted(p.name for p in given.iterdir() if p.suffix == ".m3u8" and p.is_file())
    except OSError as exc:
        raise SourceError(f"{given}: {exc.strerror or exc}") from None
    if len(playlists) == 1:
        return find_master(given / playlists[0])
    found = ", ".join(playlists) if playlists else "no .m3u8 file"
    raise SourceError(
        f"{given}: no {' or '.join(MASTER_NAMES)} and not exactly one *.m3u8 at the top "
        f"(found: {found}); name the master playlist file instead"
    )


class LocalFiles:
    """The files of a stream under ``path`` (a master playlist, or a directory holding one),
    served as ``public_url`` and the URLs under its directory (see the module doc).

    The constructor checks the path (blocking: a few ``stat`` calls); :class:`SourceError`
    names what is wrong.
    """

    def __init__(self, path: str | Path, public_url: str) -> None:
        parts = urlsplit(public_url)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise SourceError(
                f"{public_url!r}: the URL pages load the manifest from must be http(s)://"
            )
        self.public_url = public_url
        self.master = find_master(path)
        #: The directory every other file must lie in (symlinks resolved).
        self.root = Path(os.path.realpath(self.master.parent))
        self._origin = (parts.scheme.lower(), parts.netloc.lower())
        self._master_path = parts.path or "/"
        self._base_path = self._master_path[: self._master_path.rfind("/") + 1]

    def __repr__(self) -> str:
        return f"LocalFiles({str(self.master)!r}, {self.public_url!r})"

    def covers(self, url: str) -> bool:
        """Does ``url`` lie under the public URL's directory (whether or not a file exists)?"""
        try:
            self.locate(url)
        except SourceError:
            return False
        return True

    def locate(self, url: str) -> Path:
        """The file behind ``url``; :class:`SourceError` if it maps outside the root."""
        parts = urlsplit(url)
        if (parts.scheme.lower(), parts.netloc.lower()) != self._origin:
            raise SourceError(
                f"{url}: not under {self.public_url} (another host): refusing to read it "
                "from the local files"
            )
        if parts.path == self._master_path:
            return self.master
        if not parts.path.startswith(self._base_path):
            raise SourceError(
                f"{url}: outside the directory of {self.public_url}: refusing to read it from "
                f"the local files under {self.root}"
            )
        names = [unquote(name) for name in parts.path[len(self._base_path) :].split("/")]
        for name in names:
            if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
                raise SourceError(
                    f"{url}: path segment {name!r} is not a plain file name: refusing to read "
                    f"it from the local files under {self.root}"
                )
        path = self.root.joinpath(*names)
        real = Path(os.path.realpath(path))
        if not real.is_relative_to(self.root):
            raise SourceError(f"{url}: {path} leads out of {self.root} (a symlink): refusing it")
        return real

    def read(
        self,
        url: str,
        *,
        byte_range: tuple[int, int] | None = None,
        max_bytes: int = MAX_PLAYLIST_BYTES,
        conditional: Validators | None = None,
    ) -> Fetched:
        """Read the file behind ``url`` (blocking), like one GET of it.

        A missing file is an :class:`OriginHttpError` 404 (not worth retrying at once, as over
        HTTP); a file that maps outside the root, is not a regular file, is too large or cannot
        be read is a :class:`SourceError` naming it.
        """
        path = self.locate(url)
        try:
            # O_NONBLOCK: a FIFO put in the directory must not hang the reading thread.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            raise OriginHttpError(f"{url}: no file {path} (404)", 404) from None
        except OSError as exc:
            raise SourceError(f"{url}: {path}: {exc.strerror or exc}") from None
        try:
            with os.fdopen(fd, "rb") as file:
                info = os.fstat(file.fileno())
                if not stat.S_ISREG(info.st_mode):
                    raise SourceError(f"{url}: {path} is not a regular file")
                validators = _validators(info)
                if conditional is not None and _unchanged(conditional, validators, info):
                    return Fetched(url, url, b"", validators, not_modified=True)
                body = _read_body(file, url, info.st_size, byte_range, max_bytes)
        except OSError as exc:
            raise SourceError(f"{url}: {path}: {exc.strerror or exc}") from None
        return Fetched(url, url, body, validators)

    async def fetch(
        self,
        url: str,
        *,
        timeout: float,
        byte_range: tuple[int, int] | None = None,
        max_bytes: int = MAX_PLAYLIST_BYTES,
        conditional: Validators | None = None,
    ) -> Fetched:
        """:meth:`read` in a thread, within ``timeout`` seconds (a hung network file system is
        an :class:`OriginTimeoutError`, as a hung origin would be)."""
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.to_thread(
                    self.read,
                    url,
                    byte_range=byte_range,
                    max_bytes=max_bytes,
                    conditional=conditional,
                )
        except TimeoutError:
            raise OriginTimeoutError(f"{url}: reading the file took over {timeout:g} s") from None


def _read_body(
    file: BinaryIO, url: str, size: int, byte_range: tuple[int, int] | None, max_bytes: int
) -> bytes:
    if byte_range is None:
        if size > max_bytes:
            raise SourceError(f"{url}: {size} bytes exceeds {max_bytes}")
        body = file.read(max_bytes + 1)
        if len(body) > max_bytes:  # grew while we read it
            raise SourceError(f"{url}: file exceeds {max_bytes} bytes")
        return body
    start, end = byte_range
    length = end - start + 1
    if length > max_bytes:
        raise SourceError(f"{url}: byte range of {length} bytes exceeds {max_bytes}")
    if size <= start:
        raise SourceError(f"{url}: file of {size} bytes has no bytes {start}-{end}")
    file.seek(start)
    # A file shorter than the range gives a short body: the segment checks name it (hls/guard.py)
    return file.read(length)


def _validators(info: os.stat_result) -> Validators:
    """An ``ETag`` that changes whenever the file is replaced (inode) or rewritten (size, time),
    and its ``Last-Modified``."""
    etag = f'"{info.st_ino:x}-{info.st_size:x}-{info.st_mtime_ns:x}"'
    return Validators(etag, email.utils.formatdate(info.st_mtime, usegmt=True))


def _unchanged(conditional: Validators, current: Validators, info: os.stat_result) -> bool:
    """RFC 9110 section 13.2.2: ``If-None-Match`` decides when given, else
    ``If-Modified-Since``."""
    if conditional.etag is not None:
        return conditional.etag.removeprefix("W/") == current.etag
    if conditional.last_modified is not None:
        try:
            since = email.utils.parsedate_to_datetime(conditional.last_modified)
        except (TypeError, ValueError):
            return False
        return int(info.st_mtime) <= since.timestamp()
    return False
