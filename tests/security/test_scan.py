"""The dependency audit: an unreachable vulnerability service is "not audited", never a pass."""

from __future__ import annotations

import pytest

from security import scan

OFFLINE = {"dependencies": [{"name": "django", "skip_reason": "Dependency not found on PyPI and could not be audited"}]}
CLEAN = {"dependencies": [{"name": "django", "version": "5.2.19", "vulns": []}]}
VULNERABLE = {
    "dependencies": [
        {"name": "django", "version": "5.2.1", "vulns": [{"id": "PYSEC-2025-1", "fix_versions": ["5.2.2"]}]},
    ]
}


def test_an_offline_audit_fails_as_not_audited() -> None:
    status, lines = scan.verdict(scan.parse_report(OFFLINE), allow_offline=False)

    assert status == scan.EXIT_NOT_AUDITED
    assert "NOT AUDITED: 1 of 1 packages" in lines[0]


def test_an_offline_audit_is_a_warning_only_when_allowed() -> None:
    status, lines = scan.verdict(scan.parse_report(OFFLINE), allow_offline=True)

    assert status == scan.EXIT_OK
    assert "warning only" in lines[-1]


def test_a_clean_audit_passes() -> None:
    status, lines = scan.verdict(scan.parse_report(CLEAN), allow_offline=False)

    assert status == scan.EXIT_OK
    assert lines == ["pip-audit: 1 packages audited, no known vulnerabilities"]


@pytest.mark.parametrize("allow_offline", [True, False])
def test_a_known_vulnerability_fails_even_offline_allowed(allow_offline: bool) -> None:
    status, lines = scan.verdict(scan.parse_report(VULNERABLE), allow_offline=allow_offline)

    assert status == scan.EXIT_VULNERABLE
    assert "django==5.2.1: PYSEC-2025-1 (fixed in 5.2.2)" in lines[1]


def test_the_real_lock_files_are_audited_or_reported_not_audited(monkeypatch: pytest.MonkeyPatch) -> None:
    # This machine cannot reach a vulnerability service: the real run must not claim a pass.
    monkeypatch.delenv("SECURITY_SCAN_ALLOW_OFFLINE", raising=False)
    report = scan.parse_report(scan.run_pip_audit(["requirements/base.txt"]))

    status, _ = scan.verdict(report, allow_offline=False)

    assert report.audited + len(report.skipped) > 10
    assert status == (scan.EXIT_NOT_AUDITED if report.skipped else scan.EXIT_OK) or report.vulnerable


def test_usage_errors_are_not_a_pass() -> None:
    assert scan.main(["audit"]) == scan.EXIT_NOT_AUDITED
    assert scan.main(["audit", "no-such-file.txt"]) == scan.EXIT_NOT_AUDITED
