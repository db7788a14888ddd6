"""API clients for tests: the two communities' hosts, a client per host, and a bearer token on it."""

from __future__ import annotations

from rest_framework.test import APIClient

ALPHA_HOST = "alpha.localhost"
BETA_HOST = "beta.localhost"
CLIENT_ADDRESS = "203.0.113.10"


def client_on(host: str) -> APIClient:
    """An API client whose requests go to ``host`` from a fixed documentation address."""
    return APIClient(HTTP_HOST=host, REMOTE_ADDR=CLIENT_ADDRESS)


def bearer(client: APIClient, token: str) -> APIClient:
    """Attach a bearer token to a client."""
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client
