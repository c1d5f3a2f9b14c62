//! dashboard-api's D1 reads. Every query is scoped to the tenant of the read
//! key; every value is a bound parameter.

use crate::budget;
use crate::catalog::Entry;
use crate::error::ApiError;
use crate::query::select::Selection;
use crate::query::series::{labels_from_json, SeriesData};
use proto::aggregate::{block, head, Aggregate, Row};
use proto::d1::{Db, MAX_PARAMS};
use proto::point::Kind;
use serde::Deserialize;
use std::collections::HashMap;
use worker::wasm_bindgen::JsValue;

fn unavailable(e: worker::Error) -> ApiError {
    ApiError::Unavailable(e.to_string())
}

/// Runs a read through [`proto::d1::retried`]: what is still failing after
/// the retries is `unavailable` (503), which clients retry later.
async fn read<T, F, Fut>(attempt: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = worker::Result<T>>,
{
    proto::d1::retried(attempt).await.map_err(unavailable)
}

/// Catalog rows read per statement: a row's labels can be 74 KB.
const CATALOG_PAGE: usize = 200;

/// The tenant's catalog rows of the exposed `names` (all names if `None`),
/// page by page in id order, each handed to `row` until it returns
/// `false` or `max_rows` have been read; returns whether rows were left.
async fn catalog_rows(
    db: &Db,
    tenant: &str,
    names: Option<&[String]>,
    max_rows: usize,
    mut row: impl FnMut(i64, String, &str, Kind, String) -> Result<bool, ApiError>,
) -> Result<bool, ApiError> {
    #[derive(Deserialize)]
    struct SeriesRow {
        id: f64,
        prom_name: String,
        labels: String,
        kind: String,
        unit: String,
    }
    let mut after = -1.0;
    let mut read_rows = 0;
    loop {
        let mut params: Vec<JsValue> = vec![tenant.into(), JsValue::from_f64(after), JsValue::from_f64(CATALOG_PAGE as f64)];
        let filter = match names {
            None => String::new(),
            Some(names) => {
                params.extend(names.iter().map(|n| JsValue::from(n.as_str())));
                format!(" AND prom_name IN ({})", (4..names.len() + 4).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", "))
            }
        };
        let sql =
            format!("SELECT id, prom_name, labels, kind, unit FROM series WHERE tenant = ?1 AND id > ?2{filter} ORDER BY id LIMIT ?3");
        let rows = read(|| async { db.one(db.prepare(&sql, &params)?).await?.results::<SeriesRow>() }).await?;
        let full = rows.len() == CATALOG_PAGE;
        for r in rows {
            after = r.id;
            read_rows += 1;
            let Some(kind) = Kind::parse(&r.kind) else { continue };
            if !row(r.id as i64, r.prom_name, &r.labels, kind, r.unit)? {
                return Ok(true);
            }
            if read_rows >= max_rows {
                return Ok(full);
            }
        }
        if !full {
            return Ok(false);
        }
    }
}

/// The tenant's series each of `selections` selects, with their aggregates
/// at `resolution` whose buckets start in [`from[i]`, `to_s`). All
/// selections share one catalog scan and one batch of aggregate reads, and
/// every budget ([`budget`]) is checked before what it bounds is read.
pub async fn fetch(
    db: &Db,
    tenant: &str,
    selections: &[Selection],
    from: &[f64],
    resolution: i64,
    to_s: f64,
    limits: &budget::Limits,
) -> Result<Vec<Vec<SeriesData>>, ApiError> {
    let mut names: Vec<String> = selections.iter().flat_map(Selection::names).collect();
    names.sort();
    names.dedup();
    let mut out: Vec<Vec<(i64, SeriesData)>> = selections.iter().map(|_| Vec::new()).collect();
    if names.is_empty() {
        return Ok(out.into_iter().map(|_| Vec::new()).collect());
    }
    let (mut found, mut scanned) = (0, 0);
    // Bound parameters: the tenant, the cursor, the page size, the names.
    for names in names.chunks(MAX_PARAMS - 3) {
        catalog_rows(db, tenant, Some(names), usize::MAX, |id, prom_name, labels, kind, _| {
            scanned += 1;
            let labels = labels_from_json(labels);
            for (i, sel) in selections.iter().enumerate() {
                if let Some(s) = sel.series_of(&prom_name, &labels, kind) {
                    out[i].push((id, s));
                    found += 1;
                }
            }
            budget::series(found, scanned)?;
            Ok(true)
        })
        .await?;
    }
    let reads: Vec<(usize, u64)> = out.iter().zip(from).map(|(series, &f)| (series.len(), budget::buckets(f, to_s, resolution))).collect();
    budget::reads(&reads, limits)?;

    // Each series once, from the earliest start any selection needs.
    let mut earliest: HashMap<i64, f64> = HashMap::new();
    for (series, &f) in out.iter().zip(from) {
        for (id, _) in series {
            let e = earliest.entry(*id).or_insert(f);
            *e = e.min(f);
        }
    }
    if earliest.is_empty() {
        return Ok(out.into_iter().map(|_| Vec::new()).collect());
    }
    #[derive(Deserialize)]
    struct AggRow {
        series_id: f64,
        bucket_start: f64,
        #[serde(flatten)]
        row: Row,
    }
    #[derive(Deserialize)]
    struct BlockRow {
        series_id: f64,
        hour_start: f64,
        #[serde(deserialize_with = "proto::aggregate::blob")]
        body: Option<Vec<u8>>,
    }
    #[derive(Deserialize)]
    struct HeadRow {
        hour_start: f64,
        #[serde(deserialize_with = "proto::aggregate::blob")]
        body: Option<Vec<u8>>,
    }
    let mut ids: Vec<(i64, f64)> = earliest.into_iter().collect();
    ids.sort_by_key(|(id, _)| *id);
    let end = to_s.ceil();
    let mut queries = Vec::new();
    for chunk in ids.chunks(MAX_PARAMS - 3) {
        let start = chunk.iter().map(|(_, f)| *f).fold(f64::INFINITY, f64::min);
        let sql = format!(
            "SELECT series_id, bucket_start, count, sum, min, max, last, last_time_ms, samples FROM aggregates \
             WHERE resolution = ?1 AND bucket_start >= ?2 AND bucket_start < ?3 AND series_id IN ({}) \
             ORDER BY bucket_start",
            vec!["?"; chunk.len()].join(", ")
        );
        let mut params: Vec<JsValue> = vec![JsValue::from_f64(resolution as f64), JsValue::from_f64(start.floor()), JsValue::from_f64(end)];
        params.extend(chunk.iter().map(|(id, _)| JsValue::from_f64(*id as f64)));
        queries.push((sql, params));
    }
    let row_statements = queries.len();
    // Minutes since migration 0011 are in blocks (closed hours, compacted)
    // and head rows (hours not yet compacted): read in the same batch, one
    // snapshot, so a compaction between them cannot hide or double a minute.
    let mut block_statements = 0;
    if resolution == 60 {
        let hour = |t: f64| (t.floor() as i64).div_euclid(3600) * 3600;
        let pairs = ids.iter().flat_map(|&(id, f)| (hour(f)..end as i64).step_by(3600).map(move |h| (h, id)));
        for list in proto::d1::json_lists(pairs, |(h, id)| serde_json::json!([h, id])) {
            queries.push((
                "SELECT b.series_id, b.hour_start, b.body FROM json_each(?1) j \
                 JOIN blocks b ON b.hour_start = j.value->>0 AND b.series_id = j.value->>1"
                    .to_owned(),
                vec![list.into()],
            ));
            block_statements += 1;
        }
        let first = ids.iter().map(|(_, f)| hour(*f)).min().unwrap_or(0);
        let hours: Vec<i64> = (first..end as i64).step_by(3600).collect();
        queries.push((
            "SELECT hour_start, body FROM head WHERE hour_start IN (SELECT value FROM json_each(?1)) \
             AND tenant = ?2 AND prom_name IN (SELECT value FROM json_each(?3))"
                .to_owned(),
            vec![
                serde_json::Value::from(hours).to_string().into(),
                tenant.into(),
                serde_json::Value::from(names.clone()).to_string().into(),
            ],
        ));
    }
    let results = read(|| async {
        let statements = queries.iter().map(|(sql, params)| db.prepare(sql, params)).collect::<worker::Result<Vec<_>>>()?;
        db.batch(statements).await
    })
    .await?;
    // Where each series sits in each selection's list.
    let mut places: HashMap<i64, Vec<(usize, usize)>> = HashMap::new();
    for (i, series) in out.iter().enumerate() {
        for (j, (id, _)) in series.iter().enumerate() {
            places.entry(*id).or_default().push((i, j));
        }
    }
    let execution = |e: proto::aggregate::AggregateError| ApiError::Execution(e.to_string());
    let mut place = |series_id: i64, bucket_start: i64, agg: Aggregate| {
        if bucket_start as f64 >= end {
            return;
        }
        let Some(at) = places.get(&series_id) else { return };
        let wants = |&(i, _): &(usize, usize)| bucket_start as f64 >= from[i].floor();
        let Some(last) = at.iter().rposition(wants) else { return };
        // Copied only for a series that several selections read.
        for &(i, j) in at[..last].iter().filter(|p| wants(p)) {
            out[i][j].1.buckets.push((bucket_start, agg.clone()));
        }
        let (i, j) = at[last];
        out[i][j].1.buckets.push((bucket_start, agg));
    };
    for (k, result) in results.iter().enumerate() {
        if k < row_statements {
            for r in result.results::<AggRow>().map_err(unavailable)? {
                place(r.series_id as i64, r.bucket_start as i64, Aggregate::from_row(&r.row).map_err(execution)?);
            }
        } else if k < row_statements + block_statements {
            for r in result.results::<BlockRow>().map_err(unavailable)? {
                let hour = r.hour_start as i64;
                for (start, agg) in block::decode(hour, r.body.as_deref().unwrap_or_default()).map_err(execution)? {
                    place(r.series_id as i64, start, agg);
                }
            }
        } else {
            for r in result.results::<HeadRow>().map_err(unavailable)? {
                let hour = r.hour_start as i64;
                let body = r.body.as_deref().unwrap_or_default();
                for (id, minutes) in head::decode(hour, body, |id| places.contains_key(&id)).map_err(execution)? {
                    for (start, agg) in minutes {
                        place(id, start, agg);
                    }
                }
            }
        }
    }
    for series in &mut out {
        for (_, s) in series.iter_mut() {
            s.settle();
        }
    }
    Ok(out.into_iter().map(|series| series.into_iter().map(|(_, s)| s).collect()).collect())
}

/// The tenant's catalog in the exposed spelling: of the exposed `names`
/// if given, at most `max_rows` rows, sorted by name and labels; and
/// whether rows were left out.
pub async fn catalog(db: &Db, tenant: &str, names: Option<&[String]>, max_rows: usize) -> Result<(Vec<Entry>, bool), ApiError> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut cut = false;
    let chunks: Vec<Option<&[String]>> = match names {
        None => vec![None],
        Some(names) => names.chunks(MAX_PARAMS - 3).map(Some).collect(),
    };
    for chunk in chunks {
        let left = max_rows.saturating_sub(entries.len());
        if left == 0 {
            cut = true;
            break;
        }
        cut |= catalog_rows(db, tenant, chunk, left, |_, name, labels, kind, unit| {
            entries.push(Entry { name, labels: labels_from_json(labels), kind, unit });
            Ok(true)
        })
        .await?;
    }
    entries.sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
    Ok((entries, cut))
}

/// The tenant's metrics with their series counts, counted by D1 (at most
/// 10,000 names).
pub async fn metrics(db: &Db, tenant: &str) -> Result<Vec<crate::json_api::Metric>, ApiError> {
    let sql = "SELECT prom_name AS name, kind, unit, COUNT(*) AS series FROM series WHERE tenant = ?1 \
               GROUP BY prom_name, kind, unit ORDER BY prom_name LIMIT 10000";
    read(|| async { db.one(db.prepare(sql, &[tenant.into()])?).await?.results::<crate::json_api::Metric>() }).await
}

/// The tenant's cache generation (0 before the rollup first sets it); see
/// [`crate::cache`].
pub async fn generation(db: &Db, tenant: &str) -> Result<u64, ApiError> {
    #[derive(Deserialize)]
    struct GenerationRow {
        generation: f64,
    }
    let sql = "SELECT generation FROM cache_generation WHERE tenant = ?1";
    let rows = read(|| async { db.one(db.prepare(sql, &[tenant.into()])?).await?.results::<GenerationRow>() }).await?;
    Ok(rows.first().map_or(0, |r| r.generation as u64))
}
