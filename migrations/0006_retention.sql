-- Retention deletes expired rows oldest first, a bounded number per run
-- (rollup/src/retention.rs). These indexes let it find them without scanning
-- the tables.

-- Expired aggregates: by resolution, then bucket start.
CREATE INDEX aggregates_by_age ON aggregates (resolution, bucket_start);

-- Batch ids applied from archives older than the dedup window. Archive keys
-- begin with their write time, so they sort by age.
CREATE INDEX processed_batches_by_archive ON processed_batches (archive_key);
