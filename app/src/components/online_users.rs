use leptos::prelude::*;

use crate::chat_state::ChatState;

/// The sidebar: who is online, one entry per user however many tabs they have.
/// Each entry's text is the name alone; the "you" marker is drawn by CSS.
#[component]
pub fn OnlineUsers() -> impl IntoView {
    let chat = expect_context::<ChatState>();
    view! {
        <aside class="card shadow-sm" aria-label="Online users">
            <div class="card-header d-flex justify-content-between align-items-center">
                <span class="fw-semibold">"Online"</span>
                <span class="badge text-bg-primary rounded-pill" id="online-count" aria-label="Users online">
                    {move || chat.online.with(Vec::len)}
                </span>
            </div>
            <ul class="list-group list-group-flush online-users">
                <For each=move || chat.online.get() key=|name| name.clone() let:name>
                    <li
                        class="list-group-item"
                        data-me=move || (chat.me.get().as_deref() == Some(name.as_str())).then_some("true")
                    >
                        {name.clone()}
                    </li>
                </For>
            </ul>
        </aside>
    }
    .into_any()
}
