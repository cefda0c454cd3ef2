"""The read side's schema migrations (component ``projections``).

The SQL is the DDL of :mod:`projections.tables` for each backend; a test checks the
two agree, so the table definitions and the migrations never drift apart.
"""

from __future__ import annotations

from eventstore.migrations import Migration, sql_resource


def migrations() -> list[Migration]:
    """Every schema step of the read models, oldest first."""
    return [
        Migration(
            component="projections",
            version=1,
            name="read models and checkpoints",
            postgres=sql_resource("projections.sql", "pg_0001_read_models.sql"),
            sqlite=sql_resource("projections.sql", "sqlite_0001_read_models.sql"),
        ),
    ]
