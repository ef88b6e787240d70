use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::room::{self, RoomName};

/// Why a typed room name was refused.
const RULE: &str = "Room names are 1 to 32 of a–z, 0–9, - and _";

/// "Open a room": a name, checked against the room rule, then that room's
/// page. Capitals are lowered ("Go-Team" opens `go-team`). Without
/// JavaScript the form asks for `/chat/?room=<name>`, which the chat page
/// turns into a redirect to the room, or shows here with the rule when the
/// name breaks it.
#[component]
pub fn OpenRoom() -> impl IntoView {
    // A name sent without JavaScript that the page could not open.
    let refused = use_query_map()
        .with_untracked(|query| query.get("room"))
        .filter(|typed| room::check(typed.trim()) == RoomName::Invalid);
    let invalid = RwSignal::new(refused.is_some());
    let typed = refused.unwrap_or_default();
    let text = RwSignal::new(typed.clone());

    let open = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        match text.with_untracked(|typed| room::check(typed.trim())) {
            RoomName::Valid(name) | RoomName::Lowercase(name) => visit(&room::path(&name)),
            RoomName::Invalid => invalid.set(true),
        }
    };

    view! {
        <form class="mt-2" method="get" action="/chat/" aria-label="Open a room" on:submit=open>
            <label for="room-name" class="visually-hidden">"Room name"</label>
            <div class="input-group input-group-sm">
                <input
                    id="room-name"
                    name="room"
                    type="text"
                    class="form-control"
                    class:is-invalid=move || invalid.get()
                    placeholder="Room name"
                    autocomplete="off"
                    autocapitalize="none"
                    spellcheck="false"
                    enterkeyhint="go"
                    aria-invalid=move || invalid.get().then_some("true")
                    aria-describedby=move || invalid.get().then_some("room-name-error")
                    prop:value=move || text.get()
                    value=typed
                    on:input=move |ev| {
                        text.set(event_target_value(&ev));
                        invalid.set(false);
                    }
                />
                <button type="submit" class="btn btn-outline-primary">"Open"</button>
            </div>
            {move || {
                invalid
                    .get()
                    .then(|| {
                        view! {
                            <div id="room-name-error" class="form-text text-danger" role="alert">
                                {RULE}
                            </div>
                        }
                    })
            }}
        </form>
    }
    .into_any()
}

/// Opens a page with a full load, so the room gets a socket of its own.
fn visit(path: &str) {
    #[cfg(feature = "hydrate")]
    let _ = window().location().assign(path);
    // The server renders the form; only a browser submits it.
    #[cfg(not(feature = "hydrate"))]
    let _ = path;
}
