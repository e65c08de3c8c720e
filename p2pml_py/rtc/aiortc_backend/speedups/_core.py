"""What the patch modules share: the :class:`Patch` record, the probes, and the originals.

A patch module reads no private aiortc/aioice/pyOpenSSL name when it is imported. Its names are
looked up by its ``bind()``/``probe()`` functions, which the registry (the package) calls only when
installing, after the version check; a missing name raises :class:`ProbeFailed`, which the
registry turns into its one warning and plain aiortc.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

#: ``"patch:attribute"`` -> (owner, attribute, original) of every installed wrapper, in the
#: order they were installed. Hot paths ask ``"fast_data_path:_send" in originals`` to know
#: whether another patch is active; the dict is only ever mutated, never rebound.
originals: dict[str, tuple[Any, str, Any]] = {}


class ProbeFailed(Exception):
    """A name a patch relies on is missing; the message says which."""


@dataclasses.dataclass(frozen=True)
class Target:
    """One attribute a patch replaces: ``owner.attribute = make(original)``."""

    owner: Any
    attribute: str
    make: Callable[[Any], Any]


@dataclasses.dataclass(frozen=True)
class Patch:
    """A speedup as the registry sees it.

    ``probe`` checks every name the patch uses (binding its module's globals from the resolved
    :class:`Names`) and returns the attributes it replaces, or raises :class:`ProbeFailed`. ``applicable`` is about the platform
    (``udp_gso`` needs Linux), not about aiortc: a patch that does not apply is skipped and the
    others are installed.
    """

    name: str
    probe: Callable[[Names], list[Target]]
    applicable: Callable[[], bool] = lambda: True


def label(owner: Any) -> str:
    """``aiortc.rtcsctptransport.RTCSctpTransport`` for a class, the name for a module."""
    if isinstance(owner, ModuleType):
        return owner.__name__
    return f"{getattr(owner, '__module__', '?')}.{getattr(owner, '__qualname__', repr(owner))}"


def module(name: str) -> ModuleType:
    """``importlib.import_module(name)``, or :class:`ProbeFailed` naming it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ProbeFailed(f"cannot import {name} ({exc})") from None


def need(owner: Any, *names: str) -> None:
    """Raise :class:`ProbeFailed` naming the first of ``names`` that ``owner`` lacks."""
    for name in names:
        if not hasattr(owner, name):
            raise ProbeFailed(f"{label(owner)}.{name} is missing")


def get(owner: Any, name: str) -> Any:
    """``owner.name``, or :class:`ProbeFailed` naming it."""
    need(owner, name)
    return getattr(owner, name)


def target(owner: Any, attribute: str, make: Callable[[Any], Any]) -> Target:
    """A :class:`Target`, checked: the attribute must be defined on ``owner`` itself (the
    registry takes the original from ``owner.__dict__`` and restores it there)."""
    if attribute not in vars(owner):
        raise ProbeFailed(f"{label(owner)}.{attribute} is missing")
    return Target(owner, attribute, make)


@dataclasses.dataclass(frozen=True)
class Names:
    """The aiortc, aioice and pyOpenSSL names the patches use, looked up by :func:`resolve`."""

    sctp_module: ModuleType  # aiortc.rtcsctptransport
    sctp: Any  # aiortc.rtcsctptransport.RTCSctpTransport
    data_chunk: Any  # aiortc.rtcsctptransport.DataChunk
    inbound_stream: Any  # aiortc.rtcsctptransport.InboundStream
    established: Any  # RTCSctpTransport.State.ESTABLISHED
    dcep: int  # WEBRTC_DCEP, the payload protocol of data-channel control messages
    userdata_max: int  # USERDATA_MAX_LENGTH, the user data of one DATA chunk
    first_frag: int  # SCTP_DATA_FIRST_FRAG
    last_frag: int  # SCTP_DATA_LAST_FRAG
    unordered: int  # SCTP_DATA_UNORDERED
    dtls_module: ModuleType  # aiortc.rtcdtlstransport
    dtls: Any  # aiortc.rtcdtlstransport.RTCDtlsTransport
    connected: Any  # aiortc.rtcdtlstransport.State.CONNECTED
    certificate: Any  # aiortc.rtcdtlstransport.RTCCertificate
    ice: ModuleType  # aioice.ice
    connection: Any  # aioice.ice.Connection
    stun_protocol: Any  # aioice.ice.StunProtocol
    ssl_ffi: Any  # pyOpenSSL's cffi ffi (OpenSSL.SSL._ffi)
    ssl_lib: Any  # pyOpenSSL's cffi lib: OpenSSL's C API (OpenSSL.SSL._lib)


#: The OpenSSL C functions and constants the data path calls through pyOpenSSL's binding.
SSL_LIB_NAMES = (
    "SSL_write",
    "SSL_read",
    "SSL_get_error",
    "SSL_ERROR_ZERO_RETURN",
    "BIO_read",
    "BIO_write",
    "BIO_get_mem_data",
    "ERR_clear_error",
)


def resolve() -> Names:
    """Look up :class:`Names`; :class:`ProbeFailed` names the first one missing."""
    sctp_module = module("aiortc.rtcsctptransport")
    dtls_module = module("aiortc.rtcdtlstransport")
    ice = module("aioice.ice")
    ssl = module("OpenSSL.SSL")
    sctp = get(sctp_module, "RTCSctpTransport")
    ssl_lib = get(ssl, "_lib")
    need(ssl_lib, *SSL_LIB_NAMES)
    # The memory-BIO attributes exist only on a Connection object: make one (no socket, so
    # pyOpenSSL gives it memory BIOs, as aiortc's DTLS transport has).
    try:
        connection = ssl.Connection(ssl.Context(ssl.DTLS_METHOD), None)
    except Exception as exc:  # pyOpenSSL's own errors; probing must not raise them
        raise ProbeFailed(f"cannot make an OpenSSL.SSL.Connection ({exc!r})") from None
    need(connection, "_ssl", "_from_ssl", "_into_ssl", "_raise_ssl_error")
    return Names(
        sctp_module=sctp_module,
        sctp=sctp,
        data_chunk=get(sctp_module, "DataChunk"),
        inbound_stream=get(sctp_module, "InboundStream"),
        established=get(get(sctp, "State"), "ESTABLISHED"),
        dcep=get(sctp_module, "WEBRTC_DCEP"),
        userdata_max=get(sctp_module, "USERDATA_MAX_LENGTH"),
        first_frag=get(sctp_module, "SCTP_DATA_FIRST_FRAG"),
        last_frag=get(sctp_module, "SCTP_DATA_LAST_FRAG"),
        unordered=get(sctp_module, "SCTP_DATA_UNORDERED"),
        dtls_module=dtls_module,
        dtls=get(dtls_module, "RTCDtlsTransport"),
        connected=get(get(dtls_module, "State"), "CONNECTED"),
        certificate=get(dtls_module, "RTCCertificate"),
        ice=ice,
        connection=get(ice, "Connection"),
        stun_protocol=get(ice, "StunProtocol"),
        ssl_ffi=get(ssl, "_ffi"),
        ssl_lib=ssl_lib,
    )
