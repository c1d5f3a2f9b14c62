-- Storage v2, first step (issue #11, docs/STORAGE.md): minute aggregates no
-- longer get a row per series and minute in `aggregates`.
--
-- A rollup commit writes its minutes to `head`: per hour of data and exposed
-- metric name (what dashboard-api's selections look series up by),
-- one row (or a few parts) holding every series' minutes of that commit
-- (proto::aggregate::head). Once an hour has closed, the rollup compacts its
-- head rows into one `blocks` row per series (proto::aggregate::block) and
-- deletes them, in one transaction. dashboard-api reads both, and the minute
-- rows of `aggregates` written before this migration until their retention
-- has removed them. Hour and day rows stay in `aggregates`.

CREATE TABLE head (
    hour_start INTEGER NOT NULL,   -- unix seconds, a multiple of 3600
    tenant     TEXT NOT NULL,
    prom_name  TEXT NOT NULL,      -- series.prom_name
    commit_id  TEXT NOT NULL,
    part       INTEGER NOT NULL,
    body       BLOB NOT NULL,
    PRIMARY KEY (hour_start, tenant, prom_name, commit_id, part)
) WITHOUT ROWID;

-- Keyed by hour first, so that retention deletes a range of the key and a
-- query seeks each (hour, series) it reads. A series-hour usually has one
-- row; data that arrives after its hour was compacted adds another (`seq`
-- tells them apart), which readers merge. No foreign key: without an index
-- on series_id, each catalog row the sweep deletes would scan the table.
-- A series keeps hour rows in `aggregates` (which has one) longer than blocks.
CREATE TABLE blocks (
    hour_start INTEGER NOT NULL,
    series_id  INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    body       BLOB NOT NULL,
    PRIMARY KEY (hour_start, series_id, seq)
) WITHOUT ROWID;
