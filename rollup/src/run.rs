//! One rollup run: list new archives, read them all into one set of
//! pending aggregates ([`crate::pending`]), commit it (in one transaction,
//! or a few if it grows past a commit's budget), move the cursor, and
//! record a report.

use crate::accumulate::Slot;
use crate::config::{Config, Limit};
use crate::error::{Context, RollupError};
use crate::pending::{data_hour, Pending};
use crate::prepare::StoredState;
use crate::retention::{Cutoffs, Expired};
use crate::series::{self, Series};
use crate::store::catalog::Catalog;
use crate::{chunk, cursor, dedup, guard, head, plan, prepare, quarantine, store};
use proto::d1::{Db, Usage};
use serde::Serialize;
use std::collections::{HashMap, HashSet, VecDeque};
use worker::{js_sys, Bucket, Env};

/// Binding names, as in `wrangler.toml`.
pub const DB: &str = "DB";
pub const ARCHIVES: &str = "ARCHIVES";
/// Pages of 1,000 keys one run lists at most.
const MAX_LIST_PAGES: usize = 10;
/// How long the run lease lasts without being extended; every commit
/// extends it. A run that dies holds it this long at most.
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
    /// Archives that failed and are left for the next run; and commits of
    /// several archives that failed, after which the run applied those
    /// archives one at a time (so that a failure names its archive).
    pub errors: Vec<String>,
    /// Transactions that applied points (each also holds its ledger rows).
    pub commits: u32,
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
    /// Closed hours whose head rows this run compacted into blocks.
    pub compacted: head::Compacted,
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
    let report = Report { started_ms: now_ms, outcome: "ok", ..Default::default() };
    let holder = format!("{now_ms}-{:016x}", (js_sys::Math::random() * 18_446_744_073_709_551_615.0) as u64);
    if !store::lease::acquire(&db, &holder, now_ms, now_ms + LEASE_MS).await? {
        // Not recorded as the last run: that stays the report of one that worked.
        let finished_ms = worker::Date::now().as_millis();
        return Ok(Report { outcome: "skipped", finished_ms, ..report });
    }
    let mut work = Work {
        db: &db,
        bucket: &bucket,
        holder: &holder,
        config: &config,
        cutoffs: &cutoffs,
        catalog: HashMap::new(),
        admitted: HashMap::new(),
        states: HashMap::new(),
        pending: Pending::default(),
        report,
        processed: HashSet::new(),
        failed: Vec::new(),
    };
    let result = work.run().await;
    if result.is_err() {
        // Best effort: otherwise the lease expires on its own.
        if let Ok(release) = store::lease::release(&db, &holder) {
            let _ = release.run().await;
        }
    }
    result.map(|()| work.report)
}

/// The `rollup_state` entries holding where the catalog sweep and the
/// cumulative state sweep go on from.
const SERIES_SWEEP: &str = "series_sweep";
const STATE_SWEEP: &str = "state_sweep";

/// What one step of the sweeps deleted, and where the next goes on from.
struct Swept {
    series: u64,
    states: u64,
    next_series: i64,
    next_state: String,
}

/// Why reading or committing stopped short.
enum Failure {
    /// Reading or folding this archive failed; what it had folded before
    /// stays pending.
    Archive(RollupError),
    /// A commit failed and nothing of it was applied: the archives it held.
    Commit(Vec<String>, RollupError),
}

impl From<RollupError> for Failure {
    fn from(e: RollupError) -> Failure {
        Failure::Archive(e)
    }
}

/// How reading an archive ended, short of a failure.
enum Read {
    /// Every batch read; the archive is recorded with the commit.
    Whole,
    /// A budget ran out between parts: the rest waits for the next run,
    /// which skips the batches committed already.
    Stopped(Limit),
}

/// One run's bindings, caches and pending work.
struct Work<'a> {
    db: &'a Db,
    bucket: &'a Bucket,
    holder: &'a str,
    config: &'a Config,
    cutoffs: &'a Cutoffs,
    /// Catalog rows of the series seen this run, by identity hash.
    catalog: HashMap<u128, Catalog>,
    /// Ids of the series the guard admitted this run that were not active
    /// before, per (tenant, metric): D1 does not count them until their
    /// commit, so the run does.
    admitted: HashMap<(String, String), Vec<i64>>,
    /// Cumulative states as D1 holds them (after this run's commits), by
    /// identity hash; `None`: D1 has none.
    states: HashMap<String, Option<StoredState>>,
    pending: Pending,
    report: Report,
    /// Listed archives the ledger holds, this run's included.
    processed: HashSet<String>,
    failed: Vec<(String, RollupError)>,
}

impl Work<'_> {
    async fn run(&mut self) -> Result<(), RollupError> {
        let (keys, todo, current) = self.list().await?;
        self.report.listed = keys.len();
        self.apply(todo).await;
        self.set_aside_failures().await;

        self.compact().await;
        let report = &mut self.report;
        report.cursor = cursor::advance(current.clone(), &keys, &self.processed, report.started_ms);
        // Retention, in bounded steps: what one run leaves, the next deletes.
        match store::expire(self.db, self.cutoffs, report.cursor.as_deref(), self.config.max_deletes).await {
            Ok(expired) => report.expired = expired,
            Err(e) => report.errors.push(format!("retention: {e}")),
        }
        let swept = match self.sweep().await {
            Ok(swept) => {
                self.report.expired.series = swept.series;
                self.report.expired.states = swept.states;
                Some(swept)
            }
            Err(e) => {
                self.report.errors.push(format!("series sweep: {e}"));
                None
            }
        };
        let report = &mut self.report;
        report.finished_ms = worker::Date::now().as_millis();
        report.wasm_memory_bytes = wasm_memory_bytes();
        report.d1 = self.db.usage();
        (report.lag_ms, report.backlog) = cursor::backlog(&keys, &self.processed, report.finished_ms);
        if report.stopped_by.is_none() && report.backlog > 0 && report.archives >= u64::from(self.config.budget.archives) {
            // The listing stopped at the archive budget.
            report.stopped_by = Some(Limit::Archives);
        }
        if !report.errors.is_empty() {
            report.outcome = "errors";
        }
        let db = self.db;
        let mut state = vec![
            store::set_state(db, "last_run", &serde_json::to_string(&report).unwrap_or_default())?,
            store::lease::release(db, self.holder)?,
        ];
        if report.cursor != current {
            if let Some(c) = &report.cursor {
                state.push(store::set_state(db, "cursor", c)?);
            }
        }
        if let Some(swept) = swept {
            state.push(store::set_state(db, SERIES_SWEEP, &swept.next_series.to_string())?);
            state.push(store::set_state(db, STATE_SWEEP, &swept.next_state)?);
        }
        db.batch(state).await.during("saving the run report")?;
        Ok(())
    }

    /// Compacts the head rows of closed hours into blocks, group by group
    /// ([`head::compact`]), each group in its own transaction. A group that
    /// fails is reported and retried by the next run; the others go on.
    async fn compact(&mut self) {
        let now_ms = worker::Date::now().as_millis();
        let last_hour = (now_ms / 1000) as i64 - head::COMPACT_AFTER_S - head::HOUR_S;
        let groups = match store::head::due(self.db, last_hour, head::MAX_GROUPS_PER_RUN).await {
            Ok(groups) => groups,
            Err(e) => return self.report.errors.push(format!("compaction: {e}")),
        };
        let listed = groups.len();
        for (i, group) in groups.into_iter().enumerate() {
            let elapsed_ms = worker::Date::now().as_millis().saturating_sub(self.report.started_ms);
            if i >= head::MIN_GROUPS_PER_RUN && elapsed_ms >= self.config.budget.run_ms {
                self.report.compacted.more = true;
                return;
            }
            if let Err(e) = self.compact_group(&group).await {
                self.report.errors.push(format!("compacting {} {} hour {}: {e}", group.tenant, group.metric, group.hour_start));
            }
        }
        self.report.compacted.more |= listed == head::MAX_GROUPS_PER_RUN as usize;
    }

    async fn compact_group(&mut self, group: &store::head::Group) -> Result<(), RollupError> {
        let rows = store::head::group_rows(self.db, group).await?;
        let keys: Vec<(String, i64)> = rows.iter().map(|r| (r.commit_id.clone(), r.part)).collect();
        let bodies: Vec<Vec<u8>> = rows.into_iter().map(|r| r.body).collect();
        let now_ms = worker::Date::now().as_millis();
        // Unique per compaction (one a run, and runs hold the lease), and
        // below 2^53 for another 4,000 years.
        let seq_base = now_ms as i64 * 64;
        let mut blocks = Vec::new();
        for range in head::batches(&bodies, head::DECODE_BUDGET_BYTES)? {
            blocks.extend(head::compact(group.hour_start, &bodies, range, seq_base)?);
        }
        drop(bodies);
        let written = blocks.len() as u64;
        let lease = store::lease::keep(self.db, self.holder, now_ms + LEASE_MS)?;
        store::head::compacted(self.db, lease, group, &keys, blocks).await?;
        let c = &mut self.report.compacted;
        c.groups += 1;
        c.head_rows += keys.len() as u64;
        c.blocks += written;
        Ok(())
    }

    /// One step of the catalog sweep ([`store::catalog::sweep`]) and of the
    /// cumulative state sweep ([`store::cumulative::sweep`]), each from where
    /// its last step reached, behind this run's lease.
    async fn sweep(&self) -> Result<Swept, RollupError> {
        #[derive(serde::Deserialize)]
        struct Last<T> {
            last: Option<T>,
        }
        let what = "sweeping series";
        let mut cursors = store::states(self.db, &[SERIES_SWEEP, STATE_SWEEP]).await?;
        let after_series = cursors.get(SERIES_SWEEP).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        let after_state = cursors.remove(STATE_SWEEP).unwrap_or_default();
        let lease = store::lease::keep(self.db, self.holder, worker::Date::now().as_millis() + LEASE_MS)?;
        let [last_series, delete_series] = store::catalog::sweep(self.db, after_series)?;
        let before_ms = (self.cutoffs.first_kept(86_400).max(0) as u64).saturating_mul(1000);
        let [last_state, delete_states] = store::cumulative::sweep(self.db, &after_state, before_ms)?;
        let results = self.db.batch(vec![lease, last_series, delete_series, last_state, delete_states]).await.during(what)?;
        let changes = |i: usize| -> Result<u64, RollupError> {
            Ok(match results.get(i) {
                Some(r) => r.meta().during(what)?.and_then(|m| m.changes).unwrap_or(0) as u64,
                None => 0,
            })
        };
        let next_series = match results.get(1) {
            Some(r) => r.results::<Last<f64>>().during(what)?.first().and_then(|l| l.last).map_or(0, |l| l as i64),
            None => 0,
        };
        let next_state = match results.get(3) {
            Some(r) => r.results::<Last<String>>().during(what)?.into_iter().next().and_then(|l| l.last).unwrap_or_default(),
            None => String::new(),
        };
        Ok(Swept { series: changes(2)?, states: changes(4)?, next_series, next_state })
    }

    /// Keys after the cursor, page by page (applied archives within the
    /// grace period are listed again every run, so it pages past them to
    /// the new ones); the ones to apply, up to the archive budget; the cursor.
    async fn list(&mut self) -> Result<(Vec<String>, Vec<String>, Option<String>), RollupError> {
        let current = store::state(self.db, "cursor").await?;
        let budget = self.config.budget.archives as usize;
        let (mut keys, mut todo) = (Vec::new(), Vec::new());
        let mut after = current.clone();
        for _ in 0..MAX_LIST_PAGES {
            let mut list = self.bucket.list().prefix(proto::archive::KEY_PREFIX).limit(1000);
            if let Some(a) = &after {
                list = list.start_after(a.clone());
            }
            let listing = list.execute().await.during("listing archives")?;
            let page: Vec<String> = listing.objects().iter().map(|o| o.key()).collect();
            let Some(last) = page.last().cloned() else { break };
            let done = store::ledger::processed(self.db, &page).await?;
            for key in page {
                if done.contains(&key) {
                    self.processed.insert(key.clone());
                } else if todo.len() < budget {
                    todo.push(key.clone());
                }
                keys.push(key);
            }
            after = Some(last);
            if todo.len() >= budget || !listing.truncated() {
                break;
            }
        }
        Ok((keys, todo, current))
    }

    /// Reads `todo` into pending work and commits it, until a budget runs
    /// out. If a commit of several archives fails, those archives are read
    /// again and committed one at a time, so that a failure names its
    /// archive (and one that keeps failing is set aside).
    async fn apply(&mut self, todo: Vec<String>) {
        let mut queue: VecDeque<String> = todo.into();
        let mut alone = false;
        loop {
            while let Some(key) = queue.pop_front() {
                let elapsed_ms = worker::Date::now().as_millis().saturating_sub(self.report.started_ms);
                let archives = self.report.archives + self.pending.archives.len() as u64;
                if let Some(limit) = self.config.budget.exhausted(archives, self.report.points + self.pending.points, elapsed_ms) {
                    self.report.stopped_by = Some(limit);
                    break;
                }
                let mut result = self.read(&key).await;
                if alone || self.pending.full() {
                    result = match result {
                        Ok(read) => self.flush().await.map(|()| read),
                        Err(e) => Err(e),
                    };
                }
                match result {
                    Ok(Read::Whole) => {}
                    Ok(Read::Stopped(limit)) => {
                        self.report.stopped_by = Some(limit);
                        break;
                    }
                    Err(Failure::Archive(e)) => {
                        self.report.errors.push(e.to_string());
                        self.failed.push((key, e));
                    }
                    Err(Failure::Commit(touched, e)) => self.commit_failed(touched, e, &mut queue, &mut alone),
                }
            }
            match self.flush().await {
                Ok(()) => return,
                Err(Failure::Commit(touched, e)) => {
                    self.commit_failed(touched, e, &mut queue, &mut alone);
                    if queue.is_empty() || self.report.stopped_by.is_some() {
                        return;
                    }
                }
                Err(Failure::Archive(e)) => return self.report.errors.push(e.to_string()),
            }
        }
    }

    /// After a failed commit: one archive's failure is recorded against it;
    /// the archives of a larger commit are queued again, one per commit.
    fn commit_failed(&mut self, mut touched: Vec<String>, e: RollupError, queue: &mut VecDeque<String>, alone: &mut bool) {
        self.report.errors.push(e.to_string());
        if touched.len() == 1 {
            if let Some(key) = touched.pop() {
                self.failed.push((key, e));
            }
            return;
        }
        *alone = true;
        for key in touched.into_iter().rev() {
            if !queue.contains(&key) {
                queue.push_front(key);
            }
        }
    }

    /// A failure counts towards setting the archive aside if it lies in
    /// the archive, or if D1 failed on it while applying others.
    async fn set_aside_failures(&mut self) {
        for (key, e) in std::mem::take(&mut self.failed) {
            if !quarantine::counts(e.blame(), self.report.archives) {
                continue;
            }
            match quarantine::after_failure(self.db, self.bucket, &key, &e.to_string(), worker::Date::now().as_millis()).await {
                Ok(Some(q)) => {
                    self.processed.insert(key);
                    self.report.quarantined.push(q);
                }
                Ok(None) => {}
                Err(e) => self.report.errors.push(format!("setting {key} aside: {e}")),
            }
        }
    }

    /// Reads one archive chunk by chunk ([`crate::chunk`]) into pending
    /// work, committing whenever that is full.
    async fn read(&mut self, key: &str) -> Result<Read, Failure> {
        let read = |source| RollupError::Read { key: key.to_owned(), source };
        let object = self.bucket.get(key).execute().await.map_err(read)?;
        // Listed a moment ago, so it exists unless deleted by hand since.
        let Some(object) = object else {
            return Err(RollupError::Conflict { key: key.to_owned(), reason: "archive vanished".into() }.into());
        };
        if object.size() > proto::archive::MAX_ARCHIVE_BYTES as u64 {
            let source = proto::archive::ArchiveError::FileTooLarge(object.size());
            return Err(RollupError::Archive { key: key.to_owned(), source }.into());
        }
        let Some(body) = object.body() else {
            return Err(RollupError::Conflict { key: key.to_owned(), reason: "archive has no body".into() }.into());
        };
        let bytes = body.bytes().await.map_err(read)?;
        for chunk in chunk::Chunks::new(&bytes) {
            let mut chunk = chunk.map_err(|source| RollupError::Archive { key: key.to_owned(), source })?;
            // Batches delivered or sent before, in this archive or another,
            // committed or pending, are skipped.
            let candidates: Vec<(i64, &str)> =
                chunk.batches.iter().filter(|b| !b.batch_id.is_empty()).map(|b| (data_hour(b), b.batch_id.as_str())).collect();
            let mut applied = store::ledger::applied(self.db, &candidates).await?;
            applied.extend(chunk.batches.iter().filter(|b| self.pending.has_batch(&b.batch_id)).map(|b| b.batch_id.clone()));
            dedup::fresh(&mut chunk.batches, &applied);
            // In parts whose buckets fit one transaction's memory.
            for part in chunk::parts(&chunk.batches) {
                self.fold(key, part.batches, part.keyed).await?;
                if chunk.last && part.last {
                    self.pending.finish(key);
                    return Ok(Read::Whole);
                }
                if self.pending.full() {
                    self.flush().await?;
                }
                let elapsed_ms = worker::Date::now().as_millis().saturating_sub(self.report.started_ms);
                if let Some(limit) = self.config.budget.exhausted_within_archive(self.report.points + self.pending.points, elapsed_ms) {
                    return Ok(Read::Stopped(limit));
                }
            }
        }
        self.pending.finish(key);
        Ok(Read::Whole)
    }

    /// Folds one part of a chunk of archive `key` (`batches`, keyed) into
    /// pending work.
    async fn fold(&mut self, key: &str, batches: &[proto::point::Batch], mut keyed: series::Keyed<'_>) -> Result<(), RollupError> {
        // Series already in the catalog; new ones are admitted up to the
        // metric's limit and the rest folded into its overflow series.
        let mut catalog: HashMap<u32, Catalog> = HashMap::new();
        let mut unknown: Vec<(u32, &Series<'_>)> = Vec::new();
        for (i, s) in keyed.series.iter().enumerate() {
            match self.catalog.get(&s.hash) {
                Some(c) => drop(catalog.insert(i as u32, c.clone())),
                None => unknown.push((i as u32, s)),
            }
        }
        let first_minute = self.cutoffs.first_kept(60);
        catalog.extend(store::catalog::lookup_series(self.db, &unknown, first_minute).await?);
        // The guard takes the series not in the catalog and those in it
        // that are not active (a returning one counts again from now).
        let new: Vec<u32> = (0..keyed.series.len() as u32).filter(|i| catalog.get(i).is_none_or(|c| !c.active)).collect();
        let mut metrics: Vec<(String, String)> =
            new.iter().map(|&i| (keyed.series[i as usize].tenant.to_owned(), keyed.series[i as usize].metric.to_owned())).collect();
        metrics.sort();
        metrics.dedup();
        let mut counts = store::catalog::active_counts(self.db, &metrics, first_minute, &self.admitted).await?;
        for metric in &metrics {
            if let Some(ids) = self.admitted.get(metric) {
                *counts.entry(metric.clone()).or_default() += ids.len() as u64;
            }
        }
        let before = keyed.series.len() as u32;
        let folded = guard::fold(&mut keyed.series, &new, &counts, self.config.max_series_per_metric);
        let create: Vec<(u32, &Series<'_>)> = new
            .iter()
            .copied()
            .filter(|i| !folded.contains_key(i) && !catalog.contains_key(i))
            .chain(before..keyed.series.len() as u32)
            .map(|i| (i, &keyed.series[i as usize]))
            .collect();
        catalog.extend(store::catalog::create_series(self.db, &create, first_minute).await?);
        // The admitted series count against their metric for the rest of
        // the run, committed or not.
        for &i in new.iter().filter(|i| !folded.contains_key(i)) {
            let s = &keyed.series[i as usize];
            if let Some(c) = catalog.get_mut(&i).filter(|c| !c.active && !s.is_overflow()) {
                c.active = true;
                self.admitted.entry((s.tenant.to_owned(), s.metric.to_owned())).or_default().push(c.id);
            }
        }
        for (i, c) in &catalog {
            self.catalog.insert(keyed.series[*i as usize].hash, c.clone());
        }
        let targets = (0..keyed.series.len() as u32)
            .map(|i| {
                let target = folded.get(&i).copied().unwrap_or(i);
                let c = catalog
                    .get(&target)
                    .ok_or_else(|| RollupError::Conflict { key: key.to_owned(), reason: "a series has no catalog row".into() })?;
                Ok(prepare::Target { series: target, kind: c.kind, unit: c.unit.clone() })
            })
            .collect::<Result<Vec<_>, RollupError>>()?;
        let states = self.baselines(&prepare::cumulative_hashes(&keyed)).await?;
        let mut prepared = prepare::prepare(&keyed, &targets, &states);
        prepared.acc.drop_expired(self.cutoffs);
        let ids: HashMap<u32, i64> = catalog.iter().map(|(i, c)| (*i, c.id)).collect();
        for (&i, &id) in &ids {
            let s = &keyed.series[i as usize];
            self.pending.name(id, s.tenant, s.metric);
        }
        let late = prepared.acc.late_tenants(&keyed.series, (self.report.started_ms / 1000) as i64);
        self.pending.read_batches(key, batches);
        self.pending.fold(prepared, &ids, late)?;
        Ok(())
    }

    /// The states the cumulative series `hashes` start from: this run's
    /// pending one, else D1's (read once a run).
    async fn baselines(&mut self, hashes: &[String]) -> Result<HashMap<String, StoredState>, RollupError> {
        let missing: Vec<String> =
            hashes.iter().filter(|h| !self.pending.states.contains_key(*h) && !self.states.contains_key(*h)).cloned().collect();
        let mut found = store::cumulative::states(self.db, &missing).await?;
        for h in missing {
            let state = found.remove(&h);
            self.states.insert(h, state);
        }
        Ok(hashes
            .iter()
            .filter_map(|h| self.pending.state(h).or_else(|| self.states.get(h).cloned().flatten()).map(|s| (h.clone(), s)))
            .collect())
    }

    /// Commits pending work, if any, in one transaction.
    async fn flush(&mut self) -> Result<(), Failure> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut pending = std::mem::take(&mut self.pending);
        match self.commit(&mut pending).await {
            Ok(()) => {
                let report = &mut self.report;
                report.commits += 1;
                report.archives += pending.archives.len() as u64;
                report.points += pending.points;
                report.set_aside.extend(std::mem::take(&mut pending.set_aside));
                for s in pending.states.into_values() {
                    let version = Some(s.version.map_or(1, |v| v + 1));
                    self.states.insert(s.series_hash, Some(StoredState { point: s.point, version }));
                }
                self.processed.extend(pending.archives);
                Ok(())
            }
            Err(e) => {
                // Another writer may have moved them: read them again.
                self.states.clear();
                Err(Failure::Commit(pending.touched, e))
            }
        }
    }

    async fn commit(&self, pending: &mut Pending) -> Result<(), RollupError> {
        let mut series = pending.take_series();
        let mut parts = proto::d1::JsonLists::default();
        head::parts(&mut series, &pending.names, |p| parts.push(&store::head::item(&p)))?;
        let parts = parts.finish();
        let places: Vec<(i64, Slot)> = series.keys().copied().collect();
        let stored = store::aggregates::stored(self.db, &places).await?;
        drop(places);
        let writes = plan::lists(plan::writes(series, stored))?;
        // Named after its archive when it holds one, so that the same
        // failure reads the same run after run (quarantine compares them).
        let what = match pending.touched.as_slice() {
            [one] => one.clone(),
            many => format!("{} archives from {}", many.len(), many.first().map_or("", String::as_str)),
        };
        let commit_id = format!("{}-{}", self.holder, self.report.commits + 1);
        let now_ms = worker::Date::now().as_millis();
        let lease = store::lease::keep(self.db, self.holder, now_ms + LEASE_MS)?;
        store::commit(self.db, lease, &commit_id, &what, (parts, writes), pending, now_ms).await
    }
}
