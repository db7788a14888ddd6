# METADATA
# title: Access decisions of the compliance gateway
# description: |
#   The service asks for data.gateway.authz.decision with the request's input
#   document (policy/inputs.py describes it). Every rule is a function of that
#   document, so tests call evaluate(document) directly and no rule depends on
#   `with` overrides. Every function the decision reads has a default: an
#   undefined value can only ever deny.
package gateway.authz

import rego.v1

matrix := data.gateway.matrix

# --- is the input what the service promises to send? ----------------------------

default well_formed(_) := false

well_formed(inp) if {
	is_string(inp.action)
	is_string(inp.resource.type)
	is_string(inp.purpose)
	roles_well_formed(inp)
	resource_id_well_formed(inp)
}

default resource_id_well_formed(_) := false

resource_id_well_formed(inp) if inp.resource.id == null

resource_id_well_formed(inp) if is_string(inp.resource.id)

default roles_well_formed(_) := false

roles_well_formed(inp) if {
	is_array(inp.subject.roles)
	every role in inp.subject.roles {
		is_string(role)
	}
}

# The subject's roles when they are a list of strings, and none otherwise. Rules count and
# iterate only this: engines part ways on anything else (OPA and rego-cpp leave `some role in
# "text"` and `count(null)` undefined, regorus raises an error).
default roles(_) := []

roles(inp) := inp.subject.roles if roles_well_formed(inp)

# --- facts about the request ----------------------------------------------------

default community_active(_) := false

community_active(inp) if inp.community.status == "active"

default member(_) := false

member(inp) if {
	count(roles(inp)) > 0
	inp.subject.community == inp.community.slug
}

default role_grants_action(_) := false

role_grants_action(inp) if {
	some role in roles(inp)
	inp.action in matrix.roles[role]
}

# A role that grants the action without redaction.
default unredacted_role(_) := false

unredacted_role(inp) if {
	some role in roles(inp)
	inp.action in matrix.roles[role]
	not role in matrix.redacted_roles
}

default elevated(_) := false

elevated(inp) if inp.action in matrix.elevated_actions

default mfa_fresh(_) := false

# Only a number is an age. OPA and regorus order values across types (a string is
# greater than any number) where rego-cpp answers false: the type checks here and in
# break_glass_active keep every engine to one answer (the tests under regorus show
# the one on a grant's expiry at work).
mfa_fresh(inp) if {
	is_number(inp.subject.mfa_age_seconds)
	inp.subject.mfa_age_seconds >= 0
	inp.subject.mfa_age_seconds <= matrix.mfa_max_age_seconds
}

# The one list of actions whose response reveals PHI: reads, lists, and writes that
# echo the stored record. The consent rule, the purpose rule, redaction and the
# accounting of disclosures (security/audit/disclosures.py reads the same list)
# all follow from it.
default phi_action(_) := false

phi_action(inp) if matrix.phi_actions[inp.action]

# A purpose 164.528(a)(1) exempts from the accounting (health care operations). A
# client may state it only where the policy grants that purpose to a role for the
# action, never to reach PHI under an emergency grant.
default exempt_purpose(_) := false

exempt_purpose(inp) if matrix.exempt_purposes[inp.purpose]

default exempt_use_granted(_) := false

exempt_use_granted(inp) if {
	some role in roles(inp)
	inp.action in matrix.exempt_purposes[inp.purpose][role]
}

default single_resource(_) := false

single_resource(inp) if inp.resource.id != null

default consent_bound(_) := false

consent_bound(inp) if inp.resource.type in matrix.consent_bound_resources

default consent_covers_purpose(_) := false

# Consent is a list of scopes; anything else covers nothing.
consent_covers_purpose(inp) if {
	is_array(inp.resource.attributes.consent_scopes)
	inp.purpose in inp.resource.attributes.consent_scopes
}

# Only a role that may activate break-glass can use a grant.
default may_break_glass(_) := false

may_break_glass(inp) if {
	some role in roles(inp)
	"break_glass.activate" in matrix.roles[role]
}

# An active, unexpired grant for this subject in this community. Types are checked:
# Rego orders values across types, so an expiry that is not a number must not count.
default break_glass_active(_) := false

break_glass_active(inp) if {
	grant := inp.context.break_glass
	grant.active == true
	grant.subject == inp.subject.id
	grant.community == inp.community.slug
	is_number(grant.expires_at)
	is_number(inp.context.now)
	grant.expires_at > inp.context.now
	may_break_glass(inp)
}

# Break-glass grants no action a role lacks: it lets a permitted read through
# without consent, under heightened audit.
default break_glass_read(_) := false

break_glass_read(inp) if {
	break_glass_active(inp)
	inp.action in matrix.break_glass_actions
	grant_covers(inp)
	not exempt_purpose(inp)
}

# A grant opens what it names: one participant (and what belongs to them) or one study.
# Its scope_id must be text: a null would match a list read's resource id (null).
default grant_covers(_) := false

grant_covers(inp) if {
	is_string(inp.context.break_glass.scope_id)
	inp.context.break_glass.scope == "participant"
	inp.resource.type == "participant"
	inp.resource.id == inp.context.break_glass.scope_id
}

grant_covers(inp) if {
	is_string(inp.context.break_glass.scope_id)
	inp.context.break_glass.scope == "participant"
	inp.resource.attributes.participant == inp.context.break_glass.scope_id
}

grant_covers(inp) if {
	is_string(inp.context.break_glass.scope_id)
	inp.context.break_glass.scope == "study"
	inp.resource.attributes.study == inp.context.break_glass.scope_id
}

# An emergency grant's holder (a resource attribute of the grant routes): nobody
# reviews their own grant, whatever roles they hold, and only its holder or an
# overseer ends one early.
default holds_the_grant(_) := false

holds_the_grant(inp) if {
	is_string(inp.resource.attributes.holder)
	inp.resource.attributes.holder == inp.subject.id
}

default overseer_of_grants(_) := false

overseer_of_grants(inp) if {
	some role in roles(inp)
	role in matrix.grant_holder_rules.holder_or[inp.action]
}

default redacted(_) := false

redacted(inp) if {
	phi_action(inp)
	not unredacted_role(inp)
}

# Redacted or not, a PHI action uses the participant's data: the consent rule applies.
default reveals_phi(_) := false

reveals_phi(inp) if phi_action(inp)

# --- why a request is refused (in this order) -------------------------------------

denial_reasons := [
	"malformed_input",
	"community_suspended",
	"not_a_member",
	"action_not_permitted",
	"mfa_required",
	"self_review",
	"not_the_holder",
	"purpose_not_permitted",
	"consent_not_covering_purpose",
]

default denied_for(_, _) := false

denied_for("malformed_input", inp) if not well_formed(inp)

denied_for("community_suspended", inp) if not community_active(inp)

denied_for("not_a_member", inp) if not member(inp)

denied_for("action_not_permitted", inp) if {
	member(inp)
	not role_grants_action(inp)
}

denied_for("mfa_required", inp) if {
	elevated(inp)
	not mfa_fresh(inp)
}

# The grant, purpose and consent rules concern a caller whose role grants the action:
# anyone else is refused for that alone (and, on hidden resources, cannot tell why).
denied_for("self_review", inp) if {
	role_grants_action(inp)
	inp.action in matrix.grant_holder_rules.never_by_holder
	holds_the_grant(inp)
}

denied_for("not_the_holder", inp) if {
	role_grants_action(inp)
	matrix.grant_holder_rules.holder_or[inp.action]
	not holds_the_grant(inp)
	not overseer_of_grants(inp)
}

denied_for("purpose_not_permitted", inp) if {
	role_grants_action(inp)
	phi_action(inp)
	exempt_purpose(inp)
	not exempt_use_granted(inp)
}

denied_for("consent_not_covering_purpose", inp) if {
	role_grants_action(inp)
	reveals_phi(inp)
	consent_bound(inp)
	single_resource(inp)
	not consent_covers_purpose(inp)
	not break_glass_read(inp)
}

deny(inp) := [reason |
	some reason in denial_reasons
	denied_for(reason, inp)
]

# --- the decision ----------------------------------------------------------------

# An emergency grant in use is always named, even where a role also grants the read.
grant_reason(emergency) := "break_glass" if {
	emergency
} else := "role_grants_action"

# Redacted, but of an unknown kind of resource: everything ("*") is redacted. An
# action outside the PHI list (a write's echo, for one) carries no PHI field at all.
redact(inp, allowed) := object.get(matrix.phi_fields, inp.resource.type, ["*"]) if {
	allowed
	redacted(inp)
} else := object.get(matrix.phi_fields, inp.resource.type, []) if {
	allowed
	not phi_action(inp)
} else := []

audit_level(inp, emergency) := "heightened" if {
	emergency
} else := "heightened" if {
	elevated(inp)
} else := "normal"

# Row-level conditions for list reads, which the selector turns into a filter.
conditions(inp, emergency) := {"consent_scope": inp.purpose} if {
	not emergency
	reveals_phi(inp)
	consent_bound(inp)
	not single_resource(inp)
} else := {}

default require_mfa(_) := false

require_mfa(inp) if {
	elevated(inp)
	not mfa_fresh(inp)
}

# Each piece is computed once: the engine evaluates functions anew on every call.
evaluate(inp) := {
	"allow": allowed,
	"reasons": reasons,
	"obligations": {
		"redact": redact(inp, allowed),
		"require_mfa": require_mfa(inp),
		"audit": audit_level(inp, emergency),
		"conditions": conditions(inp, emergency),
	},
} if {
	denials := deny(inp)

	# Every denial names itself, so "no denial" is the whole allow condition.
	allowed := count(denials) == 0
	emergency := break_glass_read(inp)
	reasons := array.concat([grant_reason(emergency) | allowed], denials)
}

default decision := {"allow": false, "reasons": ["policy_error"], "obligations": {"redact": ["*"], "require_mfa": false, "audit": "normal", "conditions": {}}}

# Without its data, or without an input document (OPA's Data API takes a request with no
# "input"), the policy cannot decide: the default above says policy_error (503). The input
# is checked here because rego-cpp calls evaluate(input) even when input is undefined, where
# OPA and regorus leave the call undefined.
# coverage: the entry point is exercised by tests/policy/test_engines.py (Rego tests call evaluate).
decision := evaluate(input) if {
	is_object(input)
	is_object(matrix.roles)
}
