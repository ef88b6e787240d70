//! Session tokens and cookies: a random token in an HttpOnly cookie; the
//! database keeps only its SHA-256 (the [`SessionId`]), so a copy of the
//! database opens no session.

use std::{fmt, sync::Arc};

use http::HeaderMap;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The cookie's name. Over HTTPS it carries the `__Host-` prefix, which the
/// browser honours only for a `Secure`, host-only cookie with `Path=/`, so no
/// sibling domain or plain-HTTP page can plant or shadow it.
const COOKIE: &str = "chat_session";
const SECURE_COOKIE: &str = "__Host-chat_session";
/// The cookie lives as long as browsers keep one (they cap it at 400 days):
/// the server, not the browser, ends a session once it has been idle for
/// `SESSION_IDLE_MS`, so a session in daily use is never cut short.
const COOKIE_MAX_AGE_SECS: u64 = 60 * 60 * 24 * 400;

/// A session's key: the SHA-256 of its cookie token, hex. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(Arc<str>);

impl SessionId {
    /// The id of the session a token opens.
    pub fn of_token(token: &str) -> Self {
        Self(hex(&Sha256::digest(token.as_bytes())).into())
    }

    /// An id as the store keeps it.
    pub fn from_stored(id: &str) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the whole id in a log line: a prefix is enough to follow one.
        f.write_str(self.0.get(..8).unwrap_or(&self.0))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// A new session: the token for the cookie and the id the server keeps.
pub fn mint() -> (String, SessionId) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex(&bytes);
    let id = SessionId::of_token(&token);
    (token, id)
}

/// The public tag of the session stored as `id`, on each of its messages:
/// its own pages tell their messages by it (names are freed at logout and
/// taken again), and nothing leads back from it to the id or the cookie.
pub fn author_tag(id: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"author tag\0")
        .chain_update(id.as_bytes())
        .finalize();
    hex(&digest[..8])
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_COOKIE
    } else {
        COOKIE
    }
}

/// The `Set-Cookie` value that starts a session.
pub fn set_cookie(token: &str, secure: bool) -> String {
    let name = cookie_name(secure);
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={COOKIE_MAX_AGE_SECS}{secure}")
}

/// The `Set-Cookie` value that removes it from the browser.
pub fn clear_cookie(secure: bool) -> String {
    let name = cookie_name(secure);
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}")
}

/// The session token in the request's cookies, if any.
pub fn token(headers: &HeaderMap, secure: bool) -> Option<&str> {
    let wanted = cookie_name(secure);
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == wanted)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// The session the request's cookie names, whether or not it is still live.
pub fn presented(headers: &HeaderMap, secure: bool) -> Option<SessionId> {
    token(headers, secure).map(SessionId::of_token)
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
        assert_eq!(token(&headers, false), Some("abc123"));
        assert_eq!(token(&headers, true), None);
        headers.insert(http::header::COOKIE, "chat_session=".parse().unwrap());
        assert_eq!(token(&headers, false), None);
    }

    #[test]
    fn over_https_the_cookie_is_host_only() {
        let cookie = set_cookie("t", true);
        assert!(cookie.starts_with("__Host-chat_session=t; Path=/;"));
        assert!(cookie.contains("; Secure"));
        assert!(!cookie.contains("Domain"));
    }

    #[test]
    fn ids_are_the_hash_of_the_token() {
        let (token, id) = mint();
        assert_eq!(token.len(), 64);
        assert_eq!(SessionId::of_token(&token), id);
        assert_eq!(id.as_str().len(), 64);
        assert_eq!(id.to_string().len(), 8);
    }
}
