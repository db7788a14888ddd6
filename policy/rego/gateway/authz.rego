# METADATA
# title: Access decisions of the compliance gateway
# description: |
#   One decision per request: data.gateway.authz.decision. Every rule the
#   decision reads has a default, so an undefined value can only ever deny.
package gateway.authz

import rego.v1

matrix := data.gateway.matrix

# --- facts about the request ---------------------------------------------------

default community_active := false

community_active if input.community.status == "active"

default member := false

member if {
	count(input.subject.roles) > 0
	input.subject.community == input.community.slug
}

default role_grants_action := false

role_grants_action if {
	some role in input.subject.roles
	input.action in matrix.roles[role]
}

# A role that grants the action without redaction (any non-redacted role).
default unredacted_role := false

unredacted_role if {
	some role in input.subject.roles
	input.action in matrix.roles[role]
	not role in matrix.redacted_roles
}

default elevated := false

elevated if input.action in matrix.elevated_actions

default mfa_fresh := false

mfa_fresh if {
	is_number(input.subject.mfa_age_seconds)
	input.subject.mfa_age_seconds >= 0
	input.subject.mfa_age_seconds <= matrix.mfa_max_age_seconds
}

default phi_action := false

phi_action if input.action in matrix.phi_actions

default single_resource := false

single_resource if is_string(input.resource.id)

default consent_bound := false

consent_bound if input.resource.type in matrix.consent_bound_resources

default consent_covers_purpose := false

consent_covers_purpose if input.purpose in input.resource.attributes.consent_scopes

default break_glass_active := false

break_glass_active if {
	grant := input.context.break_glass
	grant.active == true
	grant.subject == input.subject.id
	grant.expires_at > input.context.now
}

default break_glass_read := false

break_glass_read if {
	break_glass_active
	input.action in matrix.break_glass_actions
}

default redacted := false

redacted if {
	phi_action
	not unredacted_role
	not break_glass_read
}

# PHI leaves unredacted: the consent rule applies.
default reveals_phi := false

reveals_phi if {
	phi_action
	not redacted
}

# --- why a request is refused --------------------------------------------------

deny contains "community_suspended" if not community_active

deny contains "not_a_member" if not member

deny contains "action_not_permitted" if {
	member
	not role_grants_action
	not break_glass_read
}

deny contains "mfa_required" if {
	elevated
	not mfa_fresh
}

deny contains "consent_not_covering_purpose" if {
	reveals_phi
	consent_bound
	single_resource
	not consent_covers_purpose
	not break_glass_read
}

# --- the decision ----------------------------------------------------------------

default allow := false

allow if {
	community_active
	member
	count(deny) == 0
}

default grant_reason := "role_grants_action"

grant_reason := "break_glass" if {
	break_glass_read
	not role_grants_action
}

default reasons := ["policy_error"]

reasons := [grant_reason] if allow

reasons := sort(deny) if not allow

default redact := []

redact := matrix.phi_fields[input.resource.type] if redacted

default audit_level := "normal"

audit_level := "heightened" if break_glass_read

audit_level := "heightened" if {
	elevated
	not break_glass_read
}

# Row-level conditions for list reads, which the selector turns into a filter.
default conditions := {}

conditions := {"consent_scope": input.purpose} if {
	reveals_phi
	consent_bound
	not single_resource
	not break_glass_read
}

default require_mfa := false

require_mfa if {
	elevated
	not mfa_fresh
}

default decision := {"allow": false, "reasons": ["policy_error"], "obligations": {"redact": [], "require_mfa": false, "audit": "normal", "conditions": {}}}

decision := {
	"allow": allow,
	"reasons": reasons,
	"obligations": {
		"redact": redact,
		"require_mfa": require_mfa,
		"audit": audit_level,
		"conditions": conditions,
	},
}
