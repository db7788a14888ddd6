"""Every list's ``limit`` and ``cursor`` are checked by the paginator, through the stack, as an attacker tries them.

``limit`` has one written form (ASCII digits, no sign or leading zero) and a
bound per list (core/limits.py); anything else is 400 ``invalid_page_size``,
never the default and never clamped. ``cursor`` is at most
``CURSOR_MAX_CHARS`` and must be one the paginator made, naming a position
of the list; anything else is 400 ``invalid_cursor`` (DRF said 404, or 500 for
a well-encoded position that is not a timestamp). A POST search's body pages
the same way.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from rest_framework.test import APIClient

from core.limits import AUDIT_PAGE_SIZE_MAX, CURSOR_MAX_CHARS, PAGE_SIZE_MAX
from tenants.models import Community
from tests.factories import StudyFactory
from tests.support.clients import BETA_HOST, MemberClient, bearer, client_on
from tests.support.codes import UNICODE_DIGITS
from tests.support.tokens import token_for

STUDIES = "/api/v1/studies/"
PARTICIPANTS = "/api/v1/participants/"
OBSERVATIONS = "/api/v1/observations/"
AUDIT_EVENTS = "/api/v1/audit/events/"
SEARCH = "/api/v1/participants/search/"
# Something a client might smuggle into a cursor, which no answer or log may repeat.
MARKER = "MRN-0042-ADA-LOVELACE"

NOT_ONE_WRITTEN_FORM = [
    "+5",
    "-5",
    "1e3",
    "0200",
    "05",
    "5.0",
    " 5",
    "5 ",
    "0x10",
    "five",
    "",
    "5\x00",
    *UNICODE_DIGITS,
    "\u0665",  # an Arabic-Indic five
]
OUT_OF_BOUNDS = ["0", "-1", str(PAGE_SIZE_MAX + 1), "9" * 30, "9" * 5000]


def assert_refused(response: Any, code: str) -> dict[str, Any]:
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert (body["code"], body["status"], body["type"]) == (code, 400, f"urn:compliance-gateway:problem:{code}")
    assert body["request_id"] == response["X-Request-ID"]
    return body


def encoded(querystring: str) -> str:
    """A cursor as DRF's cursor paginator writes one: its query string (``o``, ``r``, ``p``) in base64."""
    return base64.b64encode(querystring.encode("ascii")).decode("ascii")


def cursor_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["cursor"][0]


@pytest.fixture
def pi(member_client: MemberClient) -> APIClient:
    return member_client("principal_investigator")[0]


@pytest.fixture
def auditor(member_client: MemberClient) -> APIClient:
    return member_client("auditor", second_factor=True)[0]


@pytest.fixture
def three_studies(alpha: Community) -> list[str]:
    return [str(StudyFactory.create(community=alpha).pk) for _ in range(3)]


@pytest.mark.parametrize("limit", NOT_ONE_WRITTEN_FORM + OUT_OF_BOUNDS)
@pytest.mark.parametrize("path", [STUDIES, PARTICIPANTS])
def test_a_limit_not_written_as_a_page_size_in_bounds_is_400(pi: APIClient, path: str, limit: str) -> None:
    assert_refused(pi.get(path, {"limit": limit}), "invalid_page_size")


def test_a_limit_above_the_maximum_is_refused_not_clamped_and_the_bounds_themselves_are_served(
    pi: APIClient, three_studies: list[str]
) -> None:
    assert [item["id"] for item in pi.get(STUDIES, {"limit": "1"}).json()["results"]] == three_studies[:1]
    assert len(pi.get(STUDIES, {"limit": str(PAGE_SIZE_MAX)}).json()["results"]) == 3

    refused = assert_refused(pi.get(STUDIES, {"limit": str(PAGE_SIZE_MAX + 1)}), "invalid_page_size")

    assert f"from 1 to {PAGE_SIZE_MAX}" in refused["detail"]


def test_a_limit_given_twice_is_400_whichever_comes_first(pi: APIClient) -> None:
    assert_refused(pi.get(f"{STUDIES}?limit=5&limit=500"), "invalid_page_size")
    assert_refused(pi.get(f"{STUDIES}?limit=500&limit=5"), "invalid_page_size")


def test_the_audit_list_has_its_own_maximum(auditor: APIClient) -> None:
    assert auditor.get(AUDIT_EVENTS, {"limit": str(AUDIT_PAGE_SIZE_MAX)}).status_code == 200
    assert_refused(auditor.get(AUDIT_EVENTS, {"limit": str(AUDIT_PAGE_SIZE_MAX + 1)}), "invalid_page_size")
    for limit in ("0", "+5", "0200", "5.0", "\u0665"):
        assert_refused(auditor.get(AUDIT_EVENTS, {"limit": limit}), "invalid_page_size")


@pytest.mark.parametrize("path", [STUDIES, PARTICIPANTS, OBSERVATIONS])
def test_every_research_list_refuses_a_page_size_its_serializer_would_have_read_as_a_number(
    pi: APIClient, path: str
) -> None:
    # The observation list's own query serializer refuses the rest as ``validation_failed`` (400 too).
    for limit in ("+5", "0200", "5.0", " 5", "\u0665"):
        assert_refused(pi.get(path, {"limit": limit}), "invalid_page_size")
    assert pi.get(path, {"limit": str(PAGE_SIZE_MAX + 1)}).status_code == 400


def test_a_cursor_the_list_gave_pages_on(pi: APIClient, three_studies: list[str]) -> None:
    first = pi.get(STUDIES, {"limit": "2"}).json()
    second = pi.get(first["next"]).json()

    assert [item["id"] for item in first["results"] + second["results"]] == three_studies
    assert len(cursor_of(first["next"])) < CURSOR_MAX_CHARS // 2


def test_a_cursor_of_exactly_the_maximum_length_is_read_and_one_longer_is_400(
    pi: APIClient, three_studies: list[str]
) -> None:
    # Given the list's own second-page cursor, padded (a zero offset written with leading zeros) to exact lengths.
    tokens = base64.b64decode(cursor_of(pi.get(STUDIES, {"limit": "1"}).json()["next"])).decode()

    def padded(length: int) -> str:
        rest = "&" + tokens
        cursor = encoded("o=" + "0" * (length * 3 // 4 - len("o=") - len(rest)) + rest)
        assert len(cursor) == length
        return cursor

    at_most = pi.get(STUDIES, {"limit": "1", "cursor": padded(CURSOR_MAX_CHARS)})
    one_block_more = pi.get(STUDIES, {"limit": "1", "cursor": padded(CURSOR_MAX_CHARS + 4)})

    assert [item["id"] for item in at_most.json()["results"]] == three_studies[1:2]
    assert_refused(one_block_more, "invalid_cursor")
    assert_refused(pi.get(STUDIES, {"cursor": padded(CURSOR_MAX_CHARS) + "A"}), "invalid_cursor")


@pytest.mark.parametrize(
    "cursor",
    [
        "abc",  # not base64
        "!!!!",
        "\u00e9\u00e9\u00e9\u00e9",  # not ASCII
        encoded("o=-1"),  # a negative offset
        encoded("r=yes"),  # a direction that is not 0 or 1
        encoded("p=2"),  # a position that is not a timestamp: DRF queried with it and answered 500
        encoded("p=2026-01-01 00:00:00"),  # a timestamp without its offset
        encoded(f"p={MARKER}"),
        "x" * (CURSOR_MAX_CHARS * 25),
    ],
    ids=["short", "punctuation", "unicode", "negative-offset", "direction", "number", "naive", "marker", "5000"],
)
def test_a_cursor_the_list_did_not_make_is_400_and_never_repeated(
    pi: APIClient, cursor: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("DEBUG"):
        refused = pi.get(STUDIES, {"cursor": cursor})

    assert_refused(refused, "invalid_cursor")
    assert cursor.encode() not in refused.content
    assert MARKER not in refused.content.decode() + caplog.text


def test_a_cursor_given_twice_is_400(pi: APIClient, three_studies: list[str]) -> None:
    cursor = cursor_of(pi.get(STUDIES, {"limit": "1"}).json()["next"])

    assert_refused(pi.get(f"{STUDIES}?cursor={cursor}&cursor={cursor}"), "invalid_cursor")


def test_an_audit_cursor_past_any_sequence_is_400(auditor: APIClient) -> None:
    assert_refused(auditor.get(AUDIT_EVENTS, {"cursor": encoded("p=" + "9" * 30)}), "invalid_cursor")
    assert_refused(auditor.get(AUDIT_EVENTS, {"cursor": encoded("p=2026-01-01")}), "invalid_cursor")
    assert auditor.get(AUDIT_EVENTS, {"cursor": encoded("p=1")}).status_code == 200


@pytest.mark.parametrize(
    ("paging", "code"),
    [
        ({"limit": "+5"}, "invalid_page_size"),
        ({"limit": 0}, "invalid_page_size"),
        ({"limit": PAGE_SIZE_MAX + 1}, "invalid_page_size"),
        ({"limit": 5.5}, "invalid_page_size"),
        ({"limit": 5.0}, "invalid_page_size"),
        ({"limit": True}, "invalid_page_size"),
        ({"limit": [5]}, "invalid_page_size"),
        ({"limit": "\u0665"}, "invalid_page_size"),
        ({"cursor": "abc"}, "invalid_cursor"),
        ({"cursor": encoded("p=2")}, "invalid_cursor"),
        ({"cursor": "A" * (CURSOR_MAX_CHARS + 4)}, "invalid_cursor"),
        ({"cursor": 12}, "invalid_cursor"),
    ],
)
def test_a_search_body_pages_under_the_same_rules(pi: APIClient, paging: dict[str, Any], code: str) -> None:
    assert_refused(pi.post(SEARCH, {"mrn": "MRN-000123", **paging}, format="json"), code)


def test_a_search_body_at_the_bounds_is_served(pi: APIClient) -> None:
    for limit in (1, PAGE_SIZE_MAX):
        assert pi.post(SEARCH, {"mrn": "MRN-000123", "limit": limit}, format="json").status_code == 200
    # A body is JSON: the schema's integer is a number there, and "200" a string.
    assert_refused(pi.post(SEARCH, {"mrn": "MRN-000123", "limit": str(PAGE_SIZE_MAX)}, format="json"),
                   "invalid_page_size")  # fmt: skip


def test_a_cursor_from_one_community_pages_only_the_other_communitys_list_there(
    pi: APIClient, three_studies: list[str], beta: Community, member_client: MemberClient
) -> None:
    # Given a cursor of alpha's list and beta's own studies, made later than alpha's first.
    link = pi.get(STUDIES, {"limit": "1"}).json()["next"]
    betas = [str(StudyFactory.create(community=beta).pk) for _ in range(2)]
    beta_pi, _ = member_client("principal_investigator", on_beta=True)

    # When beta's member replays it on beta's host.
    page = beta_pi.get(STUDIES, {"cursor": cursor_of(link)})

    # Then the cursor is only a position: beta's rows after it, none of alpha's.
    assert page.status_code == 200
    assert [item["id"] for item in page.json()["results"]] == betas


def test_another_communitys_token_learns_nothing_from_a_bad_limit(
    alpha: Community, beta: Community, member: Callable[..., Any]
) -> None:
    outsider = bearer(client_on(BETA_HOST), token_for(member(alpha, "principal_investigator"), alpha))

    refused = outsider.get(STUDIES, {"limit": "abc", "cursor": "abc"})

    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_token"
