"""The table the interop tests print: one row per page or Python peer of a scenario."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["InteropReport", "PeerRow", "format_table"]


@dataclass(frozen=True, slots=True)
class PeerRow:
    """One participant of a scenario (a browser page or a Python peer)."""

    scenario: str
    peer: str
    version: str
    mode: str  # "VOD" or "live"
    http_bytes: int
    p2p_bytes: int
    from_python: int | None  # P2P bytes that came from Python peers (None: not applicable)
    uploaded: int
    stalls: int | None  # None: not measured (a seeder plays nothing)

    @property
    def p2p_percent(self) -> float:
        total = self.http_bytes + self.p2p_bytes
        return 100.0 * self.p2p_bytes / total if total else 0.0


_HEADER = (
    "scenario",
    "peer",
    "version",
    "mode",
    "HTTP bytes",
    "P2P bytes",
    "P2P %",
    "from Python",
    "uploaded",
    "stalls",
)


def format_table(rows: Iterable[PeerRow]) -> str:
    cells: list[Sequence[str]] = [_HEADER]
    for row in rows:
        cells.append(
            (
                row.scenario,
                row.peer,
                row.version,
                row.mode,
                f"{row.http_bytes:,}",
                f"{row.p2p_bytes:,}",
                f"{row.p2p_percent:.0f}",
                "-" if row.from_python is None else f"{row.from_python:,}",
                f"{row.uploaded:,}",
                "-" if row.stalls is None else str(row.stalls),
            )
        )
    widths = [max(len(line[i]) for line in cells) for i in range(len(_HEADER))]
    lines = []
    for n, line in enumerate(cells):
        lines.append(
            "  ".join(
                text.ljust(width) if i < 4 else text.rjust(width)
                for i, (text, width) in enumerate(zip(line, widths, strict=True))
            ).rstrip()
        )
        if n == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


@dataclass(slots=True)
class InteropReport:
    """Rows collected over a pytest session; the plugin prints them at the end."""

    rows: list[PeerRow] = field(default_factory=list)

    def add(self, rows: Iterable[PeerRow]) -> None:
        self.rows.extend(rows)

    def table(self) -> str:
        return format_table(self.rows)
