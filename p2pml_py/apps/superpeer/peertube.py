"""``[[peertube]]`` tables become streams: each video a table names, resolved through its
instance's API when the super-peer starts and on every reload (SIGHUP), is one more stream with
the instance's tracker, the player's swarm id (its master ``playlistUrl``), p2p-media-loader 2.2,
its ``segments-sha256.json`` as the integrity list and exactly the info hashes the instance
knows (:mod:`p2pml_py.apps.peertube.plan`). Stream names are ``peertube:<host>:<video uuid>``,
so every fleet member that resolves the same tables places the same streams.

Private, internal and password-protected videos are skipped here (the worker processes fetch
files without credentials); ``p2pml-py peertube --token`` seeds them.
"""

from __future__ import annotations

import dataclasses
import logging
from urllib.parse import urlsplit

import aiohttp

from p2pml_py.apps.peertube.model import PeerTubeError
from p2pml_py.apps.peertube.plan import PlannedVideo, plan_videos
from p2pml_py.apps.superpeer.config import StreamConfig, SuperPeerConfig
from p2pml_py.base.errors import ConfigError
from p2pml_py.base.version import USER_AGENT

__all__ = ["expand_peertube", "peertube_stream"]

logger = logging.getLogger(__name__)


def peertube_stream(planned: PlannedVideo, template: StreamConfig) -> StreamConfig:
    host = urlsplit(planned.instance).netloc
    return dataclasses.replace(
        template,
        name=f"peertube:{host}:{planned.video.uuid}",
        url=planned.manifest_url,
        trackers=planned.trackers,
        protocol=(planned.version.value,),
        swarm_id=planned.manifest_url,
        renditions=None,
        validate="container",
        integrity=planned.integrity_url,
        path=None,
        info_hashes=tuple(sorted(planned.info_hashes)),
        trackers_defaulted=False,
    )


async def expand_peertube(config: SuperPeerConfig) -> SuperPeerConfig:
    """``config`` with its ``[[peertube]]`` tables resolved into streams (module doc).
    :class:`ConfigError` when the tables yield nothing and no ``[[stream]]`` exists either."""
    if not config.peertube:
        return config
    streams = list(config.streams)
    names = {s.name for s in streams}
    async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as session:
        for index, source in enumerate(config.peertube):
            where = f"{config.source}:{source.line}: peertube[{index + 1}]"
            try:
                plan = await plan_videos(
                    session, source.urls, limit=source.limit, probe=source.probe
                )
            except PeerTubeError as exc:
                logger.error("%s: %s", where, exc, extra={"event": "peertube_failed"})
                continue
            for skipped in plan.skipped:
                logger.warning("%s: %s", where, skipped, extra={"event": "peertube_skipped"})
            for planned in plan.videos:
                stream = peertube_stream(planned, source.template)
                if stream.name in names:
                    continue
                names.add(stream.name)
                streams.append(stream)
                logger.info(
                    "%s: seeding %s (%d swarm(s))",
                    where,
                    planned.video.label,
                    len(planned.info_hashes),
                    extra={"event": "peertube_video", "stream": stream.name},
                )
    if not streams:
        raise ConfigError(f"{config.source}: the [[peertube]] tables yield no video to seed")
    return dataclasses.replace(config, streams=tuple(streams))
