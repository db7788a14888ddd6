"""The security scan's deployment check: a warning fails it, unless it names a step only an operator can take."""

from __future__ import annotations

from django.core.checks import Error, Info, Warning

from security.deploy_check import judge


def test_a_deployment_step_is_owed_not_failed_and_any_other_warning_fails() -> None:
    step = Warning("ZIP3 table is the shipped allow-list", id="exports.W001")
    other = Warning("SECURE_HSTS_SECONDS is not set", id="security.W004")

    verdict = judge([step, other, Info("fine", id="x.I001")])

    assert verdict.owed == [step]
    assert verdict.failing == [other]


def test_an_error_with_a_deployment_steps_id_still_fails() -> None:
    error = Error("broken", id="exports.W001")

    assert judge([error]).failing == [error]
