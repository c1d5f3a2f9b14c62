//! Whole-number settings from `wrangler.toml` vars, read the same way by
//! every Worker. Taking a lookup function instead of `worker::Env` keeps the
//! parsing testable natively.

/// The var `name` as a whole number from 1 to 2^32 − 1, or `default` if it
/// is unset. The error names the var and the value it had.
pub fn positive(var: &impl Fn(&str) -> Option<String>, name: &str, default: u64) -> Result<u64, String> {
    let Some(text) = var(name) else { return Ok(default) };
    match text.trim().parse::<u64>() {
        Ok(n) if (1..=u64::from(u32::MAX)).contains(&n) => Ok(n),
        _ => Err(format!("{name} must be a whole number from 1 to {}, not {text:?}", u32::MAX)),
    }
}
