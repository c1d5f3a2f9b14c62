//! `GET /status`: what the rollup did last and what it has set aside, for
//! operators. It shows every tenant's volumes and error messages, so it
//! answers only requests with `Authorization: Bearer <STATUS_KEY>`; without
//! that secret the endpoint is off (the Worker has a public `workers.dev`
//! route, which the cron does not need).

use crate::error::{Context, RollupError};
use crate::run::{ARCHIVES, DB};
use crate::store;
use worker::Env;

/// The secret that opens `/status`.
pub const STATUS_KEY: &str = "STATUS_KEY";

/// Failed archives `/status` lists at most.
const LISTED_FAILURES: u32 = 20;

/// Why `/status` refused a request.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("status is disabled: set the STATUS_KEY secret to enable it")]
    Disabled,
    #[error("missing or wrong status key: send 'Authorization: Bearer <STATUS_KEY>'")]
    Unauthorized,
}

impl Denied {
    pub fn status(&self) -> u16 {
        match self {
            Denied::Disabled => 404,
            Denied::Unauthorized => 401,
        }
    }
}

/// Whether a request with this `Authorization` header may read the status.
pub fn authorize(secret: Option<&str>, authorization: Option<&str>) -> Result<(), Denied> {
    let secret = secret.filter(|s| !s.is_empty()).ok_or(Denied::Disabled)?;
    let token = proto::keys::bearer(authorization).unwrap_or("");
    proto::keys::matches(secret, token).then_some(()).ok_or(Denied::Unauthorized)
}

/// The body of `/status`: the last run's report, the archives that failed
/// (still failing or quarantined) and the dead letters waiting.
pub async fn body(env: &Env) -> Result<serde_json::Value, RollupError> {
    let db = proto::d1::Db::new(env.d1(DB).during("D1 binding")?);
    let bucket = env.bucket(ARCHIVES).during("R2 binding")?;
    let last: Option<serde_json::Value> = store::state(&db, "last_run").await?.and_then(|s| serde_json::from_str(&s).ok());
    let (failures, quarantined) = store::failures(&db, LISTED_FAILURES).await?;
    let letters = bucket.list().prefix(proto::archive::DEAD_LETTER_PREFIX).limit(1000).execute().await.during("listing dead letters")?;
    let keys: Vec<String> = letters.objects().iter().map(|o| o.key()).collect();
    Ok(serde_json::json!({
        "last_run": last,
        "quarantined": quarantined,
        "failures": failures,
        "dead_letters": {
            "count": keys.len(),
            "more": letters.truncated(),
            "latest": keys.last(),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_needs_the_key_and_is_off_without_it() {
        assert_eq!(authorize(None, Some("Bearer x")), Err(Denied::Disabled));
        assert_eq!(authorize(Some(""), Some("Bearer ")), Err(Denied::Disabled));
        assert_eq!(authorize(Some("s3cret"), None), Err(Denied::Unauthorized));
        assert_eq!(authorize(Some("s3cret"), Some("Bearer s3cre")), Err(Denied::Unauthorized));
        assert_eq!(authorize(Some("s3cret"), Some("Bearer s3cret")), Ok(()));
        assert_eq!(Denied::Unauthorized.status(), 401);
    }
}
