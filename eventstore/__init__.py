"""The append-only event log: interface, PostgreSQL and SQLite backends, and the relay."""
