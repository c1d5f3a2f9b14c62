-- Archives the rollup could not apply, so that one that fails the same way
-- run after run is set aside instead of holding up every archive behind it
-- (rollup/src/quarantine.rs). A row counts the consecutive runs that failed
-- with `error`; a different error starts the count again, and applying the
-- archive deletes its row. After three runs the archive is moved under
-- quarantine/ in R2, recorded as processed so the listing cursor moves past
-- it, and `quarantined_ms` is set; /status lists these rows.
CREATE TABLE archive_failures (
    key            TEXT PRIMARY KEY,
    error          TEXT NOT NULL,
    runs           INTEGER NOT NULL CHECK (runs >= 1),
    first_ms       INTEGER NOT NULL,
    last_ms        INTEGER NOT NULL,
    quarantined_ms INTEGER
) WITHOUT ROWID;
