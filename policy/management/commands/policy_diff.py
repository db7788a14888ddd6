"""``policy_diff --base GIT_REF --corpus FILE.jsonl``: which recorded decisions a policy change flips."""

from __future__ import annotations

import json
import shutil
import subprocess  # nosec B404
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from core.commands import ApplicationCommand
from policy.review.diff import diff, render_markdown, render_text
from policy.source import PolicySource


def _git(repository: Path, *args: str) -> str:
    git = shutil.which("git")
    if git is None:
        raise CommandError("git is not installed")
    result = subprocess.run(  # noqa: S603 # nosec B603 - fixed executable, arguments built here
        [git, "-C", str(repository), *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise CommandError(f"git {args[0]} failed: {result.stderr.strip()[:300]}")
    return result.stdout


def policy_at(reference: str, directory: Path) -> PolicySource:
    """The policy files of ``directory`` as they were at git ``reference``."""
    top = Path(_git(directory, "rev-parse", "--show-toplevel").strip())
    relative = directory.resolve().relative_to(top.resolve()).as_posix()
    names = [
        name for name in _git(top, "ls-tree", "-r", "-z", "--name-only", reference, "--", relative).split("\0") if name
    ]
    if not names:
        raise CommandError(f"no policy files under {relative} at {reference}")
    with tempfile.TemporaryDirectory() as temporary:
        for name in names:
            target = Path(temporary) / Path(name).relative_to(relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(_git(top, "show", f"{reference}:{name}"), encoding="utf-8")
        return PolicySource.from_directory(Path(temporary))


def read_corpus(path: Path) -> Iterator[dict[str, Any]]:
    """Input documents, one JSON object per line (blank lines skipped)."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                document = json.loads(line)
            except json.JSONDecodeError:
                raise CommandError(f"{path}:{number} is not JSON") from None
            if not isinstance(document, dict):
                raise CommandError(f"{path}:{number} is not a JSON object")
            yield document


class Command(ApplicationCommand):
    """Evaluate a corpus under the policy at GIT_REF and under the working tree; print what changes."""

    help = "Show every recorded decision a policy change flips, with counts by role and action."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --base, --corpus, --format, --dir, --markdown-out."""
        parser.add_argument("--base", required=True, help="git reference of the policy to compare against")
        parser.add_argument("--corpus", required=True, help="JSON lines of recorded input documents")
        parser.add_argument("--format", choices=["text", "markdown"], default="text")
        parser.add_argument("--markdown-out", default=None, help="also write the Markdown report to this file")
        parser.add_argument("--dir", default=None, help="policy directory (default: POLICY_DIR)")

    def run(self, **options: Any) -> None:
        """Diff and print."""
        directory = Path(options["dir"] or settings.POLICY_DIR)
        corpus = Path(options["corpus"])
        if not corpus.is_file():
            raise CommandError(f"no corpus at {corpus}")
        report = diff(
            policy_at(options["base"], directory), PolicySource.from_directory(directory), read_corpus(corpus)
        )
        self.stdout.write(
            render_markdown(report) if options["format"] == "markdown" else render_text(report), ending=""
        )
        if options["markdown_out"]:
            Path(options["markdown_out"]).write_text(render_markdown(report), encoding="utf-8")
