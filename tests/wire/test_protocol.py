"""The peer protocol state machine, two endpoints joined by a fake link (sans-I/O)."""

from __future__ import annotations

import random

import pytest

from p2pml_py.base.errors import MessageTooLargeError, RemoteProtocolError
from p2pml_py.wire import (
    SegmentAbsent,
    SegmentData,
    SegmentDataSendingCompleted,
    SegmentRequest,
    SegmentsAnnouncement,
    encode,
    encode_body,
    frame_body,
    split_segment_data,
)
from p2pml_py.wire.protocol import (
    QUEUED_COMMAND_OVERHEAD,
    AnnouncementReceived,
    DownloadCompleted,
    DownloadFailed,
    PeerProtocol,
    PeerProtocolViolation,
    UploadCancelled,
    UploadRequested,
)

SEGMENT = bytes(random.Random(1).randbytes(150_000))


def pump(src: PeerProtocol, dst: PeerProtocol, now: float = 0.0) -> None:
    for message in src.data_to_send():
        dst.receive_message(message, now)


def serve(server: PeerProtocol, store: dict[int, bytes], now: float = 0.0) -> list[bytes]:
    """What a well-behaved uploader sends for each pending request."""
    sent: list[bytes] = []
    for event in server.events_received():
        if isinstance(event, UploadRequested):
            data = store.get(event.segment_id)
            if data is None:
                server.send_absent(event.segment_id, event.request_id)
                sent += server.data_to_send()
                continue
            payload = data[event.byte_from :]
            server.start_upload(event.segment_id, event.request_id, len(payload))
            sent += server.data_to_send()
            sent += [bytes(c) for c in split_segment_data(payload)]
            server.finish_upload(event.segment_id, event.request_id)
            sent += server.data_to_send()
    return sent


def test_announcement_replaces_state() -> None:
    a, b = PeerProtocol(), PeerProtocol()
    a.announce((1, 2, 3), (4,))
    pump(a, b)
    assert b.events_received() == [AnnouncementReceived(frozenset({1, 2, 3}), frozenset({4}))]
    a.announce((9,))
    pump(a, b)
    assert b.remote_loaded == {9} and b.remote_http_loading == frozenset()


def test_download_upload_roundtrip_with_resume() -> None:
    client, server = PeerProtocol(), PeerProtocol()
    request_id = client.start_download(7, 0.0, byte_from=1000, total_size=len(SEGMENT))
    assert 0 <= request_id <= 999
    pump(client, server)
    for message in serve(server, {7: SEGMENT}):
        client.receive_message(message, 0.1)
    (done,) = client.events_received()
    assert isinstance(done, DownloadCompleted)
    assert done.data == SEGMENT[1000:] and done.byte_from == 1000
    assert client.downloading is None


def test_absent_clears_remote_loaded() -> None:
    client, server = PeerProtocol(), PeerProtocol()
    server.announce((5,))
    pump(server, client)
    client.events_received()
    client.start_download(5, 0.0)
    pump(client, server)
    for message in serve(server, {}):
        client.receive_message(message, 0.0)
    (failed,) = client.events_received()
    assert isinstance(failed, DownloadFailed) and failed.reason == "absent"
    assert 5 not in client.remote_loaded


def _accepted(client: PeerProtocol, size: int) -> tuple[int, int]:
    request_id = client.start_download(3, 0.0)
    client.data_to_send()
    for message in encode(SegmentData(3, request_id, size)):
        client.receive_message(message, 0.0)
    return 3, request_id


def test_overflow_is_a_violation() -> None:
    client = PeerProtocol()
    _accepted(client, 10)
    client.receive_message(b"x" * 8, 0.0)
    with pytest.raises(PeerProtocolViolation) as info:
        client.receive_message(b"x" * 8, 0.0)
    assert info.value.reason == "overflow"


def test_size_lie_against_known_size() -> None:
    client = PeerProtocol()
    request_id = client.start_download(3, 0.0, total_size=100)
    with pytest.raises(RemoteProtocolError):
        for message in encode(SegmentData(3, request_id, 99)):
            client.receive_message(message, 0.0)


def test_short_completion_and_wrong_ids() -> None:
    client = PeerProtocol()
    segment_id, request_id = _accepted(client, 10)
    client.receive_message(b"x" * 9, 0.0)
    with pytest.raises(PeerProtocolViolation, match="short-data"):
        for message in encode(SegmentDataSendingCompleted(segment_id, request_id)):
            client.receive_message(message, 0.0)
    other = PeerProtocol()
    segment_id, request_id = _accepted(other, 1)
    with pytest.raises(PeerProtocolViolation, match="wrong-ids"):
        for message in encode(SegmentDataSendingCompleted(segment_id, (request_id + 1) % 1000)):
            other.receive_message(message, 0.0)


def test_segment_size_limit() -> None:
    client = PeerProtocol(max_segment_size=1000)
    with pytest.raises(PeerProtocolViolation, match="size-limit"):
        _accepted(client, 1001)


def test_stale_bytes_and_stale_commands_are_ignored() -> None:
    client = PeerProtocol()
    client.receive_message(b"leftover bytes", 0.0)  # nothing running
    request_id = client.start_download(1, 0.0)
    for message in encode(SegmentData(2, request_id, 5)):  # other segment: ignored
        client.receive_message(message, 0.0)
    client.receive_message(b"zzz", 0.0)  # not accepted yet: ignored
    assert client.download_progress == 0
    assert client.events_received() == []


def test_timeouts_cancel_then_drop() -> None:
    client = PeerProtocol(receive_timeout=2.0, max_timeouts=3)
    now = 0.0
    for attempt in range(3):
        request_id = client.start_download(attempt, now)
        client.data_to_send()
        assert client.next_deadline() == now + 2.0
        client.tick(now + 1.9)
        assert client.downloading == attempt
        now += 2.0
        if attempt < 2:
            client.tick(now)
            (failed,) = client.events_received()
            assert failed == DownloadFailed(attempt, request_id, "timeout")
            assert len(client.data_to_send()) == 1  # the CancelSegmentRequest
        else:
            with pytest.raises(PeerProtocolViolation, match="timeouts"):
                client.tick(now)


def test_progress_resets_the_receive_timer() -> None:
    client = PeerProtocol(receive_timeout=2.0)
    _accepted(client, 100)
    for step in range(1, 10):
        client.receive_message(b"x", step * 1.5)
        client.tick(step * 1.5 + 1.9)
    assert client.downloading == 3


def test_cancel_and_newer_request_stop_upload() -> None:
    client, server = PeerProtocol(), PeerProtocol()
    request_id = client.start_download(1, 0.0)
    pump(client, server)
    (requested,) = server.events_received()
    assert isinstance(requested, UploadRequested)
    server.start_upload(1, request_id, 10)
    server.data_to_send()
    client.cancel_download()
    pump(client, server)
    assert not server.upload_active(request_id)
    assert server.events_received() == [UploadCancelled(1, request_id)]
    assert server.finish_upload(1, request_id) is False  # no completion after a cancel
    # a newer request supersedes a running upload
    client.events_received()
    first = client.start_download(2, 0.0)
    pump(client, server)
    server.events_received()
    server.start_upload(2, first, 10)
    client.cancel_download()
    client.data_to_send()  # (the cancel is lost on purpose)
    second = client.start_download(3, 0.0)
    pump(client, server)
    events = server.events_received()
    assert events == [UploadCancelled(2, first), UploadRequested(3, second, 0)]


def test_unknown_command_drops_the_peer() -> None:
    peer = PeerProtocol()
    with pytest.raises(RemoteProtocolError, match="unknown command"):
        peer.receive_message(b"cstr\x09i\x01\x01cend", 0.0)


def test_malformed_commands_tolerated_then_dropped() -> None:
    peer = PeerProtocol(max_malformed_commands=3)
    bad = b"cstr\x01i\x05\x01cend"  # integer truncated
    good = frame_body(encode_body(SegmentRequest(1, 1)))[0]
    # A few now and then, as a browser's own encoder makes them (SPEC d.4): never dropped.
    for _ in range(50):
        peer.receive_message(bad, 0.0)
        peer.receive_message(bad, 0.0)
        peer.receive_message(good, 0.0)
    # A run of them: the peer speaks something else.
    peer.receive_message(bad, 0.0)
    peer.receive_message(bad, 0.0)
    with pytest.raises(PeerProtocolViolation, match="malformed"):
        peer.receive_message(bad, 0.0)


def test_never_ending_command_is_bounded() -> None:
    peer = PeerProtocol(max_command_size=10_000)
    peer.receive_message(b"cstr" + b"\x00" * 1000 + b"dend", 0.0)
    with pytest.raises(MessageTooLargeError):
        for _ in range(20):
            peer.receive_message(b"dstr" + b"\x00" * 1000 + b"dend", 0.0)


def test_requests_back_to_back_are_never_limited_by_rate() -> None:
    """A peer on a fast link asks for small segments as fast as they arrive: thousands of
    requests in the same instant, each answered and read, never trip anything."""
    client, server = PeerProtocol(), PeerProtocol()
    store = {sid: bytes([sid]) * 1000 for sid in range(50)}
    completed = absent = 0
    for step in range(5000):
        client.start_download(step % 60, 0.0)  # ids 50..59: absent
        pump(client, server)
        for message in serve(server, store):
            client.receive_message(message, 0.0)
        for event in client.events_received():
            completed += isinstance(event, DownloadCompleted)
            absent += isinstance(event, DownloadFailed) and event.reason == "absent"
    assert (completed, absent) == (sum(1 for s in range(5000) if s % 60 < 50), 5000 - completed)
    assert server.backlog == 0


def test_requests_while_replies_go_unread_drop_the_peer() -> None:
    """What a peer can make us hold is bounded by what it reads, not by how fast it asks."""
    peer = PeerProtocol(max_send_backlog=4096)
    request = frame_body(encode_body(SegmentRequest(7, 1)))[0]
    answered = 0
    with pytest.raises(PeerProtocolViolation, match="not-reading"):
        for _ in range(10_000):
            peer.receive_message(request, 0.0)
            for event in peer.events_received():
                assert isinstance(event, UploadRequested)
                peer.send_absent(event.segment_id, event.request_id)  # never taken: unread
                answered += 1
    # Dropped as soon as the backlog passed the limit: one reply more than fits. Each reply
    # weighs its bytes and what holding it costs.
    reply = len(encode(SegmentAbsent(7, 1))[0]) + QUEUED_COMMAND_OVERHEAD
    assert answered == 4096 // reply + 1
    assert peer.backlog <= 4096 + reply


def test_a_queued_announcement_is_replaced_not_followed() -> None:
    a, b = PeerProtocol(), PeerProtocol()
    a.announce((1,))
    a.send_absent(9, 3)
    for n in range(2, 1000):
        a.announce(tuple(range(1, n)))
    queued = a.backlog
    assert queued == 2 * QUEUED_COMMAND_OVERHEAD + sum(
        len(m)
        for m in encode(SegmentAbsent(9, 3)) + encode(SegmentsAnnouncement(tuple(range(1, 999))))
    )
    pump(a, b)
    assert a.backlog == 0
    assert b.events_received() == [AnnouncementReceived(frozenset(range(1, 999)), frozenset())]


def test_next_to_send_takes_one_command_at_a_time() -> None:
    a = PeerProtocol(max_message_size=64)
    a.announce(tuple(range(0, 200, 2)))  # a command split over several messages
    a.send_absent(1, 2)
    first = a.next_to_send()
    assert first is not None and len(first) > 1
    assert a.next_to_send() == encode(SegmentAbsent(1, 2), 64)
    assert a.next_to_send() is None and a.backlog == 0
