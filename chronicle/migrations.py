"""Every component's schema migrations, in one list for `chronicle migrate` and tests."""

from __future__ import annotations

from commands import schema as commands_schema
from eventstore import schema as eventstore_schema
from eventstore.migrations import Migration
from projections import schema as projections_schema


def all_migrations() -> list[Migration]:
    """The migrations of every component of this build."""
    return [
        *eventstore_schema.migrations(),
        *commands_schema.migrations(),
        *projections_schema.migrations(),
    ]
