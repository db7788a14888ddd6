"""``policy_bundle --revision REV --out FILE [--dir DIR]``: write the policy as the bundle OPA loads.

The same format ``opa build -b policy/rego --revision REV --ignore '*_test.rego'``
writes (:mod:`policy.bundle`), for a machine without the ``opa`` binary;
``deploy/opa/build-bundle.sh`` runs whichever is there.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from core.commands import ApplicationCommand
from policy import bundle

# A revision names a commit or a release: printable, no spaces, short enough for a log line.
_REVISION_RE = re.compile(r"[\x21-\x7e]{1,200}")


class Command(ApplicationCommand):
    """Write the bundle, refusing one OPA would refuse (roots that do not cover a package or the data)."""

    help = "Write policy/rego (without its tests) as an OPA bundle with a revision in its manifest."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --revision, --out and --dir."""
        parser.add_argument("--revision", required=True, help="the revision OPA reports (the git commit, by custom)")
        parser.add_argument("--out", required=True, help="the bundle file to write (.tar.gz)")
        parser.add_argument("--dir", default=None, help="policy directory (default: POLICY_DIR)")

    def run(self, **options: Any) -> None:
        """Build, check and write."""
        revision = options["revision"]
        if not _REVISION_RE.fullmatch(revision):
            raise CommandError("--revision must be 1 to 200 printable characters without spaces")
        directory = Path(options["dir"] or settings.POLICY_DIR)
        try:
            content = bundle.write(directory, revision=revision)
        except (bundle.BundleError, OSError, ValueError) as error:
            raise CommandError(f"no bundle written: {error}") from None
        written = bundle.read(content)
        Path(options["out"]).write_bytes(content)
        self.stdout.write(
            f"wrote {options['out']}: revision {written.revision}, roots {written.roots}, "
            f"{len(written.modules)} module(s), data under {sorted(written.data) or '(none)'}"
        )
