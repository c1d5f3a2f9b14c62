-- The rollup commits a whole run's points in one transaction (or a few, when
-- a run's buckets exceed one commit's budget: rollup/src/pending.rs), and
-- records what each commit applied in one or two rows instead of a row per
-- archive and a row (plus an index entry) per ingest request.
-- processed_archives and processed_batches are no longer written; the rollup
-- still reads them, side by side with these tables, until retention has
-- emptied them (7 days after an upgrade).

-- The archives a commit applied whole, as a JSON array of keys. Keyed by the
-- greatest of them, so that the keys of a listing page are looked up with a
-- range seek: every commit holding a key at or after the page's first has
-- a last_key at or after it.
CREATE TABLE ledger_archives (
    last_key     TEXT NOT NULL,
    commit_id    TEXT NOT NULL,
    keys         TEXT NOT NULL,   -- JSON array of archive keys
    points       INTEGER NOT NULL,
    committed_ms INTEGER NOT NULL,
    PRIMARY KEY (last_key, commit_id)
) WITHOUT ROWID;

-- The batch ids (Batch.batch_id) a commit applied, one row per hour of data:
-- a batch's hour is that of its earliest point, which a redelivered message
-- or a retried export shares with the original, so a lookup reads only the
-- rows of the candidate batches' hours.
CREATE TABLE ledger_batches (
    data_hour    INTEGER NOT NULL,   -- unix seconds, a multiple of 3600
    commit_id    TEXT NOT NULL,
    ids          TEXT NOT NULL,      -- JSON array of batch ids
    committed_ms INTEGER NOT NULL,
    PRIMARY KEY (data_hour, commit_id)
) WITHOUT ROWID;
