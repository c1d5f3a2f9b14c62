//! One rollup run: list new archives, apply each exactly once, move the
//! cursor, and record a report.

use crate::accumulate::{SeriesKey, Slot};
use crate::error::{Context, RollupError};
use crate::{cursor, dedup, guard, plan, prepare, store};
use serde::Serialize;
use std::collections::HashSet;
use worker::{js_sys, Bucket, D1Database, D1PreparedStatement, Env};

/// Binding and var names, as in `wrangler.toml`.
pub const DB: &str = "DB";
pub const ARCHIVES: &str = "ARCHIVES";
pub const MAX_ARCHIVES_PER_RUN: &str = "MAX_ARCHIVES_PER_RUN";
pub const MAX_SERIES_PER_METRIC: &str = "MAX_SERIES_PER_METRIC";
const DEFAULT_MAX_ARCHIVES: u32 = 50;
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
    pub cursor: Option<String>,
    /// Age of the oldest archive not yet applied when the run ended (0 if
    /// none is left), from its key's time.
    pub lag_ms: u64,
    /// Listed archives not yet applied when the run ended.
    pub backlog: usize,
    /// `ok`, `errors` (some archives failed and will be retried) or
    /// `skipped` (another run held the lease).
    pub outcome: &'static str,
}

pub async fn run(env: &Env) -> Result<Report, RollupError> {
    let db = env.d1(DB).during("D1 binding")?;
    let bucket = env.bucket(ARCHIVES).during("R2 binding")?;
    let max_archives = match env.var(MAX_ARCHIVES_PER_RUN) {
        Ok(v) => v.to_string().parse::<u32>().map_err(|_| {
            RollupError::Config(format!("{MAX_ARCHIVES_PER_RUN} must be a whole number, not {:?}", v.to_string()))
        })?,
        Err(_) => DEFAULT_MAX_ARCHIVES,
    };
    let max_series = match env.var(MAX_SERIES_PER_METRIC) {
        Ok(v) => v.to_string().parse::<u64>().map_err(|_| {
            RollupError::Config(format!("{MAX_SERIES_PER_METRIC} must be a whole number, not {:?}", v.to_string()))
        })?,
        Err(_) => guard::DEFAULT_MAX_SERIES_PER_METRIC,
    };
    let now_ms = worker::Date::now().as_millis();
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
                } else if todo.len() < max_archives as usize {
                    todo.push(key.clone());
                }
                keys.push(key);
            }
            after = Some(last);
            if todo.len() >= max_archives as usize || !listing.truncated() {
                break;
            }
        }
        report.listed = keys.len();

        for key in &todo {
            let lease = store::keep_lease(&db, &holder, worker::Date::now().as_millis() + LEASE_MS)?;
            match apply_archive(&db, &bucket, lease, key, now_ms, max_series).await {
                Ok(points) => {
                    report.archives += 1;
                    report.points += points;
                    processed.insert(key.clone());
                }
                Err(e) => report.errors.push(e.to_string()),
            }
        }

        report.cursor = cursor::advance(current.clone(), &keys, &processed, now_ms);
        report.finished_ms = worker::Date::now().as_millis();
        (report.lag_ms, report.backlog) = cursor::backlog(&keys, &processed, report.finished_ms);
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

/// Reads one archive and applies it in one transaction; returns its points.
async fn apply_archive(
    db: &D1Database,
    bucket: &Bucket,
    lease: D1PreparedStatement,
    key: &str,
    now_ms: u64,
    max_series: u64,
) -> Result<u64, RollupError> {
    let object = bucket.get(key).execute().await.during("reading an archive")?;
    // Listed a moment ago, so it exists unless deleted by hand since.
    let Some(body) = object.as_ref().and_then(|o| o.body()) else {
        return Err(RollupError::Conflict { key: key.to_owned(), reason: "archive vanished".into() });
    };
    let bytes = body.bytes().await.during("reading an archive")?;
    let mut archive = proto::archive::decode(&bytes).map_err(|source| RollupError::Archive { key: key.to_owned(), source })?;
    // Batches delivered or sent before, in another archive, are skipped.
    let applied = store::applied_batches(db, &dedup::ids(&archive)).await?;
    let (batch_ids, _repeated) = dedup::fresh(&mut archive, &applied);
    let keyed = prepare::keyed(&archive);
    let mut series: Vec<&SeriesKey> = keyed.iter().map(|(k, _)| k).collect();
    series.sort();
    series.dedup();
    // Series already in the catalog; new ones are admitted up to the
    // metric's limit and the rest folded into its overflow series.
    let mut ids = store::lookup_series(db, &series).await?;
    let new: Vec<&SeriesKey> = series.into_iter().filter(|k| !ids.contains_key(&plan::identity(k))).collect();
    let mut metrics: Vec<(String, String)> = new.iter().map(|k| (k.tenant.clone(), k.metric.clone())).collect();
    metrics.dedup();
    let counts = store::series_counts(db, &metrics).await?;
    let folded = guard::fold(&new, &counts, max_series);
    let mut create: Vec<&SeriesKey> = new.into_iter().filter(|k| !folded.contains_key(*k)).collect();
    create.extend(folded.values());
    create.sort();
    create.dedup();
    ids.extend(store::create_series(db, &create).await?);
    let states = store::cumulative_states(db, &prepare::cumulative_hashes(&keyed)).await?;
    let (acc, state_writes) = prepare::prepare(keyed, &folded, &states);
    let places: Vec<(i64, Slot)> = acc
        .series
        .iter()
        .flat_map(|(k, slots)| {
            let id = ids.get(&plan::identity(k)).copied().unwrap_or_default();
            slots.keys().map(move |s| (id, *s))
        })
        .collect();
    let stored = store::stored(db, &places).await?;
    let writes = plan::plan(&acc, &ids, &stored)?;
    store::apply(db, lease, &writes, &state_writes, key, &batch_ids, acc.points, now_ms).await?;
    Ok(acc.points)
}

/// The last run's report, as stored.
pub async fn last_report(env: &Env) -> Result<Option<serde_json::Value>, RollupError> {
    let db = env.d1(DB).during("D1 binding")?;
    Ok(store::state(&db, "last_run").await?.and_then(|s| serde_json::from_str(&s).ok()))
}

