-- pgenrich schema: the three tables a job writes to. This file is a template compiled into
-- the binary; db_init_schema fills in the placeholders (table names quoted as identifiers,
-- the id type copied from the source key column) and runs it in one transaction, after
-- checking that tables which already exist have an id of that same type.
-- Every statement is idempotent: applying the file again changes nothing.

-- The enrichment result: one row per source ID that a provider located. A rerun replaces
-- the row (the sink upserts on id) and fetched_at tells when it was last written.
CREATE TABLE IF NOT EXISTS {{target}} (
    id {{key_type}} PRIMARY KEY,
    label text,
    geo_label text,
    street_address text,
    city_label text,
    postal_code text,
    country_label text,
    latitude double precision,
    longitude double precision,
    provider text NOT NULL,
    fetched_at timestamptz NOT NULL DEFAULT now()
);

-- The failure ledger: one row per (job, ID) that could not be loaded, with the reason
-- (not_found, no_location, bad_response, rejected, attempts_exhausted), the last HTTP
-- status (NULL when none came back), the attempts made and the last error text.
-- first_seen keeps the first time the ID failed; updated_at moves on every new failure.
-- The row is deleted as soon as the ID loads, so an ID is either in the target table or
-- here, never both.
CREATE TABLE IF NOT EXISTS {{failures}} (
    job text NOT NULL,
    id {{key_type}} NOT NULL,
    reason text NOT NULL,
    http_status int,
    attempts int NOT NULL,
    last_error text,
    first_seen timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job, id)
);

-- The checkpoints: one row per job. position is the text form of the last source key
-- (keyset paging) or the number of rows to skip (offset paging) such that every ID up to
-- it has its outcome committed; NULL until the first one settles. paging records which of
-- the two the position means. rows_loaded and failures are running totals over all the
-- job's flushes; finished is set by the last flush of a complete run.
CREATE TABLE IF NOT EXISTS {{checkpoints}} (
    job text PRIMARY KEY,
    position text,
    paging text NOT NULL,
    rows_loaded bigint NOT NULL DEFAULT 0,
    failures bigint NOT NULL DEFAULT 0,
    finished boolean NOT NULL DEFAULT false,
    started_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
