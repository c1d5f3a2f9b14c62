//! Checks on a query's text before `promql-parser` sees it, for inputs the
//! parser would panic on (which aborts the wasm instance) or take
//! quadratic time or unbounded stack over. One linear scan, mirroring the
//! parser's lexer (promql-parser 0.11.1) where it matters:
//!
//! - a plain number used as a duration (in `[…]`, after `offset`) goes
//!   through `Duration::from_secs_f64`, which panics on NaN, infinity,
//!   negative values and anything at or above 2^64 s: `up[1e30]`,
//!   `up offset inf`, `up[5m:1e30]`. Such numbers must be finite and at
//!   most Prometheus' own bound, 2^63 ns (about 292 years);
//! - the syntax tree is dropped, cloned and type-checked recursively, so
//!   deep nesting overflows the stack (about 4,000 nested calls on wasm)
//!   and long operator chains take quadratic time: at most
//!   [`MAX_DEPTH`] open parentheses and [`MAX_OPERATORS`] operators;
//! - the query text is at most [`MAX_QUERY_BYTES`].
//!
//! Strings and comments are skipped as the lexer skips them. A query the
//! check lets through that the parser then rejects is still a `bad_data`
//! error, just the parser's.

use crate::error::ApiError;

/// Longest query text accepted.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// Deepest nesting of parentheses (calls, aggregations, grouping).
pub const MAX_DEPTH: usize = 128;
/// Most operators (arithmetic, comparison, set, and matchers' `=`/`!`).
pub const MAX_OPERATORS: usize = 1000;
/// The largest plain number accepted as a duration, in seconds: 2^63 ns,
/// Prometheus' `durationLiteralOutOfRange` bound.
pub const MAX_DURATION_S: f64 = 9_223_372_036.854_775;

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0c)
}

fn is_alpha(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphabetic()
}

/// The end of the number starting at `i`, as the lexer's `scan_number`
/// reads it: hexadecimal, or digits, a fraction and an exponent.
fn scan_number(b: &[u8], mut i: usize) -> usize {
    let hex = b.get(i) == Some(&b'0') && matches!(b.get(i + 1), Some(b'x' | b'X'));
    if hex {
        i += 2;
    }
    let digit = |c: u8| if hex { c.is_ascii_hexdigit() } else { c.is_ascii_digit() };
    while b.get(i).is_some_and(|&c| digit(c)) {
        i += 1;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        while b.get(i).is_some_and(|&c| digit(c)) {
            i += 1;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    i
}

fn out_of_range(what: &str) -> ApiError {
    ApiError::BadData(format!(
        "invalid query: duration {what} is out of range: a duration given as a number of seconds must be finite and at most {MAX_DURATION_S}"
    ))
}

/// A number the parser will turn into a duration (a sign before it is
/// applied afterwards), converted as it does.
fn check_duration(lexeme: &str) -> Result<(), ApiError> {
    match promql_parser::util::parse_str_radix(lexeme) {
        Ok(v) if !(v.is_finite() && (0.0..=MAX_DURATION_S).contains(&v)) => Err(out_of_range(lexeme)),
        // Else fine, or rejected by the parser before it converts.
        _ => Ok(()),
    }
}

/// Fails with `bad_data` on a query the parser must not be given.
pub fn check(q: &str) -> Result<(), ApiError> {
    if q.len() > MAX_QUERY_BYTES {
        return Err(ApiError::BadData(format!("invalid query: {} bytes, more than the {MAX_QUERY_BYTES} allowed", q.len())));
    }
    let b = q.as_bytes();
    let (mut i, mut depth, mut operators) = (0usize, 0usize, 0usize);
    let mut in_brackets = false;
    // Right after `offset` (or after it and one sign), a number is a
    // duration.
    let (mut after_offset, mut signed) = (false, false);
    while i < b.len() {
        let c = b[i];
        if is_space(c) {
            i += 1;
            continue;
        }
        if c == b'#' {
            while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                i += 1;
            }
            continue;
        }
        if matches!(c, b'"' | b'\'' | b'`') {
            i += 1;
            while i < b.len() && b[i] != c {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            after_offset = false;
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let end = scan_number(b, i);
            let has_unit = b.get(end).is_some_and(|&d| is_alpha(d));
            if !has_unit && (in_brackets || after_offset) {
                check_duration(&q[i..end])?;
            }
            i = end;
            while b.get(i).is_some_and(|&d| d.is_ascii_alphanumeric() || d == b'_') {
                i += 1;
            }
            after_offset = false;
            continue;
        }
        if !in_brackets && (is_alpha(c) || c == b':') {
            let start = i;
            while b.get(i).is_some_and(|&d| is_alpha(d) || d.is_ascii_digit() || d == b':') {
                i += 1;
            }
            let word = q[start..i].to_ascii_lowercase();
            if after_offset && (word == "inf" || word == "nan") {
                return Err(out_of_range(&q[start..i]));
            }
            if matches!(word.as_str(), "and" | "or" | "unless" | "atan2") {
                operators += 1;
            }
            (after_offset, signed) = (word == "offset", false);
            continue;
        }
        match c {
            b'+' | b'-' if after_offset && !signed => {
                signed = true;
                operators += 1;
                i += 1;
                continue;
            }
            b'(' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(ApiError::BadData(format!("invalid query: nested more than {MAX_DEPTH} levels deep")));
                }
            }
            b')' => depth = depth.saturating_sub(1),
            b'[' => in_brackets = true,
            b']' => in_brackets = false,
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'<' | b'>' | b'=' | b'!' => operators += 1,
            _ => {}
        }
        if operators > MAX_OPERATORS {
            return Err(ApiError::BadData(format!("invalid query: more than {MAX_OPERATORS} operators; split it into several queries")));
        }
        after_offset = false;
        i += 1;
    }
    if operators > MAX_OPERATORS {
        return Err(ApiError::BadData(format!("invalid query: more than {MAX_OPERATORS} operators; split it into several queries")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether promql-parser panics on `q` (tests run with unwinding).
    fn parser_panics(q: &str) -> bool {
        let q = q.to_owned();
        std::panic::catch_unwind(move || {
            let _ = promql_parser::parser::parse(&q);
        })
        .is_err()
    }

    #[test]
    fn what_the_parser_panics_on_is_refused() {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let bad = [
            "up[1e30]",
            "rate(up[2e19])",
            "up offset inf",
            "up offset nan",
            "up[5m:1e30]",
            "up[1e400]",
            "up offset -1e30",
            "up offset +inf",
            "up offset - inf",
            "up offset\n1e30",
            "up offset #c\n 1e30",
            "up OFFSET 1e30",
            "up offset .5e30",
            "up offset+1e30",
            "up offset#c\n-#c\n1e30",
            "up offset 1.9e19",
            "1 offset 1e30",
            "\"a\" offset 1e30",
            "(up[5m])[1e30]",
            "up[1e30] up",
            "up offset 1e30 +",
            "up offset 1E30",
            "up offset 1.e30",
            "up[\t1e30\n]",
            "up[5m : 1e30 ]",
            "(up)[1e30:]",
            "offset offset 1e30",
            "up offset NaN",
            "up offset Inf",
            "{__name__=\"offset\"} offset 1e30",
        ];
        let panicking: Vec<&str> = bad.iter().copied().filter(|q| parser_panics(q)).collect();
        std::panic::set_hook(hook);
        assert_eq!(panicking, bad, "each of these panics the parser (else the list is stale)");
        for q in bad {
            let e = check(q).unwrap_err();
            assert!(matches!(e, ApiError::BadData(_)) && e.to_string().contains("out of range"), "{q}: {e}");
        }
    }

    #[test]
    fn ordinary_queries_pass() {
        for q in [
            "up[5m]",
            "up[5m:1m]",
            "up offset 5m",
            "up offset -1y2w",
            "up @ 1e400",
            "rate(x[1e9])",
            "up offset 1e9",
            "up > 1e30",
            "up{a=\"offset 1e30\"}",
            "up # offset 1e30\n",
            "up{offset=\"1e30\"}",
            "sum by (offset) (up)",
            "up[0x10]",
            "up offset 9223372036",
            "`[1e30]`",
            "'offset inf'",
            "up @ 5m",
            r#"histogram_quantile(0.99, sum by (route) (rate(http_server_duration_count{service_name=~"a.*"}[5m])))"#,
        ] {
            assert!(check(q).is_ok(), "{q}");
        }
    }

    #[test]
    fn nesting_operators_and_length_are_bounded() {
        let nested = |n: usize| format!("{}up{}", "(".repeat(n), ")".repeat(n));
        assert!(check(&nested(MAX_DEPTH)).is_ok());
        assert!(check(&nested(MAX_DEPTH + 1)).unwrap_err().to_string().contains("nested more than 128"));
        // 100,000 levels overflowed the parser's stack when dropping the tree.
        assert!(check(&nested(100_000)).is_err());
        let chain = |n: usize| (0..n).map(|i| format!("a_{i}")).collect::<Vec<_>>().join("+");
        assert!(check(&chain(MAX_OPERATORS + 1)).is_ok());
        assert!(check(&chain(MAX_OPERATORS + 2)).unwrap_err().to_string().contains("operators"));
        assert!(check(&"x".repeat(MAX_QUERY_BYTES + 1)).unwrap_err().to_string().contains("bytes"));
        // Parentheses inside strings and comments do not count.
        assert!(check(&format!("up{{a=\"{}\"}}", "(".repeat(500))).is_ok());
    }
}
