-- Durable positions of the log's followers (relay, process managers, workers).
CREATE TABLE chronicle_checkpoints (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL CHECK (position >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
