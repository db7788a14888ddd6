"""Fixtures of the research apps' API tests: members of alpha by role, a study and a participant made over the API."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.support.clients import MemberClient
from tests.support.research import ACTIVE_STUDY, ADA


@pytest.fixture
def pi(member_client: MemberClient) -> APIClient:
    """A principal investigator of alpha, signed in."""
    return member_client("principal_investigator")[0]


@pytest.fixture
def coordinator(member_client: MemberClient) -> APIClient:
    """A coordinator of alpha, signed in."""
    return member_client("coordinator")[0]


@pytest.fixture
def researcher(member_client: MemberClient) -> APIClient:
    """A researcher of alpha, signed in."""
    return member_client("researcher")[0]


@pytest.fixture
def study(pi: APIClient) -> dict[str, Any]:
    """An active, IRB-approved study of alpha, created by the PI over the API."""
    response = pi.post(
        "/api/v1/studies/",
        ACTIVE_STUDY,
        format="json",
    )
    assert response.status_code == 201, response.content
    return dict(response.json())


@pytest.fixture
def ada(coordinator: APIClient, study: dict[str, Any]) -> dict[str, Any]:
    """Ada, enrolled in the study by the coordinator over the API (no consent yet)."""
    response = coordinator.post("/api/v1/participants/", {"study": study["id"], **ADA}, format="json")
    assert response.status_code == 201, response.content
    return dict(response.json())
