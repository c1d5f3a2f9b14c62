//! `cargo xtask deploy` checked offline: each Worker bundles with
//! `wrangler deploy --dry-run` and fits the Workers script size limits.

#[test]
fn every_worker_bundles_within_the_size_limits() -> anyhow::Result<()> {
    let bundles = xtask::deploy::bundle(&xtask::root())?;
    xtask::deploy::report(&bundles);
    assert_eq!(bundles.len(), 3);
    for b in &bundles {
        assert!(b.raw_bytes > 10_000, "{} bundle looks empty: {b:?}", b.worker);
        assert!(b.gzip_bytes <= xtask::deploy::FREE_LIMIT, "{} does not fit Workers Free: {b:?}", b.worker);
    }
    Ok(())
}
