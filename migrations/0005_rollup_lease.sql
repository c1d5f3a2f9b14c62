-- The lease that keeps overlapping cron runs from both applying work. A run
-- takes it if it is free or expired; every archive's transaction checks it
-- still holds it (until_ms turns negative otherwise, which the CHECK
-- rejects, rolling the transaction back) and extends it.
CREATE TABLE rollup_lease (
    name     TEXT PRIMARY KEY,
    holder   TEXT NOT NULL,
    until_ms INTEGER NOT NULL CHECK (until_ms >= 0)
) WITHOUT ROWID;
