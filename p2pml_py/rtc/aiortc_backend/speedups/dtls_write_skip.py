"""``dtls_write_skip``: no ``bio_read`` attempt after a datagram that made OpenSSL say nothing.

``RTCDtlsTransport._recv_next`` calls ``_write_ssl()`` after *every* received datagram to flush
whatever OpenSSL wants to send back (handshake retransmissions, alerts). After the handshake that
is almost always nothing, and finding out costs a ``bio_read`` that raises and catches
``SSL.WantReadError``. The patch asks the memory BIO for its pending length first
(``BIO_get_mem_data``) and returns at once when it is 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from p2pml_py.rtc.aiortc_backend.speedups._core import Names, Patch, Target, target

_ssl_ffi: Any = None  # pyOpenSSL's cffi handles, bound by probe()
_ssl_lib: Any = None


def _make_write_ssl(original: Callable[..., Any]) -> Callable[..., Any]:
    assert _ssl_ffi is not None and _ssl_lib is not None  # probe() ran
    pointer = _ssl_ffi.new("char **")  # only the returned length is used
    get_pending = _ssl_lib.BIO_get_mem_data

    async def _write_ssl(self: Any) -> None:
        ssl = self._ssl
        bio = getattr(ssl, "_from_ssl", None)
        if bio is not None and get_pending(bio, pointer) <= 0:
            return
        await original(self)

    return _write_ssl


def probe(names: Names) -> list[Target]:
    global _ssl_ffi, _ssl_lib
    _ssl_ffi, _ssl_lib = names.ssl_ffi, names.ssl_lib
    return [target(names.dtls, "_write_ssl", _make_write_ssl)]


PATCH = Patch("dtls_write_skip", probe)
