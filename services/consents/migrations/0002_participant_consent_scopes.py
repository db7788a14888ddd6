"""The database keeps each participant's ``consent_scopes`` in step with their consents.

It computes the column on every write of a participant (whatever the
application sent) and recomputes it on every write of a consent, so it cannot
drift from them. Databases migrated before this migration existed have these
triggers already (they came with ``participants`` 0003): they are replaced by
the same definitions, so every database ends the same.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION participant_consent_scopes() RETURNS trigger AS $$
BEGIN
    NEW.consent_scopes := coalesce(
        (SELECT array_agg(DISTINCT scope ORDER BY scope)
           FROM consents_consent AS consent, unnest(consent.scopes) AS scope
          WHERE consent.participant_id = NEW.id AND consent.withdrawn_at IS NULL),
        '{}');
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS participant_consent_scopes ON participants_participant;
CREATE TRIGGER participant_consent_scopes
    BEFORE INSERT OR UPDATE ON participants_participant
    FOR EACH ROW EXECUTE FUNCTION participant_consent_scopes();

CREATE OR REPLACE FUNCTION consent_refresh_participant() RETURNS trigger AS $$
BEGIN
    -- The participant's own trigger recomputes the column.
    IF TG_OP <> 'INSERT' THEN
        UPDATE participants_participant SET consent_scopes = consent_scopes WHERE id = OLD.participant_id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        UPDATE participants_participant SET consent_scopes = consent_scopes WHERE id = NEW.participant_id;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS consent_refresh_participant ON consents_consent;
CREATE TRIGGER consent_refresh_participant
    AFTER INSERT OR UPDATE OR DELETE ON consents_consent
    FOR EACH ROW EXECUTE FUNCTION consent_refresh_participant();

UPDATE participants_participant SET consent_scopes = consent_scopes;
"""

BACKWARD = """
DROP TRIGGER IF EXISTS consent_refresh_participant ON consents_consent;
DROP FUNCTION IF EXISTS consent_refresh_participant();
DROP TRIGGER IF EXISTS participant_consent_scopes ON participants_participant;
DROP FUNCTION IF EXISTS participant_consent_scopes();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("consents", "0001_initial"),
        ("participants", "0003_consent_scopes_column"),
    ]

    operations = [
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
