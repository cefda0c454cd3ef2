"""One write transaction on a SQLite connection in autocommit mode.

SQLite keeps a transaction open when its ``COMMIT`` fails (a deferred constraint, a
busy or full database): a connection that only rolls back when the body fails would
start its next ``BEGIN`` inside that transaction and fail from then on, every write of
the process with it. :func:`immediate` rolls back whatever left the transaction open.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` (the database's write lock, taken now) … ``COMMIT``; on any
    failure, the body's or the commit's, the transaction is rolled back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
