# Tests of the decision: one or more per rule of the policy. The policy is written as
# functions of the input document, so tests call authz.evaluate(document) directly.
# Run with `python manage.py policy_test` (regopy and regorus) or `opa test -v policy/rego`.
package gateway.authz_test

import rego.v1

import data.gateway.authz

now := 1800000000

# A coordinator of alpha reading one participant whose consent covers research use.
base := {
	"subject": {"id": "u-1", "community": "alpha", "roles": ["coordinator"], "amr": ["pwd"], "mfa_age_seconds": null},
	"community": {"slug": "alpha", "status": "active"},
	"action": "participant.read",
	"resource": {"type": "participant", "id": "p-1", "attributes": {"consent_scopes": ["research_use"]}},
	"purpose": "research_use",
	"context": {"now": now, "request_id": "r-1", "client_ip": "192.0.2.1", "break_glass": null},
}

# object.union merges nested objects recursively in OPA (v1/topdown/object.go@v1.9.0:177) and
# regorus, and only the top level in rego-cpp (the embedded engine). So no test lets it merge
# anything: with_fields drops the members it replaces before the union, and every engine builds
# the same document.
with_fields(document, fields) := object.union(object.remove(document, object.keys(fields)), fields)

with_subject(fields) := with_fields(base, {"subject": with_fields(base.subject, fields)})

as_role(role) := with_subject({"roles": [role]})

acting(document, action) := with_fields(document, {"action": action})

fresh_mfa(document) := with_fields(document, {"subject": with_fields(document.subject, {"amr": ["pwd", "otp", "mfa"], "mfa_age_seconds": 60})})

stale_mfa(document) := with_fields(document, {"subject": with_fields(document.subject, {"amr": ["pwd", "otp", "mfa"], "mfa_age_seconds": 901})})

decide(document) := authz.evaluate(document)

# --- the baseline and the community ------------------------------------------------

test_coordinator_reads_a_consenting_participant_in_full if {
	d := decide(base)
	d.allow
	d.reasons == ["role_grants_action"]
	d.obligations.redact == []
	d.obligations.audit == "normal"
	not d.obligations.require_mfa
}

test_suspended_community_denies_everything if {
	d := decide(with_fields(base, {"community": {"slug": "alpha", "status": "suspended"}}))
	not d.allow
	"community_suspended" in d.reasons
}

test_offboarded_community_denies_everything if {
	d := decide(with_fields(base, {"community": {"slug": "alpha", "status": "offboarded"}}))
	not d.allow
	d.reasons == ["community_suspended"]
}

test_suspension_wins_over_every_grant if {
	d := decide(fresh_mfa(with_fields(as_role("owner"), {"action": "key.rotate", "community": {"slug": "alpha", "status": "suspended"}})))
	not d.allow
}

# --- membership ------------------------------------------------------------------------

test_a_subject_without_roles_is_not_a_member if {
	d := decide(with_subject({"roles": []}))
	not d.allow
	d.reasons == ["not_a_member"]
}

test_a_subject_of_another_community_is_not_a_member if {
	d := decide(with_subject({"community": "beta"}))
	not d.allow
	d.reasons == ["not_a_member"]
}

test_a_missing_subject_is_denied if {
	d := decide(object.remove(base, ["subject"]))
	not d.allow
}

test_garbage_input_is_denied if {
	d := decide({"hello": "world"})
	not d.allow
}

# --- the role matrix ---------------------------------------------------------------------

test_researcher_sees_participants_redacted if {
	d := decide(as_role("researcher"))
	d.allow
	"mrn" in d.obligations.redact
	"given_name" in d.obligations.redact
	count(d.obligations.redact) == 13
}

test_researcher_sees_observations_with_phi_redacted if {
	d := decide(with_fields(as_role("researcher"), {"action": "observation.read", "resource": {"type": "observation", "id": "o-1", "attributes": {"consent_scopes": ["research_use"]}}}))
	d.allow
	d.obligations.redact == ["effective_date", "note", "display", "value_text", "created_at"]
}

test_researcher_cannot_enrol_participants if {
	d := decide(acting(as_role("researcher"), "participant.create"))
	not d.allow
	d.reasons == ["action_not_permitted"]
}

test_researcher_cannot_read_consents if {
	d := decide(acting(as_role("researcher"), "consent.list"))
	not d.allow
}

test_coordinator_manages_participants_and_consents if {
	every action in ["participant.create", "participant.update", "consent.create", "consent.withdraw"] {
		decide(acting(base, action)).allow
	}
}

test_coordinator_cannot_determine_exports if {
	d := decide(fresh_mfa(acting(base, "export.determine")))
	not d.allow
	d.reasons == ["action_not_permitted"]
}

test_principal_investigator_sees_all_study_data_unredacted if {
	d := decide(as_role("principal_investigator"))
	d.allow
	d.obligations.redact == []
}

test_principal_investigator_requests_exports_with_a_fresh_second_factor if {
	d := decide(fresh_mfa(acting(as_role("principal_investigator"), "export.request")))
	d.allow
	d.obligations.audit == "heightened"
}

test_no_role_holds_the_retired_export_approve_action if {
	every role in ["principal_investigator", "coordinator", "researcher", "compliance_officer", "owner"] {
		decide(fresh_mfa(acting(as_role(role), "export.approve"))).allow == false
	}
}

test_auditor_reads_audit_events_only if {
	decide(acting(as_role("auditor"), "audit.read")).allow
	not decide(as_role("auditor")).allow
	not decide(fresh_mfa(acting(as_role("auditor"), "audit.export"))).allow
}

test_compliance_officer_reads_and_exports_audit_and_disclosures if {
	officer := fresh_mfa(as_role("compliance_officer"))
	every action in ["audit.read", "audit.export", "disclosure.read", "disclosure.export"] {
		decide(with_fields(acting(officer, action), {"resource": {"type": "audit", "id": null, "attributes": {}}})).allow
	}
	not decide(as_role("compliance_officer")).allow
}

test_the_break_glass_review_file_is_a_compliance_officers_with_a_fresh_second_factor if {
	queue := {"resource": {"type": "break_glass", "id": null, "attributes": {}}}
	officer := with_fields(acting(as_role("compliance_officer"), "break_glass.export"), queue)
	decide(officer).reasons == ["mfa_required"]
	decide(fresh_mfa(officer)).allow
	every role in ["owner", "principal_investigator", "coordinator", "researcher", "auditor"] {
		decide(fresh_mfa(with_fields(acting(as_role(role), "break_glass.export"), queue))).allow == false
	}
}

test_owner_manages_memberships_but_reads_no_participants if {
	decide(fresh_mfa(acting(as_role("owner"), "membership.manage"))).allow
	not decide(as_role("owner")).allow
}

test_every_role_may_read_itself if {
	every role in ["owner", "principal_investigator", "coordinator", "researcher", "auditor", "compliance_officer"] {
		decide(with_fields(acting(as_role(role), "self.read"), {"resource": {"type": "self", "id": "u-1", "attributes": {}}})).allow
	}
}

test_roles_add_up if {
	d := decide(with_subject({"roles": ["researcher", "principal_investigator"]}))
	d.allow
	d.obligations.redact == []
}

test_an_unknown_action_is_denied if {
	d := decide(acting(base, "participant.delete_everything"))
	not d.allow
	d.reasons == ["action_not_permitted"]
}

# --- consent ---------------------------------------------------------------------------------

test_phi_needs_consent_covering_the_purpose if {
	d := decide(with_fields(base, {"purpose": "genomic"}))
	not d.allow
	d.reasons == ["consent_not_covering_purpose"]
}

test_withdrawn_consent_denies_phi if {
	d := decide(with_fields(base, {"resource": {"type": "participant", "id": "p-1", "attributes": {"consent_scopes": []}}}))
	not d.allow
	d.reasons == ["consent_not_covering_purpose"]
}

test_unknown_consent_denies_phi if {
	d := decide(with_fields(base, {"resource": {"type": "participant", "id": "p-1", "attributes": {}}}))
	not d.allow
}

# Security review finding 6: a withdrawn participant leaves the redacted view too.
test_redacted_views_need_consent_too if {
	d := decide(with_fields(as_role("researcher"), {"resource": {"type": "participant", "id": "p-1", "attributes": {"consent_scopes": []}}}))
	not d.allow
	d.reasons == ["consent_not_covering_purpose"]
}

test_lists_carry_the_consent_condition_as_an_obligation if {
	d := decide(with_fields(base, {"action": "participant.list", "resource": {"type": "participant", "id": null, "attributes": {}}}))
	d.allow
	d.obligations.conditions == {"consent_scope": "research_use"}
}

test_redacted_lists_carry_the_consent_condition_too if {
	d := decide(with_fields(as_role("researcher"), {"action": "participant.list", "resource": {"type": "participant", "id": null, "attributes": {}}}))
	d.allow
	d.obligations.conditions == {"consent_scope": "research_use"}
}

# --- second factor for elevated actions --------------------------------------------------------

test_elevated_actions_need_a_second_factor if {
	every action in ["membership.manage", "key.rotate"] {
		d := decide(acting(as_role("owner"), action))
		d.allow == false
		d.reasons == ["mfa_required"]
		d.obligations.require_mfa
	}
}

test_a_second_factor_older_than_15_minutes_is_not_enough if {
	d := decide(stale_mfa(acting(as_role("owner"), "key.rotate")))
	not d.allow
	d.reasons == ["mfa_required"]
}

test_a_fresh_second_factor_allows_elevated_actions if {
	d := decide(fresh_mfa(acting(as_role("owner"), "key.rotate")))
	d.allow
	d.obligations.audit == "heightened"
	not d.obligations.require_mfa
}

test_break_glass_activation_is_elevated if {
	not decide(acting(base, "break_glass.activate")).allow
	decide(fresh_mfa(acting(base, "break_glass.activate"))).allow
}

test_asking_for_a_dataset_export_is_elevated if {
	pi := as_role("principal_investigator")
	document := with_fields(acting(pi, "export.request"), {"resource": {"type": "study", "id": "s-1", "attributes": {}}})
	decide(document).reasons == ["mfa_required"]
	decide(fresh_mfa(document)).allow
}

test_phi_export_download_is_elevated if {
	pi := as_role("principal_investigator")
	d := decide(with_fields(acting(pi, "export.download"), {"resource": {"type": "export", "id": "e-1", "attributes": {}}}))
	d.reasons == ["mfa_required"]
}

# --- break-glass -------------------------------------------------------------------------------

grant := {"active": true, "subject": "u-1", "community": "alpha", "expires_at": now + 600, "scope": "participant", "scope_id": "p-1"}

with_grant(document, g) := with_fields(document, {"context": with_fields(document.context, {"break_glass": g})})

test_break_glass_allows_reads_without_consent_with_heightened_audit if {
	d := decide(with_grant(with_fields(base, {"purpose": "emergency"}), grant))
	d.allow
	d.reasons == ["break_glass"]
	d.obligations.audit == "heightened"
	d.obligations.redact == []
}

test_a_role_that_may_not_activate_break_glass_cannot_use_a_grant if {
	d := decide(with_grant(as_role("researcher"), grant))
	d.allow
	d.reasons == ["role_grants_action"]
	count(d.obligations.redact) == 13
	not decide(with_grant(with_fields(as_role("auditor"), {"purpose": "emergency"}), grant)).allow
}

test_break_glass_grants_no_action_the_role_lacks if {
	d := decide(with_grant(acting(base, "export.determine"), grant))
	not d.allow
	"action_not_permitted" in d.reasons
}

test_break_glass_does_not_allow_writes if {
	d := decide(with_grant(acting(as_role("researcher"), "participant.update"), grant))
	not d.allow
}

test_an_expired_grant_does_nothing if {
	d := decide(with_grant(with_fields(base, {"purpose": "emergency"}), with_fields(grant, {"expires_at": now - 1})))
	not d.allow
}

test_someone_elses_grant_does_nothing if {
	d := decide(with_grant(with_fields(base, {"purpose": "emergency"}), with_fields(grant, {"subject": "u-2"})))
	not d.allow
}

test_break_glass_does_not_open_a_suspended_community if {
	d := decide(with_grant(with_fields(base, {"community": {"slug": "alpha", "status": "suspended"}}), grant))
	not d.allow
}

test_an_unknown_kind_of_resource_is_redacted_whole if {
	d := decide(with_fields(as_role("researcher"), {"resource": {"type": "mystery", "id": "m-1", "attributes": {}}}))
	d.allow
	d.obligations.redact == ["*"]
}

test_an_inactive_grant_does_nothing if {
	not decide(with_grant(with_fields(base, {"purpose": "emergency"}), with_fields(grant, {"active": false}))).allow
}

test_a_grant_of_another_community_does_nothing if {
	not decide(with_grant(with_fields(base, {"purpose": "emergency"}), with_fields(grant, {"community": "beta"}))).allow
}

test_a_grant_whose_expiry_is_not_a_number_does_nothing if {
	not decide(with_grant(with_fields(base, {"purpose": "emergency"}), with_fields(grant, {"expires_at": "never"}))).allow
}

test_a_grant_without_a_clock_does_nothing if {
	document := with_grant(with_fields(base, {"purpose": "emergency"}), grant)
	not decide(with_fields(document, {"context": with_fields(document.context, {"now": null})})).allow
}

test_a_participant_grant_opens_that_participant_only if {
	emergency := with_fields(base, {"purpose": "emergency"})
	not decide(with_grant(with_fields(emergency, {"resource": {"type": "participant", "id": "p-2", "attributes": {}}}), grant)).allow
	observation := {"type": "observation", "id": "o-1", "attributes": {"participant": "p-1"}}
	decide(with_grant(with_fields(acting(emergency, "observation.read"), {"resource": observation}), grant)).allow
	other := {"type": "observation", "id": "o-2", "attributes": {"participant": "p-2"}}
	not decide(with_grant(with_fields(acting(emergency, "observation.read"), {"resource": other}), grant)).allow
}

test_a_grant_of_unknown_scope_opens_nothing if {
	emergency := with_fields(base, {"purpose": "emergency"})
	not decide(with_grant(emergency, with_fields(grant, {"scope": "community"}))).allow
}

test_break_glass_lists_carry_no_consent_condition if {
	document := with_fields(base, {"action": "participant.list", "resource": {"type": "participant", "id": null, "attributes": {"study": "s-1"}}})
	d := decide(with_grant(document, with_fields(grant, {"scope": "study", "scope_id": "s-1"})))
	d.allow
	d.obligations.conditions == {}
	d.obligations.audit == "heightened"
}

test_single_reads_carry_no_consent_condition if {
	decide(base).obligations.conditions == {}
}

test_a_negative_or_textual_second_factor_age_is_not_fresh if {
	not decide(with_fields(acting(as_role("owner"), "key.rotate"), {"subject": with_fields(as_role("owner").subject, {"mfa_age_seconds": -5})})).allow
	not decide(with_fields(acting(as_role("owner"), "key.rotate"), {"subject": with_fields(as_role("owner").subject, {"mfa_age_seconds": "60"})})).allow
}

test_malformed_input_is_denied_as_such if {
	every document in [
		with_fields(base, {"resource": {"id": "p-1", "attributes": {}}}),
		with_fields(base, {"purpose": 7}),
		with_fields(base, {"resource": {"type": "participant", "id": 12, "attributes": {}}}),
		with_fields(base, {"action": ["participant.read"]}),
		with_subject({"roles": "coordinator"}),
	] {
		d := decide(document)
		d.allow == false
		"malformed_input" in d.reasons
	}
}

# Roles that are not a list of strings grant nothing, in every engine: no rule counts or iterates
# them (regorus raises an error on `some role in "text"` and `count(null)`, OPA leaves them undefined).
# An object whose values are roles is no list: iterating it would grant the role.
test_roles_that_are_not_a_list_of_strings_are_malformed_and_grant_nothing if {
	every roles in ["coordinator", null, 7, {"coordinator": true}, {"x": "coordinator"}, [1], ["coordinator", null]] {
		document := with_subject({"roles": roles})
		d := decide(document)
		d.allow == false
		"malformed_input" in d.reasons
		"not_a_member" in d.reasons
	}
	authz.roles(with_subject({"roles": {"x": "coordinator"}})) == []
}

test_consent_that_is_not_a_list_covers_nothing if {
	every scopes in ["research_use", null, {"research_use": true}, {"x": "research_use"}] {
		d := decide(with_fields(base, {"resource": {"type": "participant", "id": "p-1", "attributes": {"consent_scopes": scopes}}}))
		d.allow == false
		d.reasons == ["consent_not_covering_purpose"]
	}
}

# Without its data the policy grants nothing. That the entry point then says policy_error for
# an input is tested from Python (tests/policy/test_engines.py): `with input as` ends the
# embedded engine's process, so no Rego test here sets input.
test_without_its_data_the_policy_grants_nothing if {
	d := decide(base) with data.gateway.matrix as {}
	d.allow == false
	d.obligations.redact == []
}


# No test sets input, so here it is undefined, as in a Data API request without "input".
test_without_an_input_document_the_policy_cannot_decide if {
	authz.decision.reasons == ["policy_error"]
}

test_a_role_that_does_not_grant_the_action_does_not_lift_redaction if {
	d := decide(with_subject({"roles": ["researcher", "auditor"]}))
	d.allow
	count(d.obligations.redact) == 13
}

test_actions_on_resources_without_phi_redact_nothing if {
	d := decide(with_fields(acting(as_role("researcher"), "study.read"), {"resource": {"type": "study", "id": "s-1", "attributes": {}}}))
	d.allow
	d.obligations.redact == []
}

# Security review finding 1: a write outside the PHI list echoes no PHI field.
test_writes_outside_the_phi_list_echo_no_phi if {
	d := decide(with_fields(acting(base, "participant.create"), {"resource": {"type": "participant", "id": null, "attributes": {}}}))
	d.allow
	d.obligations.redact == data.gateway.matrix.phi_fields.participant
	o := decide(with_fields(acting(base, "observation.create"), {"resource": {"type": "observation", "id": null, "attributes": {}}}))
	o.obligations.redact == data.gateway.matrix.phi_fields.observation
}

# Security review finding 1: an update echoes the record, so it is decided as a PHI read.
test_an_update_is_a_phi_read_under_the_consent_rule if {
	covering := decide(acting(base, "participant.update"))
	covering.allow
	covering.obligations.redact == []
	withdrawn := decide(with_fields(acting(base, "participant.update"), {"resource": {"type": "participant", "id": "p-1", "attributes": {"consent_scopes": []}}}))
	not withdrawn.allow
	withdrawn.reasons == ["consent_not_covering_purpose"]
}

# Security review finding 2: a client cannot declare itself exempt from the accounting.
test_an_exempt_purpose_reaches_no_phi_the_policy_does_not_grant_it_for if {
	every action in object.keys(data.gateway.matrix.phi_actions) {
		d := decide(with_fields(acting(with_subject({"roles": ["principal_investigator", "coordinator"]}), action), {"purpose": "operations"}))
		d.allow == false
		"purpose_not_permitted" in d.reasons
	}
}

test_an_exempt_purpose_is_allowed_where_the_policy_grants_it if {
	grants := {"operations": {"coordinator": ["participant.read"]}}
	document := with_fields(base, {"purpose": "operations", "resource": {"type": "participant", "id": "p-1", "attributes": {"consent_scopes": ["operations"]}}})
	d := authz.evaluate(document) with data.gateway.matrix.exempt_purposes as grants
	d.allow
	r := authz.evaluate(acting(document, "participant.list")) with data.gateway.matrix.exempt_purposes as grants
	"purpose_not_permitted" in r.reasons
}

test_an_exempt_purpose_is_free_on_actions_without_phi if {
	decide(with_fields(acting(base, "study.read"), {"purpose": "operations", "resource": {"type": "study", "id": "s-1", "attributes": {}}})).allow
}

# Security review finding 2: break-glass never under an exempt purpose.
test_break_glass_reads_are_never_under_an_exempt_purpose if {
	d := decide(with_grant(with_fields(base, {"purpose": "operations", "resource": {"type": "participant", "id": "p-1", "attributes": {}}}), grant))
	not d.allow
	"purpose_not_permitted" in d.reasons
	"consent_not_covering_purpose" in d.reasons
}

test_writes_without_phi_need_no_consent if {
	d := decide(with_fields(acting(base, "observation.create"), {"resource": {"type": "observation", "id": "o-1", "attributes": {}}}))
	d.allow
}

test_a_grant_does_not_heighten_actions_it_does_not_cover if {
	d := decide(with_grant(acting(base, "participant.update"), grant))
	d.allow
	d.obligations.audit == "normal"
	d.reasons == ["role_grants_action"]
}

test_denied_decisions_carry_no_redaction if {
	d := decide(with_fields(as_role("researcher"), {"community": {"slug": "alpha", "status": "suspended"}}))
	not d.allow
	d.obligations.redact == []
}

test_lists_of_resources_without_consent_carry_no_condition if {
	d := decide(with_fields(acting(base, "consent.list"), {"resource": {"type": "consent", "id": null, "attributes": {}}}))
	d.allow
	d.obligations.conditions == {}
}

# --- ending a grant early: its holders' roles and compliance officers, without a second factor ---

revoking(role) := with_fields(acting(as_role(role), "break_glass.revoke"), {"resource": {"type": "break_glass", "id": "g-1", "attributes": {"holder": "u-1"}}})

test_break_glass_revoke_is_granted_to_the_roles_that_hold_or_oversee_grants if {
	every role in ["coordinator", "principal_investigator", "compliance_officer"] {
		d := decide(revoking(role))
		d.allow
		d.obligations.require_mfa == false
	}
}

test_break_glass_revoke_is_refused_to_the_other_roles if {
	every role in ["researcher", "auditor", "owner"] {
		d := decide(revoking(role))
		d.allow == false
		d.reasons == ["action_not_permitted"]
	}
}

# --- emergency grants and their holder (security review finding 13) ----------------------

on_grant(document, action, holder) := with_fields(document, {"action": action, "resource": {"type": "break_glass", "id": "g-1", "attributes": {"holder": holder}}})

test_nobody_reviews_their_own_grant_whatever_roles_they_hold if {
	d := decide(on_grant(with_subject({"roles": ["coordinator", "compliance_officer"]}), "break_glass.review", "u-1"))
	not d.allow
	d.reasons == ["self_review"]
	decide(on_grant(with_subject({"roles": ["coordinator", "compliance_officer"]}), "break_glass.review", "u-2")).allow
}

test_a_grant_is_ended_early_by_its_holder_or_a_compliance_officer_only if {
	decide(on_grant(base, "break_glass.revoke", "u-1")).allow
	decide(on_grant(as_role("compliance_officer"), "break_glass.revoke", "u-2")).allow
	d := decide(on_grant(base, "break_glass.revoke", "u-2"))
	not d.allow
	d.reasons == ["not_the_holder"]
}

test_a_role_without_revoke_is_refused_for_that_alone if {
	d := decide(on_grant(as_role("researcher"), "break_glass.revoke", "u-2"))
	d.reasons == ["action_not_permitted"]
}

# --- the accounting of disclosures' workflow (45 CFR 164.528) ---------------------------------

accounting(document, action) := with_fields(acting(document, action), {"resource": {"type": "accounting", "id": null, "attributes": {}}})

test_compliance_officer_keeps_the_accounting_register if {
	officer := as_role("compliance_officer")
	decide(accounting(officer, "accounting.read")).allow
	decide(accounting(officer, "accounting.manage")).allow
	every action in ["accounting.provide", "accounting.copy"] {
		decide(accounting(fresh_mfa(officer), action)).allow
	}
}

test_an_accounting_provided_or_its_copy_needs_a_fresh_second_factor if {
	officer := as_role("compliance_officer")
	every action in ["accounting.provide", "accounting.copy"] {
		d := decide(accounting(stale_mfa(officer), action))
		d.allow == false
		d.reasons == ["mfa_required"]
		d.obligations.require_mfa
	}
}

# Counted, not nested: regopy 1.5.2 leaves an `every` inside an `every` undefined here.
test_no_other_role_touches_the_accounting_register if {
	denied := [true |
		some role in ["owner", "principal_investigator", "coordinator", "researcher", "auditor"]
		some action in ["accounting.read", "accounting.manage", "accounting.provide", "accounting.copy"]
		decide(accounting(fresh_mfa(as_role(role)), action)).allow == false
	]
	count(denied) == 20
}

# Accounting review (issue 16): recording a suspension and confirming an authorization each hide
# entries from an accounting, so each is its own action, the officer's only, with a fresh second factor.

test_compliance_officer_records_suspensions_and_confirms_authorizations_with_a_fresh_second_factor if {
	officer := as_role("compliance_officer")
	decide(accounting(fresh_mfa(officer), "accounting.suspend")).allow
	confirm := with_fields(acting(fresh_mfa(officer), "consent.confirm_authorization"), {"resource": {"type": "consent", "id": null, "attributes": {}}})
	decide(confirm).allow
}

test_a_suspension_or_a_confirmation_needs_a_fresh_second_factor if {
	officer := as_role("compliance_officer")
	suspend := decide(accounting(stale_mfa(officer), "accounting.suspend"))
	suspend.reasons == ["mfa_required"]
	confirm := decide(with_fields(acting(stale_mfa(officer), "consent.confirm_authorization"), {"resource": {"type": "consent", "id": null, "attributes": {}}}))
	confirm.reasons == ["mfa_required"]
}

test_no_other_role_records_a_suspension_or_confirms_an_authorization if {
	every role in ["owner", "principal_investigator", "coordinator", "researcher", "auditor"] {
		decide(accounting(fresh_mfa(as_role(role)), "accounting.suspend")).allow == false
		decide(with_fields(acting(fresh_mfa(as_role(role)), "consent.confirm_authorization"), {"resource": {"type": "consent", "id": null, "attributes": {}}})).allow == false
	}
}

# --- de-identified exports: the determination of no actual knowledge ---------------------------------

test_compliance_officer_determines_an_export_with_a_fresh_second_factor if {
	officer := as_role("compliance_officer")
	document := with_fields(acting(officer, "export.determine"), {"resource": {"type": "export", "id": "e-1", "attributes": {}}})
	decide(document).reasons == ["mfa_required"]
	d := decide(fresh_mfa(document))
	d.allow
	d.obligations.audit == "heightened"
	not decide(stale_mfa(document)).allow
}

test_only_compliance_officers_determine_exports if {
	every role in ["principal_investigator", "coordinator", "researcher", "auditor", "owner"] {
		document := with_fields(acting(as_role(role), "export.determine"), {"resource": {"type": "export", "id": "e-1", "attributes": {}}})
		decide(fresh_mfa(document)).allow == false
	}
}

test_compliance_officers_list_the_exports_they_determine_but_never_download_them if {
	officer := as_role("compliance_officer")
	listing := with_fields(acting(officer, "export.list"), {"resource": {"type": "export", "id": null, "attributes": {}}})
	decide(listing).allow
	download := with_fields(acting(fresh_mfa(officer), "export.download"), {"resource": {"type": "export", "id": "e-1", "attributes": {}}})
	not decide(download).allow
}

# --- boundaries and types (read-only review of part O, finding 12) -------------------------

test_a_second_factor_exactly_15_minutes_old_is_enough if {
	d := decide(with_fields(acting(as_role("owner"), "key.rotate"), {"subject": with_fields(as_role("owner").subject, {"mfa_age_seconds": 900})}))
	d.allow
}

test_a_grant_expiring_now_does_nothing if {
	d := decide(with_grant(with_fields(base, {"purpose": "emergency"}), with_fields(grant, {"expires_at": now})))
	d.allow == false
	d.reasons == ["consent_not_covering_purpose"]
}

test_a_participant_grant_opens_no_other_kind_of_resource_of_that_id if {
	other := {"type": "observation", "id": "p-1", "attributes": {}}
	d := decide(with_grant(with_fields(acting(with_fields(base, {"purpose": "emergency"}), "observation.read"), {"resource": other}), grant))
	d.allow == false
}

test_a_study_grant_opens_no_participant_of_that_id if {
	observation := {"type": "observation", "id": "o-1", "attributes": {"participant": "p-1"}}
	document := with_fields(acting(with_fields(base, {"purpose": "emergency"}), "observation.read"), {"resource": observation})
	d := decide(with_grant(document, with_fields(grant, {"scope": "study"})))
	d.allow == false
}

test_a_participant_grant_opens_no_study_of_that_id if {
	resource := {"type": "participant", "id": "p-2", "attributes": {"study": "p-1"}}
	d := decide(with_grant(with_fields(base, {"purpose": "emergency", "resource": resource}), grant))
	d.allow == false
}

test_a_grant_without_a_scope_id_opens_no_list if {
	listing := with_fields(base, {"action": "participant.list", "purpose": "emergency", "resource": {"type": "participant", "id": null, "attributes": {}}})
	d := decide(with_grant(listing, with_fields(grant, {"scope_id": null})))
	d.allow
	d.reasons == ["role_grants_action"]
	d.obligations.conditions == {"consent_scope": "emergency"}
}

test_a_null_holder_is_nobodys_grant if {
	subject := with_fields(base.subject, {"id": null})
	d := decide(on_grant(with_fields(base, {"subject": subject}), "break_glass.revoke", null))
	d.allow == false
	d.reasons == ["not_the_holder"]
}

test_a_role_without_the_action_is_refused_for_that_alone_under_an_exempt_purpose if {
	d := decide(with_fields(as_role("auditor"), {"purpose": "operations"}))
	d.reasons == ["action_not_permitted"]
}
