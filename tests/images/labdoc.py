"""A lab page's commands and the output samples it shows, and how to hold real output to them.

A page's indented code blocks hold either commands (one per line; ``\\`` continuations and
``<<'EOF'`` here-documents kept whole) or a session: ``$ command`` lines, each followed by the
output shown for it. In a sample, ``...`` stands for any text, and a line of only ``...`` for any
number of lines; consecutive sample lines must be consecutive in the real output. Before they are
compared, both sides are masked (timestamps, IDs, digests, ages, non-zero sizes, pids, durations,
bridge addresses) and runs of spaces are squeezed, so a column's width does not matter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LabDoc", "json_mismatches", "mask", "pseudo_json", "sample_mismatch"]

GAP = "..."
_HEREDOC = re.compile(r"<<-?\s*'?(\w+)'?")


def _nonzero_size(m: re.Match[str]) -> str:
    return m.group(0) if float(m.group(1)) == 0 else "<SIZE>"


#: (pattern, replacement), applied in order to each line of both sides.
_MASKS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?"), "<TS>"),
    (re.compile(r"sha256:[0-9a-f]{64}"), "<DIGEST>"),
    (re.compile(r"\b[0-9a-f]{12,64}\b|<missing>"), "<ID>"),
    (
        re.compile(r"\b(\d+|About an?|Less than a) (second|minute|hour|day|week)s?\b"),
        "<AGE>",
    ),
    (re.compile(r'"duration_ms":[0-9.]+'), '"duration_ms":<N>'),
    (re.compile(r"process \[\d+\]"), "process [<N>]"),
    (re.compile(r"\b(\d+(?:\.\d+)?) ?(?:B|kB|KB|MB|GB)\b"), _nonzero_size),
    (re.compile(r"\b172\.(1[6-9]|2\d|3[01])\.\d+\.\d+\b"), "<IP>"),
    (re.compile(r" {2,}"), "  "),
]


def mask(line: str) -> str:
    """``line`` with its run-to-run details replaced by placeholders."""
    line = line.replace("\r", "").replace("\0", "").rstrip()
    for pattern, repl in _MASKS:
        line = pattern.sub(repl, line)
    return line


def _line_regex(line: str) -> str:
    return re.escape(mask(line)).replace(re.escape(GAP), ".*?")


def sample_mismatch(sample: list[str], output: str) -> str | None:
    """None when ``output`` shows ``sample`` (see the module doc), else a report of both."""
    pieces = []
    for line in sample:
        if line.strip() == GAP:
            pieces.append(r"(?:[^\n]*\n)*?")
        else:
            pieces.append(_line_regex(line) + r"\n")
    masked = "".join(mask(ln) + "\n" for ln in output.splitlines())
    if re.search(r"(?:^|(?<=\n))" + "".join(pieces), masked):
        return None
    return (
        "the real output does not show the page's sample\n--- sample (masked) ---\n"
        + "\n".join(mask(ln) for ln in sample)
        + "\n--- real output (masked) ---\n"
        + masked[-6000:]
    )


def pseudo_json(lines: list[str]) -> Any:
    """A trimmed JSON sample as the page shows it (``"Key": {...}, ...`` without the outer
    braces): ``[...]`` is any list, ``, ...]`` a list that goes on, ``[...,`` one that starts
    earlier, ``, ...}`` more keys."""
    text = " ".join(ln.strip() for ln in lines)
    text = text.replace("[...]", f'["{GAP}"]')
    text = re.sub(r",\s*\.\.\.\s*\]", f', "{GAP}"]', text)
    text = re.sub(r"\[\s*\.\.\.\s*,", f'["{GAP}",', text)
    text = re.sub(r",\s*\.\.\.\s*\}", "}", text)
    if text.startswith('"'):
        text = "{" + text + "}"
    return json.loads(text)


def json_mismatches(sample: Any, real: Any, path: str = "") -> list[str]:
    """Where ``real`` does not show ``sample``: every key of a sample object must be there
    (masked strings equal), a sample list is the whole list unless it ends with ``...`` (then
    its start) or starts with it (its end)."""
    if isinstance(sample, dict):
        if not isinstance(real, dict):
            return [f"{path}: expected an object, got {real!r}"]
        out = []
        for key, value in sample.items():
            if key not in real:
                out.append(f"{path}.{key}: missing")
            else:
                out += json_mismatches(value, real[key], f"{path}.{key}")
        return out
    if isinstance(sample, list):
        if not isinstance(real, list):
            return [f"{path}: expected a list, got {real!r}"]
        head, tail = bool(sample) and sample[-1] == GAP, bool(sample) and sample[0] == GAP
        items = [item for item in sample if item != GAP]
        if len(real) < len(items) or (not (head or tail) and len(real) != len(items)):
            return [f"{path}: expected {sample!r}, got {real!r}"]
        offset = len(real) - len(items) if tail and not head else 0
        out = []
        for i, item in enumerate(items):
            out += json_mismatches(item, real[offset + i], f"{path}[{offset + i}]")
        return out
    if isinstance(sample, str):
        if not isinstance(real, str) or mask(sample) != mask(real):
            return [f"{path}: expected {sample!r}, got {real!r}"]
        return []
    return [] if sample == real else [f"{path}: expected {sample!r}, got {real!r}"]


@dataclass
class LabDoc:
    """The commands and samples of one Markdown page."""

    path: Path
    commands: list[str] = field(default_factory=list)
    samples: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> LabDoc:
        doc = cls(path)
        for block in _code_blocks(path.read_text()):
            if any(ln.startswith("$ ") for ln in block):
                doc._read_session(block)
            else:
                doc.commands += _commands(block)
        return doc

    def _read_session(self, block: list[str]) -> None:
        i = 0
        while i < len(block):
            if not block[i].startswith("$ "):
                raise ValueError(f"{self.path}: output before any command: {block[i]!r}")
            lines = [block[i][2:]]
            while lines[-1].endswith("\\") and i + 1 < len(block):
                i += 1
                lines.append(block[i])
            command = "\n".join(lines)
            i += 1
            output = []
            while i < len(block) and not block[i].startswith("$ "):
                output.append(block[i])
                i += 1
            while output and not output[-1].strip():
                output.pop()
            self.commands.append(command)
            self.samples[command] = output

    def sample(self, command: str) -> list[str]:
        """The output the page shows after ``$ command``; fails if the page no longer has it."""
        assert command in self.samples, f"{self.path.name} no longer shows `$ {command}`"
        return self.samples[command]

    def require(self, command: str) -> str:
        """``command``, after checking that the page still gives it, verbatim."""
        assert command in self.commands, f"{self.path.name} no longer gives `{command}`"
        return command

    def heredoc(self, command: str) -> str:
        """The body of the here-document of ``command`` (a page command)."""
        body = self.require(command).split("\n")[1:-1]
        return "\n".join(body) + "\n"


def _code_blocks(text: str) -> list[list[str]]:
    """Indented code blocks (4 spaces, after a blank line), de-indented; inner blank lines kept."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    previous_blank = True
    for line in text.splitlines():
        if line.startswith("    ") and (current is not None or previous_blank):
            if current is None:
                current = []
                blocks.append(current)
            current.append(line[4:])
        elif not line.strip() and current is not None:
            current.append("")
        else:
            current = None
        previous_blank = not line.strip()
    for block in blocks:
        while block and not block[-1].strip():
            block.pop()
    return blocks


def _commands(block: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(block):
        lines = [block[i]]
        heredoc = _HEREDOC.search(block[i])
        if heredoc:
            while i + 1 < len(block) and block[i].strip() != heredoc.group(1):
                i += 1
                lines.append(block[i])
        while lines[-1].endswith("\\") and i + 1 < len(block):
            i += 1
            lines.append(block[i])
        i += 1
        if "\n".join(lines).strip():
            out.append("\n".join(lines))
    return out
