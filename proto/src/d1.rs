//! The one D1 module the rollup and dashboard-api share (feature `d1`):
//! statements with every value bound as D1 takes it, the parameter limit,
//! retries of idempotent reads, and the account of rows read and written
//! that D1 bills (`meta.rows_read`, `meta.rows_written`, each index entry
//! included).
//!
//! Integers are bound as JavaScript numbers (exact to 2^53), never as
//! BigInt, which D1 rejects.

use serde::Serialize;
use std::cell::Cell;
use worker::wasm_bindgen::JsValue;
use worker::{js_sys, D1Database, D1PreparedStatement, D1Result};

/// D1 allows 100 bound parameters per statement.
pub const MAX_PARAMS: usize = 100;

/// A number parameter.
pub fn num(v: f64) -> JsValue {
    JsValue::from_f64(v)
}

/// A number parameter, or NULL.
pub fn opt(v: Option<f64>) -> JsValue {
    v.map_or(JsValue::NULL, JsValue::from_f64)
}

/// A BLOB parameter, or NULL.
pub fn blob(b: Option<&[u8]>) -> JsValue {
    b.map_or(JsValue::NULL, |b| js_sys::Uint8Array::from(b).into())
}

/// `?, ?, …` for `n` parameters, or `(?, ?, ?), …` for `n` tuples of `width`.
pub fn placeholders(n: usize, width: usize) -> String {
    let one = if width == 1 { "?".to_string() } else { format!("({})", vec!["?"; width].join(", ")) };
    vec![one; n].join(", ")
}

/// What the statements run through one [`Db`] cost, as D1 reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Statements run (each statement of a batch counts).
    pub statements: u64,
    pub rows_read: u64,
    pub rows_written: u64,
}

impl Usage {
    fn add(&mut self, result: &D1Result) {
        self.statements += 1;
        if let Ok(Some(meta)) = result.meta() {
            self.rows_read += meta.rows_read.unwrap_or(0) as u64;
            self.rows_written += meta.rows_written.unwrap_or(0) as u64;
        }
    }
}

/// A D1 database binding that keeps the account of what ran through it.
pub struct Db {
    db: D1Database,
    usage: Cell<Usage>,
}

impl Db {
    pub fn new(db: D1Database) -> Db {
        Db { db, usage: Cell::new(Usage::default()) }
    }

    /// `sql` with `params` bound.
    pub fn prepare(&self, sql: &str, params: &[JsValue]) -> worker::Result<D1PreparedStatement> {
        self.db.prepare(sql).bind(params)
    }

    /// Runs `statements` as one batch, which D1 runs as one transaction:
    /// all of them apply or none does. An empty batch runs nothing.
    pub async fn batch(&self, statements: Vec<D1PreparedStatement>) -> worker::Result<Vec<D1Result>> {
        if statements.is_empty() {
            return Ok(Vec::new());
        }
        let results = self.db.batch(statements).await?;
        let mut usage = self.usage.get();
        results.iter().for_each(|r| usage.add(r));
        self.usage.set(usage);
        Ok(results)
    }

    /// Runs one statement and returns its result.
    pub async fn one(&self, statement: D1PreparedStatement) -> worker::Result<D1Result> {
        let result = statement.all().await?;
        let mut usage = self.usage.get();
        usage.add(&result);
        self.usage.set(usage);
        Ok(result)
    }

    /// What has run through this binding so far.
    pub fn usage(&self) -> Usage {
        self.usage.get()
    }
}

/// Runs a read, retrying twice after a short pause (50 ms, then 200 ms) if
/// D1 fails: reads are idempotent, and D1 reports transient failures (a
/// busy database, a lost connection) as errors worth retrying. The last
/// error is returned.
pub async fn retried<T, F, Fut>(mut attempt: F) -> worker::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = worker::Result<T>>,
{
    let mut pause_ms = 50;
    let mut tries = 0;
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) if tries == 2 => return Err(e),
            Err(_) => {
                tries += 1;
                worker::Delay::from(std::time::Duration::from_millis(pause_ms)).await;
                pause_ms *= 4;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_for_lists_and_tuples() {
        assert_eq!(placeholders(3, 1), "?, ?, ?");
        assert_eq!(placeholders(2, 3), "(?, ?, ?), (?, ?, ?)");
        assert_eq!(placeholders(0, 2), "");
    }
}
