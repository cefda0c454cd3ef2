-- The append-only log. See docs/eventstore.md for why positions look the way they do.
-- A stream's category is the part of its id before the first '-', computed on read.
CREATE TABLE chronicle_events (
    position     bigint      PRIMARY KEY,
    event_id     uuid        NOT NULL UNIQUE,
    stream_id    text        NOT NULL,
    version      bigint      NOT NULL CHECK (version >= 1),
    type         text        NOT NULL,
    data         jsonb       NOT NULL,
    metadata     jsonb       NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT chronicle_events_stream_version UNIQUE (stream_id, version)
);

-- No index on the category: every index costs each append, and readers that filter by
-- category scan the log in position order anyway (they follow it from a checkpoint).
