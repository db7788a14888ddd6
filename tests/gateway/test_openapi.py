"""The OpenAPI schema says what the service does: derived from the views' declarations and the policy's data."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jsonschema
import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from core.contract import ApiContract
from core.errors import Conflict
from gateway import middleware
from gateway.openapi import denial_codes, operation_id
from policy.matrix import policy_matrix
from tests.support import contract
from tests.support.clients import MemberClient

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return contract.generated_schema()


def _operations(schema: Mapping[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, items in schema["paths"].items():
        for method, operation in items.items():
            if method in METHODS:
                yield method.upper(), path, operation


def _codes(operation: Mapping[str, Any], status: int) -> list[str]:
    response = operation["responses"].get(str(status))
    if response is None:
        return []
    codes: list[str] = response["content"]["application/problem+json"]["schema"]["allOf"][1]["properties"]["code"][
        "enum"
    ]
    return codes


def test_every_operation_has_a_method_name_a_client_can_use(schema: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in _operations(schema)]
    assert len(ids) == len(set(ids)), sorted(name for name in ids if ids.count(name) > 1)
    assert all(re.fullmatch(r"[a-z][A-Za-z0-9]*", name) for name in ids), ids
    assert operation_id("StudyListApi", "POST", ["GET", "POST"]) == "studyCreate"
    assert operation_id("StudyDetailApi", "PATCH", ["GET", "PATCH"]) == "studyUpdate"
    assert operation_id("ExportDownloadApi", "GET", ["GET"]) == "exportDownload"


def test_lists_are_documented_as_the_pages_they_answer(schema: dict[str, Any], member_client: MemberClient) -> None:
    listing = schema["paths"]["/api/v1/studies/"]["get"]
    envelope = listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][envelope]["properties"]) == {"next", "previous", "results"}
    assert {"cursor", "limit"} <= {parameter["name"] for parameter in listing["parameters"]}
    client, _ = member_client("principal_investigator")
    assert set(client.get("/api/v1/studies/").json()) == {"next", "previous", "results"}


def test_every_refusal_is_a_problem_document_with_its_codes(schema: dict[str, Any]) -> None:
    for method, path, operation in _operations(schema):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert list(response["content"]) == ["application/problem+json"], (method, path, status)
                assert _codes(operation, int(status)), (method, path, status)
    assert "#/components/schemas/Problem" in str(schema["paths"]["/api/v1/studies/"]["get"]["responses"]["403"])


def test_the_policy_s_reasons_are_those_its_data_gives_the_action(schema: dict[str, Any]) -> None:
    matrix = policy_matrix()
    for method, path, operation in _operations(schema):
        action = operation.get("x-policy-action")
        if action is None:
            assert operation["security"] == [], (method, path)  # public: no token asked for
            continue
        assert operation["security"] == [{"bearerAuth": []}], (method, path)
        assert set(denial_codes(action)) <= set(_codes(operation, 403)), (method, path)
        elevated = action in matrix.elevated_actions
        assert (operation.get("x-requires-second-factor") is True) == elevated, (method, path)
        assert ("mfa_required" in _codes(operation, 403)) == (elevated or "format=" in operation["description"])
        assert operation["x-reveals-phi"] == (action in matrix.phi_actions)
        assert "X-Purpose-Of-Use" in {parameter["name"] for parameter in operation["parameters"]}
    disclosures = schema["paths"]["/api/v1/participants/{id}/disclosures/"]["get"]
    assert "mfa_required" in _codes(disclosures, 403)  # ?format=csv is an export, which is elevated
    assert disclosures["x-requires-second-factor"] == ["disclosure.export"]


def test_an_update_asks_for_if_match_as_the_service_does(schema: dict[str, Any]) -> None:
    update = schema["paths"]["/api/v1/participants/{id}/"]["patch"]
    if_match = next(parameter for parameter in update["parameters"] if parameter["name"] == "If-Match")
    assert if_match["required"] is True
    assert _codes(update, 428) == ["if_match_required", "if_match_wildcard"]
    assert "edit_conflict" in _codes(update, 409)


def _api_views() -> Iterator[type[ApiContract]]:
    def walk(patterns: list[Any]) -> Iterator[type[ApiContract]]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns)
            elif isinstance(pattern, URLPattern):
                view = getattr(pattern.callback, "cls", None)
                if isinstance(view, type) and issubclass(view, ApiContract):
                    yield view

    yield from dict.fromkeys(walk(get_resolver("config.urls_tenant").url_patterns))


def _calls(function: Callable[..., Any], name: str) -> bool:
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    return any(isinstance(node, ast.Name) and node.id == name for node in ast.walk(tree))


def test_a_handler_that_checks_if_match_declares_it() -> None:
    # The schema's If-Match comes from precondition_methods; the check itself is require_current in the handler.
    seen = 0
    for view in _api_views():
        for method in METHODS:
            handler = getattr(view, method, None)
            if handler is None:
                continue
            checks = _calls(handler, "require_current")
            seen += checks
            assert checks == (method.upper() in view.precondition_methods), f"{view.__name__}.{method}"
    assert seen >= 2


def test_an_undocumented_refusal_fails_the_request_that_got_it(
    member_client: MemberClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(**kwargs: Any) -> None:
        raise Conflict("made up", code="made_up")

    monkeypatch.setattr("services.studies.apis.study_create", refuse)
    client, _ = member_client("principal_investigator")
    with pytest.raises(contract.UndocumentedResponse, match="POST /api/v1/studies/ answered 409 'made_up'"):
        client.post("/api/v1/studies/", {"title": "Sleep", "protocol_number": "P-1"}, format="json")
    beta, _ = member_client("principal_investigator", on_beta=True)
    with pytest.raises(contract.UndocumentedResponse):  # the same on the other community
        beta.post("/api/v1/studies/", {"title": "Sleep", "protocol_number": "P-2"}, format="json")


def test_the_lifecycle_policy_is_in_the_schema(schema: dict[str, Any]) -> None:
    assert "## Versions, deprecation and sunset" in schema["info"]["description"]
    assert set(schema["info"]["x-api-versions"]) == {"v1"}


@pytest.fixture
def deprecations() -> Iterator[None]:
    middleware._deprecating_views.cache_clear()
    yield
    middleware._deprecating_views.cache_clear()


@pytest.mark.urls("tests.gateway.openapi_urls")
@pytest.mark.usefixtures("deprecations")
def test_a_deprecated_operation_says_so_in_the_schema_and_in_its_answers(member_client: MemberClient) -> None:
    schema = contract.generated_schema("tests.gateway.openapi_urls")
    operation = schema["paths"]["/api/v1/probe/deprecated/"]["get"]
    assert operation["deprecated"] is True
    assert operation["x-sunset"] == "2099-01-01"
    assert {"Deprecation", "Sunset", "Link"} <= set(operation["responses"]["200"]["headers"])
    assert "operation_sunset" in _codes(operation, 410)
    for on_beta in (False, True):
        client: APIClient = member_client("principal_investigator", on_beta=on_beta)[0]
        served = client.get("/api/v1/probe/deprecated/")
        assert served.status_code == 200
        assert served["Deprecation"] == "@1767225600"
        assert served["Sunset"] == "Thu, 01 Jan 2099 00:00:00 GMT"
        assert served["Link"] == '</api/v1/studies/>; rel="successor-version"'
        retired = client.get("/api/v1/probe/retired/")
        assert retired.status_code == 410
        assert retired.json()["code"] == "operation_sunset"
        assert "Deprecation" not in client.get("/api/v1/studies/")


def _json_schema(schema: Any, components: Mapping[str, Any]) -> Any:
    """An OpenAPI 3.0 schema object as JSON Schema: references inlined, ``nullable`` and exclusive bounds mapped."""
    if isinstance(schema, list):
        return [_json_schema(item, components) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return _json_schema(components[schema["$ref"].rsplit("/", 1)[-1]], components)
    converted = {name: _json_schema(value, components) for name, value in schema.items() if name != "nullable"}
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if converted.get(exclusive) is True:  # OpenAPI 3.0's boolean form; JSON Schema's is the bound itself
            converted[exclusive] = converted.pop(bound)
        elif converted.get(exclusive) is False:
            converted.pop(exclusive)
    if schema.get("nullable"):
        converted = {"anyOf": [converted, {"type": "null"}]}
    return converted


def test_every_example_validates_against_its_schema(schema: dict[str, Any]) -> None:
    components, checked = schema["components"]["schemas"], 0
    for method, path, operation in _operations(schema):
        for media in operation.get("requestBody", {}).get("content", {}).values():
            for name, example in media.get("examples", {}).items():
                validator = jsonschema.Draft202012Validator(_json_schema(media["schema"], components))
                errors = [error.message for error in validator.iter_errors(example["value"])]
                assert not errors, (method, path, name, errors)
                checked += 1
    assert checked >= 4


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "Sleep", "protocol_number": 5}, "protocol_number"),  # a number for a string
        ({"title": True, "protocol_number": "P-7"}, "title"),  # a boolean for a string
        ({"title": ["Sleep"], "protocol_number": "P-8"}, "title"),  # a list for a string
    ],
)
def test_a_value_of_another_json_type_than_documented_is_refused(
    member_client: MemberClient, body: dict[str, Any], field: str
) -> None:
    for on_beta in (False, True):
        client, _ = member_client("principal_investigator", on_beta=on_beta)
        response = client.post("/api/v1/studies/", body, format="json")
        assert response.status_code == 400
        assert {"field": field, "code": "invalid_type"} in [
            {"field": error["field"], "code": error["code"]} for error in response.json()["errors"]
        ]


def test_a_search_s_page_size_is_an_integer_in_its_body(member_client: MemberClient) -> None:
    client, _ = member_client("principal_investigator")
    response = client.post("/api/v1/participants/search/", {"mrn": "MRN-1", "limit": "2"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_page_size"  # the paginator's code, as for a query string
    assert client.post("/api/v1/participants/search/", {"mrn": "MRN-1", "limit": 2}, format="json").status_code == 200


def test_an_empty_purpose_is_refused_not_defaulted(member_client: MemberClient) -> None:
    client, _ = member_client("principal_investigator")
    assert client.get("/api/v1/studies/").status_code == 200
    refused = client.get("/api/v1/studies/", HTTP_X_PURPOSE_OF_USE="")
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_purpose"
