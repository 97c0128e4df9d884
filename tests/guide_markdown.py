"""The author's guide as steps: what its Markdown pages say to write and to run.

A page marks what a reader does with the info string of a fenced block:

- ```` ```python file=shop/sources.py ````: write this file (``append``: add to it);
- ```` ```sh run ````: run these commands in the page's folder (``status=N``: they are
  expected to end with status N, else 0);
- ```` ```text output ````, right after a ``sh run`` block: lines its output shows, in
  order; ``...`` stands for any text within a line, and a line of only ``...`` for
  lines left out.

Other blocks (a command to try in another terminal, a sketch) are shown, never run.
Nothing here runs anything: :func:`page_steps` reads a page, :func:`missing_line`
compares output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
ELLIPSIS = "..."


@dataclass(frozen=True)
class Block:
    """One fenced block of a page: its language, options and text."""

    page: str
    line: int  # the line of the opening fence, from 1
    language: str
    options: dict[str, str] = field(default_factory=dict)
    text: str = ""

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


@dataclass(frozen=True)
class Step:
    """Write a file (``block`` has ``file=``) or run commands (``block`` is ``sh run``),
    with the output the page shows for them, if any."""

    block: Block
    expected: Block | None = None

    @property
    def is_file(self) -> bool:
        return "file" in self.block.options

    @property
    def path(self) -> str:
        return self.block.options["file"]

    @property
    def status(self) -> int:
        return int(self.block.options.get("status", "0"))


class GuideError(ValueError):
    """A page whose marked blocks cannot be followed as written."""


def fenced_blocks(markdown: str, page: str) -> list[Block]:
    """Every fenced block of ``markdown``, in order."""
    blocks: list[Block] = []
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, start = opening["fence"], index
        words = opening["info"].split()
        body: list[str] = []
        index += 1
        while index < len(lines) and lines[index].rstrip() != fence:
            body.append(lines[index])
            index += 1
        if index == len(lines):
            raise GuideError(f"{page}:{start + 1}: the block opened here is never closed")
        options = dict(word.partition("=")[::2] for word in words[1:])
        blocks.append(Block(page, start + 1, words[0] if words else "", options,
                            "\n".join(body) + "\n" if body else ""))
        index += 1
    return blocks


def page_steps(markdown: str, page: str) -> list[Step]:
    """The files to write and commands to run, in the page's order."""
    steps: list[Step] = []
    previous: Block | None = None
    for block in fenced_blocks(markdown, page):
        if "output" in block.options:
            if previous is None or "run" not in previous.options:
                raise GuideError(f"{block.where}: an output block must follow the sh run "
                                 "block whose output it shows")
            steps[-1] = Step(previous, block)
        elif "file" in block.options:
            _check_path(block)
            steps.append(Step(block))
        elif "run" in block.options:
            if block.language != "sh":
                raise GuideError(f"{block.where}: only sh blocks run")
            steps.append(Step(block))
        previous = block
    return steps


def _check_path(block: Block) -> None:
    path = PurePosixPath(block.options["file"])
    if not block.options["file"] or path.is_absolute() or ".." in path.parts:
        raise GuideError(f"{block.where}: file={block.options['file']!r} must be a path "
                         "inside the page's folder")


def _line_pattern(expected: str) -> re.Pattern[str]:
    parts = [re.escape(part) for part in expected.split(ELLIPSIS)]
    return re.compile(".*?".join(parts))


def missing_line(expected: str, actual: str) -> str | None:
    """The first line of ``expected`` that ``actual`` does not show in order (each line
    matched whole, ``...`` standing for any text), or ``None`` when all are there."""
    lines = [line.rstrip() for line in actual.splitlines()]
    position = 0
    for wanted in expected.splitlines():
        wanted = wanted.rstrip()
        if not wanted.strip() or wanted.strip() == ELLIPSIS:
            continue
        pattern = _line_pattern(wanted)
        while position < len(lines) and not pattern.fullmatch(lines[position]):
            position += 1
        if position == len(lines):
            return wanted
        position += 1
    return None
