"""p2pml_py: a Python peer for P2P Media Loader swarms (hls.js + p2p-media-loader 2.2.x / 2.3.x)."""

from p2pml_py.base.version import __version__

__all__ = ["__version__"]
