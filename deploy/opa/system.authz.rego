# METADATA
# title: Who may use the OPA sidecar's API
# description: |
#   Run with --authentication=token --authorization=basic, OPA asks
#   data.system.authz.allow before it serves any request, with an input of its own
#   (v1/server/authorizer/authorizer.go@v1.9.0, makeInput): path (the URL path's
#   segments), method, params, headers, body (POST /v1/data only) and identity (the
#   token of an "Authorization: Bearer" header, v1/server/identifier/token.go@v1.9.0).
#   The token expected comes from OPA's environment (GATEWAY_OPA_TOKEN, through
#   opa.runtime()), so no secret is in this file or in the policy bundle. This file
#   is loaded beside the bundle, not inside it: the bundle's roots are ["gateway"],
#   so no policy change can change who may ask.
package system.authz

import rego.v1

# The service's production check refuses a shorter OPA_TOKEN; so does this policy.
minimum_token_length := 32

default allow := false

# The entry point reads OPA's environment, which the Rego tests cannot set under the embedded
# engine (`with input as` ends its process).
# Without the variable the token is null, which matches nothing; the probe still answers.
# coverage: tests/policy/test_opa_double.py asks it through the OPA double, token and all.
allow if allowed(input, object.get(opa.runtime(), ["env", "GATEWAY_OPA_TOKEN"], null))

default allowed(_, _) := false

# The readiness probe: GET /health (with ?bundles or not) needs no token. It tells only
# whether OPA can evaluate and its bundle is active.
allowed(inp, _) if {
	inp.method == "GET"
	inp.path == ["health"]
}

# The service: with its token, the one decision it asks for, and nothing else: no policy,
# data, query, config or status API.
allowed(inp, token) if {
	token_matches(inp, token)
	inp.method == "POST"
	inp.path == ["v1", "data", "gateway", "authz", "decision"]
}

default token_matches(_, _) := false

token_matches(inp, token) if {
	is_string(token)
	count(token) >= minimum_token_length
	inp.identity == token
}
