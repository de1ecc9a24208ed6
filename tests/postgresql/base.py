"""PostgreSQL for the tests: Django's backend, but a test that commits (``transaction=True``,
most of the suite: it talks to live workers and servers) is cleaned up with ``DELETE`` rather
than ``TRUNCATE``. Afterwards the tables are just as empty. On tables of a few rows, TRUNCATE's
fixed cost (new files for every table and index) made each clean-up about 85 ms here; DELETE
takes about 5 ms. The constraints are deferred (Django's foreign keys are deferrable).

The tables are emptied parents first: a row a live worker inserts during the clean-up (a
picture derived from a job after its test ended) then references a row this transaction has
deleted, so its insert waits for the clean-up and fails in the worker, where it is harmless.
Children first, the late row would outlive the DELETE of its table and break the clean-up's
commit (and the next test's setup with it)."""

from functools import cache

from django.db.backends.postgresql import base, creation, operations


class DatabaseOperations(operations.DatabaseOperations):
    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if not tables or reset_sequences or allow_cascade:  # Django's own for those cases
            return super().sql_flush(
                style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
            )
        rank = _parents_first(self.connection.settings_dict["NAME"], self.connection)
        ordered = sorted(tables, key=lambda table: rank.get(table, 0))
        return ["SET CONSTRAINTS ALL DEFERRED;"] + [
            f"{style.SQL_KEYWORD('DELETE FROM')} {style.SQL_FIELD(self.quote_name(table))};"
            for table in ordered
        ]


@cache
def _parents_first(database: str, connection) -> dict[str, int]:
    """Each table's depth in the foreign-key graph (0: references nothing), once a database."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT child.relname, parent.relname FROM pg_constraint c
               JOIN pg_class child ON child.oid = c.conrelid
               JOIN pg_class parent ON parent.oid = c.confrelid
               WHERE c.contype = 'f'"""
        )
        parents: dict[str, set[str]] = {}
        for child, parent in cursor.fetchall():
            if child != parent:
                parents.setdefault(child, set()).add(parent)
    depth: dict[str, int] = {}

    def of(table: str, seen: frozenset = frozenset()) -> int:
        if table not in depth:
            above = [of(p, seen | {table}) for p in parents.get(table, ()) if p not in seen]
            depth[table] = 1 + max(above, default=-1)
        return depth[table]

    for table in parents:
        of(table)
    return depth


class DatabaseCreation(creation.DatabaseCreation):
    def _destroy_test_db(self, test_database_name, verbosity):
        """The test database dropped even while a connection to it is open: one a thread of
        the test process still holds from its pool (an executor thread of an in-process
        websocket test), or a stack's process still ending. Without ``FORCE`` the drop
        failed with a warning and left the database behind."""
        self.connection.close_pool()
        with self._nodb_cursor() as cursor:
            name = self.connection.ops.quote_name(test_database_name)
            cursor.execute(f"DROP DATABASE {name} WITH (FORCE)")


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
    creation_class = DatabaseCreation
