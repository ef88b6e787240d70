use leptos::prelude::*;

use crate::chat_state::ChatState;
use crate::components::open_room::OpenRoom;
use crate::protocol::MAX_UNREAD;
use crate::room;

/// The rooms: one link per room, the one on screen marked as the current
/// page, the others with the number of messages not seen there ("rust 3"),
/// and a form to open another. Each link is a full page load
/// (`rel="external"` keeps the router out of it), so every room gets a page
/// and a socket of its own.
#[component]
pub fn RoomList() -> impl IntoView {
    let chat = expect_context::<ChatState>();
    view! {
        <nav class="card shadow-sm" aria-label="Rooms">
            <div class="card-header fw-semibold">"Rooms"</div>
            <div class="card-body p-2">
                <ul class="nav nav-pills flex-column flex-nowrap gap-1 overflow-auto p-1 rooms-list">
                    // Keyed by name alone: a new count updates the badge in
                    // place, and the link (which may have focus) stays.
                    <For each=move || chat.rooms.get() key=|room| room.name.clone() let:room>
                        {
                            let current = chat.is_current(&room.name);
                            let href = room::path(&room.name);
                            let name = room.name.clone();
                            // Always 0 for the room on screen (see `ChatState::update_rooms`).
                            let unread = Memo::new(move |_| chat.unread_in(&name));
                            view! {
                                <li class="nav-item">
                                    <a
                                        class="nav-link py-1 px-2 text-truncate"
                                        class:active=current
                                        aria-current=current.then_some("page")
                                        href=href
                                        rel="external"
                                    >
                                        {room.name}
                                        {move || unread_label(unread.get()).map(|count| view! {
                                            " "
                                            <span class="badge rounded-pill text-bg-primary unread-count">{count}</span>
                                        })}
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

/// The count beside a room's name: nothing for 0, "999+" from
/// [`MAX_UNREAD`] on (the server counts no further).
pub fn unread_label(unread: u64) -> Option<String> {
    match unread {
        0 => None,
        n if n >= MAX_UNREAD => Some("999+".to_string()),
        n => Some(n.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_stop_at_999_plus() {
        assert_eq!(unread_label(0), None);
        assert_eq!(unread_label(3).as_deref(), Some("3"));
        assert_eq!(unread_label(999).as_deref(), Some("999"));
        assert_eq!(unread_label(MAX_UNREAD).as_deref(), Some("999+"));
        assert_eq!(unread_label(u64::MAX).as_deref(), Some("999+"));
    }
}
