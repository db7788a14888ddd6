"""django-tenants' backend with the community's schema set per transaction, never left on a connection.

django-tenants sets ``search_path`` with a session-level ``SET`` once per
connection (``TENANT_LIMIT_SET_CALLS``) and trusts it from then on. Behind a
pooler in transaction mode (PgBouncer's ``pool_mode = transaction``) a client
connection is a different server connection from one transaction to the next:
the path one community's transaction set is still there for the next client's,
and a client that trusts the path it set earlier runs its statement wherever
the previous client left the server connection. That is a query in another
community's schema.

Here the path is a transaction's own (``set_config('search_path', ..., true)``,
which is ``SET LOCAL``), issued before the first statement of every
transaction, and again after a schema switch or a rollback to a savepoint,
both of which change or revert it. A statement in a community's schema outside
any transaction (autocommit) runs in a transaction of its own with the path.
Nothing sets the path at session level, so a pooled server connection carries
no community's path between clients; a statement in the public schema outside
a transaction runs under the role's default path (``public``: see
docs/operations/database.md, pooling).

Prepared statements are safe with this: PostgreSQL plans a prepared statement
again when ``search_path`` differs from the one it was planned under. Whether
a pooler lets a client use them at all is the pooler's business (PgBouncer
before 1.21 does not in transaction mode: ``DATABASE_TRANSACTION_POOLING``
switches psycopg's off, and Django's server-side cursors).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django_tenants.postgresql_backend import base as tenants_base
from django_tenants.utils import get_public_schema_name, quote_schema_name

if TYPE_CHECKING:  # a backend imports no models when it loads
    from django_tenants.models import TenantMixin

Execute = Callable[[str, Any, bool, dict[str, Any]], Any]
# What PostgreSQL takes only as a transaction's first statement; it reads no table, so the path can follow it.
_FIRST_IN_A_TRANSACTION = ("SET TRANSACTION",)


def _must_come_first(sql: str) -> bool:
    return sql.lstrip()[:15].upper().startswith(_FIRST_IN_A_TRANSACTION)


class DatabaseWrapper(tenants_base.DatabaseWrapper):
    """The PostgreSQL backend of django-tenants, with the search path set per transaction."""

    set_path_sql = "SELECT set_config('search_path', %s, true)"  # true: local to the transaction (SET LOCAL)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._path = ""  # the quoted search path of the schema selected (set_tenant)
        self._transaction = 0  # moved on whenever a transaction ends or the connection changes
        self._path_set_in: int | None = None  # the transaction whose path is the selected one
        super().__init__(*args, **kwargs)
        self.execute_wrappers.append(self._in_schema)

    # Selecting a schema (django-tenants' entry point) only records it; the next statement sets it.
    def set_tenant(self, tenant: TenantMixin, include_public: bool = True) -> None:
        """Select ``tenant``'s schema for the statements that follow."""
        super().set_tenant(tenant, include_public)
        self._path = ", ".join(quote_schema_name(schema) for schema in self._get_cursor_search_paths())
        self._path_set_in = None

    def _handle_search_path(self, cursor: Any = None) -> None:
        """No session-level ``SET`` when a cursor is taken: :meth:`_in_schema` sets it per transaction."""

    # Whatever ends a transaction or replaces the connection leaves no path behind.
    def _commit(self) -> None:
        self._transaction_ended()
        super()._commit()

    def _rollback(self) -> None:
        self._transaction_ended()
        super()._rollback()

    def _set_autocommit(self, autocommit: bool) -> None:
        self._transaction_ended()
        super()._set_autocommit(autocommit)

    def _close(self) -> None:
        self._transaction_ended()
        super()._close()

    def savepoint_rollback(self, sid: str) -> None:
        """Roll back to a savepoint: a path set after it is reverted with it, so set it again."""
        try:
            super().savepoint_rollback(sid)
        finally:
            self._path_set_in = None

    def _transaction_ended(self) -> None:
        self._transaction += 1
        self._path_set_in = None

    def _in_schema(self, execute: Execute, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        """Run one statement in the selected schema (an execute wrapper: every statement passes here)."""
        if self._setting_search_path:  # the set_config statement itself
            return execute(sql, params, many, context)
        if not self.get_autocommit():
            if self._path_set_in != self._transaction and not _must_come_first(sql):
                self._set_path()
            return execute(sql, params, many, context)
        if self.schema_name == get_public_schema_name():
            return execute(sql, params, many, context)
        return self._in_own_transaction(execute, sql, params, many, context)

    def _set_path(self) -> None:
        self._send_path()
        self._path_set_in = self._transaction

    def _send_path(self) -> None:
        self._setting_search_path = True
        try:
            with self.cursor() as cursor:  # through Django's wrapper: counted like any statement
                cursor.execute(self.set_path_sql, [self._path])
        finally:
            self._setting_search_path = False

    def _in_own_transaction(self, execute: Execute, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        """A community's statement outside a transaction: one of its own, with the path (BEGIN, path, it, COMMIT)."""
        raw = self.connection
        with raw.transaction():  # psycopg's own: Django's autocommit state is left as it is
            self._send_path()
            return execute(sql, params, many, context)
