use leptos::prelude::*;

use crate::chat_state::ChatState;
use crate::components::open_room::OpenRoom;
use crate::room;

/// The rooms: one link per room, the one on screen marked as the current
/// page, and a form to open another. Each link is a full page load
/// (`rel="external"` keeps the router out of it), so every room gets a page
/// and a socket of its own.
#[component]
pub fn RoomList() -> impl IntoView {
    let chat = expect_context::<ChatState>();
    view! {
        <nav class="card shadow-sm" aria-label="Rooms">
            <div class="card-header fw-semibold">"Rooms"</div>
            <div class="card-body p-2">
                <ul class="nav nav-pills flex-nowrap flex-md-column gap-1 overflow-auto p-1 rooms-list">
                    <For each=move || chat.rooms.get() key=|name| name.clone() let:name>
                        {
                            let current = chat.room.with_value(|room| *room == name);
                            let href = room::path(&name);
                            view! {
                                <li class="nav-item">
                                    <a
                                        class="nav-link py-1 px-2 text-truncate"
                                        class:active=current
                                        aria-current=current.then_some("page")
                                        href=href
                                        rel="external"
                                    >
                                        {name}
                                    </a>
                                </li>
                            }
                        }
                    </For>
                </ul>
                <OpenRoom/>
            </div>
        </nav>
    }
    .into_any()
}
