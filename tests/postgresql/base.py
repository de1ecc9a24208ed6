"""PostgreSQL for the tests: Django's backend, but a test that commits (``transaction=True``,
most of the suite: it talks to live workers and servers) is cleaned up with ``DELETE`` rather
than ``TRUNCATE``. Afterwards the tables are just as empty. On tables of a few rows, TRUNCATE's
fixed cost (new files for every table and index) made each clean-up about 85 ms here; DELETE
takes about 5 ms. The constraints are deferred (Django's foreign keys are deferrable), so the
order of the tables does not matter. Only the test settings name this backend."""

from django.db.backends.postgresql import base, operations


class DatabaseOperations(operations.DatabaseOperations):
    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if not tables or reset_sequences or allow_cascade:  # Django's own for those cases
            return super().sql_flush(
                style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
            )
        return ["SET CONSTRAINTS ALL DEFERRED;"] + [
            f"{style.SQL_KEYWORD('DELETE FROM')} {style.SQL_FIELD(self.quote_name(table))};"
            for table in tables
        ]


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
