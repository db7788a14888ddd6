"""Access tokens for tests, issued the way a sign-in issues them but without the HTTP round trip.

Only the sign-in and MFA tests sign in over HTTP; every other test asks
:func:`token_for`, which opens a real session row and signs a real token (so
revocation, refresh families and the policy's ``amr`` rules all see what a
sign-in would have left).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils import timezone

from security.identity.sessions import MFA_AMR, PASSWORD_AMR
from security.identity.tokens import issue_access_token
from security.models import AuthSession, User
from security.selectors import member_roles
from tenants.models import Community

__all__ = ["MFA_AMR", "PASSWORD_AMR", "token_for"]


def token_for(user: User, community: Community, *, amr: Sequence[str] = PASSWORD_AMR) -> str:
    """A signed access token for ``user`` in ``community`` with their current roles, signed in with ``amr`` now."""
    session = AuthSession.objects.create(user=user, community=community, amr=list(amr), auth_time=timezone.now())
    return issue_access_token(
        subject=str(user.pk),
        community=community.slug,
        roles=member_roles(user_id=user.pk, community=community),
        amr=list(amr),
        auth_time=int(session.auth_time.timestamp()),
        session_id=str(session.pk),
    )
