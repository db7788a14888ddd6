"""The shipped Vault policy as the suite exercises it: every ACL decision on the service's tokens, for the session.

Registered from ``tests/conftest.py``. The Vault fixtures
(``tests/vault/conftest.py``) start each double with
``deploy/vault/gateway-service.hcl`` and hand :data:`SESSION` every ACL
decision on the service's tokens: which rule granted which capability, with
which parameters, and every refusal.

- A refusal fails its test at teardown (and the session, for a double started
  elsewhere): a 403 the service met would otherwise pass for any test that
  expects ``KeyServiceUnavailable``.
- At the end, the terminal summary says which of the policy's grants the run
  used. A partial run uses fewer, so "a grant nothing uses" is proven by
  ``tests/vault/test_policy.py``, which drives every provider call through
  the policy and compares both ways with :func:`grants`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.doubles.vault import POLICY_NAME, SHIPPED_POLICY, Decision, ServiceCredentials, VaultState, running_vault
from tests.doubles.vault_acl import PathRule, Policy, parse_policy


@dataclass
class PolicyUsage:
    """The grants that answered requests (rule as written, capability), the parameters sent, the refusals."""

    granted: set[tuple[str, str]] = field(default_factory=set)
    parameters: dict[str, set[str]] = field(default_factory=dict)
    denied: list[Decision] = field(default_factory=list)
    # Under xdist, the controller's record of the workers' refusals (their ``refusals()`` lines).
    workers_refused: list[str] = field(default_factory=list)

    def record(self, decision: Decision) -> None:
        """An ACL decision of the double (an observer of ``VaultState``) on a token bound to the shipped policy."""
        if POLICY_NAME not in decision.policies:
            return
        if not decision.allowed or decision.rule is None:
            self.denied.append(decision)
            return
        self.granted.add((decision.rule, decision.capability))
        self.parameters.setdefault(decision.rule, set()).update(decision.parameters)

    def refusals(self) -> list[str]:
        """One line per refusal: the capability, the path, the rule that matched (if any), the parameters."""
        return [
            f"{d.capability} {d.path} (rule {d.rule or 'none'}, parameters {sorted(d.parameters)})" for d in self.denied
        ] + self.workers_refused


def shipped_policy() -> Policy:
    """``deploy/vault/gateway-service.hcl``, parsed as the double parses it."""
    return parse_policy(POLICY_NAME, SHIPPED_POLICY.read_text(encoding="utf-8"))


def granting(policy: Policy) -> list[PathRule]:
    """The policy's rules that grant something (a ``deny`` rule grants nothing)."""
    return [rule for rule in policy.rules if "deny" not in rule.capabilities]


def denying(policy: Policy) -> list[PathRule]:
    """The policy's ``deny`` rules."""
    return [rule for rule in policy.rules if "deny" in rule.capabilities]


def grants(policy: Policy) -> set[tuple[str, str]]:
    """Every (path as written, capability) the policy grants."""
    return {(rule.written, capability) for rule in granting(policy) for capability in rule.capabilities}


def allowed_parameters(policy: Policy) -> dict[str, set[str]]:
    """The parameters each granting rule lists in ``allowed_parameters``."""
    return {rule.written: set(rule.allowed_parameters or {}) for rule in granting(policy)}


SESSION = PolicyUsage()


def credentials(state: VaultState) -> ServiceCredentials:
    """The service's token and AppRole credentials the bootstrap left in ``state``."""
    assert state.service is not None
    return state.service


@contextmanager
def service_vault() -> Iterator[tuple[str, VaultState]]:
    """A bootstrapped double whose ACL decisions on the service's tokens go to this test and to the session.

    When the block ends, a refusal or a request field Vault would ignore fails it.
    """
    usage = PolicyUsage()
    with running_vault() as (address, state):
        state.observers += [usage.record, SESSION.record]
        yield address, state
    assert not usage.denied, f"the shipped Vault policy refused the service: {usage.refusals()}"
    assert not state.ignored, f"the service sent fields Vault ignores: {state.ignored}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How much of the shipped policy this run used, and any refusal."""
    if not SESSION.granted and not SESSION.refusals():
        return
    shipped = grants(shipped_policy())
    unused = sorted(shipped - SESSION.granted)
    terminalreporter.section("Vault policy (deploy/vault/gateway-service.hcl)")
    terminalreporter.write_line(f"{len(shipped & SESSION.granted)} of {len(shipped)} grants used by this run")
    for rule, capability in unused:
        terminalreporter.write_line(f"  not used by this run: {capability} on {rule}")
    for refusal in SESSION.refusals():
        terminalreporter.write_line(f"  REFUSED: {refusal}")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A refusal of the service's token anywhere fails the run; an xdist worker hands its record to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["vault_policy"] = {"granted": sorted(SESSION.granted), "refused": SESSION.refusals()}
    if SESSION.refusals() and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """An xdist worker finished: its grants and refusals join the controller's (which fails the run on a refusal)."""
    record = getattr(node, "workeroutput", {}).get("vault_policy", {})
    SESSION.granted.update((rule, capability) for rule, capability in record.get("granted", []))
    SESSION.workers_refused.extend(record.get("refused", []))
