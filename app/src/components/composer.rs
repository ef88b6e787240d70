use leptos::prelude::*;

use crate::chat_state::{ChatState, Connection};
use crate::components::message_editor::Editor;
use crate::protocol::MAX_MESSAGE_CHARS;

/// Show the remaining-characters counter once this close to the limit.
const COUNTER_FROM: usize = MAX_MESSAGE_CHARS - 200;

/// The message box: Enter sends, Shift+Enter adds a line. Typing in it
/// lets the room know (see [`ChatState::typed`]).
#[component]
pub fn Composer() -> impl IntoView {
    let chat = expect_context::<ChatState>();
    let editor = expect_context::<Editor>();
    let text = RwSignal::new(String::new());
    let length = Memo::new(move |_| text.with(|t| t.chars().count()));
    let sendable = move || {
        length.get() <= MAX_MESSAGE_CHARS
            && text.with(|t| !t.trim().is_empty())
            && chat.connection.get() != Connection::Connecting
    };

    // Only a browser sends: the server renders the same closure but never calls it.
    let send = move || {
        #[cfg(feature = "hydrate")]
        if sendable() {
            chat.queue(crate::chat_state::new_client_id(), text.get_untracked());
            text.set(String::new());
        }
    };

    view! {
        <form
            class="composer"
            on:submit=move |ev| {
                ev.prevent_default();
                send();
            }
        >
            {move || {
                chat.notice
                    .get()
                    .map(|notice| {
                        view! {
                            <div class="alert alert-warning py-1 px-2 small mb-2" role="status" id="notice">
                                {notice}
                            </div>
                        }
                    })
            }}
            <div class="input-group">
                <textarea
                    id="message-input"
                    class="form-control"
                    rows="2"
                    placeholder="Write a message…"
                    aria-label="Message"
                    aria-keyshortcuts="ArrowUp"
                    autofocus=true
                    node_ref=editor.composer
                    prop:value=move || text.get()
                    on:input=move |ev| {
                        let typed = event_target_value(&ev);
                        // Emptying the box is not typing.
                        if !typed.trim().is_empty() {
                            chat.typed.notify();
                        }
                        text.set(typed);
                    }
                    on:keydown=move |ev| {
                        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                            ev.prevent_default();
                            send();
                        } else if ev.key() == "ArrowUp"
                            && !(ev.shift_key() || ev.alt_key() || ev.ctrl_key() || ev.meta_key())
                            && text.with_untracked(String::is_empty)
                            && editor.editing.get_untracked().is_none()
                        {
                            // Up in an empty box edits one's last message.
                            if let Some((id, shown)) = chat.last_own_message() {
                                ev.prevent_default();
                                editor.open_from_composer(id, shown);
                            }
                        }
                    }
                ></textarea>
                <button type="submit" class="btn btn-primary px-4" id="send" disabled=move || !sendable()>
                    "Send"
                </button>
            </div>
            <div class="form-text text-end" class:text-danger=move || { length.get() > MAX_MESSAGE_CHARS } id="counter">
                {move || {
                    let used = length.get();
                    (used >= COUNTER_FROM)
                        .then(|| format!("{} characters left", MAX_MESSAGE_CHARS as i64 - used as i64))
                }}
            </div>
        </form>
    }
    .into_any()
}
