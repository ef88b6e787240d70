use leptos::either::EitherOf3;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{
    components::Redirect,
    hooks::{use_params_map, use_query_map},
};

use crate::chat_state::{ChatState, Connection};
use crate::components::{
    colour_mode::ColourModePicker,
    composer::Composer,
    message_editor::Editor,
    message_list::MessageList,
    online_users::OnlineUsers,
    room_list::RoomList,
    search::Search,
    side_panel::{Panel, PanelButtons, Panels, SidePanel},
    typing_indicator::TypingIndicator,
};
use crate::pages::not_found::NotFound;
use crate::protocol::ServerFrame;
use crate::room::{self, RoomName, LOBBY};

/// `/chat/` (the lobby) and `/chat/<room>/`. A name outside the room rule is
/// not a page; one in capitals, or the lobby under its own name, goes to its
/// one address; `?room=<name>` is the "Open a room" form sent without
/// JavaScript. The room never changes under a page: room links load a new
/// one.
#[component]
pub fn ChatPage() -> impl IntoView {
    let asked = use_params_map().with_untracked(|params| params.get("room"));
    let opened = use_query_map().with_untracked(|query| query.get("room"));
    let go_to = |name: &str| EitherOf3::A(view! { <Redirect path=room::path(name)/> });
    if let Some(RoomName::Valid(name) | RoomName::Lowercase(name)) =
        opened.map(|typed| room::check(typed.trim()))
    {
        return go_to(&name);
    }
    let Some(asked) = asked else {
        return EitherOf3::C(view! { <ChatRoom room=LOBBY.to_string()/> });
    };
    match room::check(&asked) {
        RoomName::Invalid => EitherOf3::B(view! { <NotFound/> }),
        RoomName::Lowercase(name) => go_to(&name),
        RoomName::Valid(name) if name == LOBBY => go_to(&name),
        RoomName::Valid(name) => EitherOf3::C(view! { <ChatRoom room=name/> }),
    }
}

/// One room's page. The server renders the frame; the WASM client fills it
/// from the socket's `welcome` and keeps it live.
#[component]
fn ChatRoom(room: String) -> impl IntoView {
    let title = format!("#{room} · Chat");
    let heading = format!("#{room}");
    // The latest messages came with the page (see `seed`).
    let seed = crate::seed::take().filter(
        |frame| matches!(frame, ServerFrame::Welcome { room: seeded, .. } if *seeded == room),
    );
    let chat = ChatState::new(room);
    if let Some(welcome) = seed {
        chat.apply(welcome, false);
    }
    provide_context(chat);
    provide_context(Editor::new());

    #[cfg(feature = "hydrate")]
    Effect::new(move |_| crate::ws_client::start(chat));

    // Hidden, the tab's title starts with what is waiting: "(3) #rust · Chat".
    let title = move || titled(chat.hidden_unread(), &title);
    let panels = Panels::new();
    let people = Signal::derive(move || chat.online.with(Vec::len));
    let unread = Signal::derive(move || chat.unread_elsewhere());

    view! {
        <Title text=title/>
        <a class="visually-hidden-focusable skip-link" href="#message-scroller" on:click=skip_to_messages>
            "Skip to messages"
        </a>
        <header class="navbar bg-body border-bottom shadow-sm">
            <div class="container-fluid flex-nowrap">
                <span class="navbar-brand fw-semibold text-truncate chat-brand me-2">
                    // On a phone the room's name alone: the title names the app.
                    <span class="d-none d-sm-inline">"Chat "</span>
                    <span class="text-body-secondary fw-normal" id="room">{heading}</span>
                </span>
                <div class="d-flex align-items-center gap-2 gap-sm-3 flex-shrink-0">
                    <ConnectionBadge/>
                    <span class="text-body-secondary small d-none d-sm-inline">
                        {move || chat.me.get().map(|me| view! { "Signed in as " <strong id="me">{me}</strong> })}
                    </span>
                    <ColourModePicker/>
                    <form method="post" action="/api/logout" class="m-0">
                        <button type="submit" class="btn btn-outline-secondary btn-sm">"Log out"</button>
                    </form>
                </div>
            </div>
        </header>
        <noscript>
            <div class="alert alert-warning m-3">"The live chat needs JavaScript."</div>
        </noscript>
        <main class="container-fluid chat-layout py-3">
            <PanelButtons panels people unread/>
            <section class="chat-conversation d-flex flex-column" aria-label="Conversation">
                <MessageList/>
                <TypingIndicator/>
                <Composer/>
            </section>
            <div class="chat-search">
                <Search/>
            </div>
            <div class="chat-rooms">
                <SidePanel panels panel=Panel::Rooms id="rooms-panel" title="Rooms" side="start">
                    <RoomList/>
                </SidePanel>
            </div>
            <div class="chat-people">
                <SidePanel panels panel=Panel::People id="people-panel" title="Online users" side="end">
                    <OnlineUsers/>
                </SidePanel>
            </div>
        </main>
    }
    .into_any()
}

/// `title`, after "(N) " when `unread` is N > 0.
fn titled(unread: u64, title: &str) -> String {
    if unread == 0 {
        return title.to_string();
    }
    let mut text = String::with_capacity(title.len() + 8);
    text.push('(');
    text.push_str(&unread.to_string());
    text.push_str(") ");
    text.push_str(title);
    text
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

/// "Skip to messages": the router would take the link for a page change,
/// so the focus is moved here (before the WASM runs, the browser does it).
#[cfg(feature = "hydrate")]
fn skip_to_messages(ev: leptos::ev::MouseEvent) {
    use wasm_bindgen::JsCast;
    let scroller = document()
        .get_element_by_id("message-scroller")
        .and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok());
    if let Some(scroller) = scroller {
        ev.prevent_default();
        let _ = scroller.focus();
    }
}

#[cfg(not(feature = "hydrate"))]
fn skip_to_messages(_: leptos::ev::MouseEvent) {}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use std::sync::{Arc, Mutex};

    use leptos::prelude::*;
    use leptos_router::{components::provide_server_redirect, location::RequestUrl};

    /// The page the server renders for `path`, and where it redirects, if it does.
    fn render(path: &str) -> (String, Option<String>) {
        let redirect = Arc::new(Mutex::new(None));
        let owner = Owner::new();
        let html = owner.with(|| {
            provide_context(RequestUrl::new(&format!("http://localhost{path}")));
            let to = redirect.clone();
            provide_server_redirect(move |path| {
                *to.lock().unwrap() = Some(path.to_string());
            });
            view! { <crate::App/> }.to_html()
        });
        let to = redirect.lock().unwrap().clone();
        (html, to)
    }

    #[test]
    fn a_room_page_lists_its_room_as_the_current_one_before_any_script_runs() {
        let (html, redirect) = render("/chat/rust/");
        assert_eq!(redirect, None);
        assert!(html.contains(r#"aria-label="Rooms""#), "{html}");
        assert!(
            html.contains(r#"aria-current="page" href="/chat/rust/""#),
            "{html}"
        );
        assert!(html.contains(r#"href="/chat/" rel="external""#), "{html}");
        assert!(html.contains("#rust"), "{html}");
        assert!(html.contains(r#"aria-label="Online users""#), "{html}");

        let (lobby, _) = render("/chat/");
        assert!(
            lobby.contains(r#"aria-current="page" href="/chat/""#),
            "{lobby}"
        );
        assert!(!lobby.contains("/chat/rust/"), "{lobby}");
    }

    #[test]
    fn a_hidden_tab_says_how_many_messages_wait() {
        assert_eq!(super::titled(0, "#rust · Chat"), "#rust · Chat");
        assert_eq!(super::titled(12, "#rust · Chat"), "(12) #rust · Chat");
    }

    #[test]
    fn the_page_reserves_the_typing_line_and_shows_no_counts_before_any_script_runs() {
        let (html, _) = render("/chat/rust/");
        assert!(html.contains(r#"id="typing" aria-live="polite""#), "{html}");
        assert!(!html.contains("unread-count"), "{html}");
        assert!(!html.contains("New messages"), "{html}");
    }

    #[test]
    fn the_search_form_is_rendered_and_its_results_are_left_to_the_browser() {
        let (html, _) = render("/chat/rust/");
        assert!(html.contains(r#"<form role="search""#), "{html}");
        assert!(
            html.contains(r#"<input type="search" aria-label="Search messages""#),
            "{html}"
        );
        assert!(html.contains(r#"maxlength="200""#), "{html}");
        assert!(html.contains(r#"aria-label="Search results""#), "{html}");
        assert!(!html.contains("search-result\""), "{html}");
        assert!(!html.contains("No messages found"), "{html}");
        assert!(!html.contains(">Clear<"), "{html}");
    }

    #[test]
    fn room_addresses_have_one_spelling() {
        assert_eq!(render("/chat/Rust/").1.as_deref(), Some("/chat/rust/"));
        assert_eq!(render("/chat/lobby/").1.as_deref(), Some("/chat/"));
        let (html, redirect) = render("/chat/no%20way/");
        assert_eq!(redirect, None);
        assert!(html.contains("Page not found"), "{html}");
        assert!(!html.contains(r#"aria-label="Rooms""#), "{html}");
    }

    #[test]
    fn the_open_a_room_form_works_without_scripts() {
        assert_eq!(
            render("/chat/?room=Go-Team").1.as_deref(),
            Some("/chat/go-team/")
        );
        let (html, redirect) = render("/chat/?room=a%2Fb");
        assert_eq!(redirect, None);
        assert!(
            html.contains("Room names are 1 to 32 of a–z, 0–9, - and _"),
            "{html}"
        );
        assert!(html.contains(r#"value="a/b""#), "{html}");
    }
}
