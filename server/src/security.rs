//! Headers every response carries, and the origin rules for state-changing
//! requests and the WebSocket upgrade.

use std::sync::{Arc, OnceLock};

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use http::{header, HeaderMap, HeaderValue};
use leptos::nonce::Nonce;

use crate::{config::Config, error::AppError};

/// Over HTTPS, browsers are told to use nothing else for a year, subdomains
/// included (the value every HSTS preload list asks for).
const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000; includeSubDomains";

/// Adds the security headers. Each request gets a fresh nonce, named in the
/// Content-Security-Policy and stamped by Leptos on its hydration script.
pub async fn headers(State(config): State<Arc<Config>>, request: Request, next: Next) -> Response {
    secure(request, next, dev_reload(), config.cookie_secure).await
}

/// [`headers`], with the extra `connect-src` sources given. Fails closed: a
/// policy that cannot be a header gets a 500, never a page without it.
async fn secure(mut request: Request, next: Next, connect_extra: &str, https: bool) -> Response {
    let nonce = Nonce::new();
    let policy = format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; connect-src 'self'{connect_extra}; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    );
    let mut response = match HeaderValue::from_str(&policy) {
        Ok(policy) => {
            request.extensions_mut().insert(nonce);
            let mut response = next.run(request).await;
            response
                .headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, policy);
            response
        }
        Err(_) => {
            AppError::Internal("the Content-Security-Policy is not a valid header").into_response()
        }
    };
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // What sets no lifetime of its own (pages, the service worker and the
    // other files of `public/`) is revalidated on every load, so a new
    // version is never hidden behind a cached old one.
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    // A page is drawn for the reader its cookie names: no cache may give
    // one reader's page to another.
    let page = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|kind| kind.as_bytes().starts_with(b"text/html"));
    if page {
        headers.append(header::VARY, HeaderValue::from_static("Cookie"));
    }
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(STRICT_TRANSPORT_SECURITY),
        );
    }
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

#[cfg(test)]
mod tests {
    use axum::{middleware, routing::get, Router};
    use http::StatusCode;
    use tower::ServiceExt;

    use super::*;

    async fn answer(connect_extra: &'static str) -> Response {
        let app = Router::new()
            .route("/", get(|| async { "the page" }))
            .layer(middleware::from_fn(move |request, next| {
                secure(request, next, connect_extra, false)
            }));
        let request = Request::builder()
            .uri("/")
            .body(axum::body::Body::empty())
            .unwrap();
        app.oneshot(request).await.unwrap()
    }

    #[tokio::test]
    async fn a_page_without_its_policy_is_never_sent() {
        let fine = answer(" ws://*:3001").await;
        assert_eq!(fine.status(), StatusCode::OK);
        assert!(fine.headers().contains_key(header::CONTENT_SECURITY_POLICY));

        let broken = answer(" ws://*:3001\n").await;
        assert_eq!(broken.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!broken
            .headers()
            .contains_key(header::CONTENT_SECURITY_POLICY));
        let body = axum::body::to_bytes(broken.into_body(), 1024)
            .await
            .unwrap();
        assert!(!String::from_utf8_lossy(&body).contains("the page"));
    }
}
