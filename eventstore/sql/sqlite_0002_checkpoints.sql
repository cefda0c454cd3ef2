-- Durable positions of the log's followers (relay, process managers, workers).
CREATE TABLE chronicle_checkpoints (
    name       TEXT    PRIMARY KEY,
    position   INTEGER NOT NULL CHECK (position >= 0),
    updated_at TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP
);
