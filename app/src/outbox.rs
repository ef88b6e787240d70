//! The outbox: messages typed and not yet stored by the server, kept in the
//! browser's IndexedDB (through `outbox.js`) so that a reload, a closed tab
//! or a browser restart while offline loses none of them.
//!
//! One record per room, written whole whenever the room's pending messages
//! change and removed when none are left; read back when the room's page
//! opens, and only by the login that wrote it. Sending them again is safe:
//! each keeps its `client_id`, and a message the server already has is
//! acked under its first id, not stored twice.

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::chat_state::ChatState;

#[wasm_bindgen(module = "/src/outbox.js")]
extern "C" {
    #[wasm_bindgen(catch, js_name = outboxLoad)]
    async fn load(room: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch, js_name = outboxSave)]
    async fn save(room: &str, record: Option<String>) -> Result<JsValue, JsValue>;
}

#[derive(Serialize, Deserialize)]
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

/// Puts the messages the outbox holds for this room and login back in line,
/// ahead of anything typed since.
async fn restore(chat: ChatState, restored: StoredValue<bool>) {
    let room = chat.room.get_value();
    let record = match load(&room).await {
        Ok(text) => text
            .as_string()
            .and_then(|text| serde_json::from_str::<Record>(&text).ok()),
        Err(error) => {
            leptos::logging::warn!("the outbox could not be read: {error:?}");
            None
        }
    };
    restored.set_value(true);
    let mine = chat.my_author.get_untracked();
    let Some(record) = record.filter(|record| mine.as_deref() == Some(record.author.as_str()))
    else {
        return;
    };
    let stored: Vec<String> = chat.messages.with_untracked(|messages| {
        messages
            .iter()
            .filter_map(|m| m.client_id.clone())
            .collect()
    });
    let waiting: Vec<(String, String)> = record
        .messages
        .into_iter()
        .filter(|kept| !stored.contains(&kept.client_id))
        .map(|kept| (kept.client_id, kept.text))
        .collect();
    chat.requeue(waiting);
}
