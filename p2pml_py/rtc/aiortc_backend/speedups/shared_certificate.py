"""``shared_certificate``: one DTLS certificate and OpenSSL context per process.

aiortc makes a new ECDSA key and self-signed certificate for every RTCPeerConnection, then for
every DTLS transport a new OpenSSL context (``SSL_CTX_new``, the certificate and key converted
into it), and formats the certificate's three fingerprints byte by byte whenever it writes an
SDP. Together about a quarter of the CPU of setting up a connection, which is what makes
offer-to-open slow when many viewers connect at once. WebRTC lets one certificate serve many
connections (``RTCConfiguration.certificates``), so the patch keeps one per process, made by
aiortc's own code and renewed a day before it expires (aiortc's are valid for 30 days), and
caches its fingerprints and its OpenSSL context (with the server-side session cache off, so no
DTLS session is ever resumed across connections, and ``SSL_MODE_RELEASE_BUFFERS`` on, so an idle
connection holds no record buffers). Every connection still has its own DTLS handshake and keys.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from typing import Any

import OpenSSL.SSL

from p2pml_py.rtc.aiortc_backend.speedups._core import (
    Names,
    Patch,
    ProbeFailed,
    Target,
    need,
    target,
)

#: Renew the shared certificate once it expires within this time.
CERTIFICATE_RENEW_BEFORE = datetime.timedelta(days=1)
_certificates: dict[type, Any] = {}  # RTCCertificate class -> the process's certificate


def _make_generate_certificate(original: Any) -> Any:
    generate = original.__func__

    def generateCertificate(cls: type) -> Any:
        certificate = _certificates.get(cls)
        now = datetime.datetime.now(tz=datetime.UTC)
        if certificate is None or certificate.expires - now < CERTIFICATE_RENEW_BEFORE:
            certificate = _certificates[cls] = generate(cls)
        return certificate

    return classmethod(generateCertificate)


def _make_get_fingerprints(original: Callable[..., Any]) -> Callable[..., Any]:
    def getFingerprints(self: Any) -> list[Any]:
        cached = self.__dict__.get("_p2pml_fingerprints")
        if cached is None:
            cached = self._p2pml_fingerprints = tuple(original(self))
        return [dataclasses.replace(fingerprint) for fingerprint in cached]

    return getFingerprints


def _make_create_ssl_context(original: Callable[..., Any]) -> Callable[..., Any]:
    def _create_ssl_context(self: Any, srtp_profiles: list[Any]) -> Any:
        key = tuple(profile.openssl_profile for profile in srtp_profiles)
        contexts = self.__dict__.setdefault("_p2pml_contexts", {})
        context = contexts.get(key)
        if context is None:
            context = original(self, srtp_profiles=srtp_profiles)
            context.set_session_cache_mode(OpenSSL.SSL.SESS_CACHE_OFF)
            # An idle connection gives its record buffers back (~40 KiB each on a seeder with
            # hundreds of mostly idle viewers; the next record allocates them again).
            context.set_mode(OpenSSL.SSL.MODE_RELEASE_BUFFERS)
            contexts[key] = context
        return context

    return _create_ssl_context


def forget() -> None:
    """Drop the process's certificate (uninstalling: connections made later get their own)."""
    _certificates.clear()


def probe(names: Names) -> list[Target]:
    certificate = names.certificate
    if not isinstance(vars(certificate).get("generateCertificate"), classmethod):
        raise ProbeFailed("RTCCertificate.generateCertificate is not a classmethod")
    need(OpenSSL.SSL.Context, "set_session_cache_mode", "set_mode")
    need(OpenSSL.SSL, "SESS_CACHE_OFF", "MODE_RELEASE_BUFFERS")
    return [
        target(certificate, "generateCertificate", _make_generate_certificate),
        target(certificate, "getFingerprints", _make_get_fingerprints),
        target(certificate, "_create_ssl_context", _make_create_ssl_context),
    ]


PATCH = Patch("shared_certificate", probe)
