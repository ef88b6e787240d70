//! The room over real WebSockets: welcome, messages, acks, presence across
//! tabs and reloads, resuming after a drop, logout and the upgrade checks.

mod common;

use app::protocol::{ChatMessage, ErrorCode, ServerFrame, SIGNED_OUT_REASON};
use common::TestServer;
use http::StatusCode;
use tokio::time::Instant;

/// A server whose rate limit never gets in the way of a test that sends a lot.
async fn unlimited_server() -> TestServer {
    TestServer::start_with(|config| {
        config.rate_per_sec = 10_000.0;
        config.rate_burst = 10_000.0;
    })
    .await
}

fn joined(frame: &ServerFrame, name: &str) -> bool {
    matches!(frame, ServerFrame::UserJoined { username } if username == name)
}

fn left(frame: &ServerFrame, name: &str) -> bool {
    matches!(frame, ServerFrame::UserLeft { username } if username == name)
}

fn is_message(frame: &ServerFrame, text: &str) -> bool {
    matches!(frame, ServerFrame::Message(m) if m.message == text)
}

fn message_ids(frames: &[ServerFrame]) -> Vec<i64> {
    frames
        .iter()
        .filter_map(|frame| match frame {
            ServerFrame::Message(m) => Some(m.id),
            _ => None,
        })
        .collect()
}

fn ids(messages: &[ChatMessage]) -> Vec<i64> {
    messages.iter().map(|m| m.id).collect()
}

/// RFC 3339 UTC with exactly three fractional digits, close to now.
fn assert_server_time(sent_at: &str) {
    let bytes = sent_at.as_bytes();
    assert_eq!(bytes.len(), "2026-11-24T17:04:00.123Z".len(), "{sent_at}");
    assert_eq!(
        (bytes[10], bytes[19], bytes[23]),
        (b'T', b'.', b'Z'),
        "{sent_at}"
    );
    let parsed = chrono::DateTime::parse_from_rfc3339(sent_at).expect("RFC 3339");
    let skew = chrono::Utc::now()
        .signed_duration_since(parsed)
        .num_seconds()
        .abs();
    assert!(skew < 60, "sent_at {sent_at} is the server's clock, now");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_welcome_comes_first_with_the_name_the_users_and_the_history() {
    let server = TestServer::start().await;
    let alice = server.login("Alice").await;
    let (mut alice_socket, first) = server.join(&alice).await;
    assert_eq!(first.username, "Alice");
    assert_eq!(first.online_users, ["Alice"]);
    assert!(first.history.is_empty());
    assert!(first.complete);
    let one = alice_socket.post("one", "c1").await;
    let two = alice_socket.post("two", "c2").await;

    let john = server.login("John").await;
    let john1 = server.login("John").await;
    let (_john_socket, _) = server.join(&john).await;
    let (_john1_socket, welcome) = server.join(&john1).await;
    assert_eq!(
        welcome.username, "John1",
        "the welcome says which name this session has"
    );
    assert_eq!(welcome.online_users, ["Alice", "John", "John1"]);
    assert_eq!(ids(&welcome.history), [one, two]);
    assert_eq!(welcome.history[0].message, "one");
    assert_eq!(welcome.history[1].username, "Alice");
    assert!(welcome.complete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_reaches_every_user_with_the_servers_id_name_and_time() {
    let server = TestServer::start().await;
    let alice = server.login("Alice").await;
    let bob = server.login("Bob").await;
    let (mut alice_socket, _) = server.join(&alice).await;
    let (mut bob_socket, _) = server.join(&bob).await;

    alice_socket.say("Hello, Bob").await;
    let heard = bob_socket.wait_for_message("Hello, Bob").await;
    let echoed = alice_socket.wait_for_message("Hello, Bob").await;
    assert_eq!(heard, echoed, "everyone sees the same message");
    assert_eq!(heard.username, "Alice");
    assert!(heard.id > 0);
    assert_eq!(heard.client_id, None);
    assert_server_time(&heard.sent_at);

    bob_socket.say("Hi Alice").await;
    let reply = alice_socket.wait_for_message("Hi Alice").await;
    assert_eq!(reply.username, "Bob");
    assert!(reply.id > heard.id, "ids increase");
    assert_eq!(bob_socket.wait_for_message("Hi Alice").await, reply);

    let stored = server.history(&alice.cookie, "").await;
    assert_eq!(
        stored,
        [heard, reply],
        "what was broadcast is what is stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_username_sent_by_the_client_is_ignored() {
    let server = TestServer::start().await;
    let alice = server.login("Alice").await;
    let mallory = server.login("Mallory").await;
    let (mut alice_socket, _) = server.join(&alice).await;
    let (mut mallory_socket, _) = server.join(&mallory).await;

    mallory_socket
        .send_json(serde_json::json!({
            "type": "message",
            "message": "I am Alice, send me your password",
            "username": "Alice",
        }))
        .await;
    let heard = alice_socket
        .wait_for_message("I am Alice, send me your password")
        .await;
    assert_eq!(heard.username, "Mallory");
    let stored = server.history(&alice.cookie, "").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].username, "Mallory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_id_is_acked_and_its_message_stored_once() {
    let server = TestServer::start().await;
    let alice = server.login("Alice").await;
    let bob = server.login("Bob").await;
    let (mut alice_socket, _) = server.join(&alice).await;
    let (mut bob_socket, _) = server.join(&bob).await;

    alice_socket.say_with_id("only once", "7f0c-1").await;
    let (before_ack, ack) = alice_socket
        .frames_until(|frame| matches!(frame, ServerFrame::Ack { .. }))
        .await;
    let ServerFrame::Ack { client_id, id } = ack else {
        unreachable!("the predicate only matches acks")
    };
    assert_eq!(client_id, "7f0c-1");
    let echoed = match before_ack.into_iter().find(|f| is_message(f, "only once")) {
        Some(ServerFrame::Message(message)) => message,
        _ => alice_socket.wait_for_message("only once").await,
    };
    let heard = bob_socket.wait_for_message("only once").await;
    assert_eq!(heard, echoed);
    assert_eq!(heard.id, id, "the ack names the stored id");
    assert_eq!(heard.client_id.as_deref(), Some("7f0c-1"));

    // A retry on the same socket, then one after a reconnect.
    alice_socket.say_with_id("only once", "7f0c-1").await;
    assert_eq!(
        alice_socket.wait_for_ack("7f0c-1").await,
        id,
        "acked again with the same id"
    );
    alice_socket.close().await;
    let (mut alice_again, _) = server.join(&alice).await;
    alice_again.say_with_id("only once", "7f0c-1").await;
    assert_eq!(alice_again.wait_for_ack("7f0c-1").await, id);

    alice_again.say("fence").await;
    let (between, _) = bob_socket.frames_until(|f| is_message(f, "fence")).await;
    assert!(
        message_ids(&between).is_empty(),
        "a retried message is not broadcast again: {between:?}"
    );
    let stored = server.history(&bob.cookie, "").await;
    let copies = stored
        .iter()
        .filter(|m| m.client_id.as_deref() == Some("7f0c-1"))
        .count();
    assert_eq!(copies, 1, "stored once: {stored:?}");
    assert_eq!(stored.len(), 2, "the message and the fence: {stored:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_joins_with_their_first_socket_and_leaves_after_the_grace_period() {
    let grace_ms = 300;
    let server = TestServer::start_with(|config| config.grace_ms = grace_ms).await;
    let bob = server.login("Bob").await;
    let alice = server.login("Alice").await;
    let (mut bob_socket, welcome) = server.join(&bob).await;
    assert_eq!(welcome.online_users, ["Bob"], "a login alone is not online");

    let (alice_socket, alice_welcome) = server.join(&alice).await;
    assert_eq!(alice_welcome.online_users, ["Alice", "Bob"]);
    bob_socket.wait_for(|f| joined(f, "Alice")).await;
    assert_eq!(server.online_users(&bob.cookie).await, ["Alice", "Bob"]);

    let closed_at = Instant::now();
    alice_socket.close().await;
    bob_socket.wait_for(|f| left(f, "Alice")).await;
    assert!(
        closed_at.elapsed().as_millis() >= u128::from(grace_ms),
        "user_left waits for the grace period"
    );
    assert_eq!(server.online_users(&bob.cookie).await, ["Bob"]);

    bob_socket.say("fence").await;
    let (between, _) = bob_socket.frames_until(|f| is_message(f, "fence")).await;
    assert!(
        !between.iter().any(|f| left(f, "Alice")),
        "user_left comes once: {between:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_within_the_grace_period_does_not_flap_the_list() {
    let server = TestServer::start().await;
    let bob = server.login("Bob").await;
    let alice = server.login("Alice").await;
    let (mut bob_socket, _) = server.join(&bob).await;
    let (alice_socket, _) = server.join(&alice).await;
    bob_socket.wait_for(|f| joined(f, "Alice")).await;

    alice_socket.close().await;
    server.wait_for_connections(1).await;
    assert_eq!(
        server.online_users(&bob.cookie).await,
        ["Alice", "Bob"],
        "still listed during the grace period"
    );
    let (_alice_again, welcome) = server.join(&alice).await;
    assert_eq!(
        welcome.username, "Alice",
        "the name is kept across a reload"
    );

    bob_socket.say("fence").await;
    let (between, _) = bob_socket.frames_until(|f| is_message(f, "fence")).await;
    assert!(
        !between
            .iter()
            .any(|f| left(f, "Alice") || joined(f, "Alice")),
        "no user_left or user_joined for a reload: {between:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tabs_of_one_session_are_one_user() {
    let server = TestServer::start_with(|config| config.grace_ms = 300).await;
    let bob = server.login("Bob").await;
    let alice = server.login("Alice").await;
    let (mut bob_socket, _) = server.join(&bob).await;
    let (mut tab1, first) = server.join(&alice).await;
    let (mut tab2, second) = server.join(&alice).await;
    assert_eq!(
        (first.username.as_str(), second.username.as_str()),
        ("Alice", "Alice")
    );
    assert_eq!(second.online_users, ["Alice", "Bob"]);
    assert_eq!(server.online_users(&bob.cookie).await, ["Alice", "Bob"]);

    bob_socket.say("from Bob").await;
    let (before, _) = bob_socket.frames_until(|f| is_message(f, "from Bob")).await;
    let joins = before.iter().filter(|f| joined(f, "Alice")).count();
    assert_eq!(joins, 1, "one user_joined for two tabs: {before:?}");
    tab1.wait_for_message("from Bob").await;
    tab2.wait_for_message("from Bob").await;

    tab1.say("from tab 1").await;
    assert_eq!(tab2.wait_for_message("from tab 1").await.username, "Alice");
    bob_socket.wait_for_message("from tab 1").await;
    tab1.wait_for_message("from tab 1").await;

    // One tab closes. Carol comes and goes after it: her user_left, due
    // after Alice's would be, proves Alice's never came.
    tab1.close().await;
    server.wait_for_connections(2).await;
    let carol = server.login("Carol").await;
    let (carol_socket, _) = server.join(&carol).await;
    carol_socket.close().await;
    let (before, _) = bob_socket.frames_until(|f| left(f, "Carol")).await;
    assert!(
        !before.iter().any(|f| left(f, "Alice")),
        "no user_left while a tab stays open: {before:?}"
    );
    assert_eq!(server.online_users(&bob.cookie).await, ["Alice", "Bob"]);
    bob_socket.say("still there?").await;
    tab2.wait_for_message("still there?").await;

    tab2.close().await;
    bob_socket.wait_for(|f| left(f, "Alice")).await;
    assert_eq!(server.online_users(&bob.cookie).await, ["Bob"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_replays_exactly_the_missed_messages() {
    let server = TestServer::start().await;
    let alice = server.login("Alice").await;
    let bob = server.login("Bob").await;
    let (mut alice_socket, _) = server.join(&alice).await;
    let (mut bob_socket, _) = server.join(&bob).await;

    let mut sent = Vec::new();
    for n in 1..=3 {
        sent.push(alice_socket.post(&format!("m{n}"), &format!("c{n}")).await);
    }
    let last_seen = bob_socket.wait_for_message("m3").await.id;
    assert_eq!(last_seen, sent[2]);
    bob_socket.close().await;
    server.wait_for_connections(1).await;

    for n in 4..=6 {
        sent.push(alice_socket.post(&format!("m{n}"), &format!("c{n}")).await);
    }
    let (mut bob_socket, welcome) = server.resume(&bob, last_seen).await;
    assert_eq!(
        ids(&welcome.history),
        sent[3..6],
        "exactly the missed ones, in id order"
    );
    let texts: Vec<&str> = welcome.history.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(texts, ["m4", "m5", "m6"]);
    assert!(welcome.complete);

    sent.push(alice_socket.post("m7", "c7").await);
    let (between, m7) = bob_socket.frames_until(|f| is_message(f, "m7")).await;
    assert!(
        message_ids(&between).is_empty(),
        "nothing replayed twice: {between:?}"
    );
    assert_eq!(message_ids(&[m7]), [sent[6]]);

    let (_bob_tab, welcome) = server.resume(&bob, sent[0]).await;
    assert_eq!(ids(&welcome.history), sent[1..]);
}

/// Bob keeps dropping and resuming while Alice keeps talking: across all his
/// connections he sees every message once, in id order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_while_messages_flow_loses_and_repeats_nothing() {
    let server = unlimited_server().await;
    let alice = server.login("Alice").await;
    let bob = server.login("Bob").await;
    let (mut alice_socket, _) = server.join(&alice).await;
    let start = alice_socket.post("before the flow", "start").await;

    let total = 200;
    let last_text = format!("flow {}", total - 1);
    let send = async {
        let mut acked = Vec::new();
        for n in 0..total {
            acked.push(
                alice_socket
                    .post(&format!("flow {n}"), &format!("f{n}"))
                    .await,
            );
        }
        acked
    };
    let watch = async {
        let mut seen = Vec::new();
        let mut last = start;
        loop {
            let (mut socket, welcome) = server.resume(&bob, last).await;
            assert!(welcome.complete);
            let mut done = false;
            for message in welcome.history {
                seen.push(message.id);
                last = message.id;
                done = message.message == last_text;
            }
            let mut live = 0;
            while !done && live < 5 {
                if let ServerFrame::Message(message) = socket.next_frame().await {
                    seen.push(message.id);
                    last = message.id;
                    done = message.message == last_text;
                    live += 1;
                }
            }
            socket.close().await;
            if done {
                return seen;
            }
        }
    };
    let (acked, seen) = tokio::join!(send, watch);
    let repeated: Vec<i64> = seen
        .windows(2)
        .filter(|w| w[0] >= w[1])
        .map(|w| w[1])
        .collect();
    let missing: Vec<&i64> = acked.iter().filter(|id| !seen.contains(id)).collect();
    assert!(
        repeated.is_empty(),
        "repeated or out of order: {repeated:?}"
    );
    assert!(missing.is_empty(), "missed: {missing:?}");
    assert_eq!(seen, acked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_connection_gets_the_latest_fifty() {
    let server = unlimited_server().await;
    let alice = server.login("Alice").await;
    let (mut alice_socket, _) = server.join(&alice).await;
    for n in 0..60 {
        alice_socket
            .say_with_id(&format!("m{n}"), &format!("c{n}"))
            .await;
    }
    let mut sent = Vec::new();
    for n in 0..60 {
        sent.push(alice_socket.wait_for_ack(&format!("c{n}")).await);
    }
    let bob = server.login("Bob").await;
    let (_bob_socket, welcome) = server.join(&bob).await;
    assert_eq!(
        ids(&welcome.history),
        sent[10..],
        "the latest 50, oldest first"
    );
    assert_eq!(
        welcome.history.last().map(|m| m.message.as_str()),
        Some("m59")
    );
    assert!(welcome.complete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_closes_the_sessions_sockets_and_tells_the_others() {
    let server = TestServer::start().await;
    let alice = server.login("Alice").await;
    let bob = server.login("Bob").await;
    let (mut bob_socket, _) = server.join(&bob).await;
    let (mut tab1, _) = server.join(&alice).await;
    let (mut tab2, _) = server.join(&alice).await;
    bob_socket.wait_for(|f| joined(f, "Alice")).await;

    assert_eq!(
        server.logout(&alice.cookie).await.status(),
        StatusCode::NO_CONTENT
    );
    for tab in [&mut tab1, &mut tab2] {
        let (code, reason, _) = tab.expect_close_with_frames().await;
        assert_eq!(code, 1000);
        assert_eq!(reason, SIGNED_OUT_REASON);
    }
    bob_socket.wait_for(|f| left(f, "Alice")).await;
    assert_eq!(server.online_users(&bob.cookie).await, ["Bob"]);
    server.wait_for_connections(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrade_needs_a_session_and_an_allowed_origin() {
    let server = TestServer::start_with(|config| {
        config.allowed_origins = vec!["http://localhost:3000".into()];
    })
    .await;
    let alice = server.login("Alice").await;
    let own = server.origin();
    let cookie = Some(alice.cookie.as_str());

    let refused = [
        (None, Some(own.as_str()), StatusCode::UNAUTHORIZED),
        (
            Some("chat_session=forged"),
            Some(own.as_str()),
            StatusCode::UNAUTHORIZED,
        ),
        (cookie, Some("http://evil.example"), StatusCode::FORBIDDEN),
        (cookie, Some("http://localhost:3001"), StatusCode::FORBIDDEN),
        (cookie, None, StatusCode::FORBIDDEN),
    ];
    for (cookie, origin, status) in refused {
        let answer = server.try_connect("", cookie, origin).await;
        assert_eq!(
            answer.err(),
            Some(status),
            "cookie {cookie:?}, origin {origin:?}"
        );
    }
    server.wait_for_connections(0).await;
    assert!(
        server.online_users(&alice.cookie).await.is_empty(),
        "a refused upgrade puts no one online"
    );

    for origin in [own.as_str(), "http://localhost:3000"] {
        let mut socket = server
            .try_connect("", cookie, Some(origin))
            .await
            .unwrap_or_else(|status| panic!("{origin} refused with {status}"));
        assert_eq!(socket.welcome().await.username, "Alice");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_that_missed_over_a_thousand_is_marked_incomplete() {
    let server = unlimited_server().await;
    let alice = server.login("Alice").await;
    let (mut alice_socket, _) = server.join(&alice).await;
    for n in 0..1_005 {
        alice_socket
            .say_with_id(&format!("m{n}"), &format!("c{n}"))
            .await;
    }
    let last = alice_socket.wait_for_ack("c1004").await;
    let bob = server.login("Bob").await;
    let (_first, welcome) = server.resume(&bob, 0).await;
    assert!(!welcome.complete, "more than 1,000 were missed");
    assert_eq!(
        welcome.history.len(),
        1_000,
        "the first 1,000 after `after`"
    );
    assert_eq!(welcome.history[0].message, "m0");
    assert!(welcome.history.windows(2).all(|w| w[0].id < w[1].id));
    let (_second, welcome) = server.resume(&bob, last - 1_000).await;
    assert!(welcome.complete, "exactly 1,000 missed is complete");
    assert_eq!(welcome.history.len(), 1_000);
    assert_eq!(welcome.history.last().map(|m| m.id), Some(last));
}

/// A client that claims to have seen ids the room has not reached yet still
/// hears what is said next: its `after` counts as the newest id.
#[tokio::test]
async fn a_resume_from_beyond_the_newest_id_still_hears_new_messages() {
    let server = TestServer::start().await;
    let alice = server.login("Alice").await;
    let (mut alice_socket, _) = server.join(&alice).await;
    alice_socket.post("the only one", "c1").await;
    let bob = server.login("Bob").await;
    let (mut bob_socket, welcome) = server.resume(&bob, 1_000_000).await;
    assert!(welcome.history.is_empty());
    assert!(welcome.complete);
    let id = alice_socket.post("said after the resume", "c2").await;
    assert_eq!(
        bob_socket
            .wait_for_message("said after the resume")
            .await
            .id,
        id
    );
}

/// After a lost ack the browser sends its unacknowledged messages again.
/// A resend of what is already stored is acked with the stored id and costs
/// no rate budget, once: repeating it is paid for like anything else.
#[tokio::test]
async fn resending_stored_messages_costs_no_rate_budget() {
    // The default burst of 10, refilled so slowly that it never refills
    // within the test: each token here is one the test spent.
    let server = TestServer::start_with(|config| config.rate_per_sec = 0.001).await;
    let alice = server.login("Alice").await;
    let (mut socket, _) = server.join(&alice).await;
    let mut first = Vec::new();
    for n in 0..10 {
        socket.say_with_id(&format!("m{n}"), &format!("c{n}")).await;
    }
    for n in 0..10 {
        first.push(socket.wait_for_ack(&format!("c{n}")).await);
    }
    // The burst is spent; the same ten again, at once.
    for n in 0..10 {
        socket.say_with_id(&format!("m{n}"), &format!("c{n}")).await;
    }
    let mut again = Vec::new();
    while again.len() < 10 {
        match socket.next_frame().await {
            ServerFrame::Ack { id, .. } => again.push(id),
            ServerFrame::Error {
                code, client_id, ..
            } => {
                panic!("the resend of {client_id:?} was refused: {code:?}")
            }
            _ => {}
        }
    }
    assert_eq!(again, first, "each acked with its stored id, in order");
    // The bucket really is empty, and a second resend is not free.
    for (text, client_id) in [("new", "c10"), ("m0", "c0")] {
        socket.say_with_id(text, client_id).await;
        let answer = socket
            .wait_for(|f| matches!(f, ServerFrame::Error { .. } | ServerFrame::Ack { .. }))
            .await;
        assert!(
            matches!(&answer, ServerFrame::Error { code: ErrorCode::RateLimited, client_id: Some(c), .. } if c == client_id),
            "{answer:?}"
        );
    }
    assert_eq!(server.history(&alice.cookie, "limit=100").await.len(), 10);
}

/// Frames the server cannot use cost rate budget too: a client cannot make
/// the server parse frame after frame for free.
#[tokio::test]
async fn every_frame_costs_rate_budget_and_a_flood_is_closed() {
    let server = TestServer::start().await;
    let mallory = server.login("Mallory").await;
    let bob = server.login("Bob").await;
    let (mut bob_socket, _) = server.join(&bob).await;
    let (mut socket, _) = server.join(&mallory).await;
    for _ in 0..10 {
        socket.send_text("not json").await;
    }
    socket.say_with_id("a real message", "real").await;
    let refused = socket
        .wait_for(|f| matches!(f, ServerFrame::Error { client_id: Some(c), .. } if c == "real"))
        .await;
    assert!(
        matches!(
            refused,
            ServerFrame::Error {
                code: ErrorCode::RateLimited,
                ..
            }
        ),
        "{refused:?}"
    );
    // Keeping on regardless ends the socket; everyone else carries on.
    let mut sent = 0;
    while socket.try_send_text("not json").await && sent < 1_000 {
        sent += 1;
    }
    let (code, reason, _) = socket.expect_close_with_frames().await;
    assert_eq!((code, reason.as_str()), (1008, "sending too fast"));
    let (mut other, _) = server.join(&mallory).await;
    bob_socket.say("hello again").await;
    other.wait_for_message("hello again").await;
}
