use leptos::prelude::*;

use crate::chat_state::{ChatState, Pending};
use crate::protocol::ChatMessage;

/// How close to the bottom (in pixels) still counts as "reading the newest".
const NEAR_BOTTOM_PX: i32 = 80;

/// The room's messages, oldest first, then the user's own pending ones.
#[component]
pub fn MessageList() -> impl IntoView {
    let chat = expect_context::<ChatState>();
    let list = NodeRef::<leptos::html::Div>::new();

    // Follow the newest message while the reader is at the bottom; leave the
    // list alone while they read older ones.
    let at_bottom = StoredValue::new(true);
    let on_scroll = move |_| {
        if let Some(el) = list.get_untracked() {
            let gap = el.scroll_height() - el.scroll_top() - el.client_height();
            at_bottom.set_value(gap < NEAR_BOTTOM_PX);
        }
    };
    Effect::new(move |_| {
        chat.messages.track();
        chat.pending.track();
        if at_bottom.get_value() {
            request_animation_frame(move || {
                if let Some(el) = list.get_untracked() {
                    el.set_scroll_top(el.scroll_height());
                }
            });
        }
    });

    let load_earlier = move |_| {
        #[cfg(feature = "hydrate")]
        crate::ws_client::load_earlier(chat);
    };

    view! {
        <div class="card shadow-sm flex-grow-1 overflow-auto message-scroller" node_ref=list on:scroll=on_scroll>
            <div class="card-body">
                <Show when=move || chat.has_older.get()>
                    <div class="text-center mb-3">
                        <button type="button" class="btn btn-link btn-sm" id="load-earlier" on:click=load_earlier>
                            "Load earlier messages"
                        </button>
                    </div>
                </Show>
                <Show when=move || chat.messages.with(Vec::is_empty) && chat.pending.with(Vec::is_empty)>
                    <p class="text-body-secondary text-center my-5" id="empty-room">"No messages yet. Say hello!"</p>
                </Show>
                <ol class="list-unstyled mb-0" id="messages" aria-live="polite">
                    <For each=move || chat.messages.get() key=|m| m.id let:message>
                        <MessageItem message/>
                    </For>
                    <For each=move || chat.pending.get() key=|p| (p.client_id.clone(), p.failed.clone()) let:pending>
                        <PendingItem pending/>
                    </For>
                </ol>
            </div>
        </div>
    }
    .into_any()
}

#[component]
fn MessageItem(message: ChatMessage) -> impl IntoView {
    let chat = expect_context::<ChatState>();
    let author = message.username.clone();
    let mine = move || chat.me.get().as_deref() == Some(author.as_str());
    let time = local_time(&message.sent_at);
    view! {
        <li class="message" class:mine=mine data-id=message.id>
            <div class="message-meta">
                <span class="message-author">{message.username}</span>
                <time class="message-time" datetime=message.sent_at.clone() title=message.sent_at>
                    {time}
                </time>
            </div>
            <div class="message-text">{message.message}</div>
        </li>
    }
    .into_any()
}

#[component]
fn PendingItem(pending: Pending) -> impl IntoView {
    let chat = expect_context::<ChatState>();
    let client_id = pending.client_id.clone();
    let failed = pending.failed.clone();
    let is_failed = failed.is_some();
    view! {
        <li class="message mine pending" class:failed=is_failed data-client-id=pending.client_id>
            <div class="message-meta">
                <span class="message-author">{move || chat.me.get().unwrap_or_default()}</span>
                <span class="message-time">
                    {if is_failed { "not sent" } else { "sending…" }}
                </span>
            </div>
            <div class="message-text">{pending.text}</div>
            {failed.map(|why| {
                let retry_id = client_id.clone();
                let dismiss_id = client_id.clone();
                view! {
                    <div class="small text-danger">
                        {why} " "
                        <button type="button" class="btn btn-link btn-sm p-0 align-baseline"
                            on:click=move |_| chat.retry(&retry_id)>
                            "Retry"
                        </button>
                        " · "
                        <button type="button" class="btn btn-link btn-sm p-0 align-baseline"
                            on:click=move |_| chat.dismiss(&dismiss_id)>
                            "Dismiss"
                        </button>
                    </div>
                }
            })}
        </li>
    }
    .into_any()
}

/// "17:04" (or "1/12/2026 17:04" before today) in the reader's time zone;
/// the server sends UTC.
fn local_time(sent_at: &str) -> String {
    #[cfg(feature = "hydrate")]
    {
        let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(sent_at));
        if !date.get_time().is_nan() {
            let time = format!("{:02}:{:02}", date.get_hours(), date.get_minutes());
            let today = js_sys::Date::new_0().to_date_string() == date.to_date_string();
            if today {
                return time;
            }
            let day = date.to_locale_date_string("default", &wasm_bindgen::JsValue::UNDEFINED);
            return format!("{day} {time}");
        }
    }
    sent_at.get(11..16).unwrap_or_default().to_string()
}
