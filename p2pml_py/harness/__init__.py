"""Browser interop harness (Chromium + hls.js + p2p-media-loader) and its pytest plugin."""
