//! Sessions: a random token in an HttpOnly cookie; the database keeps only
//! its SHA-256, so a copy of the database opens no session.

use axum::{extract::FromRequestParts, http::request::Parts};
use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::{error::AppError, routes::AppState, store::SessionRow};

pub const COOKIE: &str = "chat_session";
/// The cookie outlives the browser: a session lasts until logout.
const COOKIE_MAX_AGE_SECS: u64 = 60 * 60 * 24 * 30;

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stored id of the session a token opens.
pub fn id_of(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// The `Set-Cookie` value that starts a session.
pub fn set_cookie(token: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={COOKIE_MAX_AGE_SECS}{secure}"
    )
}

/// The `Set-Cookie` value that removes it from the browser.
pub fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}")
}

/// The session token in the request's cookies, if any.
pub fn token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// The request's session, if its cookie names a live one.
pub async fn current(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<SessionRow>, AppError> {
    let Some(token) = token(headers) else {
        return Ok(None);
    };
    Ok(state.hub.store().find_session(&id_of(token)).await?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_session_among_other_cookies() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            "theme=dark; chat_session=abc123; x=y".parse().unwrap(),
        );
        assert_eq!(token(&headers), Some("abc123"));
        headers.insert(http::header::COOKIE, "chat_session=".parse().unwrap());
        assert_eq!(token(&headers), None);
    }
}
