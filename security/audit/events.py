"""Which log a privileged change goes to, and the call that writes it to the platform's log.

The rule: **an event goes to the log of the community whose data or access it
changes; anything that is not one community's goes to the platform log** (the
public schema's audit log).

=================================================  ===========  ======================================
change                                             log          why
=================================================  ===========  ======================================
membership grant, role change, removal             community    a membership is access to that community
community key rotation                             community    the keys seal that community's data
policy revision first seen in a community          community    its decisions name the revision
refusal on a community's host                      community    the request was for that community
membership affiliation (workforce or external)     community    it decides use or disclosure there
export determination                               community    it releases that community's data
accounting request, copy, suspension, recorded     community    the participant's accounting is there
disclosure, authorization confirmed, study waiver
break-glass alarm                                  community    the grant is that community's
user create, deactivate, reactivate, staff flag,   platform     a user is one person across communities
profile (name, organisation, address)
MFA enrolment and reset                            platform     the second factor belongs to the user
access-token signing-key rotation and pruning      platform     one keyring signs every community's tokens
community lifecycle (create ... purge)             platform     the community log does not exist yet, or
                                                                 is about to be destroyed
refusal on an unknown host or the platform host    platform     there is no community to hold it
ZIP3 table build (``zip3_table_build``)            platform     one table serves every community
=================================================  ===========  ======================================

Every such event is written by the action itself, inside the transaction that
makes the change, so the change and its event commit or roll back together.
"""

from __future__ import annotations

from collections.abc import Sequence

from django_tenants.utils import get_public_schema_name, schema_context

from security.audit.staging import record


def platform_record(
    *,
    action: str,
    actor_id: str,
    resource_type: str,
    resource_id: str,
    outcome: str = "allow",
    reasons: Sequence[str] = (),
    actor_roles: Sequence[str] = (),
) -> None:
    """Record a platform-wide change in the platform's log, inside the caller's transaction.

    Whatever schema the connection is on (a request on a community's host
    enrolling its user's second factor, say), the event goes to the public
    schema's log, on the same connection and so in the same transaction.
    """
    with schema_context(get_public_schema_name()):
        record(
            action=action,
            actor_id=actor_id,
            resource_type=resource_type,
            resource_id=resource_id,
            outcome=outcome,
            reasons=reasons,
            actor_roles=actor_roles,
        )
