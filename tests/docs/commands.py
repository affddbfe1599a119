"""The commands the README and the docs show: every ``python run.py ...`` and ``spacing ...`` line of a
code block and every such inline code span, as the argument lists a shell would pass."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

PROGRAMS = {("python", "run.py"): "run", ("python", "-m", "spacing", "run"): "run", ("spacing", "run"): "run",
            ("spacing", "plan"): "plan", ("spacing", "submit"): "submit", ("spacing", "status"): "status"}
"""How each command begins, and which of the CLI's commands it is."""
START = re.compile(r"(?:^|&&|;|\$ )\s*((?:python (?:-m spacing )?run\.py|python -m spacing|spacing) (?:run|plan|submit|status|\S*run\.py)?.*)")
INLINE = re.compile(r"`((?:python run\.py|python -m spacing|spacing) [^`]*)`")
PLACEHOLDER = re.compile(r"^(?:[A-Z][A-Z_]*|\.\.\.|\[.*)$")
"""An argument that stands for what the reader fills in (ARGS, SWEEP_DIR, ...), not a value."""


@dataclass(frozen=True)
class Command:
    page: str
    line: int
    text: str
    program: str
    args: tuple[str, ...]

    inline: bool = False
    """Found in a sentence's code span, not in a code block."""

    @property
    def template(self) -> bool:
        """A form with placeholders (``spacing plan ARGS``), or a command's bare name in a sentence
        (```spacing submit```, ```python run.py -m```)."""
        named_only = self.inline and all(arg in ("-m", "--multirun") for arg in self.args)
        return named_only or any(PLACEHOLDER.match(arg) for arg in self.args) or (self.program == "status" and not self.args)

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {self.text}"


def _parse(page: str, line: int, text: str, inline: bool = False) -> Command | None:
    text = text.split(" #", 1)[0].strip().rstrip(";")
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    for start, program in PROGRAMS.items():
        if tuple(words[: len(start)]) == start:
            return Command(page, line, text, program, tuple(words[len(start):]), inline)
    return None


def commands() -> list[Command]:
    """Every command on every page, in page order."""
    found: list[Command] = []
    for path in PAGES:
        page = str(path.relative_to(ROOT))
        lines = path.read_text().split("\n")
        in_block = False
        index = 0
        while index < len(lines):
            raw = lines[index]
            number = index + 1
            index += 1
            if raw.lstrip().startswith("```"):
                in_block = not in_block
                continue
            code = in_block or raw.startswith("    ")
            if code:
                text = raw.strip()
                while text.endswith("\\") and index < len(lines):  # a command continued on the next line
                    text = text[:-1] + " " + lines[index].strip()
                    index += 1
                for part in re.split(r"&&|;\s", text.split(" #", 1)[0]):
                    part = part.strip().removeprefix("$ ")
                    command = _parse(page, number, part)
                    if command:
                        found.append(command)
            else:
                for match in INLINE.finditer(raw):
                    command = _parse(page, number, match.group(1), inline=True)
                    if command:
                        found.append(command)
    return found
