-- Cumulative state is keyed by the series' identity hash instead of its
-- catalog id, so that a series the cardinality guard folds into its metric's
-- overflow series still keeps its own running total (deltas stay exact).
DROP TABLE cumulative_state;
CREATE TABLE cumulative_state (
    series_hash TEXT PRIMARY KEY,   -- rollup::accumulate::SeriesKey::hash
    point       BLOB NOT NULL,      -- the last cumulative point, proto::point::Point
    version     INTEGER NOT NULL CHECK (version >= 1)
) WITHOUT ROWID;
