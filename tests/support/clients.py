"""API clients for tests: the two communities and their hosts, a client per host, and a bearer token on it."""

from __future__ import annotations

from collections.abc import Callable

from rest_framework.test import APIClient

from security.models import User

ALPHA_HOST = "alpha.localhost"
BETA_HOST = "beta.localhost"
CLIENT_ADDRESS = "203.0.113.10"
# The communities every test database has: (slug, name, domain).
COMMUNITIES = (("alpha", "Alpha Cohort", ALPHA_HOST), ("beta", "Beta Registry", BETA_HOST))

# The ``member_client`` fixture: ``(role, *, second_factor=False, on_beta=False)`` -> a signed-in client and its user.
MemberClient = Callable[..., tuple[APIClient, User]]


def client_on(host: str) -> APIClient:
    """An API client whose requests go to ``host`` from a fixed documentation address."""
    return APIClient(HTTP_HOST=host, REMOTE_ADDR=CLIENT_ADDRESS)


def bearer(client: APIClient, token: str) -> APIClient:
    """Attach a bearer token to a client."""
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client
