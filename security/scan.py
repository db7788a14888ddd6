"""Dependency audit for ``make security-scan`` and ``make security-audit``.

Runs pip-audit over the hash-pinned lock files and reads its JSON report.
pip-audit exits 0 when it could not reach its vulnerability service (every
package is then "skipped"), so that case is detected here and reported as
*not audited*: a failure, or a warning when ``SECURITY_SCAN_ALLOW_OFFLINE=1``.

Usage: ``python -m security.scan audit requirements/base.txt requirements/dev.txt``
"""

from __future__ import annotations

import json
import os

# subprocess runs pip-audit, a fixed local executable, with arguments built here.
import subprocess  # nosec B404
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_VULNERABLE = 1
EXIT_NOT_AUDITED = 2


@dataclass(frozen=True)
class AuditReport:
    """What pip-audit found over the lock files."""

    audited: int
    skipped: list[str]
    vulnerable: list[str]


def parse_report(report: dict[str, Any]) -> AuditReport:
    """Summarise pip-audit's JSON output."""
    audited, skipped, vulnerable = 0, [], []
    for dependency in report.get("dependencies", []):
        name = f"{dependency.get('name')}=={dependency.get('version', '?')}"
        if "skip_reason" in dependency:
            skipped.append(name)
            continue
        audited += 1
        for vulnerability in dependency.get("vulns", []):
            fixes = ", ".join(vulnerability.get("fix_versions", [])) or "no fix yet"
            vulnerable.append(f"{name}: {vulnerability.get('id')} (fixed in {fixes})")
    return AuditReport(audited=audited, skipped=skipped, vulnerable=vulnerable)


def verdict(report: AuditReport, *, allow_offline: bool) -> tuple[int, list[str]]:
    """Decide the exit status and the lines to print."""
    if report.vulnerable:
        return EXIT_VULNERABLE, ["pip-audit: known vulnerabilities:", *(f"  {line}" for line in report.vulnerable)]
    if report.skipped:
        lines = [
            f"pip-audit: NOT AUDITED: {len(report.skipped)} of {len(report.skipped) + report.audited} packages "
            "could not be checked (vulnerability service unreachable?)",
        ]
        if allow_offline:
            return EXIT_OK, [*lines, "pip-audit: warning only, because SECURITY_SCAN_ALLOW_OFFLINE=1"]
        return EXIT_NOT_AUDITED, [*lines, "pip-audit: set SECURITY_SCAN_ALLOW_OFFLINE=1 to accept an unaudited scan"]
    return EXIT_OK, [f"pip-audit: {report.audited} packages audited, no known vulnerabilities"]


def run_pip_audit(lock_files: list[str]) -> dict[str, Any]:
    """Run pip-audit on the lock files (no resolver: they are fully pinned) and return its JSON."""
    command = [sys.executable, "-m", "pip_audit", "--disable-pip", "--require-hashes", "--format", "json"]
    command += ["--progress-spinner", "off"]
    for lock_file in lock_files:
        command += ["-r", lock_file]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 # nosec B603
    try:
        report: dict[str, Any] = json.loads(completed.stdout)
    except json.JSONDecodeError:
        return {"dependencies": [{"name": "pip-audit", "skip_reason": completed.stderr.strip()[-500:]}]}
    return report


def main(argv: list[str]) -> int:
    """Entry point: ``audit LOCK_FILE...``."""
    if len(argv) < 2 or argv[0] != "audit" or not all(Path(path).is_file() for path in argv[1:]):  # noqa: PLR2004
        print("usage: python -m security.scan audit LOCK_FILE...", file=sys.stderr)
        return EXIT_NOT_AUDITED
    allow_offline = os.environ.get("SECURITY_SCAN_ALLOW_OFFLINE", "") == "1"
    status, lines = verdict(parse_report(run_pip_audit(argv[1:])), allow_offline=allow_offline)
    for line in lines:
        print(line, file=sys.stderr if status else sys.stdout)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
