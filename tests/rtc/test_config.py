"""RtcConfig validation and ICE server URL parsing (no I/O)."""

from __future__ import annotations

import dataclasses

import pytest

from p2pml_py.rtc import IceServer, RtcConfig, parse_ice_server
from p2pml_py.rtc.config import DEFAULT_CONSENT_TIMEOUT, MAX_CONSENT_TIMEOUT, MIN_CONSENT_TIMEOUT


def test_defaults_gather_on_no_server() -> None:
    config = RtcConfig()
    assert config.ice_servers == ()
    assert config.parsed_ice_servers == ()
    assert config.ice_addresses == ()
    assert config.max_message_size == 262144


@pytest.mark.parametrize("address", ["127.0.0.1.1", "localhost", "", "300.1.1.1", "fe80::zz"])
def test_bad_ice_address_names_the_field(address: str) -> None:
    with pytest.raises(ValueError, match="ice_addresses") as info:
        RtcConfig(ice_addresses=(address,))
    assert repr(address) in str(info.value)


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "224.0.0.1"])
def test_non_unicast_ice_address_rejected(address: str) -> None:
    with pytest.raises(ValueError, match="ice_addresses"):
        RtcConfig(ice_addresses=(address,))


def test_ice_addresses_normalized_and_deduplicated() -> None:
    config = RtcConfig(ice_addresses=["127.0.0.1", "::0001", "127.0.0.1"])  # type: ignore[arg-type]
    assert config.ice_addresses == ("127.0.0.1", "::1")


def test_a_bare_string_is_not_a_tuple_of_addresses() -> None:
    with pytest.raises(TypeError):
        RtcConfig(ice_addresses="127.0.0.1")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ice_timeout", 0),
        ("ice_timeout", -1.0),
        ("open_timeout", float("inf")),
        ("open_timeout", float("nan")),
        ("max_message_size", 65535),
        ("max_message_size", 1 << 31),
        ("high_watermark", 0),
        ("early_buffer_bytes", -1),
        ("consent_timeout", 0),
        ("consent_timeout", 4.9),
        ("consent_timeout", 30.5),
        ("consent_timeout", float("inf")),
        ("consent_timeout", float("nan")),
    ],
)
def test_bad_numbers_name_the_field(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        RtcConfig(**{name: value})  # type: ignore[arg-type]


def test_consent_timeout_default_and_bounds() -> None:
    """A silent peer is released 7.5 s after its last answer by default: within the 10 s a
    seeder may keep a dead peer's slot; RFC 7675's 30 s is the most it may be."""
    assert RtcConfig().consent_timeout == DEFAULT_CONSENT_TIMEOUT == 7.5
    assert RtcConfig(consent_timeout=MIN_CONSENT_TIMEOUT).consent_timeout == 5.0
    assert RtcConfig(consent_timeout=30).consent_timeout == MAX_CONSENT_TIMEOUT
    with pytest.raises(ValueError, match=r"consent_timeout must be in 5\.\.30 seconds"):
        RtcConfig(consent_timeout=1.0)
    with pytest.raises(TypeError, match="consent_timeout"):
        RtcConfig(consent_timeout=True)


def test_wrong_types_rejected() -> None:
    with pytest.raises(TypeError, match="open_timeout"):
        RtcConfig(open_timeout="5")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="max_message_size"):
        RtcConfig(max_message_size=True)


def test_replace_revalidates() -> None:
    config = RtcConfig(ice_servers=("stun:127.0.0.1:3478",))
    changed = dataclasses.replace(config, ice_servers=("stun:127.0.0.2",))
    assert changed.parsed_ice_servers == (IceServer("stun", "127.0.0.2", 3478),)
    with pytest.raises(ValueError, match="ice_servers"):
        dataclasses.replace(config, ice_servers=("http://x",))


@pytest.mark.parametrize(
    ("url", "expected", "aiortc_url"),
    [
        (
            "stun:stun.l.google.com:19302",
            IceServer("stun", "stun.l.google.com", 19302),
            "stun:stun.l.google.com:19302",
        ),
        ("stun:10.0.0.1", IceServer("stun", "10.0.0.1", 3478), "stun:10.0.0.1:3478"),
        ("stun:[2001:db8::1]:999", IceServer("stun", "2001:db8::1", 999), "stun:[2001:db8::1]:999"),
        (
            "turn:me:s%40cret%3A@turn.example:3479",
            IceServer("turn", "turn.example", 3479, "me", "s@cret:", "udp"),
            "turn:turn.example:3479?transport=udp",
        ),
        (
            "turn:u:p@h?transport=tcp",
            IceServer("turn", "h", 3478, "u", "p", "tcp"),
            "turn:h:3478?transport=tcp",
        ),
        ("turns:u:p@h", IceServer("turns", "h", 5349, "u", "p", "tcp"), "turns:h:5349"),
    ],
)
def test_parse_ice_server(url: str, expected: IceServer, aiortc_url: str) -> None:
    server = parse_ice_server(url)
    assert server == expected
    assert server.url() == aiortc_url


@pytest.mark.parametrize(
    "url",
    [
        "stun:",
        "stun:host:0",
        "stun:host:70000",
        "stun:u:p@host",
        "stun:h?transport=udp",
        "turn:host:3478",
        "turn:user@host",
        "turns:u:p@h?transport=udp",
        "turn:u:p@h?transport=sctp",
        "http://host",
        "stun:[not-v6]:1",
        "stun:host:12:13",
    ],
)
def test_bad_ice_server_urls(url: str) -> None:
    with pytest.raises(ValueError, match="ice_servers"):
        RtcConfig(ice_servers=(url,))
