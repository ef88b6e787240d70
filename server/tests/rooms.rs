//! Rooms: each room has its own messages, history, people and presence
//! events; the room list; room names outside the rule.

mod common;

use app::protocol::{RoomList, ServerFrame};
use common::{header_text, TestServer};
use http::{header, StatusCode};

fn is_message(frame: &ServerFrame, text: &str) -> bool {
    matches!(frame, ServerFrame::Message(m) if m.message == text)
}

fn texts(frames: &[ServerFrame]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|frame| match frame {
            ServerFrame::Message(m) => Some(m.message.clone()),
            _ => None,
        })
        .collect()
}

/// Messages, history and presence stay in their room. A bystander proves
/// what it did not get by what it gets next: frames arrive in order, so
/// anything from another room would come before its own message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_keeps_its_messages_history_and_people_to_itself() {
    let server = TestServer::start().await;
    let ann = server.login("Ann").await;
    let bob = server.login("Bob").await;
    let cat = server.login("Cat").await;

    let (mut ann_rust, welcome) = server.join_room(&ann, "rust").await;
    assert_eq!(welcome.online_users, ["Ann"]);
    let (mut bob_lobby, welcome) = server.join(&bob).await;
    assert_eq!(welcome.room, "lobby");
    assert_eq!(welcome.online_users, ["Bob"], "Ann is not in the lobby");
    let (mut cat_rust, welcome) = server.join_room(&cat, "rust").await;
    assert_eq!(welcome.online_users, ["Ann", "Cat"]);
    ann_rust
        .wait_for(|f| matches!(f, ServerFrame::UserJoined { username } if username == "Cat"))
        .await;

    let id = ann_rust.post("ownership", "a1").await;
    let got = cat_rust.wait_for_message("ownership").await;
    assert_eq!((got.id, got.room.as_str()), (id, "rust"));

    bob_lobby.say_with_id("hello lobby", "b1").await;
    let (before, _) = bob_lobby
        .frames_until(|f| is_message(f, "hello lobby"))
        .await;
    // Bob's own arrival is all the lobby has seen.
    assert!(
        before
            .iter()
            .all(|f| matches!(f, ServerFrame::UserJoined { username } if username == "Bob")),
        "the lobby got another room's frames: {before:?}"
    );
    // Nor does the lobby's message reach rust: Cat's next message is Ann's next.
    ann_rust.post("borrowing", "a2").await;
    let (before, _) = cat_rust.frames_until(|f| is_message(f, "borrowing")).await;
    assert!(texts(&before).is_empty(), "{before:?}");

    // History, by socket and by page, is the room's alone.
    let (_late, welcome) = server.join_room(&bob, "rust").await;
    let history: Vec<_> = welcome.history.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(history, ["ownership", "borrowing"]);
    assert_eq!(welcome.online_users, ["Ann", "Bob", "Cat"]);
    let (_resumed, welcome) = server.join_room(&cat, "rust").await;
    assert_eq!(welcome.history.len(), 2);
    let page = server.history(&bob.cookie, "room=rust").await;
    assert_eq!(page.len(), 2);
    assert!(page.iter().all(|m| m.room == "rust"));
    let lobby = server.history(&bob.cookie, "").await;
    let lobby: Vec<_> = lobby.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(lobby, ["hello lobby"]);
    let resume = server
        .connect_query(&ann, &format!("?room=rust&after={id}"))
        .await
        .welcome()
        .await;
    let resumed: Vec<_> = resume.history.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(resumed, ["borrowing"]);

    // Who is where: by room, and everyone without one.
    assert_eq!(
        server.online_users_in(&ann.cookie, Some("rust")).await,
        ["Ann", "Bob", "Cat"]
    );
    assert_eq!(
        server.online_users_in(&ann.cookie, Some("lobby")).await,
        ["Bob"]
    );
    assert!(server
        .online_users_in(&ann.cookie, Some("empty"))
        .await
        .is_empty());
    assert_eq!(
        server.online_users(&ann.cookie).await,
        ["Ann", "Bob", "Cat"]
    );
}

/// Leaving a room follows the grace rule there, and only there: the people
/// of the room see `user_left`, the user stays online in the other room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_a_room_is_announced_in_that_room_only() {
    let server = TestServer::start_with(|config| config.grace_ms = 200).await;
    let ann = server.login("Ann").await;
    let bob = server.login("Bob").await;
    let (mut bob_rust, _) = server.join_room(&bob, "rust").await;
    let (mut bob_lobby, _) = server.join(&bob).await;
    let (ann_rust, _) = server.join_room(&ann, "rust").await;
    let (_ann_lobby, _) = server.join(&ann).await;
    bob_rust
        .wait_for(|f| matches!(f, ServerFrame::UserJoined { username } if username == "Ann"))
        .await;

    ann_rust.close().await;
    bob_rust
        .wait_for(|f| matches!(f, ServerFrame::UserLeft { username } if username == "Ann"))
        .await;
    assert_eq!(
        server.online_users_in(&bob.cookie, Some("rust")).await,
        ["Bob"]
    );
    assert_eq!(
        server.online_users_in(&bob.cookie, Some("lobby")).await,
        ["Ann", "Bob"]
    );
    // The lobby heard Ann join, and nothing of her leaving rust.
    bob_lobby.say_with_id("still here", "b1").await;
    let (before, _) = bob_lobby
        .frames_until(|f| is_message(f, "still here"))
        .await;
    assert!(
        !before
            .iter()
            .any(|f| matches!(f, ServerFrame::UserLeft { .. })),
        "{before:?}"
    );
}

/// The room list: the lobby first, the rooms one opened (with messages or
/// not), and every room with messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_room_list_names_the_rooms_one_opened_and_the_rooms_with_messages() {
    let server = TestServer::start().await;
    let ann = server.login("Ann").await;
    let bob = server.login("Bob").await;
    let (mut ann_rust, _) = server.join_room(&ann, "rust").await;
    ann_rust.post("hi", "a1").await;
    let (_ann_quiet, _) = server.join_room(&ann, "quiet").await;

    let rooms = |cookie: String| {
        let server = &server;
        async move {
            let response = server.get("/api/rooms", Some(&cookie)).await;
            assert_eq!(response.status(), StatusCode::OK);
            let list: RoomList = response.json().await.expect("a room list");
            list.rooms.into_iter().map(|r| r.name).collect::<Vec<_>>()
        }
    };
    // Visits are written behind, and before any room list is read.
    assert_eq!(rooms(ann.cookie.clone()).await, ["lobby", "quiet", "rust"]);
    assert_eq!(rooms(bob.cookie.clone()).await, ["lobby", "rust"]);
    assert_eq!(
        server.get("/api/rooms", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

/// Room names outside the rule: a clear 400 on the socket and the API, the
/// lowercase page for capitals, and a not-found page for the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_names_outside_the_rule_get_a_clear_answer() {
    let server = TestServer::start().await;
    let ann = server.login("Ann").await;
    let origin = server.origin();
    for bad in ["Rust", "a%20b", "", "%C3%A9", &"x".repeat(33), "a/b"] {
        let refused = server
            .try_connect(&format!("?room={bad}"), Some(&ann.cookie), Some(&origin))
            .await;
        assert_eq!(refused.err(), Some(StatusCode::BAD_REQUEST), "room {bad:?}");
        let response = server
            .get(&format!("/api/messages?room={bad}"), Some(&ann.cookie))
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "room {bad:?}");
        assert!(response.text().await.expect("a body").contains("a-z"));
    }
    for (path, to) in [
        ("/chat/Rust/", "/chat/rust/"),
        ("/chat/rust", "/chat/rust/"),
        ("/chat/GO-team", "/chat/go-team/"),
        ("/chat/lobby/", "/chat/"),
    ] {
        let response = server.get(path, Some(&ann.cookie)).await;
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT, "{path}");
        assert_eq!(header_text(&response, header::LOCATION), to, "{path}");
    }
    for path in ["/chat/no%20way/", "/chat/%C3%A9t%C3%A9/", "/chat/a.b/"] {
        let response = server.get(path, Some(&ann.cookie)).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(response
            .text()
            .await
            .expect("a page")
            .contains("Page not found"));
    }
    let page = server.get("/chat/rust/", Some(&ann.cookie)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = server.get("/chat/rust/", None).await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER, "no session: to login");
    // The lobby still works after all of it.
    let (mut lobby, _) = server.join(&ann).await;
    lobby.post("fine", "a1").await;
}

/// `typing` reaches the people of the room, not other rooms, and is not
/// stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_is_passed_on_to_the_room_only() {
    let server = TestServer::start().await;
    let ann = server.login("Ann").await;
    let bob = server.login("Bob").await;
    let (mut ann_rust, _) = server.join_room(&ann, "rust").await;
    let (mut bob_rust, _) = server.join_room(&bob, "rust").await;
    let (mut bob_lobby, _) = server.join(&bob).await;

    ann_rust.send_text(r#"{"type":"typing"}"#).await;
    let typing = bob_rust
        .wait_for(|f| matches!(f, ServerFrame::Typing { .. }))
        .await;
    assert_eq!(
        typing,
        ServerFrame::Typing {
            username: "Ann".into()
        }
    );
    bob_lobby.say_with_id("lobby only", "b1").await;
    let (before, _) = bob_lobby
        .frames_until(|f| is_message(f, "lobby only"))
        .await;
    assert!(
        !before
            .iter()
            .any(|f| matches!(f, ServerFrame::Typing { .. })),
        "{before:?}"
    );
    ann_rust.post("typed", "a1").await;
    assert!(server.history(&bob.cookie, "room=rust").await.len() == 1);
}

async fn unread(server: &TestServer, cookie: &str) -> Vec<(String, u64)> {
    let response = server.get("/api/rooms", Some(cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let list: RoomList = response.json().await.expect("a room list");
    list.rooms.into_iter().map(|r| (r.name, r.unread)).collect()
}

fn count(list: &[(String, u64)], room: &str) -> Option<u64> {
    list.iter().find(|(r, _)| r == room).map(|(_, n)| *n)
}

/// Unread counts come from ids on the server, per session and room: what
/// others sent after one's read mark, the same from any tab or reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_counts_follow_each_sessions_read_mark() {
    let server = TestServer::start().await;
    let ann = server.login("Ann").await;
    let bob = server.login("Bob").await;
    let cat = server.login("Cat").await;
    let (mut ann_rust, _) = server.join_room(&ann, "rust").await;
    ann_rust.post("before anyone came", "a0").await;
    // Bob and Cat visit rust (what is there counts as read), then leave.
    for who in [&bob, &cat] {
        let (socket, welcome) = server.join_room(who, "rust").await;
        assert_eq!(welcome.history.len(), 1);
        assert_eq!(count(&unread(&server, &who.cookie).await, "rust"), Some(0));
        socket.close().await;
    }

    let mut last = 0;
    for n in 1..=3 {
        last = ann_rust.post(&format!("news {n}"), &format!("a{n}")).await;
    }
    assert_eq!(count(&unread(&server, &bob.cookie).await, "rust"), Some(3));
    assert_eq!(count(&unread(&server, &cat.cookie).await, "rust"), Some(3));
    // Her own messages are never unread for Ann.
    assert_eq!(count(&unread(&server, &ann.cookie).await, "rust"), Some(0));

    // Cat reads them; Bob's count stays, and so does Cat's zero on a
    // reload (a new list, from the store).
    // A socket's frames are handled in order: once the message after the
    // mark is acked, the mark is recorded, and a room list writes recorded
    // marks before it counts.
    let (mut cat_rust, _) = server.join_room(&cat, "rust").await;
    cat_rust
        .send_json(serde_json::json!({"type": "read", "id": last}))
        .await;
    cat_rust.post("read them", "c0").await;
    assert_eq!(count(&unread(&server, &cat.cookie).await, "rust"), Some(0));
    // Bob has read none of it, Cat's message included.
    assert_eq!(count(&unread(&server, &bob.cookie).await, "rust"), Some(4));

    // A mark beyond the newest message reads only what exists.
    cat_rust
        .send_json(serde_json::json!({"type": "read", "id": 1_000_000_000_000i64}))
        .await;
    cat_rust.post("read it all", "c1").await;
    cat_rust.close().await;
    ann_rust.post("later", "a9").await;
    assert_eq!(
        count(&unread(&server, &cat.cookie).await, "rust"),
        Some(1),
        "a far read mark swallowed a new message"
    );
    // A room never opened has nothing unread, however busy.
    let dan = server.login("Dan").await;
    assert_eq!(count(&unread(&server, &dan.cookie).await, "rust"), Some(0));
}

/// A quiet room whose messages slid out of the memory window (full of
/// another room's) still opens with its own latest page, and resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_room_keeps_its_history_when_a_busy_room_fills_the_window() {
    let server = TestServer::start_with(|config| {
        config.rate_per_sec = 1_000_000.0;
        config.rate_burst = 1_000_000.0;
    })
    .await;
    let ann = server.login("Ann").await;
    let (mut quiet, _) = server.join_room(&ann, "quiet").await;
    let first = quiet.post("quiet one", "q1").await;
    quiet.post("quiet two", "q2").await;
    let (mut busy, _) = server.join(&ann).await;
    for n in 0..1_100 {
        busy.say_with_id(&format!("busy {n}"), &format!("b{n}"))
            .await;
    }
    busy.wait_for_ack("b1099").await;

    let (_again, welcome) = server.join_room(&ann, "quiet").await;
    let texts: Vec<_> = welcome.history.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(texts, ["quiet one", "quiet two"]);
    let resumed = server
        .connect_query(&ann, &format!("?room=quiet&after={first}"))
        .await
        .welcome()
        .await;
    let texts: Vec<_> = resumed.history.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(texts, ["quiet two"]);
    assert!(resumed.complete);
}
