//! The `Store` trait's promises, kept by both stores: SQLite (a file of
//! its own) and PostgreSQL (a schema of its own in the machine's `test`
//! database, at `TEST_POSTGRES_URL`; a PostgreSQL that cannot be reached
//! fails these tests).

mod common;

use std::sync::Arc;

use common::{postgres_schema, TestServer};

use server::{
    search,
    store::{
        self, Entry, Hold, NameClaim, NewChange, NewMessage, ReadMark, SessionRow, Store, Write,
        WriteRefused, Written,
    },
};

/// A fresh SQLite store in a temporary folder (kept alive with it).
async fn sqlite() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let url = format!("sqlite://{}", dir.path().join("chat.db").display());
    (
        store::open(&url).await.expect("the SQLite store opens"),
        dir,
    )
}

/// A PostgreSQL store in a schema of its own, dropped by [`Postgres::done`].
struct Postgres {
    store: Arc<dyn Store>,
    admin: sqlx::PgPool,
    schema: String,
}

impl Postgres {
    async fn done(self) {
        drop(self.store);
        sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .execute(&self.admin)
            .await
            .expect("the test's schema is dropped");
    }
}

/// A fresh PostgreSQL store in a schema no other test uses.
async fn postgres() -> Postgres {
    let (url, admin, schema) = postgres_schema().await;
    let store = store::open(&url).await.expect("the PostgreSQL store opens");
    Postgres {
        store,
        admin,
        schema,
    }
}

fn session(id: &str, name: &str) -> SessionRow {
    SessionRow {
        id: id.into(),
        username: name.into(),
        base_name: name.into(),
    }
}

fn post(author: &str, room: &str, body: &str, client_id: &str) -> Write {
    Write::Post(NewMessage {
        author: author.into(),
        room: room.into(),
        username: author.to_uppercase(),
        body: body.into(),
        sent_at: "2026-12-03T10:00:00.000Z".into(),
        client_id: Some(client_id.into()),
    })
}

fn change(author: &str, room: &str, target: i64, edit: Option<&str>, client_id: &str) -> Write {
    Write::Change(NewChange {
        author: author.into(),
        room: room.into(),
        username: author.to_uppercase(),
        target,
        edit: edit.map(str::to_string),
        at: "2026-12-03T10:05:00.000Z".into(),
        client_id: Some(client_id.into()),
    })
}

/// The id of a message posted, and whether it was new.
fn posted(written: &Written) -> (i64, bool) {
    match written {
        Written::Posted(appended) => (appended.message.id, appended.fresh),
        other => panic!("not posted: {other:?}"),
    }
}

async fn texts_found(store: &dyn Store, text: &str, room: Option<&str>) -> Vec<String> {
    let plan = search::plan(text).expect("a search");
    let found = store.search(&plan, room, 20).await.expect("a search runs");
    found.into_iter().map(|m| m.message).collect()
}

/// Sessions: made, found, used, renamed, purged and ended.
async fn sessions_are_kept(store: &dyn Store) {
    store.create_session(&session("s1", "Ann")).await.unwrap();
    store.create_session(&session("s2", "Bob")).await.unwrap();
    let ann = store
        .find_session_record("s1")
        .await
        .unwrap()
        .expect("kept");
    assert_eq!(ann.row, session("s1", "Ann"));
    assert!(!ann.connected);
    store.mark_connected("s1").await.unwrap();
    store.touch_session("s1").await.unwrap();
    store.rename_session("s1", "Ann1").await.unwrap();
    let ann = store
        .find_session_record("s1")
        .await
        .unwrap()
        .expect("kept");
    assert!(ann.connected);
    assert_eq!(ann.row.username, "Ann1");
    // Never connected and created before now: Bob's goes, Ann's stays.
    let now = store::now_ms();
    let purged = store
        .purge_sessions(now - 60_000, now + 1_000)
        .await
        .unwrap();
    assert_eq!(purged, ["s2"]);
    assert!(store.find_session("s2").await.unwrap().is_none());
    assert!(store.delete_session("s1").await.unwrap());
    assert!(!store.delete_session("s1").await.unwrap());
    store.ping().await.unwrap();
}

/// The message log: ids in order across rooms, each client_id stored once,
/// edits and deletions by the author only, replayed after an id.
async fn the_log_is_kept(store: &dyn Store) {
    for (id, name) in [("ann", "Ann"), ("bob", "Bob")] {
        store.create_session(&session(id, name)).await.unwrap();
    }
    let written = store
        .append(&[
            post("ann", "lobby", "hello café", "a1"),
            post("bob", "rust", "borrow checker 100% happy", "b1"),
            post("ann", "lobby", "second", "a2"),
            post("ann", "lobby", "hello again", "a1"),
        ])
        .await
        .unwrap();
    assert_eq!(written.prev, 0, "an empty log before the first batch");
    let ids: Vec<(i64, bool)> = written.written.iter().map(posted).collect();
    assert!(ids[0].0 < ids[1].0 && ids[1].0 < ids[2].0, "{ids:?}");
    assert_eq!(ids[3], (ids[0].0, false), "a client_id stored once");
    let (hello, second) = (ids[0].0, ids[2].0);

    let lobby = store.latest("lobby", 50).await.unwrap();
    let texts: Vec<&str> = lobby.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(texts, ["hello café", "second"]);
    assert_eq!(lobby[0].author, server::session::author_tag("ann"));
    assert_eq!(store.before("lobby", second, 50).await.unwrap().len(), 1);

    let changes = store
        .append(&[
            change("bob", "lobby", hello, Some("mine now"), "b2"),
            change("ann", "lobby", hello, Some("hello, edited"), "a3"),
            change("ann", "lobby", hello, Some("hello, edited"), "a3"),
            change("ann", "lobby", second, None, "a4"),
            change("ann", "lobby", 999_999, None, "a5"),
            change("ann", "rust", hello, None, "a6"),
            change("ann", "lobby", hello, None, "a1"),
        ])
        .await
        .unwrap();
    assert_eq!(changes.prev, second, "the newest id before the batch");
    let changes = changes.written;
    assert_eq!(changes[0], Written::Refused(WriteRefused::Forbidden));
    let Written::Changed(Entry::Edited { id: edit, message }) = &changes[1] else {
        panic!("an edit: {:?}", changes[1]);
    };
    assert_eq!(message.message, "hello, edited");
    assert_eq!(
        changes[2],
        Written::ChangedBefore(*edit),
        "a change done once"
    );
    assert!(matches!(
        changes[3],
        Written::Changed(Entry::Deleted { message_id, .. }) if message_id == second
    ));
    assert_eq!(changes[4], Written::Refused(WriteRefused::NotFound));
    assert_eq!(changes[5], Written::Refused(WriteRefused::NotFound));
    assert_eq!(changes[6], Written::Refused(WriteRefused::ClientIdTaken));

    let lobby = store.latest("lobby", 50).await.unwrap();
    let texts: Vec<&str> = lobby.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(texts, ["hello, edited"], "as the messages now are");
    // After the first message: the second (deleted), the edit, the deletion.
    let after = store.after("lobby", hello, 50).await.unwrap();
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(matches!(&after[0], Entry::Edited { id, .. } if id == edit));
    assert!(matches!(&after[1], Entry::Deleted { message_id, .. } if *message_id == second));
    assert_eq!(store.newest(10).await.unwrap().len(), 4);
    // Every room's log after an id, in order: what another server reads.
    let since: Vec<i64> = store
        .since(hello, 10)
        .await
        .unwrap()
        .iter()
        .map(Entry::id)
        .collect();
    assert_eq!(
        since,
        [ids[1].0, *edit, edit + 1],
        "Bob's message, the edit, the deletion"
    );
    assert_eq!(store.since(hello, 1).await.unwrap().len(), 1);

    // Unread: Ann read the lobby up to her first message, Bob's room not at all.
    store
        .record_reads(
            &[
                ReadMark {
                    session: "ann".into(),
                    room: "lobby".into(),
                    id: 0,
                },
                ReadMark {
                    session: "ann".into(),
                    room: "rust".into(),
                    id: 0,
                },
            ],
            &[ReadMark {
                session: "ann".into(),
                room: "lobby".into(),
                id: hello,
            }],
        )
        .await
        .unwrap();
    let rooms = store.rooms("ann", 10).await.unwrap();
    assert_eq!(rooms, [("lobby".to_string(), 0), ("rust".to_string(), 1)]);

    // Search: a part of a word, without accents or case, a literal `%`,
    // a short term at a word's start, a room, never a deleted message.
    assert_eq!(texts_found(store, "CAF", None).await, Vec::<String>::new());
    assert_eq!(texts_found(store, "edit", None).await, ["hello, edited"]);
    assert_eq!(
        texts_found(store, "rrow", None).await,
        ["borrow checker 100% happy"]
    );
    assert_eq!(
        texts_found(store, "100%", None).await,
        ["borrow checker 100% happy"]
    );
    assert_eq!(texts_found(store, "10_", None).await, Vec::<String>::new());
    assert_eq!(
        texts_found(store, "ch", Some("rust")).await,
        ["borrow checker 100% happy"]
    );
    assert_eq!(
        texts_found(store, "he", Some("rust")).await,
        Vec::<String>::new()
    );
    assert_eq!(
        texts_found(store, "second", None).await,
        Vec::<String>::new()
    );
    let accents = store
        .append(&[post("bob", "rust", "Crème brûlée à Zürich", "b3")])
        .await
        .unwrap();
    posted(&accents.written[0]);
    assert_eq!(
        texts_found(store, "creme zurich", None).await,
        ["Crème brûlée à Zürich"]
    );
    assert_eq!(
        texts_found(store, "BRULEE", Some("rust")).await,
        ["Crème brûlée à Zürich"]
    );
}

/// A claim of `base` by `session` at `now`, held for a minute.
fn claim<'a>(session: &'a str, base: &'a str, token: i64, now: i64) -> NameClaim<'a> {
    NameClaim {
        session,
        preferred: None,
        base,
        taken: Default::default(),
        token,
        now,
        until: now + 60_000,
    }
}

/// The name a claim gets.
async fn name(store: &dyn Store, claim: NameClaim<'_>) -> String {
    store.claim_name(&claim).await.unwrap().0
}

/// Names: one holder each, whatever the case; a session's own name back
/// under its first token; a hold let go only under its token, renewed
/// while its session lives, or lapsed; names the asking server holds
/// passed over.
async fn names_are_held_once(store: Arc<dyn Store>) {
    let now = 1_000_000;
    for (id, name) in [("s1", "John"), ("s2", "john1"), ("s5", "John")] {
        store.create_session(&session(id, name)).await.unwrap();
    }
    assert_eq!(name(&*store, claim("s1", "John", 1, now)).await, "John");
    assert_eq!(name(&*store, claim("s2", "john", 2, now)).await, "john1");
    let again = NameClaim {
        preferred: Some("John"),
        ..claim("s1", "John", 3, now)
    };
    assert_eq!(
        store.claim_name(&again).await.unwrap(),
        ("John".to_string(), 1),
        "its own, under its first token"
    );
    store.release_name("s1", 3).await.unwrap();
    assert_eq!(
        name(&*store, claim("s3", "John", 4, now)).await,
        "John2",
        "another token lets nothing go"
    );
    store.release_name("s1", 1).await.unwrap();
    assert_eq!(name(&*store, claim("s4", "JOHN", 5, now)).await, "JOHN");
    // Passed over: names the asking server holds for others.
    let passing = NameClaim {
        taken: ["john".to_string(), "john3".to_string()].into(),
        ..claim("s9", "John", 9, now)
    };
    assert_eq!(name(&*store, passing).await, "John4");
    // A minute on, only the renewed holds of live sessions stand.
    let hold = |session: &str, key: &str, token| Hold {
        session: session.into(),
        key: key.into(),
        token,
    };
    let renewed = store
        .renew_names(
            &[hold("s2", "john1", 2), hold("s3", "john2", 4)],
            now,
            now + 120_000,
        )
        .await
        .unwrap();
    assert_eq!(
        renewed,
        [("s2".to_string(), 2)],
        "s3 has no session to renew for"
    );
    // A hold that went while its name is free is taken back; one whose
    // name another session holds is not.
    let renewed = store
        .renew_names(
            &[
                hold("s1", "zara", 11),
                hold("s2", "john", 12),
                hold("s2", "john1", 99),
            ],
            now,
            now + 120_000,
        )
        .await
        .unwrap();
    // s2's own hold stands under the token it had.
    assert_eq!(renewed.len(), 2, "{renewed:?}");
    assert!(renewed.contains(&("s1".to_string(), 11)), "{renewed:?}");
    assert!(renewed.contains(&("s2".to_string(), 2)), "{renewed:?}");
    assert_eq!(name(&*store, claim("s8", "Zara", 13, now)).await, "Zara1");
    let later = now + 60_001;
    assert_eq!(name(&*store, claim("s5", "John", 6, later)).await, "John");
    assert_eq!(name(&*store, claim("s6", "John", 7, later)).await, "John2");
    // A hold lapsed but not yet forgotten is free to take back.
    let renewed = store
        .renew_names(&[hold("s1", "john4", 21)], later, later + 60_000)
        .await
        .unwrap();
    assert_eq!(renewed, [("s1".to_string(), 21)]);
    // Logging out lets go of the name.
    store.delete_session("s5").await.unwrap();
    assert_eq!(name(&*store, claim("s7", "john", 8, later)).await, "john");
    // Claims at the same instant never share a name.
    let claims = (0..8).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            let session = format!("c{n}");
            name(&*store, claim(&session, "Zed", n, later)).await
        })
    });
    let mut names: Vec<String> = futures::future::join_all(claims)
        .await
        .into_iter()
        .map(|name| name.expect("a claim"))
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 8, "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_holds_names_once() {
    let (store, _dir) = sqlite().await;
    names_are_held_once(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_holds_names_once() {
    let postgres = postgres().await;
    names_are_held_once(postgres.store.clone()).await;
    postgres.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_sessions() {
    let (store, _dir) = sqlite().await;
    sessions_are_kept(store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_sessions() {
    let postgres = postgres().await;
    sessions_are_kept(postgres.store.as_ref()).await;
    postgres.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_the_log() {
    let (store, _dir) = sqlite().await;
    the_log_is_kept(store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_the_log() {
    let postgres = postgres().await;
    the_log_is_kept(postgres.store.as_ref()).await;
    postgres.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_runs_on_postgresql() {
    let (url, admin, schema) = postgres_schema().await;
    let server = TestServer::start_with(|config| config.database_url = url).await;
    let ann = server.login("Ann").await;
    let bob = server.login("Bob").await;
    let (mut ann_socket, _) = server.join(&ann).await;
    let (mut bob_socket, _) = server.join(&bob).await;
    ann_socket.say("stored in PostgreSQL").await;
    let heard = bob_socket.wait_for_message("stored in PostgreSQL").await;
    ann_socket.wait_for_message("stored in PostgreSQL").await;
    bob_socket.say("and back").await;
    ann_socket.wait_for_message("and back").await;
    // A reader who comes back later resumes after what they saw.
    drop(bob_socket);
    let (_, welcome) = server.resume(&bob, heard.id).await;
    let texts: Vec<&str> = welcome.history.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(texts, ["and back"]);
    assert_eq!(server.history(&ann.cookie, "").await.len(), 2);
    server.stop().await;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await
        .expect("the test's schema is dropped");
}
