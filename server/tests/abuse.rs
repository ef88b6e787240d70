//! What a hostile or broken client may send, and proof after each that the
//! room carries on: a bystander still hears a message sent afterwards, and
//! the offending socket stays open unless the protocol says to close it.

mod common;

use std::collections::BTreeSet;

use app::protocol::{ErrorCode, ServerFrame};
use common::{Client, Session, TestServer};
use tokio::time::Instant;

/// Three users in one room: Mallory misbehaves, Bob listens, Carol talks.
struct Room {
    server: TestServer,
    mallory: Session,
    offender: Client,
    bystander: Client,
    speaker: Client,
    said: usize,
}

impl Room {
    async fn open() -> Self {
        let server = TestServer::start().await;
        let mallory = server.login("Mallory").await;
        let bob = server.login("Bob").await;
        let carol = server.login("Carol").await;
        let (bystander, _) = server.join(&bob).await;
        let (speaker, _) = server.join(&carol).await;
        let (offender, _) = server.join(&mallory).await;
        Self {
            server,
            mallory,
            offender,
            bystander,
            speaker,
            said: 0,
        }
    }

    /// Carol speaks and Bob hears her; so does Mallory if her socket should
    /// still be open.
    async fn assert_room_carries_on(&mut self, offender_open: bool) {
        self.said += 1;
        let text = format!("still here {}", self.said);
        self.speaker.say(&text).await;
        assert_eq!(
            self.bystander.wait_for_message(&text).await.username,
            "Carol"
        );
        if offender_open {
            self.offender.wait_for_message(&text).await;
        }
    }

    /// Mallory sends a proper message afterwards; Bob hears it, and sees no
    /// other message from her first (nothing refused was broadcast).
    async fn assert_offender_can_still_talk(&mut self) {
        self.said += 1;
        let text = format!("sorry {}", self.said);
        self.offender.say(&text).await;
        let (before, heard) = self
            .bystander
            .frames_until(|f| matches!(f, ServerFrame::Message(m) if m.message == text))
            .await;
        let ServerFrame::Message(heard) = heard else {
            unreachable!("the predicate only matches messages")
        };
        assert_eq!(heard.username, "Mallory");
        assert!(
            !before
                .iter()
                .any(|f| matches!(f, ServerFrame::Message(m) if m.username == "Mallory")),
            "a refused frame was broadcast: {before:?}"
        );
    }

    /// Reads Mallory's socket until an `error` frame.
    async fn expect_error(&mut self) -> (ErrorCode, String, Option<String>) {
        match self
            .offender
            .wait_for(|f| matches!(f, ServerFrame::Error { .. }))
            .await
        {
            ServerFrame::Error {
                code,
                message,
                client_id,
            } => {
                assert!(!message.trim().is_empty(), "every error says what is wrong");
                (code, message, client_id)
            }
            _ => unreachable!("the predicate only matches errors"),
        }
    }

    async fn expect_error_code(&mut self, sent: &str) -> ErrorCode {
        self.offender.send_text(sent).await;
        let (code, _, client_id) = self.expect_error().await;
        assert_eq!(client_id, None, "{sent}: no client_id to repeat");
        code
    }
}

fn message_frame(text: &str) -> String {
    serde_json::json!({ "type": "message", "message": text }).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_that_are_not_chat_messages_get_bad_frame() {
    let mut room = Room::open().await;
    let frames = [
        "not json",
        "{\"type\":\"message\",",
        "[1, 2, 3]",
        r#"{"type":"shout","message":"HELLO"}"#,
        r#"{"type":"message"}"#,
        r#"{"message":"no type"}"#,
        r#"{"type":"message","message":42}"#,
    ];
    for frame in frames {
        assert_eq!(
            room.expect_error_code(frame).await,
            ErrorCode::BadFrame,
            "{frame}"
        );
    }
    room.assert_room_carries_on(true).await;
    room.assert_offender_can_still_talk().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_and_blank_messages_get_empty() {
    let mut room = Room::open().await;
    for text in ["", " ", "   \n\t  "] {
        assert_eq!(
            room.expect_error_code(&message_frame(text)).await,
            ErrorCode::Empty,
            "{text:?}"
        );
    }
    room.assert_room_carries_on(true).await;
    room.assert_offender_can_still_talk().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_2000_characters_gets_too_long_but_2000_multibyte_characters_pass() {
    let mut room = Room::open().await;
    for text in ["x".repeat(2_001), "é".repeat(2_001)] {
        assert_eq!(
            room.expect_error_code(&message_frame(&text)).await,
            ErrorCode::TooLong,
            "{} characters",
            text.chars().count()
        );
    }
    room.assert_room_carries_on(true).await;
    room.assert_offender_can_still_talk().await;

    for text in ["é".repeat(2_000), "😀".repeat(2_000)] {
        room.offender.say(&text).await;
        let heard = room.bystander.wait_for_message(&text).await;
        assert_eq!(heard.message.chars().count(), 2_000);
        assert_eq!(heard.username, "Mallory");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_get_bad_frame_but_newlines_and_tabs_pass() {
    let mut room = Room::open().await;
    for text in [
        "bell\u{7}",
        "nul\u{0}byte",
        "esc\u{1b}[31mred",
        "carriage\rreturn",
        "del\u{7f}",
    ] {
        assert_eq!(
            room.expect_error_code(&message_frame(text)).await,
            ErrorCode::BadFrame,
            "{text:?}"
        );
    }
    room.assert_room_carries_on(true).await;
    room.assert_offender_can_still_talk().await;

    let text = "line one\nline two\tafter a tab";
    room.offender.say(text).await;
    assert_eq!(room.bystander.wait_for_message(text).await.message, text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_repeats_the_client_id_of_the_frame_that_caused_it() {
    let mut room = Room::open().await;
    let frames = [
        (
            r#"{"type":"shout","message":"x","client_id":"e1"}"#.to_string(),
            ErrorCode::BadFrame,
        ),
        (
            r#"{"type":"message","client_id":"e2"}"#.to_string(),
            ErrorCode::BadFrame,
        ),
        (
            r#"{"type":"message","message":"  ","client_id":"e3"}"#.to_string(),
            ErrorCode::Empty,
        ),
        (
            serde_json::json!({"type": "message", "message": "x".repeat(2_001), "client_id": "e4"})
                .to_string(),
            ErrorCode::TooLong,
        ),
        (
            r#"{"type":"message","message":"a\u0007b","client_id":"e5"}"#.to_string(),
            ErrorCode::BadFrame,
        ),
    ];
    for (n, (frame, expected)) in frames.into_iter().enumerate() {
        room.offender.send_text(frame.clone()).await;
        let (code, _, client_id) = room.expect_error().await;
        assert_eq!(code, expected, "{frame}");
        assert_eq!(client_id, Some(format!("e{}", n + 1)), "{frame}");
    }
    room.assert_room_carries_on(true).await;
    room.assert_offender_can_still_talk().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_rate_limited_and_only_the_allowed_messages_are_stored() {
    let mut room = Room::open().await;
    let flood = 30;
    let started = Instant::now();
    for n in 0..flood {
        room.offender
            .say_with_id(&format!("flood {n}"), &format!("f{n}"))
            .await;
    }
    let mut acked = BTreeSet::new();
    let mut limited = BTreeSet::new();
    while acked.len() + limited.len() < flood {
        match room.offender.next_frame().await {
            ServerFrame::Ack { client_id, .. } => {
                acked.insert(client_id);
            }
            ServerFrame::Error {
                code,
                message,
                client_id,
            } => {
                assert_eq!(code, ErrorCode::RateLimited, "{message}");
                assert!(!message.trim().is_empty());
                limited.insert(client_id.expect("a rate_limited error repeats the client_id"));
            }
            _ => {}
        }
    }
    assert!(acked.is_disjoint(&limited));
    for n in 0..10 {
        assert!(
            acked.contains(&format!("f{n}")),
            "the burst of 10 goes through: {acked:?}"
        );
    }
    // The bucket starts full (10) and refills at 5 a second while the flood lasts.
    let refill = (started.elapsed().as_secs_f64() * 5.0).floor() as usize + 1;
    assert!(
        acked.len() <= 10 + refill,
        "a burst of 10 plus the refill of {refill}: {} acked",
        acked.len()
    );
    assert!(!limited.is_empty(), "the rest are refused");

    let stored: BTreeSet<String> = room
        .server
        .history(&room.mallory.cookie, "limit=100")
        .await
        .into_iter()
        .filter_map(|m| m.client_id)
        .collect();
    assert_eq!(
        stored, acked,
        "exactly the acknowledged messages are stored"
    );

    room.speaker.say("fence").await;
    let (before, _) = room
        .bystander
        .frames_until(|f| matches!(f, ServerFrame::Message(m) if m.message == "fence"))
        .await;
    let heard: BTreeSet<String> = before
        .into_iter()
        .filter_map(|f| match f {
            ServerFrame::Message(m) if m.username == "Mallory" => m.client_id,
            _ => None,
        })
        .collect();
    assert_eq!(
        heard, acked,
        "the bystander hears exactly the allowed messages"
    );
    room.assert_room_carries_on(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_16_kib_closes_the_socket_with_1009() {
    let mut room = Room::open().await;
    room.offender
        .send_text(message_frame(&"x".repeat(17 * 1024)))
        .await;
    assert_eq!(room.offender.expect_close().await, 1009);
    room.assert_room_carries_on(false).await;
    let (mut again, welcome) = room.server.join(&room.mallory).await;
    assert_eq!(welcome.username, "Mallory", "the session itself is fine");
    again.say("reconnected").await;
    room.bystander.wait_for_message("reconnected").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_frame_closes_the_socket_with_1003() {
    let mut room = Room::open().await;
    room.offender
        .send_binary(message_frame("binary").into_bytes())
        .await;
    assert_eq!(room.offender.expect_close().await, 1003);
    room.assert_room_carries_on(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eleventh_socket_of_a_session_is_closed_with_1008_and_no_welcome() {
    let mut room = Room::open().await;
    let mut tabs = Vec::new();
    for _ in 1..10 {
        tabs.push(room.server.join(&room.mallory).await.0);
    }
    room.server.wait_for_connections(12).await;

    let mut eleventh = room.server.connect(&room.mallory).await;
    let (code, reason, frames) = eleventh.expect_close_with_frames().await;
    assert_eq!(code, 1008);
    assert!(!reason.trim().is_empty(), "the close says why");
    assert!(frames.is_empty(), "no welcome, nothing at all: {frames:?}");
    room.server.wait_for_connections(12).await;

    room.assert_room_carries_on(true).await;
    let text = format!("still here {}", room.said);
    for tab in &mut tabs {
        tab.wait_for_message(&text).await;
    }
    let online = room.server.online_users(&room.mallory.cookie).await;
    assert_eq!(online, ["Bob", "Carol", "Mallory"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_is_stored_and_sent_back_as_plain_text() {
    let mut room = Room::open().await;
    let texts = [
        "<img src=x onerror=alert(1)>",
        "<script>alert(document.cookie)</script>",
        "&lt;b&gt; stays &amp; as typed",
    ];
    for text in texts {
        room.offender.say(text).await;
        assert_eq!(room.bystander.wait_for_message(text).await.message, text);
    }
    let stored: Vec<String> = room
        .server
        .history(&room.mallory.cookie, "")
        .await
        .into_iter()
        .map(|m| m.message)
        .collect();
    assert_eq!(stored, texts);

    let dave = room.server.login("Dave").await;
    let (_socket, welcome) = room.server.join(&dave).await;
    let replayed: Vec<&str> = welcome.history.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(replayed, texts);
    room.assert_room_carries_on(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_connection_cap_the_upgrade_gets_503_and_the_room_carries_on() {
    let server = TestServer::start_with(|config| config.max_connections = 2).await;
    let alice = server.login("Alice").await;
    let bob = server.login("Bob").await;
    let (mut first, _) = server.join(&alice).await;
    let (mut second, _) = server.join(&bob).await;
    let refused = server
        .try_connect("", Some(&bob.cookie), Some(&server.origin()))
        .await
        .err();
    assert_eq!(refused, Some(http::StatusCode::SERVICE_UNAVAILABLE));
    first.say("still talking").await;
    second.wait_for_message("still talking").await;
    // A freed slot is usable again.
    first.close().await;
    server.wait_for_connections(1).await;
    let (mut third, _) = server.join(&alice).await;
    second.say("welcome back").await;
    third.wait_for_message("welcome back").await;
}

#[tokio::test]
async fn behind_https_the_session_cookie_is_secure() {
    let server = TestServer::start_with(|config| config.cookie_secure = true).await;
    let response = server.login_json("Alice").await;
    let cookie = common::set_cookie(&response).expect("a session cookie");
    assert!(
        cookie
            .split(';')
            .any(|attribute| attribute.trim() == "Secure"),
        "{cookie}"
    );
    // `__Host-`: no sibling domain or plain-HTTP page can set or shadow it.
    assert!(cookie.starts_with("__Host-chat_session="), "{cookie}");
    let session = common::session_cookie(&response).expect("a session token");
    assert_eq!(
        server
            .get("/get_online_users/", Some(&session))
            .await
            .status(),
        http::StatusCode::OK
    );
    let plain = TestServer::start().await;
    let response = plain.login_json("Alice").await;
    let cookie = common::set_cookie(&response).expect("a session cookie");
    assert!(!cookie.contains("Secure"), "{cookie}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_frames_without_a_message_id_get_bad_frame() {
    let mut room = Room::open().await;
    for frame in [
        r#"{"type":"read"}"#,
        r#"{"type":"read","id":-5}"#,
        r#"{"type":"read","id":"7"}"#,
    ] {
        assert_eq!(
            room.expect_error_code(frame).await,
            ErrorCode::BadFrame,
            "{frame}"
        );
    }
    room.assert_room_carries_on(true).await;
    room.assert_offender_can_still_talk().await;
}

/// Thirty `typing` frames at once: the room hears of it once a second at
/// most, the flooder gets no error for it (typing is not a message) and can
/// still talk, and everyone else carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typing_flood_reaches_the_room_once_a_second_at_most() {
    let mut room = Room::open().await;
    let started = Instant::now();
    for _ in 0..30 {
        room.offender.send_text(r#"{"type":"typing"}"#).await;
    }
    // A socket's frames are handled in order: when this message arrives,
    // every typing frame before it has been handled.
    room.offender.say("done typing").await;
    let (before, _) = room
        .bystander
        .frames_until(|f| matches!(f, ServerFrame::Message(m) if m.message == "done typing"))
        .await;
    let seconds = started.elapsed().as_secs() as usize;
    let typing = before
        .iter()
        .filter(|f| matches!(f, ServerFrame::Typing { username } if username == "Mallory"))
        .count();
    assert!(
        (1..=1 + seconds).contains(&typing),
        "{typing} typing frames passed on in {seconds} s: {before:?}"
    );
    let (seen, _) = room
        .offender
        .frames_until(|f| matches!(f, ServerFrame::Message(m) if m.message == "done typing"))
        .await;
    assert!(
        !seen.iter().any(|f| matches!(f, ServerFrame::Error { .. })),
        "typing over its allowance is dropped quietly: {seen:?}"
    );
    room.assert_room_carries_on(true).await;
}

/// Mallory goes after Carol's message and floods edits of her own: Carol's
/// message is untouched, the edits past the rate are refused like messages,
/// and the room carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_others_messages_is_forbidden_and_an_edit_flood_is_rate_limited() {
    let mut room = Room::open().await;
    room.speaker.say_with_id("Carol's words", "c1").await;
    let carols = room.speaker.wait_for_ack("c1").await;
    for frame in [
        serde_json::json!({ "type": "edit", "id": carols, "message": "Mallory's words" }),
        serde_json::json!({ "type": "delete", "id": carols }),
    ] {
        let code = room.expect_error_code(&frame.to_string()).await;
        assert_eq!(code, ErrorCode::Forbidden, "{frame}");
    }

    room.offender.say_with_id("mine", "m1").await;
    let mine = room.offender.wait_for_ack("m1").await;
    let flood = 30;
    for n in 0..flood {
        room.offender
            .send_json(
                serde_json::json!({ "type": "edit", "id": mine, "message": format!("edit {n}") }),
            )
            .await;
    }
    let (mut edited, mut limited) = (0, 0);
    while edited + limited < flood {
        match room.offender.next_frame().await {
            ServerFrame::Edited { message, .. } if message.id == mine => edited += 1,
            ServerFrame::Error { code, .. } => {
                assert_eq!(code, ErrorCode::RateLimited);
                limited += 1;
            }
            _ => {}
        }
    }
    assert!(
        limited > 0,
        "edits share the message rate: {edited} went through"
    );
    room.assert_room_carries_on(true).await;
    let history = room.server.history(&room.mallory.cookie, "").await;
    let carol = history
        .iter()
        .find(|m| m.id == carols)
        .expect("Carol's message is still there");
    assert_eq!(
        (carol.message.as_str(), carol.edited_at.as_deref()),
        ("Carol's words", None)
    );
}
