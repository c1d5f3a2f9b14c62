//! One rollup run: list new archives, apply each exactly once, move the
//! cursor, and record a report.

use crate::accumulate::{SeriesKey, Slot};
use crate::error::{Context, RollupError};
use crate::config::{Config, Limit};
use crate::retention::{Cutoffs, Expired};
use crate::{cursor, dedup, guard, plan, prepare, store};
use serde::Serialize;
use std::collections::HashSet;
use worker::{js_sys, Bucket, D1Database, D1PreparedStatement, Env};

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
}

pub async fn run(env: &Env) -> Result<Report, RollupError> {
    let db = env.d1(DB).during("D1 binding")?;
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

        for key in &todo {
            let elapsed_ms = worker::Date::now().as_millis().saturating_sub(now_ms);
            if let Some(limit) = config.budget.exhausted(report.archives, report.points, elapsed_ms) {
                report.stopped_by = Some(limit);
                break;
            }
            let lease = store::keep_lease(&db, &holder, worker::Date::now().as_millis() + LEASE_MS)?;
            match apply_archive(&db, &bucket, lease, key, now_ms, &config, &cutoffs).await {
                Ok(points) => {
                    report.archives += 1;
                    report.points += points;
                    processed.insert(key.clone());
                }
                Err(e) => report.errors.push(e.to_string()),
            }
        }

        report.cursor = cursor::advance(current.clone(), &keys, &processed, now_ms);
        // Retention, in bounded steps: what one run leaves, the next deletes.
        match store::expire(&db, &cutoffs, report.cursor.as_deref(), config.max_deletes).await {
            Ok(expired) => report.expired = expired,
            Err(e) => report.errors.push(format!("retention: {e}")),
        }
        report.finished_ms = worker::Date::now().as_millis();
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

/// Reads one archive and applies it in one transaction; returns its points.
async fn apply_archive(
    db: &D1Database,
    bucket: &Bucket,
    lease: D1PreparedStatement,
    key: &str,
    now_ms: u64,
    config: &Config,
    cutoffs: &Cutoffs,
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
    let folded = guard::fold(&new, &counts, config.max_series_per_metric);
    let mut create: Vec<&SeriesKey> = new.into_iter().filter(|k| !folded.contains_key(*k)).collect();
    create.extend(folded.values());
    create.sort();
    create.dedup();
    ids.extend(store::create_series(db, &create).await?);
    let states = store::cumulative_states(db, &prepare::cumulative_hashes(&keyed)).await?;
    let (mut acc, state_writes) = prepare::prepare(keyed, &folded, &states);
    acc.drop_expired(cutoffs);
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
    let late = acc.late_tenants((now_ms / 1000) as i64);
    store::apply(db, lease, &writes, &state_writes, key, &batch_ids, &late, acc.points, now_ms).await?;
    Ok(acc.points)
}

/// The last run's report, as stored.
pub async fn last_report(env: &Env) -> Result<Option<serde_json::Value>, RollupError> {
    let db = env.d1(DB).during("D1 binding")?;
    Ok(store::state(&db, "last_run").await?.and_then(|s| serde_json::from_str(&s).ok()))
}

