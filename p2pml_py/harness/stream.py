"""The harness's test stream: ``P2PML_INTEROP_STREAM`` if set, else the one ffmpeg generates
once into ``<cache>/stream/`` (:mod:`p2pml_py.testing.stream`).

``python -m p2pml_py.harness.stream`` generates it ahead of the tests (``interop/setup.sh``);
``<cache>`` is :func:`p2pml_py.harness.paths.cache_dir`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from p2pml_py.harness.paths import cache_dir
from p2pml_py.testing.stream import DEFAULT_DURATION, TestStream, cached_stream

__all__ = ["ensure_stream"]

logger = logging.getLogger(__name__)


def ensure_stream(cache: Path | None = None, duration: int = DEFAULT_DURATION) -> TestStream:
    """The harness's stream: ``P2PML_INTEROP_STREAM`` if set, else the generated one (made once)."""
    own = os.environ.get("P2PML_INTEROP_STREAM")
    if own:
        return TestStream.load(Path(own))
    return cached_stream((cache or cache_dir()) / "stream", duration)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    made = ensure_stream()
    logger.info(
        "stream at %s: %d renditions, %.0f s", made.root, len(made.renditions), made.duration
    )
