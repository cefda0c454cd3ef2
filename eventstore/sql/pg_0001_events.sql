-- The append-only log. See docs/eventstore.md for why positions look the way they do.
CREATE TABLE chronicle_events (
    position     bigint      PRIMARY KEY,
    event_id     uuid        NOT NULL UNIQUE,
    stream_id    text        NOT NULL,
    category     text        GENERATED ALWAYS AS (split_part(stream_id, '-', 1)) STORED,
    version      bigint      NOT NULL CHECK (version >= 1),
    type         text        NOT NULL,
    data         jsonb       NOT NULL,
    metadata     jsonb       NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT chronicle_events_stream_version UNIQUE (stream_id, version)
);

CREATE INDEX chronicle_events_category_position ON chronicle_events (category, position);

-- Appends one batch to one stream in a single round trip.
--
-- Ordering: a position is (top-level transaction id << 16) + index within the
-- transaction. Readers only read positions below (snapshot xmin << 16): every
-- transaction with an id below the snapshot's xmin has ended, so nothing can ever
-- appear below that fence again, and everything above it is left for a later read.
-- Positions therefore come out strictly increasing and never skipped, with no lock
-- shared between writers. Transactions with a lower id that commit later are simply
-- waited for: a long-open transaction delays readers, it never makes them skip.
--
-- Raises SQLSTATE CH001 (event id reused with other content), CH002 (expected version
-- mismatch, DETAIL carries the current version), CH003 (transaction out of positions).
-- A unique violation on chronicle_events_stream_version means a concurrent append to
-- the same stream won; the caller translates it.
CREATE FUNCTION chronicle_append(
    p_stream_id text,
    p_expected  bigint,
    p_ids       uuid[],
    p_types     text[],
    p_data      text[],
    p_metadata  text[]
) RETURNS TABLE (
    out_event_id uuid, out_version bigint, out_position bigint,
    out_recorded_at timestamptz, out_replayed boolean
)
LANGUAGE plpgsql AS $$
DECLARE
    n          int := cardinality(p_ids);
    found_n    int;
    matching_n int;
    current_v  bigint;
    base       bigint;
    last_pos   bigint;
BEGIN
    -- Idempotency: a retried append finds its events already stored.
    SELECT count(*), count(*) FILTER (
               WHERE e.stream_id = p_stream_id AND e.type = p_types[i.ord]
                 AND e.data = p_data[i.ord]::jsonb)
      INTO found_n, matching_n
      FROM unnest(p_ids) WITH ORDINALITY AS i(id, ord)
      JOIN chronicle_events e ON e.event_id = i.id;
    IF found_n > 0 THEN
        IF found_n <> n OR matching_n <> n THEN
            RAISE EXCEPTION 'event id reused with different content'
                USING ERRCODE = 'CH001';
        END IF;
        RETURN QUERY
            SELECT e.event_id, e.version, e.position, e.recorded_at, true
              FROM chronicle_events e WHERE e.event_id = ANY (p_ids)
             ORDER BY e.position;
        RETURN;
    END IF;

    SELECT e.version INTO current_v FROM chronicle_events e
     WHERE e.stream_id = p_stream_id ORDER BY e.version DESC LIMIT 1;
    current_v := coalesce(current_v, 0);
    IF p_expected IS NOT NULL AND p_expected <> current_v THEN
        RAISE EXCEPTION 'wrong expected version' USING ERRCODE = 'CH002',
            DETAIL = current_v::text;
    END IF;

    base := pg_current_xact_id()::text::bigint << 16;
    SELECT max(e.position) INTO last_pos FROM chronicle_events e
     WHERE e.position > base AND e.position < base + 65536;
    last_pos := coalesce(last_pos, base);
    IF last_pos + n >= base + 65536 THEN
        RAISE EXCEPTION 'too many events in one transaction' USING ERRCODE = 'CH003';
    END IF;

    RETURN QUERY
        INSERT INTO chronicle_events AS e
               (position, event_id, stream_id, version, type, data, metadata)
        SELECT last_pos + i.ord, i.id, p_stream_id, current_v + i.ord,
               p_types[i.ord], p_data[i.ord]::jsonb, p_metadata[i.ord]::jsonb
          FROM unnest(p_ids) WITH ORDINALITY AS i(id, ord)
        RETURNING e.event_id, e.version, e.position, e.recorded_at, false;
END;
$$;
