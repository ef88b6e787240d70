//! Several servers, one chat: servers on ports of their own sharing the
//! machine's PostgreSQL (a schema per test) and Redis (a key prefix per
//! test, or a private `redis-server` for the test that stops it).

mod common;

use std::{net::SocketAddr, process::Stdio, time::Duration};

use app::protocol::ServerFrame;
use common::{Cluster, TestServer, CONDITION_TIMEOUT};
use http::StatusCode;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::{Child, Command},
    time::Instant,
};

fn texts(frames: &[app::protocol::ChatMessage]) -> Vec<&str> {
    frames.iter().map(|m| m.message.as_str()).collect()
}

/// The body of `/healthz`, once it matches `want` (or the test fails).
async fn wait_for_health(server: &TestServer, want: &str) {
    let deadline = Instant::now() + CONDITION_TIMEOUT;
    loop {
        let body = server
            .get("/healthz", None)
            .await
            .text()
            .await
            .unwrap_or_default();
        if body == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz says {body:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_are_one_chat() {
    let cluster = Cluster::new().await;
    let a = cluster.start(|_| {}).await;
    let b = cluster.start(|_| {}).await;
    wait_for_health(&a, "database: ok\nredis: ok\n").await;
    let ann = a.login("Ann").await;
    let bob = b.login("Bob").await;
    let (mut ann_on_a, _) = a.join(&ann).await;
    let (mut bob_on_b, _) = b.join(&bob).await;

    // Both ways, each message once, in id order.
    ann_on_a.say("from A").await;
    let first = bob_on_b.wait_for_message("from A").await;
    bob_on_b.say("from B").await;
    let second = ann_on_a.wait_for_message("from B").await;
    assert!(second.id > first.id);
    ann_on_a
        .send_json(serde_json::json!({"type": "typing"}))
        .await;
    let typing = bob_on_b
        .wait_for(|frame| matches!(frame, ServerFrame::Typing { .. }))
        .await;
    assert_eq!(
        typing,
        ServerFrame::Typing {
            username: "Ann".into()
        }
    );

    // Any server takes any session: Bob's second tab opens on A and
    // resumes after what he saw on B.
    let (mut bob_on_a, welcome) = a.resume(&bob, first.id).await;
    assert_eq!(texts(&welcome.history), ["from B"]);
    // ... and the history reads the same on both.
    assert_eq!(
        texts(&a.history(&ann.cookie, "").await),
        texts(&b.history(&bob.cookie, "").await)
    );

    // Logging out on B ends the session on A too: its tab there is closed
    // and the cookie works nowhere.
    assert_eq!(b.logout(&bob.cookie).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(bob_on_a.expect_close().await, 1000);
    assert_eq!(bob_on_b.expect_close().await, 1000);
    for server in [&a, &b] {
        assert_eq!(
            server
                .get("/get_online_users/", Some(&bob.cookie))
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    a.stop().await;
    b.stop().await;
    cluster.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidebar_lists_the_users_of_every_server_once() {
    let cluster = Cluster::new().await;
    let a = cluster.start(|_| {}).await;
    let b = cluster.start(|_| {}).await;
    let ann = a.login("Ann").await;
    let bob = b.login("Bob").await;
    let (mut ann_on_a, _) = a.join(&ann).await;
    let (mut bob_on_b, _) = b.join(&bob).await;
    // Ann hears of Bob though he is on the other server.
    let bob_came = ServerFrame::UserJoined {
        username: "Bob".into(),
    };
    frames_before(&mut ann_on_a, CONDITION_TIMEOUT, &bob_came).await;
    let both = |users: &[String]| users == ["Ann", "Bob"];
    a.wait_for_online_users(&ann.cookie, both).await;
    b.wait_for_online_users(&bob.cookie, both).await;

    // A second tab of Bob's, on A: still one Bob, and nobody hears him
    // come again.
    let (mut bob_on_a, welcome) = a.join(&bob).await;
    assert_eq!(welcome.online_users, ["Ann", "Bob"]);
    ann_on_a.say("one Bob").await;
    let (before, _) = ann_on_a
        .frames_until(|frame| matches!(frame, ServerFrame::Message(m) if m.message == "one Bob"))
        .await;
    assert!(
        !before
            .iter()
            .any(|frame| matches!(frame, ServerFrame::UserJoined { .. })),
        "{before:?}"
    );
    assert_eq!(a.online_users(&ann.cookie).await, ["Ann", "Bob"]);

    // Ann leaves (logs out on A): Bob's tabs on both servers hear it once.
    a.logout(&ann.cookie).await;
    b.wait_for_online_users(&bob.cookie, |users| users == ["Bob"])
        .await;
    a.wait_for_online_users(&bob.cookie, |users| users == ["Bob"])
        .await;
    bob_on_b.say("after Ann left").await;
    let ann_went = ServerFrame::UserLeft {
        username: "Ann".into(),
    };
    for tab in [&mut bob_on_b, &mut bob_on_a] {
        let (before, _) = tab
            .frames_until(
                |frame| matches!(frame, ServerFrame::Message(m) if m.message == "after Ann left"),
            )
            .await;
        let left = before.iter().filter(|frame| **frame == ann_went).count();
        assert_eq!(left, 1, "{before:?}");
    }
    a.stop().await;
    b.stop().await;
    cluster.done().await;
}

/// A logout whose notice never comes (here: the other server listens on
/// another channel) still ends the session there: its hold is gone from
/// the database, which the other server checks every few seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_whose_notice_is_lost_still_ends_the_session_everywhere() {
    let cluster = Cluster::new().await;
    let a = cluster.start(|_| {}).await;
    let deaf = cluster
        .start(|config| config.redis_prefix = format!("{}deaf:", config.redis_prefix))
        .await;
    let ann = a.login("Ann").await;
    let (mut ann_on_deaf, _) = deaf.join(&ann).await;
    assert_eq!(a.logout(&ann.cookie).await.status(), StatusCode::NO_CONTENT);
    // Within a round of renewals (5 s).
    let deadline = Instant::now() + Duration::from_secs(15);
    let code = loop {
        assert!(Instant::now() < deadline, "the socket stayed open");
        match ann_on_deaf.receive().await {
            common::Received::Closed { code, .. } => break code,
            common::Received::Frame(_) | common::Received::Nothing => {}
        }
    };
    assert_eq!(code, 1000);
    a.stop().await;
    deaf.stop().await;
    cluster.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_name_at_the_same_instant_on_two_servers_is_two_names() {
    let cluster = Cluster::new().await;
    let a = cluster.start(|_| {}).await;
    let b = cluster.start(|_| {}).await;
    let mut names = Vec::new();
    for _ in 0..5 {
        let (on_a, on_b) = tokio::join!(a.login("John"), b.login("John"));
        names.push(on_a.username);
        names.push(on_b.username);
    }
    names.sort();
    assert_eq!(
        names,
        ["John", "John1", "John2", "John3", "John4", "John5", "John6", "John7", "John8", "John9"]
    );
    a.stop().await;
    b.stop().await;
    cluster.done().await;
}

/// Reads until `want` arrives, for up to `within`; the frames before it.
async fn frames_before(
    client: &mut common::Client,
    within: Duration,
    want: &ServerFrame,
) -> Vec<ServerFrame> {
    let deadline = Instant::now() + within;
    let mut before = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "no {want:?} within {within:?}; got {before:?}"
        );
        match client.receive().await {
            common::Received::Frame(frame) if frame == *want => return before,
            common::Received::Frame(frame) => before.push(frame),
            common::Received::Nothing => {}
            common::Received::Closed { code, reason } => {
                panic!("closed with {code} {reason} before {want:?}")
            }
        }
    }
}

/// A server killed with SIGKILL says nothing: its users leave the other
/// server's sidebar within 15 s, once, and its clients resume on the other
/// server with nothing lost and nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_s_users_leave_and_its_clients_resume_elsewhere() {
    let cluster = Cluster::new().await;
    let a_addr = common::free_addr();
    let a = common::ServerProcess::start(
        a_addr,
        &[
            ("DATABASE_URL", &cluster.database_url),
            ("REDIS_URL", &cluster.redis_url),
            ("REDIS_PREFIX", &cluster.redis_prefix),
        ],
    )
    .await;
    let b = cluster.start(|_| {}).await;
    let http = reqwest::Client::new();
    let bob = b.login("Bob").await;
    let (mut bob_on_b, _) = b.join(&bob).await;
    let ann = common::login_at(&http, a_addr, "Ann").await;
    let cat = common::login_at(&http, a_addr, "Cat").await;
    let origin = format!("http://{a_addr}");
    let mut cat_on_a = common::open_socket(a_addr, "", Some(&cat.cookie), Some(&origin))
        .await
        .expect("Cat's socket on A");
    cat_on_a.welcome().await;
    let mut ann_on_a = common::open_socket(a_addr, "", Some(&ann.cookie), Some(&origin))
        .await
        .expect("Ann's socket on A");
    ann_on_a.welcome().await;
    let ann_came = ServerFrame::UserJoined {
        username: "Ann".into(),
    };
    frames_before(&mut bob_on_b, CONDITION_TIMEOUT, &ann_came).await;
    let seen = ann_on_a.post("before the crash", "a1").await;
    bob_on_b.wait_for_message("before the crash").await;

    a.kill().await;
    let killed = Instant::now();
    bob_on_b.say("while A was down").await;
    let ann_went = ServerFrame::UserLeft {
        username: "Ann".into(),
    };
    frames_before(&mut bob_on_b, Duration::from_secs(20), &ann_went).await;
    let took = killed.elapsed();
    assert!(took <= Duration::from_secs(15), "Ann left after {took:?}");
    eprintln!("a killed server's user left the other's sidebar after {took:?}");
    b.wait_for_online_users(&bob.cookie, |users| users == ["Bob"])
        .await;
    // The names A held are free again once their holds lapse.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let name = b.login("Cat").await.username;
        if name == "Cat" {
            break;
        }
        assert!(Instant::now() < deadline, "Cat's name stayed held");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "a killed server's names were free after {:?}",
        killed.elapsed()
    );

    // Ann's client comes back on B after the last message it had.
    let (_ann_on_b, welcome) = b.resume(&ann, seen).await;
    assert_eq!(welcome.username, "Ann");
    assert_eq!(texts(&welcome.history), ["while A was down"]);
    let after = frames_before(&mut bob_on_b, CONDITION_TIMEOUT, &ann_came).await;
    assert!(!after.contains(&ann_went), "Ann left once: {after:?}");
    b.stop().await;
    cluster.done().await;
}

/// Checks, again and again for `during`, that the sidebar behind `cookie`
/// lists Ann and Bob.
async fn stays_listed(server: &TestServer, cookie: &str, during: Duration) {
    let until = Instant::now() + during;
    while Instant::now() < until {
        assert_eq!(server.online_users(cookie).await, ["Ann", "Bob"]);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A TCP proxy to the machine's PostgreSQL that the test can cut: cut, it
/// ends every connection through it and takes no new ones.
struct Cuttable {
    addr: SocketAddr,
    up: tokio::sync::watch::Sender<bool>,
}

impl Cuttable {
    async fn to(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let addr = listener.local_addr().expect("its address");
        let (up, watching) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !*watching.borrow() {
                    continue;
                }
                let mut cut = watching.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { addr, up }
    }

    fn cut(&self) {
        self.up.send_replace(false);
    }

    fn mend(&self) {
        self.up.send_replace(true);
    }
}

/// PostgreSQL going away: a send gets an `unavailable` error naming it
/// (no ack), `/healthz` says so, and once it is back the same message sent
/// again is stored once; nothing acked before is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_postgresql_gives_a_clear_error_and_nothing_is_lost() {
    let cluster = Cluster::new().await;
    // The URL's host and port, through the proxy instead.
    let url = &cluster.database_url;
    let host_start = url
        .find('@')
        .map_or(url.find("://").expect("a URL") + 3, |at| at + 1);
    let host_end = host_start + url[host_start..].find('/').expect("a database name");
    let proxy = Cuttable::to(url[host_start..host_end].to_string()).await;
    let through = format!("{}{}{}", &url[..host_start], proxy.addr, &url[host_end..]);
    let server = cluster
        .start(|config| config.database_url.clone_from(&through))
        .await;
    let ann = server.login("Ann").await;
    let (mut ann_socket, _) = server.join(&ann).await;
    let before = ann_socket.post("before", "p0").await;

    proxy.cut();
    wait_for_health(&server, "database: unreachable\nredis: ok\n").await;
    ann_socket.say_with_id("during", "p1").await;
    let (frames, refused) = ann_socket
        .frames_until(|frame| matches!(frame, ServerFrame::Error { .. }))
        .await;
    assert!(
        !frames
            .iter()
            .any(|frame| matches!(frame, ServerFrame::Ack { .. })),
        "{frames:?}"
    );
    let ServerFrame::Error {
        code, client_id, ..
    } = refused
    else {
        unreachable!("the predicate only matches errors");
    };
    assert_eq!(code, app::protocol::ErrorCode::Unavailable);
    assert_eq!(client_id.as_deref(), Some("p1"));

    proxy.mend();
    wait_for_health(&server, "database: ok\nredis: ok\n").await;
    // Sent again, as the browser does: stored once.
    let during = ann_socket.post("during", "p1").await;
    let stored: Vec<i64> = server
        .history(&ann.cookie, "")
        .await
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(stored, [before, during]);
    // The refusal is counted, and shutdown says so.
    let stopped = server.stop_result().await;
    let error = stopped.expect_err("shutdown reports the refused message");
    assert!(error.to_string().contains("could not be stored"), "{error}");
    cluster.done().await;
}

/// A `redis-server` of the test's own on a free port, killed on drop.
struct PrivateRedis {
    port: u16,
    child: Child,
}

impl PrivateRedis {
    async fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server starts (is it installed?)");
        let redis = Self { port, child };
        let deadline = Instant::now() + CONDITION_TIMEOUT;
        while !redis.answers().await {
            assert!(Instant::now() < deadline, "redis-server never answered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        redis
    }

    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr: SocketAddr| addr.port())
            .expect("a free port");
        Self::start_on(port).await
    }

    async fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        let mut answer = [0; 7];
        stream.write_all(b"PING\r\n").await.is_ok()
            && stream.read_exact(&mut answer).await.is_ok()
            && &answer == b"+PONG\r\n"
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: gone at once, with everything it held.
    async fn kill(mut self) -> u16 {
        self.child.kill().await.expect("redis-server is killed");
        self.port
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_redis_loses_nothing_and_delivery_comes_back() {
    let redis = PrivateRedis::start().await;
    let cluster = Cluster::on_redis(redis.url()).await;
    let a = cluster.start(|_| {}).await;
    let b = cluster.start(|_| {}).await;
    wait_for_health(&a, "database: ok\nredis: ok\n").await;
    wait_for_health(&b, "database: ok\nredis: ok\n").await;
    let ann = a.login("Ann").await;
    let bob = b.login("Bob").await;
    let (mut ann_on_a, _) = a.join(&ann).await;
    let (mut bob_on_b, _) = b.join(&bob).await;
    let mut acked = vec![ann_on_a.post("before", "a0").await];
    bob_on_b.wait_for_message("before").await;
    let both = |users: &[String]| users == ["Ann", "Bob"];
    b.wait_for_online_users(&bob.cookie, both).await;

    let port = redis.kill().await;
    wait_for_health(&a, "database: ok\nredis: unreachable\n").await;
    // Long enough for every snapshot to expire: Ann stays listed on B.
    stays_listed(&b, &bob.cookie, Duration::from_secs(12)).await;
    // Without Redis, A still stores and acks; B reads A's messages from
    // the database, in order.
    for n in 1..=5 {
        acked.push(
            ann_on_a
                .post(&format!("without redis {n}"), &format!("a{n}"))
                .await,
        );
    }
    for n in 1..=5 {
        bob_on_b
            .wait_for_message(&format!("without redis {n}"))
            .await;
    }

    // Redis comes back on the same port: both servers find it by themselves.
    let _redis = PrivateRedis::start_on(port).await;
    wait_for_health(&a, "database: ok\nredis: ok\n").await;
    wait_for_health(&b, "database: ok\nredis: ok\n").await;
    // The rounds after Redis is back find every snapshot expired until each
    // server writes its own again: nobody is taken for gone.
    stays_listed(&b, &bob.cookie, Duration::from_secs(6)).await;
    // Only Redis carries typing: this is Redis, subscribed again.
    ann_on_a
        .send_json(serde_json::json!({"type": "typing"}))
        .await;
    bob_on_b
        .wait_for(|frame| matches!(frame, ServerFrame::Typing { .. }))
        .await;
    acked.push(ann_on_a.post("after", "a6").await);
    let (before, _) = bob_on_b
        .frames_until(|frame| matches!(frame, ServerFrame::Message(m) if m.message == "after"))
        .await;
    assert!(
        !before
            .iter()
            .any(|frame| matches!(frame, ServerFrame::UserLeft { .. })),
        "nobody left while Redis was away: {before:?}"
    );
    bob_on_b.say("and back").await;
    ann_on_a.wait_for_message("and back").await;

    // Every acknowledged message is stored, once, in order; a reader who
    // resumes from the start on B gets exactly them.
    let stored = b.history(&bob.cookie, "").await;
    let ids: Vec<i64> = stored.iter().map(|m| m.id).collect();
    let mut expected = acked.clone();
    expected.push(stored.last().expect("a last message").id);
    assert_eq!(ids, expected);
    let (_, welcome) = b.resume(&bob, 0).await;
    let resumed: Vec<i64> = welcome.history.iter().map(|m| m.id).collect();
    assert_eq!(resumed, expected);
    a.stop().await;
    b.stop().await;
    cluster.done().await;
}
