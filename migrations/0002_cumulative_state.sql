-- The last cumulative point of each series whose sender uses cumulative
-- temporality: the rollup turns each new cumulative point into the delta
-- since this one. Written in the same transaction as the aggregates, and
-- guarded by `version` like them.
CREATE TABLE cumulative_state (
    series_id INTEGER PRIMARY KEY REFERENCES series (id),
    point     BLOB NOT NULL,   -- a proto::point::Point, protobuf-encoded
    version   INTEGER NOT NULL CHECK (version >= 1)
);
