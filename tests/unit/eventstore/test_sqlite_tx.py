"""A SQLite write transaction whose COMMIT fails leaves the connection usable."""

from __future__ import annotations

import sqlite3

import pytest

from eventstore.sqlite_tx import immediate


@pytest.fixture
def conn() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    # A deferred constraint is checked by COMMIT, which then fails and, in SQLite,
    # leaves the transaction open.
    conn.execute(
        "CREATE TABLE child (parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
    )
    return conn


def test_a_failed_commit_is_rolled_back_and_the_next_transaction_runs(
    conn: sqlite3.Connection,
) -> None:
    with pytest.raises(sqlite3.IntegrityError), immediate(conn):
        conn.execute("INSERT INTO child VALUES (7)")
    assert not conn.in_transaction

    with immediate(conn):
        conn.execute("INSERT INTO parent VALUES (7)")
        conn.execute("INSERT INTO child VALUES (7)")
    assert conn.execute("SELECT count(*) FROM child").fetchone() == (1,)


def test_a_failing_body_is_rolled_back(conn: sqlite3.Connection) -> None:
    def insert_then_fail() -> None:
        with immediate(conn):
            conn.execute("INSERT INTO parent VALUES (1)")
            conn.execute("INSERT INTO parent VALUES (1)")

    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        insert_then_fail()
    assert not conn.in_transaction
    assert conn.execute("SELECT count(*) FROM parent").fetchone() == (0,)
