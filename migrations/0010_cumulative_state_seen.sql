-- When each cumulative state's point was taken (unix ms), so that the states
-- of series gone for longer than the longest retention can be deleted in
-- bounded steps (rollup/src/store/cumulative.rs). A state goes only once
-- every bucket its earlier increases were counted in has expired: should its
-- series come back, the first point counts in full (the rule for a new
-- series) without counting anything kept twice.
ALTER TABLE cumulative_state ADD COLUMN seen_ms INTEGER;
-- States from before this column count as seen now: later than they were,
-- so they are kept at least as long as they must be.
UPDATE cumulative_state SET seen_ms = CAST(unixepoch('subsec') * 1000 AS INTEGER);
