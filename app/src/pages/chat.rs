use leptos::prelude::*;

use crate::chat_state::{ChatState, Connection};
use crate::components::{composer::Composer, message_list::MessageList, online_users::OnlineUsers};

/// `/chat/`: the room. The server renders the frame; the WASM client fills it
/// from the socket's `welcome` and keeps it live.
#[component]
pub fn ChatPage() -> impl IntoView {
    let chat = ChatState::new();
    provide_context(chat);

    #[cfg(feature = "hydrate")]
    Effect::new(move |_| crate::ws_client::start(chat));

    view! {
        <nav class="navbar bg-body border-bottom shadow-sm">
            <div class="container-fluid">
                <span class="navbar-brand fw-semibold">"Chat"</span>
                <div class="d-flex align-items-center gap-3">
                    <ConnectionBadge/>
                    <span class="text-body-secondary small d-none d-sm-inline">
                        {move || chat.me.get().map(|me| view! { "Signed in as " <strong id="me">{me}</strong> })}
                    </span>
                    <form method="post" action="/api/logout" class="m-0">
                        <button type="submit" class="btn btn-outline-secondary btn-sm">"Log out"</button>
                    </form>
                </div>
            </div>
        </nav>
        <noscript>
            <div class="alert alert-warning m-3">"The live chat needs JavaScript."</div>
        </noscript>
        <main class="container-fluid chat-layout py-3">
            <div class="row g-3 h-100">
                <section class="col-md-9 d-flex flex-column h-100" aria-label="Conversation">
                    <MessageList/>
                    <Composer/>
                </section>
                <div class="col-md-3">
                    <OnlineUsers/>
                </div>
            </div>
        </main>
    }
    .into_any()
}

/// The small "connected / reconnecting" indicator.
#[component]
fn ConnectionBadge() -> impl IntoView {
    let chat = expect_context::<ChatState>();
    let view_state = move || match chat.connection.get() {
        Connection::Connecting => ("text-bg-secondary", "Connecting…"),
        Connection::Open => ("text-bg-success", "Connected"),
        Connection::Reconnecting => ("text-bg-warning", "Reconnecting…"),
    };
    view! {
        <span id="connection" class=move || format!("badge {}", view_state().0) role="status">
            {move || view_state().1}
        </span>
    }
    .into_any()
}
