"""``make security-scan``'s deployment check: ``check --deploy`` at WARNING, less the steps the scan cannot take.

The scan runs Django's system checks (deployment checks included) with
production settings and a synthetic environment. A few warnings name a step
only an operator can take on a real deployment, with data the repository
cannot ship: those (:data:`DEPLOYMENT_STEPS`) are printed as owed, never
hidden, and do not fail the scan; any other warning or error does. A real
deployment's ``manage.py check --deploy`` shows them as warnings until the
step is taken.

Usage: ``python -m security.deploy_check`` (with ``DJANGO_SETTINGS_MODULE`` and the environment set).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.checks import ERROR, WARNING, CheckMessage

# Warning id -> the step it asks for. Each is the operator's, with data from outside the repository.
DEPLOYMENT_STEPS = {
    "exports.W001": "build the ZIP3 table from the 2020 Census P1 ZCTA5 file (manage.py zip3_table_build)",
}


@dataclass(frozen=True)
class Verdict:
    """What the checks said: the messages that fail the scan, and the deployment steps still owed."""

    failing: list[CheckMessage]
    owed: list[CheckMessage]


def judge(messages: Iterable[CheckMessage]) -> Verdict:
    """Split ``messages``: warnings and worse fail, except a warning naming a deployment step."""
    failing: list[CheckMessage] = []
    owed: list[CheckMessage] = []
    for message in messages:
        if message.level < WARNING:
            continue
        if message.id in DEPLOYMENT_STEPS and message.level < ERROR:  # an error is never merely owed
            owed.append(message)
        else:
            failing.append(message)
    return Verdict(failing, owed)


def main() -> int:
    """Run the checks; 0 when nothing fails (steps owed are printed), 1 otherwise."""
    import django  # noqa: PLC0415 - set up only when run
    from django.core.checks import run_checks  # noqa: PLC0415

    django.setup()
    verdict = judge(run_checks(include_deployment_checks=True))
    for message in verdict.owed:
        print(f"deployment step owed ({message.id}): {DEPLOYMENT_STEPS[str(message.id)]}")
    for message in verdict.failing:
        print(str(message), file=sys.stderr)
    print(f"check --deploy: {len(verdict.failing)} problem(s), {len(verdict.owed)} deployment step(s) owed")
    return 1 if verdict.failing else 0


if __name__ == "__main__":
    sys.exit(main())
