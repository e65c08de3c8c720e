"""HLS: the playlist model browsers see (sans-I/O, :mod:`p2pml_py.hls.playlist`)."""

from p2pml_py.hls.playlist import (
    InitSegment,
    MasterPlaylist,
    MediaPlaylist,
    Segment,
    Stream,
    StreamIdentity,
    parse_master_playlist,
    parse_media_playlist,
    stream_identities,
)

__all__ = [
    "InitSegment",
    "MasterPlaylist",
    "MediaPlaylist",
    "Segment",
    "Stream",
    "StreamIdentity",
    "parse_master_playlist",
    "parse_media_playlist",
    "stream_identities",
]
