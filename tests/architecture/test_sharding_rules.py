"""What Citus schema-based sharding forbids, checked in the catalog of a migrated database and in the source.

A community's schema moves whole between nodes (``citus_schema_move``); the
public schema stays on the coordinator. So nothing may tie one schema to
another: no foreign key across schemas (Citus refuses them, but for keys to
reference tables), no view or function of one schema reading another, no
sequence used by a table of another schema, no trigger running another
schema's function; every community table needs a replica identity (a logical
move refuses a table without one); and nothing may assume one node: advisory
locks are per node, so a lock must be about one community (then it is taken
where that community's sessions run), and LISTEN/NOTIFY, dblink and foreign
data wrappers are not used at all. See docs/operations/sharding.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.db import connection

from tenants.models import Community

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("config", "core", "gateway", "operations", "policy", "security", "services", "tenants", "vault")
ADVISORY = re.compile(r"pg_(?:try_)?advisory_(?:xact_)?lock(?:_shared)?\s*\(([^\n]*)", re.IGNORECASE)
SESSION_ADVISORY = re.compile(r"pg_(?:try_)?advisory_lock(?:_shared)?\s*\(", re.IGNORECASE)
SINGLE_NODE = re.compile(r"\b(LISTEN|NOTIFY|pg_notify|dblink|postgres_fdw|CREATE\s+SERVER|CREATE\s+FOREIGN)\b")

CROSS_SCHEMA_FOREIGN_KEYS = """
SELECT c.conname, n1.nspname || '.' || r1.relname, n2.nspname || '.' || r2.relname
  FROM pg_constraint c
  JOIN pg_class r1 ON r1.oid = c.conrelid JOIN pg_namespace n1 ON n1.oid = r1.relnamespace
  JOIN pg_class r2 ON r2.oid = c.confrelid JOIN pg_namespace n2 ON n2.oid = r2.relnamespace
 WHERE c.contype = 'f' AND n1.nspname <> n2.nspname AND (n1.nspname = ANY(%(schemas)s) OR n2.nspname = ANY(%(schemas)s))
"""
# Relations a distributed schema cannot hold or that tie it to another: views, materialized views, foreign and
# partitioned tables, inheritance.
UNSUPPORTED_RELATIONS = """
SELECT n.nspname || '.' || r.relname, r.relkind
  FROM pg_class r JOIN pg_namespace n ON n.oid = r.relnamespace
 WHERE n.nspname = ANY(%(schemas)s) AND (r.relkind IN ('v', 'm', 'f', 'p') OR r.relispartition
       OR EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = r.oid OR i.inhparent = r.oid))
"""
WITHOUT_REPLICA_IDENTITY = """
SELECT n.nspname || '.' || r.relname
  FROM pg_class r JOIN pg_namespace n ON n.oid = r.relnamespace
 WHERE n.nspname = ANY(%(schemas)s) AND r.relkind = 'r' AND r.relreplident IN ('d', 'n')
   AND (r.relreplident = 'n' OR NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = r.oid AND i.indisprimary))
"""
# A column whose default draws from a sequence of another schema, or a sequence owned by another schema's table.
FOREIGN_SEQUENCES = """
SELECT tn.nspname || '.' || t.relname || '.' || a.attname, sn.nspname || '.' || s.relname
  FROM pg_depend d
  JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S' JOIN pg_namespace sn ON sn.oid = s.relnamespace
  JOIN pg_attrdef ad ON ad.oid = d.objid AND d.classid = 'pg_attrdef'::regclass
  JOIN pg_class t ON t.oid = ad.adrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace
  JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
 WHERE tn.nspname <> sn.nspname AND (tn.nspname = ANY(%(schemas)s) OR sn.nspname = ANY(%(schemas)s))
UNION ALL
SELECT tn.nspname || '.' || t.relname, sn.nspname || '.' || s.relname
  FROM pg_depend d
  JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' JOIN pg_namespace sn ON sn.oid = s.relnamespace
  JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace
 WHERE d.deptype IN ('a', 'i') AND tn.nspname <> sn.nspname
   AND (tn.nspname = ANY(%(schemas)s) OR sn.nspname = ANY(%(schemas)s))
"""
# Sequences a community's rows draw from that are narrower than bigint (Citus makes per-node ranges of bigints).
NARROW_SEQUENCES = """
SELECT n.nspname || '.' || c.relname, format_type(s.seqtypid, NULL)
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = ANY(%(schemas)s) AND s.seqtypid <> 'int8'::regtype
"""
FOREIGN_TRIGGER_FUNCTIONS = """
SELECT tn.nspname || '.' || r.relname || ' ' || t.tgname, pn.nspname || '.' || p.proname
  FROM pg_trigger t JOIN pg_class r ON r.oid = t.tgrelid JOIN pg_namespace tn ON tn.oid = r.relnamespace
  JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace pn ON pn.oid = p.pronamespace
 WHERE NOT t.tgisinternal AND tn.nspname <> pn.nspname
   AND (tn.nspname = ANY(%(schemas)s) OR pn.nspname = ANY(%(schemas)s))
"""
FUNCTIONS = """
SELECT n.nspname, p.proname, p.prosrc, coalesce(array_to_string(p.proconfig, ' '), '')
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = ANY(%(schemas)s) OR n.nspname = 'public'
"""


def _rows(query: str, schemas: list[str]) -> list[tuple[str, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(query, {"schemas": schemas})
        return [tuple(str(value) for value in row) for row in cursor.fetchall()]


@pytest.fixture
def schemas(alpha: Community, beta: Community) -> list[str]:
    """The communities' schemas (two of them, migrated as every community is)."""
    return [alpha.schema_name, beta.schema_name]


@pytest.mark.parametrize(
    "query",
    [
        pytest.param(CROSS_SCHEMA_FOREIGN_KEYS, id="no foreign key into, out of or between community schemas"),
        pytest.param(UNSUPPORTED_RELATIONS, id="no view, foreign or partitioned table, or inheritance"),
        pytest.param(WITHOUT_REPLICA_IDENTITY, id="every community table has a primary key (replica identity)"),
        pytest.param(FOREIGN_SEQUENCES, id="no sequence shared with or owned by another schema"),
        pytest.param(NARROW_SEQUENCES, id="every sequence of a community is bigint"),
        pytest.param(FOREIGN_TRIGGER_FUNCTIONS, id="every trigger runs a function of its own schema"),
    ],
)
def test_the_catalog_holds_nothing_that_ties_a_community_schema_to_another(query: str, schemas: list[str]) -> None:
    assert _rows(query, schemas) == []


def test_no_function_of_a_schema_names_another_schema(schemas: list[str]) -> None:
    others = {schema: [other for other in [*schemas, "public"] if other != schema] for schema in [*schemas, "public"]}
    naming = [
        f"{schema}.{name}"
        for schema, name, body, config in _rows(FUNCTIONS, schemas)
        if any(re.search(rf'(?<![\w$])"?{re.escape(other)}"?\.', f"{body} {config}") for other in others[schema])
    ]
    assert naming == []


# A table named in a string ('audit_auditevent' compared with TG_TABLE_NAME) or a comment is not a table read.
_LITERALS_AND_COMMENTS = re.compile(r"'(?:[^']|'')*'|--[^\n]*")
TABLES = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = ANY(%(schemas)s) AND c.relkind = 'r'
"""


def functions_reading_tables_by_the_caller_s_path(schemas: list[str]) -> list[str]:
    """Functions of a community that name one of its tables without their search_path pinned to that schema.

    Unpinned, the names resolve on the caller's path: another community's tables, or none on a node that holds
    only this schema.
    """
    tables: dict[str, set[str]] = {}
    for schema, table in _rows(TABLES, schemas):
        tables.setdefault(schema, set()).add(table)
    code = {
        (schema, name): _LITERALS_AND_COMMENTS.sub(" ", body) for schema, name, body, _ in _rows(FUNCTIONS, schemas)
    }
    return [
        f"{schema}.{name}"
        for schema, name, _, config in _rows(FUNCTIONS, schemas)
        if schema in tables
        and any(re.search(rf"\b{re.escape(table)}\b", code[schema, name]) for table in tables[schema])
        and f"search_path={schema}, pg_temp" not in config
    ]


def test_every_function_of_a_community_that_reads_its_tables_has_its_own_schema_as_search_path(
    schemas: list[str],
) -> None:
    assert functions_reading_tables_by_the_caller_s_path(schemas) == []


def test_the_search_path_check_sees_a_function_left_on_the_caller_s_path(schemas: list[str]) -> None:
    with connection.cursor() as cursor:
        cursor.execute("ALTER FUNCTION alpha.participant_consent_scopes() RESET search_path")

    assert functions_reading_tables_by_the_caller_s_path(schemas) == ["alpha.participant_consent_scopes"]


def test_the_catalog_checks_see_a_foreign_key_from_public_into_a_community(schemas: list[str]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE public.sharding_probe (study uuid REFERENCES alpha.studies_study (id), seq serial)"
        )
    assert _rows(CROSS_SCHEMA_FOREIGN_KEYS, schemas) != []
    with connection.cursor() as cursor:
        cursor.execute("CREATE SEQUENCE alpha.sharding_probe_shared AS integer")
        cursor.execute("ALTER TABLE public.sharding_probe ALTER seq SET DEFAULT nextval('alpha.sharding_probe_shared')")
        cursor.execute("CREATE VIEW beta.sharding_probe AS SELECT 1 AS one")
    assert _rows(FOREIGN_SEQUENCES, schemas) != []
    assert _rows(NARROW_SEQUENCES, schemas) == [("alpha.sharding_probe_shared", "integer")]
    assert _rows(UNSUPPORTED_RELATIONS, schemas) == [("beta.sharding_probe", "v")]


def _sources() -> list[tuple[str, str]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found.append((str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")))
    return found


def advisory_locks_not_about_one_community(text: str) -> list[str]:
    """The advisory locks in ``text`` whose key does not name the current schema, and every session-level one."""
    unscoped = [match.group(0)[:120] for match in ADVISORY.finditer(text) if "current_schema()" not in match.group(1)]
    return unscoped + [match.group(0) for match in SESSION_ADVISORY.finditer(text)]


def test_every_advisory_lock_is_transaction_scoped_and_about_the_current_community() -> None:
    found = {path: locks for path, text in _sources() if (locks := advisory_locks_not_about_one_community(text))}
    assert found == {}


def test_the_advisory_lock_check_sees_a_lock_shared_by_every_community() -> None:
    assert advisory_locks_not_about_one_community("SELECT pg_advisory_xact_lock(hashtext(%s))") != []
    assert advisory_locks_not_about_one_community("SELECT pg_advisory_lock(hashtext('x:' || current_schema()))")
    assert not advisory_locks_not_about_one_community(
        "SELECT pg_advisory_xact_lock(hashtext('a:' || current_schema()))"
    )


def test_nothing_needs_one_node_listen_notify_dblink_or_a_foreign_server() -> None:
    found = {path: SINGLE_NODE.findall(text) for path, text in _sources() if SINGLE_NODE.search(text)}
    assert found == {}
