"""docs/benchmarks.md holds one section per benchmark, between `<!-- NAME:start -->` and
`<!-- NAME:end -->`; each benchmark replaces only its own."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DOC", "markers", "write_section"]

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def write_section(name: str, section: str) -> None:
    """Put ``section`` (which starts and ends with the markers) in place of the old one."""
    start, end = markers(name)
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if start in text and end in text:
        text = text[: text.index(start)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    DOC.write_text(text)
