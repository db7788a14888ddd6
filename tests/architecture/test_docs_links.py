"""Every link in the README and ``docs/`` resolves inside the repository, as a fresh clone has it.

A link must be relative, stay inside the repository, and name a file (or a
folder holding files) that git tracks or would track; a ``#fragment`` into a
Markdown file must name one of its headings (GitHub's anchors). Links to
anything outside, another checkout beside this one or a web address, fail.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
_FENCE = re.compile(r"^(```|~~~)")
_INLINE_CODE = re.compile(r"`[^`]*`")
_LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|<([a-z][a-z0-9+.-]*:[^>\s]+)>")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def prose_lines(text: str) -> list[tuple[int, str]]:
    """The document's lines outside fenced code blocks, with inline code blanked."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, _INLINE_CODE.sub("``", line)))
    return lines


def links(text: str) -> list[tuple[int, str]]:
    """(line, target) of every Markdown link and autolink outside code."""
    found = []
    for number, line in prose_lines(text):
        for match in _LINK.finditer(line):
            found.append((number, match.group(1) or match.group(2)))
    return found


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a Markdown text, with GitHub's ``-1``, ``-2`` for repeats."""
    seen: dict[str, int] = {}
    result = set()
    for _, line in prose_lines(text):
        match = _HEADING.match(line)
        if match is None:
            continue
        base = anchor(match.group(1).replace("``", ""))
        count = seen.get(base, 0)
        result.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return result


@cache
def clone_files(root: Path) -> frozenset[str]:
    """What a fresh clone holds: tracked files and those git would track (not ignored)."""
    listed = subprocess.run(  # noqa: S603 - fixed arguments
        ["git", "-C", str(root), "ls-files", "--cached", "--others", "--exclude-standard", "-z"],  # noqa: S607
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return frozenset(name for name in listed.split("\0") if name and (root / name).exists())


def problems(document: Path, root: Path = ROOT) -> list[str]:
    """Why each bad link of ``document`` is bad (empty when every link resolves inside ``root``)."""
    text = document.read_text(encoding="utf-8")
    files = clone_files(root)
    found = []
    for number, target in links(text):
        where = f"{document.relative_to(root)}:{number}: {target}"
        if _SCHEME.match(target) or target.startswith("//"):
            found.append(f"{where}: points outside the repository")
            continue
        path_part, _, fragment = target.partition("#")
        resolved = (document.parent / unquote(path_part)).resolve() if path_part else document
        try:
            relative = resolved.relative_to(root).as_posix()
        except ValueError:
            found.append(f"{where}: leaves the repository")
            continue
        if relative not in files and not any(name.startswith(relative.rstrip("/") + "/") for name in files):
            found.append(f"{where}: no such file in a clone")
            continue
        if fragment and resolved.suffix == ".md" and fragment not in anchors(resolved.read_text(encoding="utf-8")):
            found.append(f"{where}: no heading #{fragment} in {relative}")
    return found


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_link_resolves_inside_the_repository(document: Path) -> None:
    assert problems(document) == []


def test_the_docs_are_there_and_the_readme_stays_short() -> None:
    assert len(DOCUMENTS) > 10
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 150


def test_a_link_outside_a_missing_file_or_a_wrong_heading_is_caught(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)  # noqa: S603, S607 - fixed arguments
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# Guide\n\n## Two words\n", encoding="utf-8")
    page = tmp_path / "README.md"
    page.write_text(
        "\n".join(
            [
                "[fine](docs/guide.md#two-words) and [here](#top)",
                "# Top",
                "[web](https://example.org) <https://example.org> [beside](../shared/ARCHITECTURE.md)",
                "[gone](docs/missing.md) [heading](docs/guide.md#three-words)",
                "```",
                "[in code](https://example.org/ignored)",
                "```",
                "`[inline](nowhere.md)`",
            ]
        ),
        encoding="utf-8",
    )

    found = problems(page, tmp_path)

    assert [problem.split(": ", 1)[1] for problem in found] == [
        "https://example.org: points outside the repository",
        "https://example.org: points outside the repository",
        "../shared/ARCHITECTURE.md: leaves the repository",
        "docs/missing.md: no such file in a clone",
        "docs/guide.md#three-words: no heading #three-words in docs/guide.md",
    ]
