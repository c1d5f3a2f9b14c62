//! The rollup Worker: on a cron, reads new R2 archives exactly once and
//! merges their points into per-series aggregates in D1 at 1-minute, 1-hour
//! and 1-day resolution.
//!
//! This file is glue; the work is in [`run`], the logic in [`chunk`]
//! (archives in bounded parts), [`series`] (one identity per series),
//! [`conform`] (a point of another kind or unit), [`prepare`],
//! [`accumulate`], [`cumulative`], [`pending`] (a run's work before it
//! commits), [`plan`], [`cursor`], [`quarantine`],
//! [`retention`], [`status`] and [`config`].

pub mod accumulate;
pub mod chunk;
pub mod config;
pub mod conform;
pub mod cumulative;
pub mod cursor;
pub mod dedup;
pub mod error;
pub mod guard;
pub mod head;
pub mod pending;
pub mod plan;
pub mod prepare;
pub mod quarantine;
pub mod retention;
pub mod run;
pub mod series;
pub mod status;
mod store;

use worker::{event, Context, Env, Method, Request, Response, ScheduleContext, ScheduledEvent};

#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    match run::run(&env).await {
        Ok(r) => worker::console_log!(
            "rollup {}: applied {} archives ({} points) of {} listed, {} errors",
            r.outcome,
            r.archives,
            r.points,
            r.listed,
            r.errors.len()
        ),
        Err(e) => worker::console_error!("rollup failed: {e}"),
    }
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    match (req.method(), req.path().as_str()) {
        (Method::Get, "/") => Response::from_json(&serde_json::json!({
            "service": "rollup", "status": "ok", "version": env!("CARGO_PKG_VERSION"),
        })),
        (Method::Get, "/status") => {
            let secret = env.secret(status::STATUS_KEY).ok().map(|s| s.to_string());
            let authorization = req.headers().get("authorization").ok().flatten();
            if let Err(denied) = status::authorize(secret.as_deref(), authorization.as_deref()) {
                return Response::error(denied.to_string(), denied.status());
            }
            match status::body(&env).await {
                Ok(body) => Response::from_json(&body),
                Err(e) => Response::error(format!("status unavailable: {e}"), 503),
            }
        }
        _ => Response::error("not found: the rollup Worker serves GET / and GET /status", 404),
    }
}
