//! Headers every response carries, and the origin rules for state-changing
//! requests and the WebSocket upgrade.

use std::sync::OnceLock;

use axum::{extract::Request, middleware::Next, response::Response};
use http::{header, HeaderMap, HeaderValue};
use leptos::nonce::Nonce;

use crate::config::Config;

/// Adds the security headers. Each request gets a fresh nonce, named in the
/// Content-Security-Policy and stamped by Leptos on its hydration script.
pub async fn headers(mut request: Request, next: Next) -> Response {
    let nonce = Nonce::new();
    let policy = format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; connect-src 'self'{}; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        dev_reload()
    );
    request.extensions_mut().insert(nonce);
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if let Ok(policy) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// Under `cargo leptos watch` the page also talks to the live-reload socket.
fn dev_reload() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    SOURCE.get_or_init(|| match std::env::var_os("LEPTOS_WATCH") {
        Some(_) => {
            let port = std::env::var("LEPTOS_RELOAD_PORT").unwrap_or_else(|_| "3001".into());
            format!(" ws://*:{port}")
        }
        None => String::new(),
    })
}

/// The origins a request may come from: the server's own (scheme plus the
/// request's `Host`) and the configured extras.
pub fn origin_allowed(config: &Config, headers: &HeaderMap, origin: &str) -> bool {
    let scheme = if config.cookie_secure {
        "https"
    } else {
        "http"
    };
    let own = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .map(|host| format!("{scheme}://{host}"));
    own.as_deref() == Some(origin)
        || config
            .allowed_origins
            .iter()
            .any(|allowed| allowed == origin)
}

/// A POST may come from no browser (no `Origin`) or from an allowed origin.
pub fn post_allowed(config: &Config, headers: &HeaderMap) -> bool {
    match headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => origin
            .to_str()
            .is_ok_and(|origin| origin_allowed(config, headers, origin)),
    }
}

/// The upgrade needs an allowed `Origin`; a missing one is refused.
pub fn upgrade_allowed(config: &Config, headers: &HeaderMap) -> bool {
    headers
        .get(header::ORIGIN)
        .and_then(|origin| origin.to_str().ok())
        .is_some_and(|origin| origin_allowed(config, headers, origin))
}
