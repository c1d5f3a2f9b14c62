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

/// Bytes of JSON one list parameter carries at most: D1 takes values up
/// to 2,000,000 bytes, and a statement's rows come back within its 50 MB.
pub const MAX_JSON_PARAM_BYTES: usize = 1 << 20;

/// Lowercase hex of `bytes`, which SQLite's `unhex()` turns back into a
/// BLOB: how a blob travels inside a JSON list parameter.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// `items` as JSON arrays of at most [`MAX_JSON_PARAM_BYTES`] (at least one
/// item each), each to bind as one parameter and read with
/// `json_each(?)`: a long list costs one statement per megabyte instead of
/// one per 100 values.
pub fn json_lists<T>(items: impl IntoIterator<Item = T>, to_json: impl Fn(T) -> serde_json::Value) -> Vec<String> {
    let mut lists = JsonLists::default();
    for item in items {
        lists.push(&to_json(item));
    }
    lists.finish()
}

/// [`json_lists`] built one item at a time, for a caller that sorts items
/// into several lists as it makes them.
#[derive(Debug, Default)]
pub struct JsonLists {
    done: Vec<String>,
    list: String,
    items: usize,
}

impl JsonLists {
    pub fn push(&mut self, value: &serde_json::Value) {
        let value = value.to_string();
        if !self.list.is_empty() && self.list.len() + value.len() + 2 > MAX_JSON_PARAM_BYTES {
            self.list.push(']');
            self.done.push(std::mem::take(&mut self.list));
        }
        self.list.push(if self.list.is_empty() { '[' } else { ',' });
        self.list.push_str(&value);
        self.items += 1;
    }

    /// Items pushed so far.
    pub fn len(&self) -> usize {
        self.items
    }

    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// The lists, each a JSON array of at most [`MAX_JSON_PARAM_BYTES`]
    /// (or one item); none if nothing was pushed.
    pub fn finish(mut self) -> Vec<String> {
        if !self.list.is_empty() {
            self.list.push(']');
            self.done.push(self.list);
        }
        self.done
    }
}

/// A finite `x` as the integers `[m, e]` with `x = m · 2^e` exactly and
/// `|m| < 2^53`: how a REAL travels inside a JSON list parameter, for
/// [`real_sql`] to rebuild. SQLite's text-to-double conversion is not
/// correctly rounded (in the local runtime `1.7e308` reads back as
/// 1.7000000000000001e308 and `1e-300` as 9.999999999999999e-301), but it
/// reads integers exactly, and scaling by powers of two is exact. `None`
/// for NaN and the infinities, which no stored number may be; `-0.0`
/// becomes `0`.
pub fn real_parts(x: f64) -> Option<[i64; 2]> {
    if !x.is_finite() {
        return None;
    }
    if x == 0.0 {
        return Some([0, 0]);
    }
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i64;
    let fraction = (bits & ((1 << 52) - 1)) as i64;
    // Subnormals have no implicit leading bit and the least exponent.
    let (mut m, mut e) = if biased == 0 { (fraction, -1074) } else { (fraction | 1 << 52, biased - 1075) };
    let zeros = m.trailing_zeros();
    m >>= zeros;
    e += i64::from(zeros);
    Some([if x < 0.0 { -m } else { m }, e])
}

/// [`real_parts`] of `x` as two JSON values, `null` for `None` or a
/// non-finite `x` (which a `NOT NULL` column then rejects).
pub fn real_json(x: Option<f64>) -> [serde_json::Value; 2] {
    match x.and_then(real_parts) {
        Some([m, e]) => [m.into(), e.into()],
        None => [serde_json::Value::Null, serde_json::Value::Null],
    }
}

/// The SQL expression that rebuilds, exactly, the REAL that
/// [`real_parts`] split into the integer expressions `m` and `e` (NULL if
/// they are NULL). It scales `m` by one power of two per bit of `|e|`,
/// multiplying when `e >= 0` and dividing when it is negative, so that
/// every intermediate value carries the same bits as the result and no
/// step rounds. Bind `m` and `e` to plain columns: each occurs several
/// times.
pub fn real_sql(m: &str, e: &str) -> String {
    // 2^k as an exact REAL, for k up to 1023: products of 2^62 and a rest.
    let pow2 = |k: u32| -> String {
        let mut factors = vec![format!("CAST({} AS REAL)", 1u64 << (k % 62))];
        factors.extend(std::iter::repeat_n(format!("CAST({} AS REAL)", 1u64 << 62), (k / 62) as usize));
        factors.join(" * ")
    };
    let step = |sign: &str, op: char, bit: u32, by: u32| format!(" {op} (CASE WHEN ({sign}{e}) & {bit} THEN {} ELSE 1.0 END)", pow2(by));
    let mut up = format!("({m})");
    let mut down = format!("({m})");
    // e ranges over [-1074, 1023]: only a division needs bit 1024, done as
    // two halves since 2^1024 is beyond the largest double.
    for i in 0..=10 {
        let bit = 1 << i;
        if bit < 1024 {
            up.push_str(&step("", '*', bit, bit));
            down.push_str(&step("-", '/', bit, bit));
        } else {
            down.push_str(&step("-", '/', bit, 512));
            down.push_str(&step("-", '/', bit, 512));
        }
    }
    format!("(CASE WHEN ({e}) >= 0 THEN {up} ELSE {down} END)")
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
    fn hex_is_what_unhex_reads() {
        assert_eq!(hex(&[0x0a, 0xff, 0x00]), "0aff00");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn json_lists_split_at_the_parameter_size_and_keep_every_item() {
        assert!(json_lists(Vec::<u32>::new(), |v| v.into()).is_empty());
        assert_eq!(json_lists([1, 2, 3], |v: i32| serde_json::json!([v, "x"])), [r#"[[1,"x"],[2,"x"],[3,"x"]]"#]);
        let big = "y".repeat(MAX_JSON_PARAM_BYTES / 3);
        let lists = json_lists(0..7, |i| serde_json::json!([i, big]));
        assert_eq!(lists.len(), 4, "two items of a third of the limit per list");
        assert!(lists.iter().all(|l| l.len() <= MAX_JSON_PARAM_BYTES));
        let back: Vec<i64> = lists.iter().flat_map(|l| serde_json::from_str::<Vec<(i64, String)>>(l).unwrap()).map(|(i, _)| i).collect();
        assert_eq!(back, (0..7).collect::<Vec<_>>());
        // One item above the limit still gets its own list.
        let huge = "z".repeat(MAX_JSON_PARAM_BYTES + 1);
        assert_eq!(json_lists([huge.clone()], |s| s.into()).len(), 1);
    }

    #[test]
    fn real_parts_are_exact_for_every_kind_of_double() {
        let values = [
            1.0,
            -1.0,
            0.1,
            0.1 + 0.2,
            123.456_789_012_345_68,
            1e-300,
            1.7e308,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::MIN_POSITIVE / 3.0,
            5e-324,
            -5e-324,
            9_007_199_254_740_993.0,
            1.5e9,
            (1u64 << 62) as f64 * 3.0,
        ];
        for x in values {
            let [m, e] = real_parts(x).unwrap();
            assert!(m.unsigned_abs() < 1 << 53, "{x:e}: m {m}");
            assert!((-1074..=1023).contains(&e), "{x:e}: e {e}");
            assert!(m % 2 != 0, "{x:e}: m is odd, so that the pair is the shortest");
            // m · 2^e by exact halving or doubling, as the SQL does.
            let mut back = m as f64;
            for _ in 0..e.unsigned_abs() {
                back = if e >= 0 { back * 2.0 } else { back / 2.0 };
            }
            assert_eq!(back.to_bits(), x.to_bits(), "{x:e} from [{m}, {e}]");
        }
        assert_eq!(real_parts(0.0), Some([0, 0]));
        assert_eq!(real_parts(-0.0), Some([0, 0]));
        assert_eq!(real_parts(f64::NAN), None);
        assert_eq!(real_parts(f64::INFINITY), None);
        assert_eq!(real_json(None), [serde_json::Value::Null, serde_json::Value::Null]);
        assert_eq!(real_json(Some(6.0)), [serde_json::json!(3), serde_json::json!(1)]);
    }

    #[test]
    fn real_sql_scales_by_each_bit_of_the_exponent() {
        let sql = real_sql("m", "e");
        assert!(sql.starts_with("(CASE WHEN (e) >= 0 THEN (m) * (CASE WHEN (e) & 1 THEN CAST(2 AS REAL) ELSE 1.0 END)"), "{sql}");
        // Ten multiplications (bits 1 to 512) and twelve divisions (1024 twice as 512).
        assert_eq!(sql.matches(" * (CASE").count(), 10, "{sql}");
        assert_eq!(sql.matches(" / (CASE").count(), 12, "{sql}");
        assert!(sql.contains("(CASE WHEN (-e) & 512 THEN CAST(65536 AS REAL) * CAST(4611686018427387904 AS REAL)"), "{sql}");
    }

    #[test]
    fn placeholders_for_lists_and_tuples() {
        assert_eq!(placeholders(3, 1), "?, ?, ?");
        assert_eq!(placeholders(2, 3), "(?, ?, ?), (?, ?, ?)");
        assert_eq!(placeholders(0, 2), "");
    }
}
