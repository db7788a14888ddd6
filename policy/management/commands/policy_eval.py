"""``policy_eval [--input FILE]``: the decision for one input document and the rules that produced it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from core.commands import ApplicationCommand
from policy.review.explain import explain
from policy.source import PolicySource


class Command(ApplicationCommand):
    """Print the decision, then every rule's value and which denials fired."""

    help = "Evaluate one input document (file or stdin) and show why the decision came out as it did."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --input and --dir."""
        parser.add_argument("--input", default="-", help="JSON input document (default: standard input)")
        parser.add_argument("--dir", default=None, help="policy directory (default: POLICY_DIR)")

    def run(self, **options: Any) -> None:
        """Evaluate and explain."""
        raw = sys.stdin.read() if options["input"] == "-" else Path(options["input"]).read_text(encoding="utf-8")
        try:
            document = json.loads(raw)
        except json.JSONDecodeError as error:
            raise CommandError(f"the input is not JSON: {error.msg} at line {error.lineno}") from None
        if not isinstance(document, dict):
            raise CommandError("the input must be a JSON object")
        source = PolicySource.from_directory(Path(options["dir"] or settings.POLICY_DIR))
        explanation = explain(source, document)
        self.stdout.write("decision:")
        self.stdout.write(json.dumps(explanation.decision, indent=2, sort_keys=True))
        self.stdout.write("\ndenials:")
        for reason, fired in explanation.denials.items():
            self.stdout.write(f"  {'FIRED' if fired else '-    '} {reason}")
        self.stdout.write("\nrules:")
        for name, value in explanation.facts.items():
            self.stdout.write(f"  {name:<24} {json.dumps(value)}")
