-- Idempotency keys of the command API (see docs/commands.md, "Idempotency").
CREATE TABLE chronicle_idempotency (
    key_hash      TEXT    PRIMARY KEY,
    fingerprint   TEXT    NOT NULL,
    claim_id      TEXT    NOT NULL,
    request_path  TEXT    NOT NULL,
    seen_version  INTEGER NOT NULL,
    status        INTEGER,
    response      TEXT,
    created_at    REAL    NOT NULL,
    expires_at    REAL    NOT NULL,
    lease_until   REAL    NOT NULL
);

CREATE INDEX chronicle_idempotency_expires ON chronicle_idempotency (expires_at);

-- Snapshots of aggregate state, so loading a long stream reads only its tail.
CREATE TABLE chronicle_snapshots (
    stream_id      TEXT    PRIMARY KEY,
    version        INTEGER NOT NULL CHECK (version >= 1),
    state_version  INTEGER NOT NULL,
    state          TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP
);
