"""``aes_gcm_first``: where this peer is the DTLS server, aiortc's cipher order decides.

aiortc offers ``ECDHE-ECDSA-AES128-GCM-SHA256`` first and ChaCha20-Poly1305 second, but OpenSSL
lets the DTLS *client* choose, and libdatachannel peers (node-datachannel, native apps) rank
ciphers by key length, so they pick ChaCha20-Poly1305 -- ~3 % of the seeder's cycles in the
benchmark with node-datachannel receivers. On a CPU with AES instructions (``aes`` in
``/proc/cpuinfo``) AES-GCM costs less per byte, so the patch sets
``SSL_OP_CIPHER_SERVER_PREFERENCE`` on aiortc's DTLS contexts. Both ciphers are offered by both
sides either way; Chromium (BoringSSL) already asks for AES-GCM first on such CPUs. Without AES
instructions the context is left as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import OpenSSL.SSL

from p2pml_py.rtc.aiortc_backend.speedups._core import Names, Patch, Target, need, target


def _cpu_has_aes() -> bool:
    """AES instructions (x86 AES-NI, ARMv8 crypto extension) according to ``/proc/cpuinfo``."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return "aes" in value.split()
    except OSError:
        pass
    return False


def _make_prefer_aes_gcm(original: Callable[..., Any]) -> Callable[..., Any]:
    prefer = _cpu_has_aes()

    def _create_ssl_context(self: Any, srtp_profiles: list[Any]) -> Any:
        context = original(self, srtp_profiles)
        # A context shared_certificate returns again is in use: pyOpenSSL refuses changes then.
        if prefer and not getattr(context, "_p2pml_server_preference", False):
            context.set_options(OpenSSL.SSL.OP_CIPHER_SERVER_PREFERENCE)
            context._p2pml_server_preference = True
        return context

    return _create_ssl_context


def probe(names: Names) -> list[Target]:
    need(OpenSSL.SSL.Context, "set_options")
    need(OpenSSL.SSL, "OP_CIPHER_SERVER_PREFERENCE")
    return [target(names.certificate, "_create_ssl_context", _make_prefer_aes_gcm)]


PATCH = Patch("aes_gcm_first", probe)
