-- The rollup's store: a series catalog, aggregates per (series, resolution,
-- bucket), and the ledger that makes archive processing exactly-once.

-- One row per series: tenant + OpenTelemetry metric name + labels.
CREATE TABLE series (
    id        INTEGER PRIMARY KEY,
    tenant    TEXT NOT NULL,
    metric    TEXT NOT NULL,   -- OpenTelemetry spelling: http.server.duration
    prom_name TEXT NOT NULL,   -- Prometheus spelling: http_server_duration
    labels    TEXT NOT NULL,   -- JSON object, keys sorted (OpenTelemetry spelling)
    kind      TEXT NOT NULL CHECK (kind IN ('gauge', 'counter', 'distribution')),
    unit      TEXT NOT NULL,
    UNIQUE (tenant, metric, labels)
);
-- dashboard-api looks series up by tenant and exposed name.
CREATE INDEX series_by_prom_name ON series (tenant, prom_name);

-- One row per series, resolution (seconds) and bucket start (unix seconds).
-- `version` guards read-merge-write: a writer that read version v sets
-- v + 1 only if the row still has v, otherwise the CHECK fails and the whole
-- batch (transaction) rolls back.
CREATE TABLE aggregates (
    series_id    INTEGER NOT NULL REFERENCES series (id),
    resolution   INTEGER NOT NULL,
    bucket_start INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    sum          REAL NOT NULL,
    min          REAL,
    max          REAL,
    last         REAL NOT NULL,
    last_time_ms INTEGER NOT NULL,
    samples      BLOB,             -- HdrHistograms, V2 + DEFLATE (proto::aggregate)
    version      INTEGER NOT NULL CHECK (version >= 1),
    PRIMARY KEY (series_id, resolution, bucket_start)
) WITHOUT ROWID;

-- Archives whose points are in `aggregates`, written in the same transaction
-- as those points: a key can be inserted once, so an archive is applied once.
CREATE TABLE processed_archives (
    key          TEXT PRIMARY KEY,
    points       INTEGER NOT NULL,
    processed_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- Small named values: the listing cursor, the last run's report.
CREATE TABLE rollup_state (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
