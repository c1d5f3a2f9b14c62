//! One rollup run: list new archives, apply each exactly once, move the
//! cursor, and record a report.

use crate::accumulate::Slot;
use crate::config::{Config, Limit};
use crate::error::{Context, RollupError};
use crate::retention::{Cutoffs, Expired};
use crate::series::{self, Series};
use crate::{chunk, cursor, dedup, guard, plan, prepare, quarantine, store};
use proto::d1::{Db, Usage};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use worker::{js_sys, Bucket, D1PreparedStatement, Env};

/// Binding names, as in `wrangler.toml`.
pub const DB: &str = "DB";
pub const ARCHIVES: &str = "ARCHIVES";
/// Pages of 1,000 keys one run lists at most.
const MAX_LIST_PAGES: usize = 10;
/// How long the run lease lasts without being extended; every applied
/// archive extends it. A run that dies holds it this long at most.
pub const LEASE_MS: u64 = 5 * 60 * 1000;

/// What a run did; the last one is kept in `rollup_state` for `GET /status`.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub started_ms: u64,
    pub finished_ms: u64,
    /// Archives listed after the cursor (applied ones included).
    pub listed: usize,
    /// Archives applied by this run.
    pub archives: u64,
    /// Points those archives held.
    pub points: u64,
    /// Archives that failed and are left for the next run.
    pub errors: Vec<String>,
    /// Archives this run set aside after they failed the same way on
    /// [`quarantine::AFTER_RUNS`] consecutive runs.
    pub quarantined: Vec<quarantine::Quarantined>,
    /// Points read but not aggregated: of another kind or unit than their
    /// series' that no exact conversion maps ([`crate::conform`]), with a
    /// non-finite value, or with unreadable labels.
    pub set_aside: prepare::SetAside,
    pub cursor: Option<String>,
    /// Age of the oldest archive not yet applied when the run ended (0 if
    /// none is left), from its key's time.
    pub lag_ms: u64,
    /// Listed archives not yet applied when the run ended.
    pub backlog: usize,
    /// The budget that ended the run with archives left, if one did.
    pub stopped_by: Option<Limit>,
    /// Rows past their retention that this run deleted.
    pub expired: Expired,
    /// `ok`, `errors` (some archives failed and will be retried) or
    /// `skipped` (another run held the lease).
    pub outcome: &'static str,
    /// The D1 statements the run ran and the rows they read and wrote, as
    /// D1 reports and bills them (index entries included), up to saving
    /// this report (which writes 2 to 4 rows more).
    pub d1: Usage,
    /// The isolate's wasm memory when the run ended, in bytes. Wasm memory
    /// only grows, so this is the most any run of this isolate has needed;
    /// a Worker has 128 MB, code included.
    pub wasm_memory_bytes: u64,
}

/// The current size of this module's wasm memory (0 natively).
fn wasm_memory_bytes() -> u64 {
    #[cfg(target_arch = "wasm32")]
    return core::arch::wasm32::memory_size(0) as u64 * 65_536;
    #[cfg(not(target_arch = "wasm32"))]
    return 0;
}

pub async fn run(env: &Env) -> Result<Report, RollupError> {
    let db = Db::new(env.d1(DB).during("D1 binding")?);
    let bucket = env.bucket(ARCHIVES).during("R2 binding")?;
    let config = Config::from_vars(|name| env.var(name).ok().map(|v| v.to_string()))?;
    let now_ms = worker::Date::now().as_millis();
    let cutoffs = config.retention.cutoffs(now_ms);
    let mut report = Report { started_ms: now_ms, outcome: "ok", ..Default::default() };
    let holder = format!("{now_ms}-{:016x}", (js_sys::Math::random() * 18_446_744_073_709_551_615.0) as u64);
    if !store::acquire_lease(&db, &holder, now_ms, now_ms + LEASE_MS).await? {
        // Not recorded as the last run: that stays the report of one that worked.
        report.outcome = "skipped";
        report.finished_ms = worker::Date::now().as_millis();
        return Ok(report);
    }

    let result: Result<Report, RollupError> = async {
        let current = store::state(&db, "cursor").await?;
        // Keys after the cursor, page by page: applied archives within the grace
        // period are listed again every run, so page past them to the new ones.
        let mut keys: Vec<String> = Vec::new();
        let mut processed = HashSet::new();
        let mut todo: Vec<String> = Vec::new();
        let mut after = current.clone();
        for _ in 0..MAX_LIST_PAGES {
            let mut list = bucket.list().prefix(proto::archive::KEY_PREFIX).limit(1000);
            if let Some(a) = &after {
                list = list.start_after(a.clone());
            }
            let listing = list.execute().await.during("listing archives")?;
            let page: Vec<String> = listing.objects().iter().map(|o| o.key()).collect();
            let Some(last) = page.last().cloned() else { break };
            let done = store::processed(&db, &page).await?;
            for key in page {
                if done.contains(&key) {
                    processed.insert(key.clone());
                } else if todo.len() < config.budget.archives as usize {
                    todo.push(key.clone());
                }
                keys.push(key);
            }
            after = Some(last);
            if todo.len() >= config.budget.archives as usize || !listing.truncated() {
                break;
            }
        }
        report.listed = keys.len();

        let mut failed = Vec::new();
        for key in &todo {
            let elapsed_ms = worker::Date::now().as_millis().saturating_sub(now_ms);
            if let Some(limit) = config.budget.exhausted(report.archives, report.points, elapsed_ms) {
                report.stopped_by = Some(limit);
                break;
            }
            match apply_archive(&db, &bucket, &holder, key, now_ms, &config, &cutoffs, &mut report).await {
                Ok(Applied::Whole) => {
                    report.archives += 1;
                    processed.insert(key.clone());
                }
                Ok(Applied::Stopped(limit)) => {
                    report.stopped_by = Some(limit);
                    break;
                }
                Err(e) => {
                    report.errors.push(e.to_string());
                    failed.push((key.clone(), e));
                }
            }
        }
        // A failure counts towards setting the archive aside if it lies in
        // the archive, or if D1 failed on it while applying others.
        for (key, e) in failed {
            if !quarantine::counts(e.blame(), report.archives) {
                continue;
            }
            match quarantine::after_failure(&db, &bucket, &key, &e.to_string(), worker::Date::now().as_millis()).await {
                Ok(Some(q)) => {
                    processed.insert(key);
                    report.quarantined.push(q);
                }
                Ok(None) => {}
                Err(e) => report.errors.push(format!("setting {key} aside: {e}")),
            }
        }

        report.cursor = cursor::advance(current.clone(), &keys, &processed, now_ms);
        // Retention, in bounded steps: what one run leaves, the next deletes.
        match store::expire(&db, &cutoffs, report.cursor.as_deref(), config.max_deletes).await {
            Ok(expired) => report.expired = expired,
            Err(e) => report.errors.push(format!("retention: {e}")),
        }
        report.finished_ms = worker::Date::now().as_millis();
        report.wasm_memory_bytes = wasm_memory_bytes();
        report.d1 = db.usage();
        (report.lag_ms, report.backlog) = cursor::backlog(&keys, &processed, report.finished_ms);
        if report.stopped_by.is_none() && report.backlog > 0 && report.archives >= u64::from(config.budget.archives) {
            // The listing stopped at the archive budget.
            report.stopped_by = Some(Limit::Archives);
        }
        if !report.errors.is_empty() {
            report.outcome = "errors";
        }
        let mut state = vec![
            store::set_state(&db, "last_run", &serde_json::to_string(&report).unwrap_or_default())?,
            store::release_lease(&db, &holder)?,
        ];
        if report.cursor != current {
            if let Some(c) = &report.cursor {
                state.push(store::set_state(&db, "cursor", c)?);
            }
        }
        db.batch(state).await.during("saving the run report")?;
        Ok(report)
    }
    .await;
    if result.is_err() {
        // Best effort: otherwise the lease expires on its own.
        if let Ok(release) = store::release_lease(&db, &holder) {
            let _ = release.run().await;
        }
    }
    result
}

/// How an archive's application ended, short of an error.
enum Applied {
    /// Every chunk applied; the archive is recorded.
    Whole,
    /// A budget ran out between chunks: the rest waits for the next run,
    /// which skips the batches applied already.
    Stopped(Limit),
}

/// Reads one archive and applies it chunk by chunk ([`crate::chunk`]), each
/// chunk in one transaction; adds its points and what it set aside to
/// `report`.
#[allow(clippy::too_many_arguments)]
async fn apply_archive(
    db: &Db,
    bucket: &Bucket,
    holder: &str,
    key: &str,
    started_ms: u64,
    config: &Config,
    cutoffs: &Cutoffs,
    report: &mut Report,
) -> Result<Applied, RollupError> {
    let read = |source| RollupError::Read { key: key.to_owned(), source };
    let object = bucket.get(key).execute().await.map_err(read)?;
    // Listed a moment ago, so it exists unless deleted by hand since.
    let Some(object) = object else {
        return Err(RollupError::Conflict { key: key.to_owned(), reason: "archive vanished".into() });
    };
    if object.size() > proto::archive::MAX_ARCHIVE_BYTES as u64 {
        return Err(RollupError::Archive { key: key.to_owned(), source: proto::archive::ArchiveError::FileTooLarge(object.size()) });
    }
    let Some(body) = object.body() else {
        return Err(RollupError::Conflict { key: key.to_owned(), reason: "archive has no body".into() });
    };
    let bytes = body.bytes().await.map_err(read)?;
    let mut points = 0;
    for chunk in chunk::Chunks::new(&bytes) {
        let mut chunk = chunk.map_err(|source| RollupError::Archive { key: key.to_owned(), source })?;
        // Batches delivered or sent before, in this archive or another, are skipped.
        let applied = store::applied_batches(db, &dedup::ids(&chunk.batches)).await?;
        dedup::fresh(&mut chunk.batches, &applied);
        // In parts whose buckets fit one transaction's memory.
        for part in chunk::parts(&chunk.batches) {
            let last = chunk.last && part.last;
            let lease = store::keep_lease(db, holder, worker::Date::now().as_millis() + LEASE_MS)?;
            let finished = last.then_some(points);
            let (n, set_aside) = apply_part(db, lease, key, part.batches, part.keyed, finished, started_ms, config, cutoffs).await?;
            points += n;
            report.points += n;
            report.set_aside.extend(set_aside);
            if last {
                return Ok(Applied::Whole);
            }
            let elapsed_ms = worker::Date::now().as_millis().saturating_sub(started_ms);
            if let Some(limit) = config.budget.exhausted_within_archive(report.points, elapsed_ms) {
                return Ok(Applied::Stopped(limit));
            }
        }
    }
    Ok(Applied::Whole)
}

/// Applies one part of a chunk (`batches`, keyed) in one transaction,
/// with the archive's record (`finished`: its points before this part) if
/// it is the last; returns the part's points and what it set aside.
#[allow(clippy::too_many_arguments)]
async fn apply_part(
    db: &Db,
    lease: D1PreparedStatement,
    key: &str,
    batches: &[proto::point::Batch],
    mut keyed: series::Keyed<'_>,
    finished: Option<u64>,
    now_ms: u64,
    config: &Config,
    cutoffs: &Cutoffs,
) -> Result<(u64, prepare::SetAside), RollupError> {
    let batch_ids = dedup::ids(batches);
    let all: Vec<(u32, &Series<'_>)> = keyed.series.iter().enumerate().map(|(i, s)| (i as u32, s)).collect();
    // Series already in the catalog; new ones are admitted up to the
    // metric's limit and the rest folded into its overflow series.
    let mut catalog = store::lookup_series(db, &all).await?;
    let new: Vec<u32> = (0..keyed.series.len() as u32).filter(|i| !catalog.contains_key(i)).collect();
    let mut metrics: Vec<(String, String)> =
        new.iter().map(|&i| (keyed.series[i as usize].tenant.to_owned(), keyed.series[i as usize].metric.to_owned())).collect();
    metrics.sort();
    metrics.dedup();
    let counts = store::series_counts(db, &metrics).await?;
    let before = keyed.series.len() as u32;
    let folded = guard::fold(&mut keyed.series, &new, &counts, config.max_series_per_metric);
    let create: Vec<(u32, &Series<'_>)> = new
        .iter()
        .copied()
        .filter(|i| !folded.contains_key(i))
        .chain(before..keyed.series.len() as u32)
        .map(|i| (i, &keyed.series[i as usize]))
        .collect();
    catalog.extend(store::create_series(db, &create).await?);
    let targets = (0..keyed.series.len() as u32)
        .map(|i| {
            let target = folded.get(&i).copied().unwrap_or(i);
            let c = catalog
                .get(&target)
                .ok_or_else(|| RollupError::Conflict { key: key.to_owned(), reason: "a series has no catalog row".into() })?;
            Ok(prepare::Target { series: target, kind: c.kind, unit: c.unit.clone() })
        })
        .collect::<Result<Vec<_>, RollupError>>()?;
    let states = store::cumulative_states(db, &prepare::cumulative_hashes(&keyed)).await?;
    let mut prepared = prepare::prepare(&keyed, &targets, &states);
    prepared.acc.drop_expired(cutoffs);
    let ids: HashMap<u32, i64> = catalog.iter().map(|(i, c)| (*i, c.id)).collect();
    let places: Vec<(i64, Slot)> = prepared
        .acc
        .series
        .iter()
        .flat_map(|(i, slots)| {
            let id = ids.get(i).copied().unwrap_or_default();
            slots.keys().map(move |s| (id, *s))
        })
        .collect();
    let stored = store::stored(db, &places).await?;
    let writes = plan::plan(&prepared.acc, &ids, &stored)?;
    let late = prepared.acc.late_tenants(&keyed.series, (now_ms / 1000) as i64);
    let points = prepared.acc.points;
    let finished = finished.map(|before| before + points);
    store::apply(db, lease, &writes, &prepared.states, key, &batch_ids, &late, finished, now_ms).await?;
    Ok((points, prepared.set_aside))
}
