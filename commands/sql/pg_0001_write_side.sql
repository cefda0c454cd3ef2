-- Idempotency keys of the command API (see docs/commands.md, "Idempotency").
-- One row per (actor, key): the request's fingerprint, the claim that derives the
-- event ids, and, once the first request has finished, its response.
CREATE TABLE chronicle_idempotency (
    key_hash      text             PRIMARY KEY,
    fingerprint   text             NOT NULL,
    claim_id      uuid             NOT NULL,
    request_path  text             NOT NULL,
    seen_version  bigint           NOT NULL,
    status        int,
    response      text,
    created_at    double precision NOT NULL,
    expires_at    double precision NOT NULL,
    lease_until   double precision NOT NULL
);

CREATE INDEX chronicle_idempotency_expires ON chronicle_idempotency (expires_at);

-- Snapshots of aggregate state, so loading a long stream reads only its tail.
CREATE TABLE chronicle_snapshots (
    stream_id      text        PRIMARY KEY,
    version        bigint      NOT NULL CHECK (version >= 1),
    state_version  int         NOT NULL,
    state          text        NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
