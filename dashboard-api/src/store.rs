//! dashboard-api's D1 reads. Every query is scoped to the tenant of the read
//! key; every value is a bound parameter.

use crate::catalog::Entry;
use crate::error::ApiError;
use crate::query::select::Selection;
use crate::query::select::Field;
use crate::query::series::{labels_from_json, SeriesData};
use proto::aggregate::{Aggregate, Row};
use proto::point::Kind;
use serde::Deserialize;
use std::collections::HashMap;
use worker::wasm_bindgen::JsValue;
use worker::D1Database;

const MAX_PARAMS: usize = 100;

fn unavailable(e: worker::Error) -> ApiError {
    ApiError::Unavailable(e.to_string())
}

/// Runs a read, retrying twice after a short pause if D1 fails: reads are
/// idempotent, and D1 reports transient failures (a busy database, a lost
/// connection) as errors worth retrying. What is still failing is
/// `unavailable` (503), which clients retry later.
async fn read<T, F, Fut>(mut attempt: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = worker::Result<T>>,
{
    let mut pause_ms = 50;
    let mut tries = 0;
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) if tries == 2 => return Err(unavailable(e)),
            Err(_) => {
                tries += 1;
                worker::Delay::from(std::time::Duration::from_millis(pause_ms)).await;
                pause_ms *= 4;
            }
        }
    }
}

/// The tenant's series selected by `sel` (at most `max_series`, else an
/// error), with their aggregates at `resolution` whose buckets start in
/// [from_s, to_s).
pub async fn fetch(
    db: &D1Database,
    tenant: &str,
    sel: &Selection,
    resolution: i64,
    from_s: f64,
    to_s: f64,
    max_series: usize,
) -> Result<Vec<SeriesData>, ApiError> {
    #[derive(Deserialize)]
    struct SeriesRow {
        id: f64,
        prom_name: String,
        labels: String,
        kind: String,
    }
    let names = sel.names();
    let sql = format!(
        "SELECT id, prom_name, labels, kind FROM series WHERE tenant = ?1 AND prom_name IN ({})",
        (2..names.len() + 2).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ")
    );
    let mut params: Vec<JsValue> = vec![tenant.into()];
    params.extend(names.iter().map(|n| JsValue::from(n.as_str())));
    let rows = read(|| async { db.prepare(&sql).bind(&params)?.all().await?.results::<SeriesRow>() }).await?;
    let mut series: Vec<(i64, SeriesData)> = rows
        .into_iter()
        .filter_map(|r| {
            let labels = labels_from_json(&r.labels);
            let kind = Kind::parse(&r.kind)?;
            let field = sel.field_of(&r.prom_name);
            // Only a distribution's or gauge's samples have a count and sum.
            let fits = field == Field::Value || kind != Kind::Counter;
            (fits && sel.matches(&labels))
                .then(|| (r.id as i64, SeriesData { prom_name: sel.name.clone(), labels, kind, field, buckets: Vec::new() }))
        })
        .collect();
    if series.len() > max_series {
        return Err(ApiError::Execution(format!(
            "the query selects more than {} series; narrow {} with label matchers",
            crate::api::MAX_SERIES_PER_QUERY,
            sel.name
        )));
    }
    if series.is_empty() {
        return Ok(Vec::new());
    }

    #[derive(Deserialize)]
    struct AggRow {
        series_id: f64,
        bucket_start: f64,
        #[serde(flatten)]
        row: Row,
    }
    let mut queries = Vec::new();
    for chunk in series.chunks(MAX_PARAMS - 3) {
        let sql = format!(
            "SELECT series_id, bucket_start, count, sum, min, max, last, last_time_ms, samples FROM aggregates \
             WHERE resolution = ?1 AND bucket_start >= ?2 AND bucket_start < ?3 AND series_id IN ({}) \
             ORDER BY bucket_start",
            vec!["?"; chunk.len()].join(", ")
        );
        let mut params: Vec<JsValue> =
            vec![JsValue::from_f64(resolution as f64), JsValue::from_f64(from_s.floor()), JsValue::from_f64(to_s.ceil())];
        params.extend(chunk.iter().map(|(id, _)| JsValue::from_f64(*id as f64)));
        queries.push((sql, params));
    }
    let results = read(|| async {
        let statements = queries.iter().map(|(sql, params)| db.prepare(sql).bind(params)).collect::<worker::Result<Vec<_>>>()?;
        db.batch(statements).await?.iter().map(|r| r.results::<AggRow>()).collect::<worker::Result<Vec<_>>>()
    })
    .await?;
    let index: HashMap<i64, usize> = series.iter().enumerate().map(|(i, (id, _))| (*id, i)).collect();
    for rows in results {
        for r in rows {
            let agg = Aggregate::from_row(&r.row).map_err(|e| ApiError::Execution(e.to_string()))?;
            if let Some(&i) = index.get(&(r.series_id as i64)) {
                series[i].1.buckets.push((r.bucket_start as i64, agg));
            }
        }
    }
    Ok(series.into_iter().map(|(_, s)| s).collect())
}

/// The tenant's whole series catalog, in the exposed spelling.
pub async fn catalog(db: &D1Database, tenant: &str) -> Result<Vec<Entry>, ApiError> {
    #[derive(Deserialize)]
    struct CatalogRow {
        prom_name: String,
        labels: String,
        kind: String,
        unit: String,
    }
    let sql = "SELECT prom_name, labels, kind, unit FROM series WHERE tenant = ?1 ORDER BY prom_name, labels";
    let rows = read(|| async { db.prepare(sql).bind(&[tenant.into()])?.all().await?.results::<CatalogRow>() }).await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| Some(Entry { name: r.prom_name, labels: labels_from_json(&r.labels), kind: Kind::parse(&r.kind)?, unit: r.unit }))
        .collect())
}

/// The tenant's cache generation (0 before the rollup first sets it); see
/// [`crate::cache`].
pub async fn generation(db: &D1Database, tenant: &str) -> Result<u64, ApiError> {
    #[derive(Deserialize)]
    struct GenerationRow {
        generation: f64,
    }
    let sql = "SELECT generation FROM cache_generation WHERE tenant = ?1";
    let row = read(|| async { db.prepare(sql).bind(&[tenant.into()])?.first::<GenerationRow>(None).await }).await?;
    Ok(row.map_or(0, |r| r.generation as u64))
}
