//! Who is asking: the live session behind a request's cookie. A session
//! lives until logout, or until it has gone unused for `SESSION_IDLE_MS`.

use std::time::Duration;

use axum::{extract::FromRequestParts, http::request::Parts};
use http::HeaderMap;
use tokio::sync::watch;

use crate::{
    error::AppError,
    hub::Hub,
    session::{self, SessionId},
    state::AppState,
    store::{self, SessionRow},
};

/// How stale `last_seen` may get before a request writes it again: a write
/// a minute per session at most, not one per request.
const LAST_SEEN_EVERY: Duration = Duration::from_secs(60);
/// The longest pause between two purges of ended sessions.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// How stale `last_seen` may get for sessions that end after `idle`: a tenth
/// of it at most, so a session in use never comes near its end.
fn last_seen_every(idle: Duration) -> Duration {
    LAST_SEEN_EVERY.min(idle / 10)
}

/// The request's session, if its cookie names a live one. Keeps the
/// session's `last_seen` fresh.
pub async fn current(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<SessionRow>, AppError> {
    let Some(id) = session::presented(headers, state.config.cookie_secure) else {
        return Ok(None);
    };
    let store = state.hub.store();
    let Some(record) = store.find_session_record(id.as_str()).await? else {
        return Ok(None);
    };
    let idle = state.config.session_idle();
    let unused = Duration::from_millis(
        u64::try_from(store::now_ms().saturating_sub(record.last_seen)).unwrap_or(0),
    );
    if unused > idle {
        return Ok(None);
    }
    if unused >= last_seen_every(idle) {
        // A missed write only brings the session's end nearer by a minute.
        if let Err(error) = store.touch_session(id.as_str()).await {
            tracing::warn!(%error, session = %id, "could not record a session's use");
        }
    }
    Ok(Some(record.row))
}

/// A route that needs a session: answers 401 without one.
pub struct Authenticated(pub SessionRow);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        current(state, &parts.headers)
            .await?
            .map(Authenticated)
            .ok_or(AppError::Unauthorized)
    }
}

/// Until `stop` changes or is dropped: ends the sessions left idle for
/// `idle` and the logins that opened no socket within `unclaimed`, through
/// the hub, so any name or socket they still hold goes too.
pub async fn purge_ended_sessions(
    hub: Hub,
    idle: Duration,
    unclaimed: Duration,
    mut stop: watch::Receiver<()>,
) {
    // Often enough that an ended session goes within half its time, and
    // at least once a minute.
    let every = PURGE_EVERY
        .min(idle.min(unclaimed) / 2)
        .max(Duration::from_millis(1));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        let now = store::now_ms();
        let before =
            |ago: Duration| now.saturating_sub(i64::try_from(ago.as_millis()).unwrap_or(i64::MAX));
        let ended = match hub
            .store()
            .purge_sessions(before(idle), before(unclaimed))
            .await
        {
            Ok(ended) => ended,
            Err(error) => {
                tracing::warn!(%error, "could not purge ended sessions");
                continue;
            }
        };
        for id in ended {
            let id = SessionId::from_stored(&id);
            if let Err(error) = hub.logout(&id).await {
                tracing::warn!(%error, session = %id, "could not end a purged session");
            }
        }
    }
}
