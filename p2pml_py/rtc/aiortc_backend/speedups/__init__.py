"""Small, guarded patches of aiortc/aioice internals that cut the seeder's CPU cost per byte.

aiortc moves data-channel bytes in SCTP packets of at most 1189 bytes (``SCTP_MAX_PACKET_LENGTH``,
``aiortc/rtcsctptransport.py``), each through DTLS (pyOpenSSL) and one UDP ``sendto``, and every
packet the remote receives is acknowledged by a SACK that the sender must decrypt and process. So
the cost is per packet, and these patches remove per-packet work that does nothing useful. None
of them changes what a browser sees on the wire beyond what RFC 9260 and DTLS's cipher
negotiation allow; none can drop data. One module per patch says what it does and why:

* :mod:`.dtls_write_skip` -- no ``bio_read`` attempt after a datagram OpenSSL answers nothing to;
* :mod:`.stun_demux` -- DTLS/RTP datagrams skip aioice's STUN parse (RFC 7983);
* :mod:`.sack_every_second_packet` -- an aiortc receiver SACKs every second packet (RFC 9260
  section 6.2);
* :mod:`.transmit_scan_skip` -- ``_transmit`` walks the sent queue only when something is marked;
* :mod:`.fast_data_path` -- the per-packet send and receive path in fewer, synchronous steps,
  with its parts in :mod:`.sctp_send`, :mod:`.sctp_receive`, :mod:`.sctp_packets` (SCTP framing
  and CRC32c) and :mod:`.dtls_records` (DTLS records through pyOpenSSL's cffi binding);
* :mod:`.ice_prompt_complete` -- DTLS starts as soon as ICE's checks complete;
* :mod:`.shared_certificate` -- one certificate and OpenSSL context per process;
* :mod:`.udp_gso` -- a burst of records in one ``sendmsg`` (Linux ``UDP_SEGMENT``);
* :mod:`.aes_gcm_first` -- the DTLS server's cipher order decides (AES-GCM where AES is fast);
* :mod:`.lazy_srtp` -- SRTP sessions made on the first RTP packet, which data channels never send;
* :mod:`.sync_channel_send` -- a data-channel message is flushed to SCTP in ``send``, not a task;
* :mod:`.slim_waits` -- aioice's and aiortc's ICE events and queues hold no empty deques;
* :mod:`.slim_emitters` -- pyee's emitters keep their handlers in dicts, not OrderedDicts.

This module is the registry: :data:`PATCHES` lists them, :func:`install` installs them,
:func:`installed` reports which are active and :func:`uninstall` restores the originals.

The guard: importing this package reads no private name of aiortc, aioice or pyOpenSSL. Those
are looked up only by :func:`install` (or :func:`check`), after checking that aiortc and aioice
are versions whose source was read for the patches (``speedups`` in
:data:`p2pml_py.rtc.aiortc_backend.versions.CHECKED`), by probes that check every module,
class, method and constant a patch uses or replaces (the attributes aiortc sets on its objects,
such as ``_sent_queue``, cannot be probed before a connection exists: the version check stands
for them). An unchecked version, a failed probe or any other error while installing leaves
aiortc unpatched -- all of it: the patches call each other's helpers, and half a set is a
combination nobody measured -- and logs exactly one warning with the reason; it never raises.
A patch that does not apply on this platform (``udp_gso`` off Linux) is skipped, with an info
line, and the others are installed.
"""

from __future__ import annotations

import logging
import threading

from p2pml_py.rtc.aiortc_backend import versions
from p2pml_py.rtc.aiortc_backend.speedups import (
    aes_gcm_first,
    dtls_records,
    dtls_write_skip,
    fast_data_path,
    ice_prompt_complete,
    lazy_srtp,
    sack_every_second_packet,
    sctp_receive,
    sctp_send,
    shared_certificate,
    slim_emitters,
    slim_waits,
    stun_demux,
    sync_channel_send,
    transmit_scan_skip,
    udp_gso,
)
from p2pml_py.rtc.aiortc_backend.speedups._core import (
    Patch,
    ProbeFailed,
    Target,
    label,
    originals,
    resolve,
)
from p2pml_py.rtc.aiortc_backend.speedups.sack_every_second_packet import SACK_DELAY
from p2pml_py.rtc.aiortc_backend.speedups.sctp_receive import SYNC_HANDLED
from p2pml_py.rtc.aiortc_backend.speedups.shared_certificate import CERTIFICATE_RENEW_BEFORE
from p2pml_py.rtc.aiortc_backend.speedups.udp_gso import GSO_SENT

__all__ = [
    "CERTIFICATE_RENEW_BEFORE",
    "CHECKED",
    "GSO_SENT",
    "PATCHES",
    "SACK_DELAY",
    "SYNC_HANDLED",
    "check",
    "install",
    "installed",
    "uninstall",
]

logger = logging.getLogger(__name__)

#: Every patch, in the order they are installed (``aes_gcm_first`` wraps what
#: ``shared_certificate`` made of ``_create_ssl_context``, so it comes after it).
_REGISTRY: tuple[Patch, ...] = (
    dtls_write_skip.PATCH,
    stun_demux.PATCH,
    sack_every_second_packet.PATCH,
    transmit_scan_skip.PATCH,
    fast_data_path.PATCH,
    ice_prompt_complete.PATCH,
    shared_certificate.PATCH,
    udp_gso.PATCH,
    aes_gcm_first.PATCH,
    lazy_srtp.PATCH,
    sync_channel_send.PATCH,
    slim_waits.PATCH,
    slim_emitters.PATCH,
)

#: The patches' names, in the order :func:`install` and :func:`installed` report them.
PATCHES = tuple(patch.name for patch in _REGISTRY)

#: Package major.minor versions whose source the patches were written against.
CHECKED = versions.CHECKED["speedups"]

_lock = threading.Lock()


def _plan(wanted: tuple[Patch, ...]) -> tuple[list[tuple[Patch, list[Target]]], str | None]:
    """The version check and the probes: what to replace for each applicable patch, or why
    nothing may be (then the list is empty)."""
    reason = versions.unsupported("speedups")
    if reason is not None:
        return [], reason
    plan: list[tuple[Patch, list[Target]]] = []
    current = "binding"
    try:
        names = resolve()
        # The helpers every patch may call bind their globals whatever is being installed.
        dtls_records.bind(names)
        sctp_send.bind(names)
        sctp_receive.bind(names)
        for patch in wanted:
            current = patch.name
            if not patch.applicable():
                logger.info("speedup %s does not apply on this platform: skipped", patch.name)
                continue
            plan.append((patch, patch.probe(names)))
    except ProbeFailed as exc:
        return [], f"{current}: {exc}"
    except Exception as exc:  # a probe must never take the process down
        return [], f"{current}: probing failed: {exc!r}"
    return plan, None


def check(names: tuple[str, ...] = PATCHES) -> str | None:
    """Why the named patches cannot be installed here, or None when they can.

    Runs the version check and the probes as :func:`install` does (binding the names the patch
    modules use), but installs nothing and logs nothing.
    """
    _known(names)
    with _lock:
        return _plan(tuple(patch for patch in _REGISTRY if patch.name in names))[1]


def _known(names: tuple[str, ...]) -> None:
    unknown = set(names) - set(PATCHES)
    if unknown:
        raise ValueError(f"unknown patch(es) {sorted(unknown)}; known: {PATCHES}")


def install(names: tuple[str, ...] = PATCHES) -> tuple[str, ...]:
    """Install the named patches (all by default); returns those now installed.

    On an aiortc/aioice version not in :data:`CHECKED`, or when a probe finds a name missing,
    nothing is installed and one warning says why. Installing twice is harmless; an unknown
    name is a ValueError.
    """
    _known(names)
    with _lock:
        active = installed()
        wanted = tuple(p for p in _REGISTRY if p.name in names and p.name not in active)
        if not wanted:
            return active
        plan, reason = _plan(wanted)
        if reason is None:
            done: list[str] = []
            try:
                for patch, targets in plan:
                    for item in targets:
                        key = f"{patch.name}:{item.attribute}"
                        if key in originals:  # one name replaced in two places (slim_waits)
                            key = f"{patch.name}:{label(item.owner)}.{item.attribute}"
                        original = item.owner.__dict__[item.attribute]
                        replacement = item.make(original)
                        originals[key] = (item.owner, item.attribute, original)
                        done.append(key)
                        setattr(item.owner, item.attribute, replacement)
            except Exception as exc:  # never half a patch: undo this call's replacements
                for key in reversed(done):
                    owner, attribute, original = originals.pop(key)
                    setattr(owner, attribute, original)
                reason = f"installing failed: {exc!r}"
        if reason is not None:
            logger.warning("aiortc speedups not installed, running plain aiortc: %s", reason)
    return installed()


def installed() -> tuple[str, ...]:
    """The patches now active, in :data:`PATCHES` order."""
    names = {key.split(":", 1)[0] for key in originals}
    return tuple(name for name in PATCHES if name in names)


def uninstall() -> None:
    """Restore every original; connections made afterwards run unpatched aiortc."""
    with _lock:
        shared_certificate.forget()
        # Newest first: two patches may wrap one attribute (the second wraps the first's).
        for owner, attribute, original in reversed(list(originals.values())):
            setattr(owner, attribute, original)
        originals.clear()
