"""``renditions`` in the super-peer configuration: the selectors of ``seed --rendition``."""

from __future__ import annotations

import pytest

from p2pml_py.apps.superpeer.config import StreamConfig, parse_config
from p2pml_py.base.errors import ConfigError

HEAD = '[defaults]\ntrackers = ["ws://127.0.0.1:8000"]\n\n[[stream]]\nurl = "http://127.0.0.1:9/m.m3u8"\n'


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ('"all"', None),
        ('["all", 1]', None),
        ("[0, 2]", (0, 2)),
        ('"lowest"', ("lowest",)),
        (
            '["Highest", "1280X720", "360p", "2.5M", "level:0", "3", 3]',
            ("highest", "1280x720", "360p", "2.5M", "level:0", 3),
        ),
        ('["800kbps", "800k"]', ("800k",)),
    ],
)
def test_selectors_are_checked_and_stored_canonically(
    value: str, parsed: tuple[int | str, ...] | None
) -> None:
    (stream,) = parse_config(HEAD + f"renditions = {value}\n").streams
    assert stream.renditions == parsed
    assert StreamConfig.from_json(stream.to_json()) == stream  # what a worker receives


def test_a_default_selector_applies_to_every_stream() -> None:
    text = HEAD.replace("\n\n[[stream]]", '\nrenditions = "lowest"\n\n[[stream]]')
    text += '\n[[stream]]\nurl = "http://127.0.0.1:9/b.m3u8"\nrenditions = [1]\n'
    first, second = parse_config(text).streams
    assert first.renditions == ("lowest",) and second.renditions == (1,)


@pytest.mark.parametrize("value", ['"some"', "[]", "[-1]", "[1.5]", '["720p", "fast"]', "true"])
def test_bad_selectors_name_the_field_and_line(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(HEAD + f"renditions = {value}\n", "sp.toml")
    message = str(info.value)
    assert message.startswith("sp.toml:6: stream[1].renditions: must be"), message
    assert "640x360" in message  # the syntax is spelled out
