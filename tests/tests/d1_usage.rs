//! The rollup reports what each run cost in D1: the statements it ran and
//! the rows they read and wrote, as D1 meters and bills them (issue #11).

use e2e::*;
use std::time::Duration;

#[test]
fn each_run_reports_the_d1_rows_it_read_and_wrote() -> anyhow::Result<()> {
    let stack = stack();
    let metric = unique("d1usage");
    let now_s = now_nanos() / 1_000_000_000;
    post_gauge(&stack, &metric, "ms", &[(now_s - 1, 1.0)])?;
    let sql = format!("SELECT id FROM series WHERE metric = '{metric}'");
    // The run that created the series is the last one: no other test of
    // this file runs the rollup.
    let report = rollup_until(&stack, Duration::from_secs(60), || (!d1(&sql)?.is_empty()).then(|| last_run(&stack)).transpose())?;
    let usage = &report["d1"];
    let n = |k: &str| usage[k].as_u64().unwrap_or_else(|| panic!("no d1.{k} in {report}"));
    // A new series with one point writes at least its catalog row and its
    // three aggregate rows, each with an index entry, and the ledger rows.
    assert!(n("rows_written") >= 8, "{usage}");
    assert!(n("rows_read") >= 1, "{usage}");
    assert!(n("statements") >= 5, "{usage}");
    Ok(())
}
