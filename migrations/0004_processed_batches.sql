-- Batches (one per ingest request part, `Batch.batch_id`) whose points are in
-- `aggregates`, written in the same transaction as those points. A queue
-- that delivers a message twice, or an exporter that retries the same body,
-- puts the same batch into a second archive; its id is already here, so the
-- rollup skips it.
CREATE TABLE processed_batches (
    batch_id    TEXT PRIMARY KEY,
    archive_key TEXT NOT NULL
) WITHOUT ROWID;
