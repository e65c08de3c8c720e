"""p2pml_py: a Python peer for P2P Media Loader swarms (hls.js + p2p-media-loader 2.2.x / 2.3.x)."""

__version__ = "0.1.0"
