"""The one table of aiortc, aioice and pyee versions whose source each of our patches was read
against.

Five parts of this backend change aiortc's or aioice's behaviour through names those packages do
not promise to keep: :mod:`.negotiated` (what an open connection no longer needs), :mod:`.speedups`
(aiortc's SCTP/DTLS data path, aioice's ICE connection), :mod:`.tuning`
(``aioice.ice.Connection.gather_candidates``, to size the UDP socket buffers, and
``Connection.query_consent``, to release a silent remote within ``RtcConfig.consent_timeout``),
:mod:`.addresses` (``aioice.ice.get_host_addresses``, to choose the host candidates) and
:mod:`.ports` (the event loop's ``create_datagram_endpoint`` as aioice calls it, to bind host
candidates in ``ice_port_range``). Each installs only when every package it touches is one of the
versions listed here for it, and only after probing the names it uses; otherwise it leaves the
package as it is and logs one warning naming :func:`unsupported`'s reason (:mod:`.ports` raises
instead: a range it cannot honour is an error, see there). The ``fast`` extra in ``setup.cfg`` pins
exactly these versions (``tests/rtc/test_versions.py`` checks that they agree, and agree with
``constraints.txt``).

pyOpenSSL and google-crc32c are not listed: the speedups use google-crc32c's public API, and of
pyOpenSSL only the cffi binding of OpenSSL's C API (``SSL_write``, ``BIO_read`` ...), which
follows OpenSSL's own stable names, plus a few ``Connection`` attributes; the install-time probes
check those names, whatever the version (a version gate there would switch the speedups off at
each of pyOpenSSL's frequent releases without anything having changed for them).
"""

from __future__ import annotations

import importlib
import importlib.metadata

__all__ = ["CHECKED", "installed_version", "major_minor", "unsupported"]

#: For each patch set, the packages it patches and their major.minor versions whose source was
#: read for it. Add a version only after reading that version's source for every patch of the
#: set (and pin it in ``setup.cfg``'s ``fast`` extra and ``constraints.txt``).
CHECKED: dict[str, dict[str, tuple[str, ...]]] = {
    # speedups/: aiortc's rtcsctptransport.py and rtcdtlstransport.py, aioice's ice.py, pyee's
    # base.py (EventEmitter, which every aiortc object is)
    "speedups": {"aiortc": ("1.16",), "aioice": ("0.13",), "pyee": ("13.0",)},
    # tuning.set_udp_buffer_sizes: Connection.gather_candidates and Connection._protocols
    "udp_buffers": {"aioice": ("0.9", "0.10", "0.11", "0.12", "0.13")},
    # addresses.gathering_addresses: get_host_addresses(use_ipv4, use_ipv6), called by
    # Connection.gather_candidates through the module's global
    "host_addresses": {"aioice": ("0.9", "0.10", "0.11", "0.12", "0.13")},
    # ports.gathering_ports: get_component_candidates binds each host candidate with
    # loop.create_datagram_endpoint(..., local_addr=(address, 0)) on the running loop
    "port_range": {"aioice": ("0.13",)},
    # tuning.enable_consent_timeout: Connection.query_consent/build_request/close/_nominated/
    # remote_password/_query_consent_task/_closing, StunProtocol.request(retransmissions=) and
    # stun.TransactionError (aioice); a closed aioice Connection turning the RTCIceTransport
    # "failed" (RTCIceTransport._monitor) and pc.sctp.transport.transport.iceGatherer
    # ._connection (aiortc)
    "consent": {"aiortc": ("1.16",), "aioice": ("0.13",)},
    # negotiated.release_negotiation: RTCPeerConnection's private description attributes and
    # __remoteIce/__remoteDtls, read only by __connect (rtcpeerconnection.py), the RtpRouter's
    # tables and RTCDtlsTransport._rtp_router (rtcdtlstransport.py), and Connection._early_checks/_early_checks_done (aioice ice.py)
    "negotiated": {"aiortc": ("1.16",), "aioice": ("0.13",)},
    # tuning.quiet_closed_transport: RTCSctpTransport._data_channel_flush and _transmit, which
    # aiortc starts with asyncio.ensure_future and never awaits (rtcsctptransport.py)
    "quiet_sctp": {"aiortc": ("1.16",)},
}


def major_minor(version: str) -> str:
    """``"1.16.0"`` -> ``"1.16"``."""
    return ".".join(version.split(".")[:2])


def installed_version(package: str) -> str:
    """The version the package says it is (its ``__version__``, else its distribution's
    metadata); ``""`` when it cannot be imported or tells none."""
    try:
        module = importlib.import_module(package)
    except ImportError:
        return ""
    version = getattr(module, "__version__", None)
    if isinstance(version, str):
        return version
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return ""


def unsupported(patch_set: str) -> str | None:
    """None when every package ``patch_set`` patches is a checked version; otherwise the reason,
    one line, for the warning the caller logs."""
    for package, versions in CHECKED[patch_set].items():
        version = installed_version(package)
        if major_minor(version) not in versions:
            return f"{package} {version or '(version unknown)'} is not a checked version " + (
                f"(checked: {', '.join(versions)})"
            )
    return None
