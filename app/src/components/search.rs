use leptos::either::Either;
use leptos::prelude::*;

use crate::components::linkify::{pieces, Piece};
use crate::components::timestamp::{self, Local};
use crate::protocol::{ChatMessage, MAX_SEARCH_CHARS, SEARCH_RESULTS};
use crate::room;

/// Where the search stands. The server only ever renders [`Outcome::Idle`]:
/// answers come to the browser alone.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
enum Outcome {
    /// Nothing asked yet, or cleared.
    Idle,
    Searching,
    /// The server's answer, newest first.
    Found(Vec<ChatMessage>),
    /// Why there is no answer: the server's own words when it refused the
    /// text, or that it could not be reached.
    Failed(String),
}

impl Outcome {
    /// The line above the results.
    fn summary(&self) -> String {
        match self {
            Outcome::Idle => String::new(),
            Outcome::Searching => "Searching…".to_string(),
            Outcome::Found(found) => match found.len() {
                0 => "No messages found".to_string(),
                1 => "1 message found".to_string(),
                // The server answers no more than this: there may be older ones.
                n if n >= SEARCH_RESULTS => format!("The newest {n} messages found"),
                n => format!("{n} messages found"),
            },
            Outcome::Failed(why) => why.clone(),
        }
    }
}

/// "Search messages": every room's messages with all the words typed,
/// newest first, each with its room, its author, its time and a link that
/// opens the room (a full page load, like the room list's links).
///
/// The results only ever exist in the browser: the server renders the form
/// and an empty results region, and the WASM client fills it from
/// `GET /api/search`. Without JavaScript the form does nothing useful:
/// sending it reloads the page. Escape or "Clear" takes the results away.
#[component]
pub fn Search() -> impl IntoView {
    let text = RwSignal::new(String::new());
    let outcome = RwSignal::new(Outcome::Idle);
    // Each search and each clear takes the next number; an answer is shown
    // only if no other search or clear came after its own, so a slow answer
    // never replaces a newer one or brings back cleared results.
    let asked = StoredValue::new(0u64);
    let input = NodeRef::<leptos::html::Input>::new();

    let clear = move || {
        asked.update_value(|n| *n += 1);
        text.set(String::new());
        outcome.set(Outcome::Idle);
        // The "Clear" button goes away with the results; focus stays in the search.
        if let Some(input) = input.get_untracked() {
            let _ = input.focus();
        }
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        // Only a browser submits: the server renders the same closure but never calls it.
        #[cfg(feature = "hydrate")]
        {
            let q = text.with_untracked(|typed| typed.trim().to_string());
            if q.is_empty() {
                return clear();
            }
            asked.update_value(|n| *n += 1);
            let number = asked.get_value();
            outcome.set(Outcome::Searching);
            leptos::task::spawn_local(async move {
                let answer = fetch(&q).await;
                if asked.get_value() == number {
                    outcome.set(answer);
                }
            });
        }
    };
    let on_keydown = move |ev: leptos::ev::KeyboardEvent| {
        let something = outcome.with_untracked(|now| *now != Outcome::Idle)
            || text.with_untracked(|typed| !typed.is_empty());
        // An input method takes its own Escape (to drop what is being composed).
        if ev.key() == "Escape" && !ev.is_composing() && something {
            ev.prevent_default();
            clear();
        }
    };

    let idle = move || outcome.with(|now| *now == Outcome::Idle);
    let results = move || {
        outcome.with(|now| match now {
            Outcome::Found(found) if !found.is_empty() => {
                let today = timestamp::now();
                let items = found
                    .iter()
                    .map(|message| result_item(message, today.as_ref()))
                    .collect_view();
                Some(view! { <ol class="list-unstyled search-results-list">{items}</ol> })
            }
            _ => None,
        })
    };

    view! {
        <div class="search" on:keydown=on_keydown>
            <form role="search" on:submit=submit>
                <div class="input-group input-group-sm">
                    <input
                        type="search"
                        class="form-control"
                        aria-label="Search messages"
                        placeholder="Search messages"
                        maxlength=MAX_SEARCH_CHARS
                        autocomplete="off"
                        enterkeyhint="search"
                        node_ref=input
                        prop:value=move || text.get()
                        on:input=move |ev| text.set(event_target_value(&ev))
                    />
                    <button type="submit" class="btn btn-outline-primary">"Search"</button>
                </div>
            </form>
            // Always in the page, so that what its status line says is read out.
            <section class="search-results" class:mt-2=move || !idle() aria-label="Search results">
                <div class="d-flex align-items-center gap-2">
                    <p
                        class="small mb-0 flex-grow-1"
                        class:text-danger-emphasis=move || outcome.with(|now| matches!(now, Outcome::Failed(_)))
                        role="status"
                    >
                        {move || outcome.with(Outcome::summary)}
                    </p>
                    {move || {
                        (!idle())
                            .then(|| {
                                view! {
                                    <button type="button" class="btn btn-link btn-sm" on:click=move |_| clear()>
                                        "Clear"
                                    </button>
                                }
                            })
                    }}
                </div>
                {results}
            </section>
        </div>
    }
    .into_any()
}

/// One found message: its room (a link to it), author and time, and its
/// text, with addresses as links.
fn result_item(message: &ChatMessage, today: Option<&Local>) -> impl IntoView {
    let when = timestamp::local(&message.sent_at).map(|at| {
        let mut when = at.day_heading(today);
        when.push(' ');
        when.push_str(&at.clock());
        when
    });
    let mut room_name = String::with_capacity(message.room.len() + 1);
    room_name.push('#');
    room_name.push_str(&message.room);
    let body = pieces(&message.message)
        .into_iter()
        .map(|piece| match piece {
            Piece::Text(text) => Either::Left(text.to_string()),
            Piece::Link(address) => Either::Right(view! {
                <a href=address.to_string() target="_blank" rel="noopener noreferrer">{address.to_string()}</a>
            }),
        })
        .collect_view();
    view! {
        <li class="search-result">
            <div class="message-meta">
                <a class="search-room" href=room::path(&message.room) rel="external">
                    {room_name}
                </a>
                <span class="message-author">{message.username.clone()}</span>
                <time class="message-time" datetime=message.sent_at.clone()>{when}</time>
            </div>
            <div class="message-text">{body}</div>
        </li>
    }
}

/// `GET /api/search?q=…` across all rooms.
#[cfg(feature = "hydrate")]
async fn fetch(q: &str) -> Outcome {
    use crate::protocol::{ErrorBody, SearchResults};

    let failed = || Outcome::Failed("Could not search; try again.".to_string());
    let url = format!(
        "/api/search?q={}",
        String::from(js_sys::encode_uri_component(q))
    );
    let Ok(response) = gloo_net::http::Request::get(&url).send().await else {
        return failed();
    };
    if response.ok() {
        return match response.json::<SearchResults>().await {
            Ok(found) => Outcome::Found(found.results),
            Err(_) => failed(),
        };
    }
    // The server's error bodies are written for people ("Searches can be at
    // most 200 characters long.") and never hold its internals.
    match response.json::<ErrorBody>().await {
        Ok(body) => Outcome::Failed(body.error),
        Err(_) => failed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(n: usize) -> Outcome {
        let message = ChatMessage {
            id: 1,
            room: "rust".into(),
            username: "Ann".into(),
            author: "tag".into(),
            message: "hi".into(),
            sent_at: "2026-11-30T10:00:00.000Z".into(),
            client_id: None,
            edited_at: None,
        };
        Outcome::Found(vec![message; n])
    }

    #[test]
    fn the_summary_says_how_many_were_found() {
        assert_eq!(Outcome::Idle.summary(), "");
        assert_eq!(Outcome::Searching.summary(), "Searching…");
        assert_eq!(found(0).summary(), "No messages found");
        assert_eq!(found(1).summary(), "1 message found");
        assert_eq!(found(7).summary(), "7 messages found");
        assert_eq!(
            found(SEARCH_RESULTS).summary(),
            format!("The newest {SEARCH_RESULTS} messages found")
        );
        assert_eq!(Outcome::Failed("Too long.".into()).summary(), "Too long.");
    }
}
