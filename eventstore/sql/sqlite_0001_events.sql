-- The append-only log. SQLite serialises writers (BEGIN IMMEDIATE), so an
-- AUTOINCREMENT position is assigned in commit order and never reused.
CREATE TABLE chronicle_events (
    position     INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT    NOT NULL UNIQUE,
    stream_id    TEXT    NOT NULL,
    category     TEXT    GENERATED ALWAYS AS (
                     substr(stream_id, 1, instr(stream_id || '-', '-') - 1)) STORED,
    version      INTEGER NOT NULL CHECK (version >= 1),
    type         TEXT    NOT NULL,
    data         TEXT    NOT NULL,
    metadata     TEXT    NOT NULL,
    recorded_at  TEXT    NOT NULL,
    CONSTRAINT chronicle_events_stream_version UNIQUE (stream_id, version)
);

CREATE INDEX chronicle_events_category_position ON chronicle_events (category, position);
