-- dashboard-api caches responses computed only from closed buckets, under
-- the tenant's generation. The rollup moves the generation on, in the same
-- transaction, whenever it writes late data into a bucket such a response
-- may have read (proto::aggregate::late_write), so no cached response is
-- served after its data changed. No row: generation 0.
CREATE TABLE cache_generation (
    tenant     TEXT PRIMARY KEY,
    generation INTEGER NOT NULL
) WITHOUT ROWID;
