"""The migrations create exactly the tables the projections define, and cursors and
settings behave."""

from __future__ import annotations

import pytest
from sqlalchemy import MetaData
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateTable

from projections import tables
from projections.api.pagination import decode_cursor, encode_cursor
from projections.errors import InvalidCursor
from projections.schema import migrations
from projections.settings import ProjectorSettings, QueriesSettings

FACTORIES = (
    tables.account_summary,
    tables.account_transactions,
    tables.transfers,
    tables.dashboard_totals,
    tables.dashboard_minutes,
)


def _normalise(sql: str) -> str:
    return " ".join(sql.replace("CREATE TABLE IF NOT EXISTS", "CREATE TABLE").split())


@pytest.mark.parametrize(
    ("dialect", "attribute"), [(postgresql.dialect(), "postgres"), (sqlite.dialect(), "sqlite")]
)
def test_migration_ddl_matches_the_table_definitions(dialect: object, attribute: str) -> None:
    metadata = MetaData()
    defined = [tables.checkpoints_table(metadata), *(f(metadata, "") for f in FACTORIES)]
    migration = _normalise(getattr(migrations()[0], attribute))
    for table in defined:
        ddl = _normalise(str(CreateTable(table).compile(dialect=dialect)))  # type: ignore[arg-type]
        assert ddl in migration


def test_cursors_round_trip_and_refuse_forgeries() -> None:
    assert decode_cursor(encode_cursor("accounts", "a7"), "accounts", str) == "a7"
    assert decode_cursor(encode_cursor("tx:a", 12), "tx:a", int) == 12
    with pytest.raises(InvalidCursor):
        decode_cursor(encode_cursor("tx:a", 12), "tx:b", int)
    with pytest.raises(InvalidCursor):
        decode_cursor("%%%", "accounts", str)


def test_settings_default_the_read_database_to_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONICLE_EVENTSTORE_URL", "sqlite:///x.db")
    monkeypatch.delenv("CHRONICLE_READ_DATABASE_URL", raising=False)
    assert QueriesSettings().read_url == "sqlite:///x.db"
    monkeypatch.setenv("CHRONICLE_READ_DATABASE_URL", "postgresql://replica/db")
    monkeypatch.setenv("CHRONICLE_CORS_ORIGINS", "http://a, http://b")
    assert QueriesSettings().read_url == "postgresql://replica/db"
    assert QueriesSettings().origins() == ["http://a", "http://b"]
    assert ProjectorSettings().http_port == 8004
    assert QueriesSettings().http_port == 8001
