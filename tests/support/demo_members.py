"""The demo members ``seed_demo`` creates, signing in to a served API for real, and plain requests to it.

Tokens come from the server itself: each member signs in over HTTP on their community's host; the roles whose
actions need a recent second factor enrol TOTP through the API first and then sign in with one of the recovery
codes the enrolment gave them (a code is used once, so a member can sign in afresh up to ten times without
waiting for the next 30-second TOTP step).
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp

from security.roles import Role
from tests.support.clients import ALPHA_HOST, BETA_HOST

HOSTS = {"alpha": ALPHA_HOST, "beta": BETA_HOST}
# The roles whose actions include elevated ones (exports, break-glass, determinations, the accounting): they
# enrol a second factor. The others sign in with the password alone, so both kinds of token are exercised.
SECOND_FACTOR_ROLES = frozenset({Role.PRINCIPAL_INVESTIGATOR, Role.COORDINATOR, Role.COMPLIANCE_OFFICER})
TOTP_STEP_SECONDS = 30


def call(
    port: int, method: str, path: str, *, host: str, body: Mapping[str, Any] | None = None, token: str = ""
) -> tuple[int, Any]:
    """One JSON request to the server on ``port``: the status and the decoded body (``None`` when empty)."""
    headers = {"Host": host, "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None
    finally:
        connection.close()


def fetch(port: int, path: str, *, host: str) -> tuple[int, str]:
    """``GET path`` from the server on ``port`` as ``host``: the status and the text (the schema is YAML)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8")
    finally:
        connection.close()


@dataclass
class DemoMember:
    """A demo user of one community, who can sign in on its host (with a recovery code once TOTP is enrolled)."""

    community: str
    role: str
    password: str
    port: int
    recovery_codes: list[str] = field(default_factory=list)

    @property
    def email(self) -> str:
        """The address ``seed_demo`` gave the user."""
        return f"{self.role}@{self.community}.example"

    @property
    def host(self) -> str:
        """The host of the member's community."""
        return HOSTS[self.community]

    @property
    def name(self) -> str:
        """``<community>-<role>``, as the fuzzer's reports name the identity."""
        return f"{self.community}-{self.role}"

    @property
    def second_factor(self) -> bool:
        """Whether the member signs in with a second factor."""
        return bool(self.recovery_codes)

    def sign_in(self) -> str:
        """A fresh access token from ``POST /api/v1/auth/token`` (a new session, signed in now)."""
        body = {"email": self.email, "password": self.password}
        if self.recovery_codes:
            body["otp"] = self.recovery_codes.pop()
        status, answer = call(self.port, "POST", "/api/v1/auth/token", host=self.host, body=body)
        assert status == 200, f"sign-in of {self.email} answered {status}: {answer}"
        return str(answer["access"])

    def enrol_second_factor(self) -> None:
        """Enrol TOTP through the API, as a phone app would (the previous step's code confirms it)."""
        token = self.sign_in()
        status, answer = call(self.port, "POST", "/api/v1/auth/mfa/totp", host=self.host, token=token)
        assert status == 201, f"TOTP enrolment of {self.email} answered {status}: {answer}"
        authenticator = pyotp.TOTP(parse_qs(urlsplit(answer["provisioning_uri"]).query)["secret"][0])
        code = authenticator.at(time.time() - TOTP_STEP_SECONDS)
        path = "/api/v1/auth/mfa/totp/confirm"
        status, answer = call(self.port, "POST", path, host=self.host, token=token, body={"code": code})
        assert status == 200, f"TOTP confirmation of {self.email} answered {status}: {answer}"
        self.recovery_codes = list(answer["recovery_codes"])


def demo_password(state_dir: Path) -> str:
    """The password ``seed_demo`` gave every demo user, kept in the server's state directory."""
    return (state_dir / "demo-password").read_text(encoding="utf-8").strip()


def demo_members(port: int, password: str) -> dict[str, DemoMember]:
    """Every demo member of both communities (by :attr:`DemoMember.name`), second factors enrolled where needed."""
    members: dict[str, DemoMember] = {}
    for community in HOSTS:
        for role in Role.values:
            member = DemoMember(community=community, role=role, password=password, port=port)
            if role in SECOND_FACTOR_ROLES:
                member.enrol_second_factor()
            members[member.name] = member
    return members
