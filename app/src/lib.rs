//! The Leptos UI, compiled twice: with `ssr` into the server, with `hydrate`
//! into the WASM client that takes over the server-rendered page.
// The chat page's view types nest deeper than the compiler's default
// query depth allows when it lays out their hydration futures.
#![recursion_limit = "256"]

pub mod protocol;
pub mod room;
pub mod seed;

pub mod chat_state;
mod components;
#[cfg(feature = "hydrate")]
mod outbox;
mod pages;
#[cfg(feature = "hydrate")]
mod ws_client;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path,
};

#[cfg(feature = "ssr")]
pub use pages::login::login_error_document;
pub use pages::login::LoginCard;

/// The name cargo-leptos gives the client bundle (`/pkg/chat.js`, `.wasm`, `.css`).
pub const OUTPUT_NAME: &str = "chat";

/// The HTML document around the app, rendered on the server only.
#[cfg(feature = "ssr")]
pub fn shell(options: LeptosOptions) -> impl IntoView {
    // The server's security middleware puts a fresh nonce on each request and
    // names it in the Content-Security-Policy; Leptos stamps it on the
    // hydration script.
    if let Some(nonce) = use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<leptos::nonce::Nonce>().cloned())
    {
        provide_context(nonce);
    }
    let theme = components::colour_mode::current().rendered_theme();
    let seed = use_context::<seed::Seed>().map(|seed| {
        view! {
            <script type="application/json" id=seed::SCRIPT_ID nonce=leptos::nonce::use_nonce() inner_html=seed.script_text()></script>
        }
    });
    view! {
        <!DOCTYPE html>
        <html lang="en" data-bs-theme=theme>
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1, interactive-widget=resizes-content"/>
                <meta name="theme-color" content="#0d6efd"/>
                <script src="/theme.js" nonce=leptos::nonce::use_nonce()></script>
                <link rel="icon" href="/favicon.ico"/>
                <link rel="manifest" href="/manifest.webmanifest"/>
                <link rel="stylesheet" href="/vendor/bootstrap.min.css"/>
                <leptos_meta::HashedStylesheet options=options.clone()/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <leptos_meta::MetaTags/>
                // A room's page registers the service worker that keeps it
                // for offline use; the login page needs none.
                {seed.is_some().then(|| view! { <script src="/pwa.js" defer nonce=leptos::nonce::use_nonce()></script> })}
                {seed}
            </head>
            <body class="bg-body-tertiary">
                <App/>
            </body>
        </html>
    }
}

/// The routes both sides agree on.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title text="Chat"/>
        <Router>
            <Routes fallback=pages::not_found::NotFound>
                <Route path=path!("/") view=pages::login::LoginPage/>
                <Route path=path!("/chat/") view=pages::chat::ChatPage/>
                <Route path=path!("/chat/:room/") view=pages::chat::ChatPage/>
            </Routes>
        </Router>
    }
}
