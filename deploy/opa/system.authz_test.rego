# Tests of the sidecar's API policy, run by `python manage.py policy_test` (regopy and regorus)
# or `opa test -v deploy/opa`. They call allowed(input, token) with the input OPA's authorizer
# builds (v1/server/authorizer/authorizer.go@v1.9.0): no test overrides input or opa.runtime.
package system.authz_test

import rego.v1

import data.system.authz

token := "service-token-of-forty-characters-000000"

decision_call := {
	"path": ["v1", "data", "gateway", "authz", "decision"],
	"method": "POST",
	"params": {"provenance": ["true"]},
	"headers": {"Authorization": [concat(" ", ["Bearer", token])], "Content-Type": ["application/json"]},
	"body": {"input": {"action": "participant.read"}},
	"identity": token,
}

health_probe := {"path": ["health"], "method": "GET", "params": {"bundles": [""]}, "headers": {}}

calling(method, path) := object.union(object.remove(decision_call, ["method", "path"]), {"method": method, "path": path})

as_identity(inp, identity) := object.union(object.remove(inp, ["identity"]), {"identity": identity})

without_identity(inp) := object.remove(inp, ["identity"])

test_the_service_asks_for_its_decision_with_its_token if {
	authz.allowed(decision_call, token)
}

test_the_service_token_opens_nothing_else if {
	every call in [
		calling("GET", ["v1", "data", "gateway", "authz", "decision"]),
		calling("POST", ["v1", "data", "gateway", "authz"]),
		calling("POST", ["v1", "data"]),
		calling("POST", ["v1", "data", "system", "authz", "allow"]),
		calling("PUT", ["v1", "policies", "gateway", "authz.rego"]),
		calling("GET", ["v1", "policies"]),
		calling("PUT", ["v1", "data", "gateway", "matrix"]),
		calling("POST", ["v1", "query"]),
		calling("POST", ["v1", "compile"]),
		calling("GET", ["v1", "config"]),
		calling("GET", ["v1", "status"]),
		calling("POST", [""]),
		calling("GET", ["health", "live"]),
		calling("POST", ["v0", "data", "gateway", "authz", "decision"]),
	] {
		authz.allowed(call, token) == false
	}
}

test_without_the_token_only_the_health_endpoint_answers if {
	not authz.allowed(without_identity(decision_call), token)
	not authz.allowed(as_identity(decision_call, "someone-elses-token-of-forty-characters0"), token)
	not authz.allowed(as_identity(decision_call, ""), token)
	authz.allowed(health_probe, token)
	authz.allowed(as_identity(health_probe, "anything"), token)
}

test_the_probe_may_read_health_only if {
	not authz.allowed(object.union(object.remove(health_probe, ["method"]), {"method": "POST"}), token)
	not authz.allowed(object.union(object.remove(health_probe, ["path"]), {"path": ["health", "ready"]}), token)
	not authz.allowed(object.union(object.remove(health_probe, ["path"]), {"path": ["health", ""]}), token)
}

test_a_missing_short_or_non_text_token_in_the_environment_opens_nothing if {
	every expected in [null, "", "short-token", 42, ["service-token-of-forty-characters-000000"]] {
		authz.allowed(as_identity(decision_call, expected), expected) == false
	}
	not authz.allowed(without_identity(decision_call), null)
}

test_the_token_must_be_the_whole_identity if {
	not authz.allowed(as_identity(decision_call, concat("", [token, "x"])), token)
	not authz.allowed(as_identity(decision_call, substring(token, 0, 39)), token)
}
