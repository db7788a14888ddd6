"""The OPA double answers as OPA v1.9.0's server does, in every shape the service relies on.

Each test names the part of OPA's source (open-policy-agent/opa at v1.9.0) it
holds the double to; the engine tests (``test_engines.py``,
``test_opa_client.py``) then rely on these shapes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from policy.engine import OpaEngine
from policy.errors import PolicyUnavailable
from policy.source import PolicySource
from tests.doubles.opa import (
    ANSWER_DEADLINE_SECONDS,
    BUNDLE_REVISION,
    OPA_VERSION,
    TOKEN_VARIABLE,
    OpaState,
    _Policy,
    authz_policy,
    running_opa,
)
from tests.policy.edge_inputs import BASE

TOKEN = "service-token-of-forty-characters-000000"
DECISION = "/v1/data/gateway/authz/decision"


@pytest.fixture
def opa() -> Iterator[tuple[str, OpaState]]:
    with running_opa() as (url, state):
        yield url, state


@pytest.fixture
def guarded() -> Iterator[tuple[str, OpaState]]:
    with running_opa(token=TOKEN) as (url, state):
        yield url, state


def post(url: str, body: Any, *, query: str = "provenance", token: str | None = None, raw: bytes | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else json.dumps(body).encode()
    return requests.post(f"{url}{DECISION}?{query}", data=data, headers=headers, timeout=5)


def recording_authorizer(state: OpaState) -> list[Any]:
    """Have the double's authorizer record each input it evaluates; return the list it fills."""
    seen: list[Any] = []
    assert state.authz is not None
    authz: _Policy = state.authz

    class Recording(_Policy):
        def __init__(self) -> None:
            pass

        def evaluate(self, document: Any, *, has_input: bool = True) -> Any:
            seen.append(document)
            return authz.evaluate(document, has_input=has_input)

    state.authz = Recording()
    return seen


# --- v1DataPost (v1/server/server.go@v1.9.0) -------------------------------------------------


def test_a_decision_carries_its_id_provenance_and_result(opa: tuple[str, OpaState]) -> None:
    url, _ = opa

    answer = post(url, {"input": BASE}).json()

    assert list(answer) == ["decision_id", "provenance", "result"]
    assert answer["provenance"] == {
        "version": OPA_VERSION,
        "build_commit": "double",
        "build_timestamp": "2025-01-01T00:00:00Z",
        "build_hostname": "double",
        "bundles": {"authz": {"revision": BUNDLE_REVISION}},
    }
    assert answer["result"]["allow"] is True


@pytest.mark.parametrize("provenance", ["provenance", "provenance=TRUE", "provenance=true&provenance=false"])
def test_provenance_is_given_when_asked_bare_or_true(provenance: str, opa: tuple[str, OpaState]) -> None:
    url, _ = opa

    assert "provenance" in post(url, {"input": BASE}, query=provenance).json()
    assert "provenance" not in post(url, {"input": BASE}, query="provenance=yes").json()


def test_an_undefined_decision_still_carries_its_id_and_provenance(opa: tuple[str, OpaState]) -> None:
    # Review finding 17: decision_id and provenance are filled before the result is looked at.
    url, state = opa
    state.mode = "undefined"

    answer = post(url, {"input": BASE}).json()

    assert list(answer) == ["decision_id", "provenance"]
    assert answer["provenance"]["bundles"]["authz"]["revision"] == BUNDLE_REVISION
    unknown = requests.post(f"{url}/v1/data/gateway/nothing?provenance", json={"input": BASE}, timeout=5).json()
    assert list(unknown) == ["decision_id", "provenance"]


def test_without_decision_logging_there_is_no_decision_id(opa: tuple[str, OpaState]) -> None:
    url, state = opa
    state.decision_logging = False

    assert "decision_id" not in post(url, {"input": BASE}).json()


def test_a_request_without_input_is_warned_and_decided_as_undecidable(opa: tuple[str, OpaState]) -> None:
    url, _ = opa
    warning = {"code": "api_usage_warning", "message": "'input' key missing from the request"}

    for body in ({}, {"input": None}):
        answer = post(url, body).json()

        assert answer["warning"] == warning
        assert answer["result"]["reasons"] == ["policy_error"]


def test_a_body_that_is_not_a_json_object_is_an_invalid_parameter(opa: tuple[str, OpaState]) -> None:
    url, _ = opa

    for raw in (b"{nope", b"[1, 2]"):
        response = post(url, None, raw=raw)

        assert response.status_code == 400
        assert response.json()["code"] == "invalid_parameter"
        assert response.json()["message"].startswith("body contains malformed input document")


# --- errors (v1/server/writer/writer.go@v1.9.0 ErrorAuto, types.ErrorV1) ---------------------


def test_an_evaluation_error_is_a_500_with_the_topdown_error_inside(opa: tuple[str, OpaState]) -> None:
    # Review finding 18.
    url, state = opa
    state.mode = "server_error"

    response = post(url, {"input": BASE})

    assert response.status_code == 500
    assert response.headers["Content-Type"] == "application/json"
    assert response.text.startswith('{\n  "code": "internal_error",\n')
    assert response.text.endswith("}\n")
    body = response.json()
    assert body["message"] == "error(s) occurred while evaluating query"
    [error] = body["errors"]
    assert error["code"] == "eval_conflict_error"
    assert set(error["location"]) == {"file", "row", "col"}


# --- provenance (getProvenance, types.ProvenanceV1) ---------------------------------------------


def test_with_no_bundle_revision_provenance_leaves_bundles_out(opa: tuple[str, OpaState]) -> None:
    # Review finding 19: Bundles is omitempty.
    url, state = opa
    state.mode = "no_bundles"

    provenance = post(url, {"input": BASE}).json()["provenance"]

    assert "bundles" not in provenance
    assert "revision" not in provenance
    assert provenance["version"] == OPA_VERSION


def test_a_legacy_bundle_configuration_reports_the_single_revision_the_engine_reads(opa: tuple[str, OpaState]) -> None:
    url, state = opa
    state.mode = "legacy_bundle"

    assert post(url, {"input": BASE}).json()["provenance"]["revision"] == BUNDLE_REVISION
    assert OpaEngine(url, timeout=ANSWER_DEADLINE_SECONDS).decide(BASE).revision == f"opa:{BUNDLE_REVISION}"


# --- /health (unversionedGetHealth, writeHealthResponse) ---------------------------------------


def health(url: str, query: str = "") -> requests.Response:
    return requests.get(f"{url}/health{query}", timeout=5)


def test_health_names_bundles_not_activated_only_when_asked(opa: tuple[str, OpaState]) -> None:
    # Review finding 20.
    url, state = opa
    assert (health(url, "?bundles").status_code, health(url, "?bundles").json()) == (200, {})

    state.mode = "not_ready"

    for query in ("?bundles", "?bundle", "?bundles=true"):
        response = health(url, query)
        assert (response.status_code, response.json()) == (500, {"error": "one or more bundles are not activated"})
    assert health(url).status_code == 200
    assert health(url, "?bundles=false").status_code == 200
    state.bundle_plugin = False  # bundles loaded from files: nothing to wait for
    assert health(url, "?bundles").status_code == 200


# --- --authentication=token --authorization=basic (v1/server/identifier, v1/server/authorizer) --


def test_a_guarded_opa_refuses_a_call_without_the_token_as_opa_does(guarded: tuple[str, OpaState]) -> None:
    url, _ = guarded

    for token in (None, "someone-elses-token-of-forty-characters0"):
        response = post(url, {"input": BASE}, token=token)

        assert response.status_code == 401
        assert response.json() == {"code": "unauthorized", "message": "request rejected by administrative policy"}
    assert post(url, {"input": BASE}, token=TOKEN).status_code == 200


def test_a_guarded_opa_answers_the_probe_without_a_token(guarded: tuple[str, OpaState]) -> None:
    url, _ = guarded

    assert health(url, "?bundles").status_code == 200
    assert requests.get(f"{url}/health/live", timeout=5).status_code == 401


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", DECISION), ("PUT", "/v1/policies/gateway/authz.rego"), ("POST", "/v1/query"), ("GET", "/v1/config")],
)
def test_the_service_token_opens_nothing_but_its_decision(
    method: str, path: str, guarded: tuple[str, OpaState]
) -> None:
    url, _ = guarded

    response = requests.request(method, url + path, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)

    assert response.status_code == 401


@pytest.mark.parametrize("header", [f"bearer {TOKEN}", f"Bearer  {TOKEN} extra", f"Basic {TOKEN}", TOKEN])
def test_only_a_bearer_header_carries_an_identity(header: str, guarded: tuple[str, OpaState]) -> None:
    url, _ = guarded

    response = requests.post(url + DECISION, json={"input": BASE}, headers={"Authorization": header}, timeout=5)

    assert response.status_code == 401


def test_the_authorizer_reads_the_token_from_opas_environment(guarded: tuple[str, OpaState]) -> None:
    url, state = guarded
    state.environment = {}
    state.authz = authz_policy(state.runtime())

    assert post(url, {"input": BASE}, token=TOKEN).status_code == 401
    assert health(url).status_code == 200

    state.environment = {TOKEN_VARIABLE: "another-token-of-forty-characters-000000"}
    state.authz = authz_policy(state.runtime())
    assert post(url, {"input": BASE}, token="another-token-of-forty-characters-000000").status_code == 200


def test_the_authorizer_sees_the_input_opa_builds(guarded: tuple[str, OpaState]) -> None:
    url, state = guarded
    seen = recording_authorizer(state)
    post(url, {"input": BASE}, token=TOKEN, query="provenance&x=1")

    [document] = seen
    assert document["path"] == ["v1", "data", "gateway", "authz", "decision"]
    assert document["method"] == "POST"
    assert document["params"] == {"provenance": [""], "x": ["1"]}
    assert document["headers"]["Authorization"] == [f"Bearer {TOKEN}"]
    assert document["body"] == {"input": BASE}
    assert document["identity"] == TOKEN


def test_under_the_authorizer_a_null_input_is_an_input_and_no_object_is_no_input(
    guarded: tuple[str, OpaState],
) -> None:
    # server.go@v1.9.0:2902 readInputPostV1 takes the authorizer's parse: "input": null is the
    # input null (no warning), and a body that is not an object carries no input (warned, 200).
    url, _ = guarded

    null_input = post(url, {"input": None}, token=TOKEN)
    array = post(url, [BASE], token=TOKEN)

    assert null_input.status_code == 200
    assert "warning" not in null_input.json()
    assert null_input.json()["result"]["reasons"] == ["policy_error"]
    assert array.status_code == 200
    assert array.json()["warning"]["message"] == "'input' key missing from the request"


@pytest.mark.parametrize("path", [DECISION, "/v0/data/gateway/authz/decision", "/"])
def test_under_the_authorizer_a_body_that_is_not_json_is_a_400_before_any_token(
    path: str, guarded: tuple[str, OpaState]
) -> None:
    url, _ = guarded

    response = requests.post(f"{url}{path}", data=b"{nope", timeout=5)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_parameter"


def test_the_authorizer_sees_any_json_body_of_a_data_call(guarded: tuple[str, OpaState]) -> None:
    url, state = guarded
    seen = recording_authorizer(state)
    requests.post(f"{url}/v0/data/gateway", data=b"[1, 2]", timeout=5)

    assert seen[0]["body"] == [1, 2]


def test_an_authorization_policy_without_allow_is_a_500(guarded: tuple[str, OpaState]) -> None:
    url, state = guarded
    empty = PolicySource(modules={"system/authz.rego": "package system.authz\n"}, tests={}, data_json="{}")
    state.authz = _Policy(empty, "data.system.authz.allow")

    response = post(url, {"input": BASE}, token=TOKEN)

    assert response.status_code == 500
    assert response.json() == {"code": "internal_error", "message": "authorization policy missing or undefined"}


# --- behind a prefixing proxy -------------------------------------------------------------------


def test_behind_a_prefix_nothing_is_served_outside_it() -> None:
    with running_opa(path_prefix="/opa") as (url, _):
        outside = requests.post(url.removesuffix("/opa") + DECISION, json={"input": BASE}, timeout=5)
        inside = post(url, {"input": BASE})

    assert (outside.status_code, outside.text) == (404, "404 page not found\n")
    assert inside.status_code == 200


def test_an_unknown_route_is_go_s_404(opa: tuple[str, OpaState]) -> None:
    url, _ = opa

    response = requests.get(url + "/v2/data", timeout=5)

    assert (response.status_code, response.text) == (404, "404 page not found\n")


def test_the_engine_turns_every_refusal_of_the_double_into_policy_unavailable(guarded: tuple[str, OpaState]) -> None:
    url, state = guarded

    with pytest.raises(PolicyUnavailable):
        OpaEngine(url, timeout=ANSWER_DEADLINE_SECONDS).decide(BASE)
    state.mode = "undefined"
    with pytest.raises(PolicyUnavailable):
        OpaEngine(url, timeout=ANSWER_DEADLINE_SECONDS, token=TOKEN).decide(BASE)
