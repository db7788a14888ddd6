"""What the service reads of the policy data agrees with what the service accepts."""

from __future__ import annotations

from django.conf import settings

from policy.matrix import policy_matrix


def test_every_purpose_a_client_may_state_has_a_statement_for_the_accounting() -> None:
    statements = policy_matrix().purpose_statements

    assert set(settings.POLICY_PURPOSES) <= set(statements)
    assert all(statement.endswith(".") and len(statement) > 20 for statement in statements.values())


def test_a_view_is_redacted_only_when_no_role_grants_the_action_unredacted() -> None:
    matrix = policy_matrix()

    assert matrix.redacted_view(action="participant.read", roles=["researcher"])
    assert not matrix.redacted_view(action="participant.read", roles=["researcher", "coordinator"])
    assert matrix.redacted_view(action="participant.read", roles=[])
