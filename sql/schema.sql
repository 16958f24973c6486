-- pgenrich schema: the tables a job writes to, and the fence of --shared workers. This file
-- is a template compiled into the binary; db_init_schema fills in the placeholders (table
-- names quoted as identifiers, the id type copied from the source key column) and runs it in one transaction, after
-- checking that tables which already exist have an id of that same type.
-- Every statement is idempotent: applying the file again changes nothing. Databases made
-- by an older version of this file are migrated in place (see the ledger's last_seen).

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
-- status (NULL when none came back), the attempts made and a short excerpt of the last
-- error (the sink caps it at 500 characters).
-- first_seen keeps the first time the ID failed; last_seen moves on every new failure.
-- updated_at is the older name of last_seen: the sink sets both to the same time, so that
-- queries written against earlier versions (and API.md) keep working; read last_seen.
-- The row is deleted as soon as the ID loads, so an ID is either in the target table or
-- here, never both. `pgenrich retry-failed` pages this table on its primary key.
CREATE TABLE IF NOT EXISTS {{failures}} (
    job text NOT NULL,
    id {{key_type}} NOT NULL,
    reason text NOT NULL,
    http_status int,
    attempts int NOT NULL,
    last_error text,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job, id)
);

-- Migration: ledgers made before last_seen existed get it, filled from updated_at. This
-- runs only when the column is missing. A plain ALTER TABLE ... ADD COLUMN IF NOT EXISTS
-- would be shorter, but it takes an ACCESS EXCLUSIVE lock on the ledger at every start of
-- every worker, which would queue the flushes of the jobs already running behind any long
-- reader of the table. The ledger's name reaches the block through a transaction-local
-- setting, so no name is ever spliced into the dollar-quoted body.
SELECT pg_catalog.set_config('pgenrich.failures_table', {{failures_text}}, true);
DO $pgenrich_migrate$
DECLARE
    ledger regclass := pg_catalog.to_regclass(
        pg_catalog.current_setting('pgenrich.failures_table'));
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute
                   WHERE attrelid = ledger AND attname = 'last_seen' AND NOT attisdropped) THEN
        EXECUTE pg_catalog.format('ALTER TABLE %s ADD COLUMN last_seen timestamptz', ledger);
        EXECUTE pg_catalog.format('UPDATE %s SET last_seen = updated_at', ledger);
        EXECUTE pg_catalog.format('ALTER TABLE %s ALTER COLUMN last_seen SET DEFAULT now(), '
                                  'ALTER COLUMN last_seen SET NOT NULL', ledger);
    END IF;
END
$pgenrich_migrate$;

-- The checkpoints: one row per job. position is the text form of the last source key
-- (keyset paging) or the number of rows to skip (offset paging) such that every ID up to
-- it has its outcome committed; NULL until the first one settles. paging records which of
-- the two the position means. rows_loaded and failures are running totals over all the
-- job's flushes; finished is set by the last flush of a complete run. `retry-failed`
-- never writes here (its sink runs with no_checkpoint).
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

-- The run history: one row per `run` or `retry-failed`, inserted once the job's lock is
-- taken and the checkpoint read, updated by every flush in the flush's own transaction (so
-- the counts are exactly what committed) and closed at the end with the exit status.
-- state is 'running' until then, and then done (exit 0 or 5), interrupted (75) or failed;
-- a row left 'running' with no ended_at whose runner no longer holds the job's lock is a
-- run that was killed (`pgenrich status` shows it so). db_pid is the PostgreSQL backend
-- of the session that held the lock, to tell that runner apart. failures counts the
-- ledger lines written and failures_by_reason every failure line by its reason (kept ones
-- too, like the run's summary); checkpoint_from and checkpoint_to are the positions before
-- and after the run (NULL: from the start, or retry-failed, which has none).
CREATE TABLE IF NOT EXISTS {{runs}} (
    run_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job text NOT NULL,
    command text NOT NULL,
    host text NOT NULL,
    pid int NOT NULL,
    version text NOT NULL,
    db_pid int,
    started_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    ended_at timestamptz,
    exit_status int,
    state text NOT NULL DEFAULT 'running',
    rows_loaded bigint NOT NULL DEFAULT 0,
    failures bigint NOT NULL DEFAULT 0,
    failures_by_reason jsonb NOT NULL DEFAULT '{}',
    kept bigint NOT NULL DEFAULT 0,
    requests bigint NOT NULL DEFAULT 0,
    retries bigint NOT NULL DEFAULT 0,
    ids_per_s double precision,
    checkpoint_from text,
    checkpoint_to text
);
CREATE INDEX IF NOT EXISTS {{runs_index}} ON {{runs}} (job, started_at DESC);

-- The ranges of the jobs run with --shared (README "Many workers on one job"): the first
-- worker of a job splits the key space into ranges, once; each worker leases one at a time.
-- lower_bound is exclusive (NULL: from the start), upper_bound inclusive (NULL: the open tail,
-- where IDs added beyond the last bound land); both are the key's text form and compare as
-- the key's type and collation. state is pending, leased (owner holds it until
-- lease_expires, renewed by heartbeat) or done. fence grows by one at every claim: each
-- flush of the owner checks it in its own transaction (pgenrich_fence_check below), so a
-- worker that lost its range commits nothing more to it. position is the range's checkpoint
-- (like enrich_checkpoints.position); rows_loaded and failures count what the flushes
-- committed; started_at is the range's first claim.
CREATE TABLE IF NOT EXISTS {{ranges}} (
    job text NOT NULL,
    range_no int NOT NULL,
    lower_bound text,
    upper_bound text,
    state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'leased', 'done')),
    owner text,
    lease_expires timestamptz,
    fence bigint NOT NULL DEFAULT 0,
    position text,
    rows_loaded bigint NOT NULL DEFAULT 0,
    failures bigint NOT NULL DEFAULT 0,
    started_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job, range_no)
);

-- The live workers of the jobs run with --shared (README "One rate for all"): one row per
-- worker (worker: the owner id of its leases), written by its heartbeat about once a second
-- and deleted when it exits cleanly; a row whose heartbeat_at is older than the lease
-- (--lease-seconds) is a dead worker's. rate is the limit it applies now (requests/s, 0:
-- none); throttled and requests count its 429s and requests since it started. estimate is
-- the job-wide rate (requests/s) the worker published at its last cut after a 429, at
-- estimate_at: every worker applies the newest estimate of a live worker divided by the
-- live workers.
CREATE TABLE IF NOT EXISTS {{workers}} (
    job text NOT NULL,
    worker text NOT NULL,
    host text NOT NULL DEFAULT '',
    pid int NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    rate double precision NOT NULL DEFAULT 0,
    throttled bigint NOT NULL DEFAULT 0,
    last_429_at timestamptz,
    requests bigint NOT NULL DEFAULT 0,
    range_no int,
    estimate double precision,
    estimate_at timestamptz,
    PRIMARY KEY (job, worker)
);

-- The fence of a flush: true when the range's fence is still the worker's token, else an
-- error with SQLSTATE PGF01 that rolls the whole flush back (rows, failures, checkpoint).
-- A class of its own, so that the sink never takes it for a data error (22, 23) to split.
-- Made only when missing: CREATE OR REPLACE would need the function's owner at every run of
-- every job, shared or not, where CREATE TABLE IF NOT EXISTS needs nothing once the tables
-- are there.
DO $pgenrich_fence_make$
BEGIN
    IF pg_catalog.to_regprocedure('pgenrich_fence_check(bigint, bigint, text, integer)')
       IS NULL THEN
        CREATE FUNCTION pgenrich_fence_check(fence bigint, token bigint, job text,
                                             range_no int) RETURNS boolean
        LANGUAGE plpgsql AS $pgenrich_fence$
        BEGIN
            IF fence IS DISTINCT FROM token THEN
                RAISE EXCEPTION USING ERRCODE = 'PGF01',
                    MESSAGE = pg_catalog.format('lease lost: range %s of job %s was taken '
                                                'over by another worker (fence %s, ours %s)',
                                                range_no, job, fence, token);
            END IF;
            RETURN true;
        END
        $pgenrich_fence$;
    END IF;
END
$pgenrich_fence_make$;
