"""The audit log's guards no longer rest on session settings any connection can set.

Before this, the one DELETE of chained events (a purge) and of staged events
(chaining) was let through when the transaction had set ``audit.purge_through``
or ``audit.chaining``: any role could set them (security review, finding 3).
Now:

* a DELETE passes the triggers only when it runs as the tables' owner (the
  migrations' role) inside one of the two functions below, owned by it and
  ``SECURITY DEFINER`` with a fixed ``search_path``, which check their own
  preconditions (each marks what it may delete in a transaction-local
  setting, and the triggers honour the mark only for the owner: the service's
  role setting it gains nothing);
* ``audit_consume_staged(ids)`` deletes a staged row only when the chain holds
  an entry made from it with the same content, so the service's role cannot
  drop a staged event (the record of a read just committed) without it being
  in the chain;
* ``audit_purge_through(cut, retention_days)`` deletes events through ``cut``
  only when ``cut`` is older than the retention (never less than six years)
  by the database's clock, and a signed checkpoint sits at the cut;
* a staged row must be exactly what staging writes (the fields, their types
  and lengths), and its ``staged_at`` (the time of the request that staged it)
  is the database's clock whatever the writer sent; the chained entry carries
  that ``staged_at`` (checked when the staged row is consumed) and its own
  ``chained_at``, both the database's, and no entry may be dated after it was
  chained (a row dated 2099 is refused).

Created in each community's schema and the public one; the functions' search
path is pinned to the schema they were created in.
"""

from django.db import migrations, models
from django.db.models.functions import Now

TEXT_LIMITS = {
    "actor_id": 64,
    "action": 64,
    "resource_type": 64,
    "resource_id": 64,
    "purpose": 32,
    "decision_id": 64,
    "policy_revision": 200,
    "request_id": 64,
    "client_ip": 64,
    "user_agent": 256,
}
LISTS = {"actor_roles": 64, "participant_pseudonyms": 32, "reasons": 1000}
KEYS = sorted([*TEXT_LIMITS, *LISTS, "outcome", "http_status", "break_glass", "occurred_at"])
_TEXT_CHECKS = "\n".join(
    f"    IF jsonb_typeof(e -> '{name}') IS DISTINCT FROM 'string' OR length(e ->> '{name}') > {limit} THEN "
    f"RAISE EXCEPTION 'staged audit entry: {name}' USING ERRCODE = 'check_violation'; END IF;"
    for name, limit in TEXT_LIMITS.items()
)
_LIST_CHECKS = "\n".join(
    f"    IF jsonb_typeof(e -> '{name}') IS DISTINCT FROM 'array' OR EXISTS (SELECT 1 FROM jsonb_array_elements(e -> "  # nosec B608 - constants
    f"'{name}') item WHERE jsonb_typeof(item) <> 'string' OR length(item #>> '{{}}') > {limit}) THEN "
    f"RAISE EXCEPTION 'staged audit entry: {name}' USING ERRCODE = 'check_violation'; END IF;"
    for name, limit in LISTS.items()
)
_SAME_CONTENT = ", ".join(
    f"'{name}', {'to_jsonb(e.' + name + ')' if name == 'participant_pseudonyms' else 'e.' + name}"
    for name in sorted([*TEXT_LIMITS, *LISTS, "outcome", "http_status", "break_glass"])
)

FORWARD_TEMPLATE = """
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger AS $$
BEGIN
    -- Nested IFs: PL/pgSQL does not promise to stop at the first false operand of AND.
    -- Only the owner's functions delete, and only what they marked: a mark set by anyone else counts for nothing.
    IF TG_OP = 'DELETE' AND current_user = (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = TG_RELID) THEN
        IF TG_TABLE_NAME = 'audit_auditevent' AND coalesce(current_setting('audit.purging', true), '') <> '' THEN
            IF OLD.sequence <= current_setting('audit.purging', true)::bigint THEN
                RETURN OLD;
            END IF;
        END IF;
        IF TG_TABLE_NAME = 'audit_pendingevent' AND current_setting('audit.consuming', true) = 'on' THEN
            RETURN NULL;  -- a statement-level trigger: NULL lets the statement go on
        END IF;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION audit_stage_check() RETURNS trigger AS $$
DECLARE
    e jsonb := NEW.entry::jsonb;  -- not JSON (or a lone surrogate, or NUL): refused here
BEGIN
    IF jsonb_typeof(e) IS DISTINCT FROM 'object'
       OR (SELECT array_agg(key ORDER BY key COLLATE "C") FROM jsonb_object_keys(e) key) <> ARRAY@KEYS@::text[] THEN
        RAISE EXCEPTION 'not a staged audit entry' USING ERRCODE = 'check_violation';
    END IF;
@TEXT_CHECKS@
@LIST_CHECKS@
    IF (e ->> 'outcome') NOT IN ('allow', 'deny') OR jsonb_typeof(e -> 'break_glass') <> 'boolean'
       OR jsonb_typeof(e -> 'http_status') <> 'number' THEN
        RAISE EXCEPTION 'staged audit entry: outcome, break_glass or http_status' USING ERRCODE = 'check_violation';
    END IF;
    IF (e ->> 'http_status')::numeric NOT BETWEEN 0 AND 32767 OR (e ->> 'http_status')::numeric % 1 <> 0 THEN
        RAISE EXCEPTION 'staged audit entry: http_status' USING ERRCODE = 'check_violation';
    END IF;
    IF jsonb_typeof(e -> 'occurred_at') NOT IN ('null', 'string') THEN
        RAISE EXCEPTION 'staged audit entry: occurred_at' USING ERRCODE = 'check_violation';
    END IF;
    NEW.staged_at := clock_timestamp();  -- the database's clock as it stages, whatever the writer sent
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_pendingevent_check
    BEFORE INSERT ON audit_pendingevent
    FOR EACH ROW EXECUTE FUNCTION audit_stage_check();

CREATE OR REPLACE FUNCTION audit_stamp_chained() RETURNS trigger AS $$
BEGIN
    NEW.chained_at := clock_timestamp();
    -- Five minutes for clocks that step back (the verifiers allow the same).
    IF NEW.occurred_at > NEW.chained_at + interval '5 minutes' THEN
        RAISE EXCEPTION 'an audit event may not be dated after it was chained' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_auditevent_stamp
    BEFORE INSERT ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_stamp_chained();

CREATE OR REPLACE FUNCTION audit_consume_staged(ids bigint[]) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    consumed integer;
BEGIN
    PERFORM set_config('audit.consuming', 'on', true);
    -- Both sides narrowed to the batch by index (else the planner may scan the whole log per batch).
    DELETE FROM audit_pendingevent p
     USING audit_auditevent e
     WHERE p.id = ANY(ids)
       AND e.staged_id = ANY(ids)
       AND e.staged_id = p.id
       AND e.staged_at IS NOT DISTINCT FROM p.staged_at
       AND (p.entry::jsonb - 'occurred_at') = jsonb_build_object(@SAME_CONTENT@);
    GET DIAGNOSTICS consumed = ROW_COUNT;
    PERFORM set_config('audit.consuming', '', true);
    RETURN consumed;
END;
$$;

CREATE OR REPLACE FUNCTION audit_purge_through(cut bigint, retention_days integer) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    cut_time timestamptz;
    removed bigint;
BEGIN
    IF retention_days < 2196 THEN
        RAISE EXCEPTION 'a retention under six years (2196 days) is not allowed' USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT occurred_at INTO cut_time FROM audit_auditevent WHERE sequence = cut;
    IF cut_time IS NULL THEN
        RAISE EXCEPTION 'no audit event #%', cut USING ERRCODE = 'no_data_found';
    END IF;
    IF cut_time >= now() - make_interval(days => retention_days) THEN
        RAISE EXCEPTION 'audit event #% is inside the retention period', cut USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM audit_checkpoint WHERE sequence = cut) THEN
        RAISE EXCEPTION 'no signed checkpoint at #%', cut USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM set_config('audit.purging', cut::text, true);
    DELETE FROM audit_auditevent WHERE sequence <= cut;
    GET DIAGNOSTICS removed = ROW_COUNT;
    PERFORM set_config('audit.purging', '', true);
    RETURN removed;
END;
$$;

REVOKE ALL ON FUNCTION audit_consume_staged(bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION audit_purge_through(bigint, integer) FROM PUBLIC;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION audit_consume_staged(bigint[]) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION audit_purge_through(bigint, integer) SET search_path = %I, pg_temp',
                   current_schema());
END;
$$;
"""

# Placeholders, not str.format: the SQL is full of braces and dollar quotes. Every value is this module's own.
FORWARD = (
    FORWARD_TEMPLATE.replace("@KEYS@", repr(KEYS))
    .replace("@TEXT_CHECKS@", _TEXT_CHECKS)
    .replace("@LIST_CHECKS@", _LIST_CHECKS)
    .replace("@SAME_CONTENT@", _SAME_CONTENT)
)

BACKWARD = """
DROP FUNCTION IF EXISTS audit_purge_through(bigint, integer);
DROP FUNCTION IF EXISTS audit_consume_staged(bigint[]);
DROP TRIGGER IF EXISTS audit_auditevent_stamp ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_stamp_chained();
DROP TRIGGER IF EXISTS audit_pendingevent_check ON audit_pendingevent;
DROP FUNCTION IF EXISTS audit_stage_check();
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger AS $$
DECLARE
    purge_through text := current_setting('audit.purge_through', true);
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_auditevent' AND coalesce(purge_through, '') <> '' THEN
        IF OLD.sequence <= purge_through::bigint THEN
            RETURN OLD;
        END IF;
    END IF;
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_pendingevent'
       AND coalesce(current_setting('audit.chaining', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0005_pending_events")]

    operations = [
        migrations.AddField(
            model_name="auditevent", name="staged_id", field=models.BigIntegerField(blank=True, null=True)
        ),
        migrations.AddField(
            model_name="auditevent", name="chained_at", field=models.DateTimeField(blank=True, null=True)
        ),
        migrations.AddField(
            model_name="auditevent", name="staged_at", field=models.DateTimeField(blank=True, null=True)
        ),
        migrations.AddField(model_name="pendingevent", name="staged_at", field=models.DateTimeField(db_default=Now())),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["staged_id"], name="audit_event_staged"),
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
