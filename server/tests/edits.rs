//! Editing and deleting one's own messages: every socket in the room hears
//! of it, history and search show messages as they now are, a resume
//! replays what changed, and nobody can change another's message.

mod common;

use app::protocol::{ChatMessage, ErrorCode, SearchResults, ServerFrame, MAX_MESSAGE_CHARS};
use common::{Client, TestServer};

async fn edit(client: &mut Client, id: i64, text: &str) {
    client
        .send_json(serde_json::json!({ "type": "edit", "id": id, "message": text }))
        .await;
}

async fn delete(client: &mut Client, id: i64) {
    client
        .send_json(serde_json::json!({ "type": "delete", "id": id }))
        .await;
}

/// Waits for the `edited` frame of message `target`: (change id, message).
async fn edited(client: &mut Client, target: i64) -> (i64, ChatMessage) {
    match client
        .wait_for(|f| matches!(f, ServerFrame::Edited { message, .. } if message.id == target))
        .await
    {
        ServerFrame::Edited { id, message } => (id, message),
        _ => unreachable!("the predicate only matches edits"),
    }
}

/// Waits for the `deleted` frame of message `target`: the change id.
async fn deleted(client: &mut Client, target: i64) -> i64 {
    match client
        .wait_for(|f| matches!(f, ServerFrame::Deleted { message_id, .. } if *message_id == target))
        .await
    {
        ServerFrame::Deleted { id, .. } => id,
        _ => unreachable!("the predicate only matches deletions"),
    }
}

/// The next `error` frame's code.
async fn refused(client: &mut Client) -> ErrorCode {
    match client
        .wait_for(|f| matches!(f, ServerFrame::Error { .. }))
        .await
    {
        ServerFrame::Error { code, .. } => code,
        _ => unreachable!("the predicate only matches errors"),
    }
}

fn texts(messages: &[ChatMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.message.as_str()).collect()
}

async fn search(server: &TestServer, cookie: &str, q: &str) -> Vec<String> {
    let response = server
        .get(&format!("/api/search?q={q}"), Some(cookie))
        .await;
    let results: SearchResults = response.json().await.expect("search results");
    results.results.into_iter().map(|m| m.message).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_deletions_reach_the_room_and_stay() {
    let server = TestServer::start().await;
    let ann = server.login("Ann").await;
    let bob = server.login("Bob").await;
    let (mut ann_ws, _) = server.join(&ann).await;
    let (mut bob_ws, _) = server.join(&bob).await;

    let typo = ann_ws.post("helo wrold", "a1").await;
    let gone = ann_ws.post("something I regret", "a2").await;
    bob_ws.wait_for_message("something I regret").await;

    edit(&mut ann_ws, typo, "  hello world  ").await;
    let (edit_id, message) = edited(&mut bob_ws, typo).await;
    assert!(edit_id > gone, "an edit takes the next id in the sequence");
    assert_eq!(message.message, "hello world", "trimmed like a message");
    assert_eq!(message.username, "Ann");
    assert!(message.edited_at.is_some(), "an edited message says when");
    let (_, own) = edited(&mut ann_ws, typo).await;
    assert_eq!(own, message, "the author hears of it too");

    delete(&mut ann_ws, gone).await;
    let deletion = deleted(&mut bob_ws, gone).await;
    assert!(deletion > edit_id);
    assert_eq!(deleted(&mut ann_ws, gone).await, deletion);

    // History, a new socket and search show messages as they now are.
    let history = server.history(&bob.cookie, "").await;
    assert_eq!(texts(&history), ["hello world"]);
    assert!(history[0].edited_at.is_some());
    let (_cat_ws, welcome) = server.join(&server.login("Cat").await).await;
    assert_eq!(texts(&welcome.history), ["hello world"]);
    assert_eq!(
        search(&server, &bob.cookie, "regret").await,
        Vec::<String>::new()
    );
    assert_eq!(
        search(&server, &bob.cookie, "wrold").await,
        Vec::<String>::new()
    );
    assert_eq!(search(&server, &bob.cookie, "hello").await, ["hello world"]);

    // A resend of the deleted message's client_id is acked under its id,
    // not stored again.
    ann_ws.say_with_id("something I regret", "a2").await;
    assert_eq!(ann_ws.wait_for_ack("a2").await, gone);
    assert_eq!(
        texts(&server.history(&bob.cookie, "").await),
        ["hello world"]
    );

    // Deleting or editing what is gone is refused, and so is changing a
    // change: its id is in the log, but it is not a message.
    delete(&mut ann_ws, gone).await;
    assert_eq!(refused(&mut ann_ws).await, ErrorCode::NotFound);
    edit(&mut ann_ws, gone, "back").await;
    assert_eq!(refused(&mut ann_ws).await, ErrorCode::NotFound);
    edit(&mut ann_ws, edit_id, "an edit's own text").await;
    assert_eq!(refused(&mut ann_ws).await, ErrorCode::NotFound);
    delete(&mut ann_ws, deletion).await;
    assert_eq!(refused(&mut ann_ws).await, ErrorCode::NotFound);
    assert_eq!(
        texts(&server.history(&bob.cookie, "").await),
        ["hello world"]
    );
}

async fn edit_with_id(client: &mut Client, id: i64, text: &str, client_id: &str) {
    client
        .send_json(serde_json::json!({
            "type": "edit", "id": id, "message": text, "client_id": client_id,
        }))
        .await;
}

/// A change sent again (its ack lost in a drop) is acked under the id it
/// was stored with and not made twice, so it cannot undo a later edit from
/// another tab; a refusal names the change it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_sent_again_is_acked_and_not_made_twice() {
    let server = TestServer::start().await;
    let ann = server.login("Ann").await;
    let bob = server.login("Bob").await;
    let (mut ann_ws, _) = server.join(&ann).await;
    let (mut other_tab, _) = server.join(&ann).await;
    let (mut bob_ws, _) = server.join(&bob).await;
    let mine = ann_ws.post("first words", "m1").await;

    edit_with_id(&mut ann_ws, mine, "second words", "e1").await;
    let (first_edit, _) = edited(&mut bob_ws, mine).await;
    assert_eq!(ann_ws.wait_for_ack("e1").await, first_edit);
    edit_with_id(&mut other_tab, mine, "third words", "e2").await;
    let (second_edit, _) = edited(&mut bob_ws, mine).await;
    assert_eq!(other_tab.wait_for_ack("e2").await, second_edit);

    // The first tab sends its edit again, as after a drop: acked, and
    // the room hears nothing of it (Bob's next frame is the next message).
    edit_with_id(&mut ann_ws, mine, "second words", "e1").await;
    assert_eq!(ann_ws.wait_for_ack("e1").await, first_edit);
    let gone = ann_ws.post("short-lived", "m2").await;
    let (heard, _) = bob_ws
        .frames_until(|f| matches!(f, ServerFrame::Message(m) if m.id == gone))
        .await;
    assert!(heard.is_empty(), "an edit made twice: {heard:?}");
    let history = server.history(&bob.cookie, "").await;
    assert_eq!(
        texts(&history),
        ["third words", "short-lived"],
        "the later edit stands"
    );

    // Likewise a deletion: sent twice, done once, acked both times.
    for _ in 0..2 {
        ann_ws
            .send_json(serde_json::json!({ "type": "delete", "id": gone, "client_id": "d1" }))
            .await;
    }
    let (heard, deletion) = bob_ws
        .frames_until(|f| matches!(f, ServerFrame::Deleted { .. }))
        .await;
    assert!(heard.is_empty(), "{heard:?}");
    let ServerFrame::Deleted { id: deletion, .. } = deletion else {
        unreachable!("the predicate only matches deletions")
    };
    assert_eq!(ann_ws.wait_for_ack("d1").await, deletion);
    assert_eq!(ann_ws.wait_for_ack("d1").await, deletion);

    // A key names one write: reused for another, it is refused, and the
    // write is not made in its name.
    edit_with_id(&mut ann_ws, mine, "under a message's key", "m1").await;
    assert_eq!(refused(&mut ann_ws).await, ErrorCode::BadFrame);
    edit_with_id(&mut ann_ws, mine, "under a deletion's key", "d1").await;
    assert_eq!(refused(&mut ann_ws).await, ErrorCode::BadFrame);
    ann_ws.say_with_id("under an edit's key", "e2").await;
    assert_eq!(refused(&mut ann_ws).await, ErrorCode::BadFrame);

    // A refusal carries the change's client_id.
    edit_with_id(&mut bob_ws, mine, "Bob's words", "b1").await;
    match bob_ws
        .wait_for(|f| matches!(f, ServerFrame::Error { .. }))
        .await
    {
        ServerFrame::Error {
            code, client_id, ..
        } => {
            assert_eq!(code, ErrorCode::Forbidden);
            assert_eq!(client_id.as_deref(), Some("b1"));
        }
        _ => unreachable!("the predicate only matches errors"),
    }

    // Bob heard nothing of the refused or repeated changes.
    bob_ws.say_with_id("fence", "f").await;
    let (heard, _) = bob_ws
        .frames_until(|f| matches!(f, ServerFrame::Message(m) if m.message == "fence"))
        .await;
    assert!(heard.is_empty(), "{heard:?}");
    assert_eq!(
        texts(&server.history(&bob.cookie, "").await),
        ["third words", "fence"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_author_changes_a_message_and_bad_changes_are_refused() {
    let server = TestServer::start().await;
    let ann = server.login("Ann").await;
    let bob = server.login("Bob").await;
    let (mut ann_ws, _) = server.join(&ann).await;
    let (mut bob_ws, _) = server.join(&bob).await;
    let (mut ann_elsewhere, _) = server.join_room(&ann, "rust").await;
    let mine = ann_ws.post("Ann's own words", "a1").await;
    let in_rust = ann_elsewhere.post("in another room", "r1").await;

    edit(&mut bob_ws, mine, "Bob's words now").await;
    assert_eq!(refused(&mut bob_ws).await, ErrorCode::Forbidden);
    delete(&mut bob_ws, mine).await;
    assert_eq!(refused(&mut bob_ws).await, ErrorCode::Forbidden);
    for id in [in_rust, 0, -5, i64::MAX] {
        edit(&mut ann_ws, id, "x").await;
        assert_eq!(refused(&mut ann_ws).await, ErrorCode::NotFound, "id {id}");
    }
    edit(&mut ann_ws, mine, &"x".repeat(MAX_MESSAGE_CHARS + 1)).await;
    assert_eq!(refused(&mut ann_ws).await, ErrorCode::TooLong);
    edit(&mut ann_ws, mine, " \n ").await;
    assert_eq!(refused(&mut ann_ws).await, ErrorCode::Empty);
    ann_ws
        .send_json(serde_json::json!({ "type": "delete", "id": "one" }))
        .await;
    assert_eq!(refused(&mut ann_ws).await, ErrorCode::BadFrame);

    // Whose a message is goes by login, not by name: a name freed at
    // logout and taken again does not make its old messages the new
    // holder's.
    let (_, ann_welcome) = server.join(&ann).await;
    let (_, bob_welcome) = server.join(&bob).await;
    let history = server.history(&bob.cookie, "").await;
    assert_eq!(history[0].author, ann_welcome.author);
    assert_ne!(history[0].author, bob_welcome.author);
    drop(ann_ws);
    drop(ann_elsewhere);
    assert!(server.logout(&ann.cookie).await.status().is_success());
    let new_ann = server.login("Ann").await;
    let (mut new_ann_ws, new_welcome) = server.join(&new_ann).await;
    assert_eq!(new_welcome.username, "Ann");
    assert_ne!(new_welcome.author, ann_welcome.author);
    edit(&mut new_ann_ws, mine, "not hers").await;
    assert_eq!(refused(&mut new_ann_ws).await, ErrorCode::Forbidden);

    // Nothing changed, and the room goes on for everyone.
    bob_ws.say_with_id("still here", "b1").await;
    let (before, _) = bob_ws
        .frames_until(|f| matches!(f, ServerFrame::Message(m) if m.message == "still here"))
        .await;
    assert!(
        !before
            .iter()
            .any(|f| matches!(f, ServerFrame::Edited { .. } | ServerFrame::Deleted { .. })),
        "a refused change reached the room: {before:?}"
    );
    let history = server.history(&bob.cookie, "").await;
    assert_eq!(texts(&history), ["Ann's own words", "still here"]);
    assert!(history.iter().all(|m| m.edited_at.is_none()));
}

/// What a resume after `after` in the room "quiet" gets: the welcome's
/// history and the frames that follow it before the answer to a fence (a
/// frame the server refuses, answered after everything already queued).
async fn resume(
    server: &TestServer,
    session: &common::Session,
    after: i64,
) -> (Vec<ChatMessage>, Vec<ServerFrame>) {
    let mut client = server
        .connect_query(session, &format!("?room=quiet&after={after}"))
        .await;
    let welcome = client.welcome().await;
    assert!(welcome.complete);
    client.send_text("fence").await;
    let (mut changes, _) = client
        .frames_until(|f| matches!(f, ServerFrame::Error { .. }))
        .await;
    // Bob's own arrival may come first.
    changes.retain(|f| !matches!(f, ServerFrame::UserJoined { .. }));
    (welcome.history, changes)
}

/// A client that was away gets what changed while it was: each message it
/// had that changed once (its last text, or its deletion), new messages
/// as they now are, and nothing twice. From memory and from the store alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_replays_what_changed_while_away() {
    let server = TestServer::start_with(|config| {
        config.rate_per_sec = 1_000_000.0;
        config.rate_burst = 1_000_000.0;
    })
    .await;
    let ann = server.login("Ann").await;
    let bob = server.login("Bob").await;
    let (mut ann_ws, _) = server.join_room(&ann, "quiet").await;
    let one = ann_ws.post("one", "1").await;
    let two = ann_ws.post("two", "2").await;
    let three = ann_ws.post("three", "3").await;
    // Bob saw up to here, then went away.
    edit(&mut ann_ws, one, "one, first try").await;
    edited(&mut ann_ws, one).await;
    edit(&mut ann_ws, one, "one, fixed").await;
    edited(&mut ann_ws, one).await;
    delete(&mut ann_ws, two).await;
    deleted(&mut ann_ws, two).await;
    let four = ann_ws.post("four", "4").await;
    edit(&mut ann_ws, four, "four, fixed").await;
    edited(&mut ann_ws, four).await;
    let five = ann_ws.post("five", "5").await;
    delete(&mut ann_ws, five).await;
    let last = deleted(&mut ann_ws, five).await;

    let check = |(history, changes): (Vec<ChatMessage>, Vec<ServerFrame>)| {
        assert_eq!(
            texts(&history),
            ["four, fixed"],
            "new messages as they now are"
        );
        assert!(history[0].edited_at.is_some());
        assert_eq!(
            changes.len(),
            2,
            "one frame per changed message: {changes:?}"
        );
        let ServerFrame::Edited { id: first, message } = &changes[0] else {
            panic!("not the edit of one: {changes:?}");
        };
        assert_eq!((message.id, message.message.as_str()), (one, "one, fixed"));
        let ServerFrame::Deleted {
            id: second,
            room,
            message_id,
        } = &changes[1]
        else {
            panic!("not the deletion of two: {changes:?}");
        };
        assert_eq!((*message_id, room.as_str()), (two, "quiet"));
        assert!(three < *first && first < second && *second < last);
    };
    check(resume(&server, &bob, three).await);
    let (history, changes) = resume(&server, &bob, last).await;
    assert!(
        history.is_empty() && changes.is_empty(),
        "nothing after the last change"
    );

    // From the store: a busy room pushes the quiet room out of the window.
    let (mut busy, _) = server.join(&ann).await;
    for n in 0..1_100 {
        busy.say_with_id(&format!("busy {n}"), &format!("b{n}"))
            .await;
    }
    busy.wait_for_ack("b1099").await;
    check(resume(&server, &bob, three).await);
    let history = server.history(&bob.cookie, "room=quiet").await;
    assert_eq!(texts(&history), ["one, fixed", "three", "four, fixed"]);
}
