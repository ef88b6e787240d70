//! The outbox: messages typed and not yet stored by the server, kept in the
//! browser's IndexedDB (through `outbox.js`) so that a reload, a closed tab
//! or a browser restart while offline loses none of them.
//!
//! One record per room and tab, written whole whenever the tab's pending
//! messages change and removed when none are left. A room's page opening
//! takes every record of the room (its own tab's from before a reload, and
//! those of tabs closed meanwhile) for the login that wrote them, in order.
//! Sending them again is safe: each keeps its `client_id`, and a message
//! the server already has is acked under its first id, not stored twice.

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::chat_state::ChatState;

#[wasm_bindgen(module = "/src/outbox.js")]
extern "C" {
    #[wasm_bindgen(catch, js_name = outboxTake)]
    async fn take(room: &str, author: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch, js_name = outboxSave)]
    async fn save(room: &str, record: Option<String>) -> Result<JsValue, JsValue>;
}

#[derive(Serialize)]
struct Record {
    /// The author tag of the login whose messages these are.
    author: String,
    /// Oldest first.
    messages: Vec<Kept>,
}

#[derive(Serialize, Deserialize)]
struct Kept {
    client_id: String,
    text: String,
}

/// Keeps the outbox in step with `chat`'s pending messages from the moment
/// the returned `restore` has put back what it held.
pub fn keep(chat: ChatState) -> impl std::future::Future<Output = ()> {
    let restored = StoredValue::new(false);
    Effect::new(move |_| {
        let author = chat.my_author.get();
        let messages: Vec<Kept> = chat.pending.with(|pending| {
            pending
                .iter()
                // Refused for good: shown with "Retry", not kept.
                .filter(|p| p.failed.is_none())
                .map(|p| Kept {
                    client_id: p.client_id.clone(),
                    text: p.text.clone(),
                })
                .collect()
        });
        let (Some(author), true) = (author, restored.get_value()) else {
            return;
        };
        let record = (!messages.is_empty())
            .then(|| serde_json::to_string(&Record { author, messages }).ok())
            .flatten();
        let room = chat.room.get_value();
        // Saves start in order and IndexedDB runs them in that order: the
        // last one written is the newest list.
        spawn_local(async move {
            if let Err(error) = save(&room, record).await {
                leptos::logging::warn!("the outbox could not be written: {error:?}");
            }
        });
    });
    restore(chat, restored)
}

/// How long the first connection waits for the outbox to answer: a
/// browser whose IndexedDB hangs still gets its chat.
const TAKE_WITHIN_MS: u32 = 3_000;

/// Puts the messages the outbox holds for this room and login back in line,
/// ahead of anything typed since, then lets the outbox follow the list.
async fn restore(chat: ChatState, restored: StoredValue<bool>) {
    use futures::future::{select, Either};
    let room = chat.room.get_value();
    let Some(author) = chat.my_author.get_untracked() else {
        // No seed, no login to match: records are left as they are.
        restored.set_value(true);
        return;
    };
    let taking = Box::pin(take(&room, &author));
    let timeout = gloo_timers::future::TimeoutFuture::new(TAKE_WITHIN_MS);
    let kept: Vec<Kept> = match select(taking, timeout).await {
        Either::Left((Ok(text), _)) => text
            .as_string()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default(),
        Either::Left((Err(error), _)) => {
            leptos::logging::warn!("the outbox could not be read: {error:?}");
            Vec::new()
        }
        Either::Right(_) => {
            leptos::logging::warn!("the outbox did not answer");
            Vec::new()
        }
    };
    restored.set_value(true);
    let stored: Vec<String> = chat.messages.with_untracked(|messages| {
        messages
            .iter()
            .filter_map(|m| m.client_id.clone())
            .collect()
    });
    // Requeued even when empty: the list is written once now, with whatever
    // was typed while the outbox was being read.
    chat.requeue(
        kept.into_iter()
            .filter(|kept| !stored.contains(&kept.client_id))
            .map(|kept| (kept.client_id, kept.text)),
    );
}
