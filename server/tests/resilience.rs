//! Nothing lost, nothing twice: clients whose connections are cut at random,
//! a server restarted mid-stream, a peer that goes silent, a reader that
//! cannot keep up. Each test prints the figures it measured.

mod common;

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering::Relaxed},
        Arc,
    },
    time::Duration,
};

use app::protocol::ServerFrame;
use common::{
    free_addr, history_at, login_at, open_socket, Client, Received, ServerProcess, Session,
    TestServer,
};
use tokio::{
    sync::Barrier,
    time::{timeout, Instant},
};

/// How long a whole scenario may take before the test fails.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(180);
/// Pause between two attempts to reach a server that is restarting.
const RETRY_EVERY: Duration = Duration::from_millis(25);

/// A small deterministic generator (xorshift64*): the same cuts on every run.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % sides
    }
}

/// What one client does.
struct Plan {
    /// The servers it may reach: each connection goes to one at random,
    /// as behind a load balancer.
    addrs: Vec<SocketAddr>,
    session: Session,
    room: &'static str,
    /// Messages this client sends (`None`: it only reads).
    sends: Option<Sends>,
    /// Cut the connection after a frame with a chance of one in this many.
    cut_one_in: Option<u64>,
    seed: u64,
    /// Messages its room will hold in the end.
    total: usize,
    /// Everyone is connected before anyone sends.
    start: Arc<Barrier>,
    /// Acknowledged messages, across all senders.
    acked: Arc<AtomicUsize>,
}

struct Sends {
    sender: usize,
    count: usize,
    /// Unacknowledged messages kept in flight.
    window: usize,
}

/// What one client saw.
#[derive(Debug, Default)]
struct Tally {
    /// Message ids in the order they arrived (history and live).
    ids: Vec<i64>,
    /// `client_id` to the id its ack gave.
    acks: HashMap<String, i64>,
    cuts: usize,
    reconnects: usize,
    close_codes: Vec<u16>,
}

impl Tally {
    fn record(&mut self, id: i64) {
        if let Some(&last) = self.ids.last() {
            assert!(
                id > last,
                "message {id} arrived after {last}: out of order or twice"
            );
        }
        self.ids.push(id);
    }
}

fn message_frame(text: &str, client_id: &str) -> String {
    serde_json::json!({ "type": "message", "message": text, "client_id": client_id }).to_string()
}

/// Connects to `room` with `?after=`, retrying while the server is down.
async fn reconnect(addr: SocketAddr, session: &Session, room: &str, after: i64) -> Client {
    let origin = format!("http://{addr}");
    let deadline = Instant::now() + SCENARIO_TIMEOUT;
    loop {
        match open_socket(
            addr,
            &format!("?room={room}&after={after}"),
            Some(&session.cookie),
            Some(&origin),
        )
        .await
        {
            Ok(client) => return client,
            Err(error) => {
                assert!(Instant::now() < deadline, "could not reconnect: {error}");
                tokio::time::sleep(RETRY_EVERY).await;
            }
        }
    }
}

/// A client that keeps going whatever happens to its connection: it resumes
/// after the last id it has and resends what was not acknowledged, like the
/// browser client does.
async fn run_client(plan: Plan) -> Tally {
    let mut dice = Dice(plan.seed | 1);
    let mut tally = Tally::default();
    let mut pending: VecDeque<(String, String)> = VecDeque::new();
    let mut next = 0;
    let mut started = false;
    loop {
        let after = tally.ids.last().copied().unwrap_or(0);
        let addr = plan.addrs[dice.roll(plan.addrs.len() as u64) as usize];
        let mut client = reconnect(addr, &plan.session, plan.room, after).await;
        match client.receive().await {
            Received::Frame(ServerFrame::Welcome { history, .. }) => {
                for message in history {
                    assert_eq!(message.room, plan.room, "another room's message");
                    tally.record(message.id);
                }
            }
            Received::Frame(other) => panic!("the first frame is not a welcome: {other:?}"),
            // The server went away between the upgrade and the welcome.
            Received::Closed { code, .. } => {
                tally.close_codes.push(code);
                continue;
            }
            Received::Nothing => panic!("no welcome"),
        }
        if !started {
            plan.start.wait().await;
            started = true;
        } else {
            tally.reconnects += 1;
        }
        for (client_id, text) in &pending {
            client.try_send_text(message_frame(text, client_id)).await;
        }
        loop {
            if let Some(sends) = &plan.sends {
                while pending.len() < sends.window && next < sends.count {
                    let client_id = format!("s{}-{next}", sends.sender);
                    let text = format!("message {next} from sender {}", sends.sender);
                    client.try_send_text(message_frame(&text, &client_id)).await;
                    pending.push_back((client_id, text));
                    next += 1;
                }
            }
            let sent_all = plan
                .sends
                .as_ref()
                .is_none_or(|s| next == s.count && pending.is_empty());
            if tally.ids.len() == plan.total && sent_all {
                return tally;
            }
            match client.receive().await {
                Received::Frame(ServerFrame::Message(message)) => {
                    assert_eq!(message.room, plan.room, "another room's message");
                    tally.record(message.id)
                }
                Received::Frame(ServerFrame::Ack { client_id, id }) => {
                    if let Some(at) = pending.iter().position(|(c, _)| *c == client_id) {
                        pending.remove(at);
                        plan.acked.fetch_add(1, Relaxed);
                    }
                    let earlier = tally.acks.insert(client_id, id);
                    assert!(earlier.is_none_or(|e| e == id), "one client_id, two ids");
                }
                Received::Frame(ServerFrame::Error { code, message, .. }) => {
                    panic!("refused: {code:?} {message}")
                }
                Received::Frame(_) => {}
                Received::Closed { code, .. } => {
                    tally.close_codes.push(code);
                    break;
                }
                Received::Nothing => panic!("the stream stalled with {} messages", tally.ids.len()),
            }
            if plan.cut_one_in.is_some_and(|n| dice.roll(n) == 0) {
                // Abort: no close frame, the TCP connection just ends.
                tally.cuts += 1;
                break;
            }
        }
    }
}

/// Every message of a room in the store, oldest first, paging back with `before`.
async fn stored(
    http: &reqwest::Client,
    addr: SocketAddr,
    session: &Session,
    room: &str,
) -> Vec<app::protocol::ChatMessage> {
    let mut all = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let query = match before {
            Some(id) => format!("room={room}&before={id}&limit=100"),
            None => format!("room={room}&limit=100"),
        };
        let mut page = history_at(http, addr, &session.cookie, &query).await;
        let Some(first) = page.first() else {
            break;
        };
        before = Some(first.id);
        page.append(&mut all);
        all = page;
    }
    all
}

/// Two rooms at once, every connection cut at random and resumed: each
/// client ends with exactly its room's stored messages, in order, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_connections_lose_nothing_and_repeat_nothing() {
    let server = TestServer::start_with(unlimited_rate).await;
    cut_connections_at_random(&[&server], "fault test").await;
}

/// The same across two servers sharing PostgreSQL and Redis: senders and
/// readers on both, each connection to either: every reader ends with every
/// id once, in id order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_connections_across_two_servers_lose_nothing_and_repeat_nothing() {
    let cluster = common::Cluster::new().await;
    let a = cluster.start(unlimited_rate).await;
    let b = cluster.start(unlimited_rate).await;
    cut_connections_at_random(&[&a, &b], "fault test across two servers").await;
    a.stop().await;
    b.stop().await;
    cluster.done().await;
}

fn unlimited_rate(config: &mut server::config::Config) {
    config.rate_per_sec = 1_000_000.0;
    config.rate_burst = 1_000_000.0;
}

/// 20 clients in two rooms, 4 of them sending 500 messages each, their
/// connections cut at random and resumed on any of `servers`.
async fn cut_connections_at_random(servers: &[&TestServer], name: &str) {
    const CLIENTS: usize = 20;
    const SENDERS: usize = 4;
    const PER_SENDER: usize = 500;
    const TOTAL: usize = SENDERS * PER_SENDER;
    const ROOMS: [&str; 2] = ["lobby", "rust"];
    // Clients (senders too) alternate between the rooms.
    let room_of = |n: usize| ROOMS[n % ROOMS.len()];
    let per_room = TOTAL / ROOMS.len();
    let addrs: Vec<SocketAddr> = servers.iter().map(|server| server.addr()).collect();
    let server = servers[0];

    let start = Arc::new(Barrier::new(CLIENTS));
    let acked = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for n in 0..CLIENTS {
        let session = servers[n % servers.len()]
            .login(&format!("client{n}"))
            .await;
        let plan = Plan {
            addrs: addrs.clone(),
            session,
            room: room_of(n),
            sends: (n < SENDERS).then_some(Sends {
                sender: n,
                count: PER_SENDER,
                window: 25,
            }),
            cut_one_in: Some(150),
            seed: 0x9E37_79B9_7F4A_7C15 ^ n as u64,
            total: per_room,
            start: start.clone(),
            acked: acked.clone(),
        };
        tasks.push(tokio::spawn(run_client(plan)));
    }
    let tallies = timeout(SCENARIO_TIMEOUT, futures::future::join_all(tasks))
        .await
        .expect("every client finishes");
    let tallies: Vec<Tally> = tallies
        .into_iter()
        .map(|t| t.expect("a client task"))
        .collect();

    let reader = server.login("auditor").await;
    let mut store_ids = HashMap::new();
    let mut all_ids = Vec::new();
    let mut texts = Vec::new();
    for room in ROOMS {
        let store = stored(server.http(), server.addr(), &reader, room).await;
        assert_eq!(
            store.len(),
            per_room,
            "{room} holds each of its messages once"
        );
        let ids: Vec<i64> = store.iter().map(|m| m.id).collect();
        all_ids.extend(&ids);
        texts.extend(store.into_iter().map(|m| m.message));
        store_ids.insert(room, ids);
    }
    texts.sort_unstable();
    texts.dedup();
    assert_eq!(texts.len(), TOTAL, "no text is stored twice");
    all_ids.sort_unstable();

    let mut delivered = 0;
    for (n, tally) in tallies.iter().enumerate() {
        assert_eq!(
            tally.ids,
            store_ids[room_of(n)],
            "client {n} has exactly its room's stored messages, in order"
        );
        delivered += tally.ids.len();
    }
    let acks: HashMap<&String, i64> = tallies
        .iter()
        .flat_map(|t| t.acks.iter().map(|(c, id)| (c, *id)))
        .collect();
    assert_eq!(acks.len(), TOTAL, "every message was acknowledged");
    assert!(
        acks.values().all(|id| all_ids.binary_search(id).is_ok()),
        "every ack names a stored message"
    );

    let cuts: usize = tallies.iter().map(|t| t.cuts).sum();
    let reconnects: usize = tallies.iter().map(|t| t.reconnects).sum();
    assert!(
        cuts >= CLIENTS,
        "the connections were really cut ({cuts} cuts)"
    );
    eprintln!(
        "{name}: {CLIENTS} clients in 2 rooms, {TOTAL} messages sent, {delivered} \
         delivered (expected {}), 0 lost, 0 duplicated, {cuts} connections cut, \
         {reconnects} resumes",
        CLIENTS * per_room
    );
}

/// The server binary on `addr` with its own SQLite file, no rate limit.
async fn process(addr: SocketAddr, database: &str) -> ServerProcess {
    ServerProcess::start(
        addr,
        &[
            ("DATABASE_URL", database),
            ("RATE_PER_SEC", "1000000"),
            ("RATE_BURST", "1000000"),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_stream_loses_no_acknowledged_message() {
    const TOTAL: usize = 400;
    const WATCHERS: usize = 3;

    let dir = tempfile::tempdir().expect("a temporary directory");
    let database = format!("sqlite://{}/chat.db", dir.path().display());
    let addr = free_addr();
    let first = process(addr, &database).await;
    let http = reqwest::Client::new();

    let start = Arc::new(Barrier::new(WATCHERS + 1));
    let acked = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for n in 0..=WATCHERS {
        let session = login_at(&http, addr, &format!("person{n}")).await;
        tasks.push(tokio::spawn(run_client(Plan {
            addrs: vec![addr],
            session,
            room: "rust",
            sends: (n == 0).then_some(Sends {
                sender: 0,
                count: TOTAL,
                window: 10,
            }),
            cut_one_in: None,
            seed: n as u64,
            total: TOTAL,
            start: start.clone(),
            acked: acked.clone(),
        })));
    }

    // Mid-stream: some messages acknowledged, more on their way.
    let deadline = Instant::now() + SCENARIO_TIMEOUT;
    while acked.load(Relaxed) < TOTAL / 4 {
        assert!(Instant::now() < deadline, "the sender never got going");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let acked_before = acked.load(Relaxed);
    let status = first.terminate().await;
    assert!(
        status.success(),
        "SIGTERM ends the server cleanly: {status}"
    );
    let _second = process(addr, &database).await;

    let tallies = timeout(SCENARIO_TIMEOUT, futures::future::join_all(tasks))
        .await
        .expect("every client finishes");
    let tallies: Vec<Tally> = tallies
        .into_iter()
        .map(|t| t.expect("a client task"))
        .collect();

    let auditor = login_at(&http, addr, "auditor").await;
    let store = stored(&http, addr, &auditor, "rust").await;
    let store_ids: Vec<i64> = store.iter().map(|m| m.id).collect();
    assert_eq!(store.len(), TOTAL, "each message stored once");
    let acks = &tallies[0].acks;
    assert_eq!(acks.len(), TOTAL, "every message acknowledged");
    let lost = acks
        .values()
        .filter(|id| store_ids.binary_search(id).is_err())
        .count();
    assert_eq!(lost, 0, "no acknowledged message is lost");
    for (n, tally) in tallies.iter().enumerate() {
        assert_eq!(
            tally.ids, store_ids,
            "person {n} has every message once, in order"
        );
    }
    let going_away = tallies
        .iter()
        .filter(|t| t.close_codes.contains(&1001))
        .count();
    assert_eq!(
        going_away,
        WATCHERS + 1,
        "every socket was closed with 1001: {:?}",
        tallies.iter().map(|t| &t.close_codes).collect::<Vec<_>>()
    );
    eprintln!(
        "restart test: {TOTAL} messages, SIGTERM after {acked_before} acks, exit {status}, \
         {going_away} of {} clients saw 1001, 0 acknowledged messages lost",
        WATCHERS + 1
    );
}

#[tokio::test]
async fn a_silent_peer_is_dropped_and_leaves_the_sidebar() {
    // Margins a loaded two-core machine keeps: the watcher, who reads all
    // along, answers a ping within 1.5 s however busy the machine is.
    let server = TestServer::start_with(|config| {
        config.ping_interval_ms = 200;
        config.peer_timeout_ms = 1_500;
        config.grace_ms = 100;
    })
    .await;
    let watcher = server.login("Watcher").await;
    let ghost = server.login("Ghost").await;
    let (mut watching, _) = server.join(&watcher).await;
    // Ghost connects and then never reads again: it answers no ping.
    let (_ghost_socket, _) = server.join(&ghost).await;
    watching
        .wait_for(|f| matches!(f, ServerFrame::UserJoined { username } if username == "Ghost"))
        .await;
    // Meanwhile the watcher keeps reading (and so answers pings) and stays.
    watching
        .wait_for(|f| matches!(f, ServerFrame::UserLeft { username } if username == "Ghost"))
        .await;
    assert_eq!(server.online_users(&watcher.cookie).await, ["Watcher"]);
    assert!(server.metric("chat_dropped_clients_total").await >= Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_falls_behind_is_cut_off_and_nobody_else_waits() {
    const BATCH: usize = 10;
    const MAX_MESSAGES: usize = 20_000;

    let server = TestServer::start_with(|config| {
        config.queue_depth = 32;
        config.rate_per_sec = 1_000_000.0;
        config.rate_burst = 1_000_000.0;
    })
    .await;
    let slow = server.login("Slow").await;
    let fast = server.login("Fast").await;
    let sender = server.login("Sender").await;
    let (mut slow_socket, _) = server.join(&slow).await;
    let (mut fast_socket, _) = server.join(&fast).await;
    let (mut sending, _) = server.join(&sender).await;

    // Big messages fill the slow reader's TCP buffers quickly; then its queue.
    let body = "x".repeat(1_900);
    let mut n = 0;
    while server.metric("chat_dropped_clients_total").await < Some(1.0) {
        assert!(n < MAX_MESSAGES, "the slow reader was never cut off");
        for _ in 0..BATCH {
            sending.say(&format!("{n} {body}")).await;
            n += 1;
        }
        // The sender and the fast reader keep up with every message.
        let last = format!("{} {body}", n - 1);
        sending.wait_for_message(&last).await;
        fast_socket.wait_for_message(&last).await;
    }
    // After the cut, the room still flows for everyone else.
    sending.say("after the cut").await;
    fast_socket.wait_for_message("after the cut").await;
    // The slow reader finds, after what was already in its buffers, that it
    // was closed with 1013 (or dropped outright when even the close frame
    // could not be written).
    let code = loop {
        match slow_socket.receive().await {
            Received::Frame(_) => continue,
            Received::Closed { code, .. } => break code,
            Received::Nothing => panic!("the slow reader was never closed"),
        }
    };
    assert!(matches!(code, 1013 | 1006), "closed with {code}");
    eprintln!("slow reader: cut off after {n} messages of 1,900 characters (queue depth 32), close code {code}");
}

/// A client that asks for a room's whole history and then reads nothing
/// holds nothing for long: its welcome is bounded, written under the same
/// rules as every other frame, and the silent peer is dropped and leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_welcome_that_is_never_read_pins_nothing() {
    let server = TestServer::start_with(|config| {
        config.rate_per_sec = 1_000_000.0;
        config.rate_burst = 1_000_000.0;
        config.ping_interval_ms = 200;
        config.peer_timeout_ms = 1_500;
        config.grace_ms = 100;
    })
    .await;
    let writer = server.login("Writer").await;
    let (mut writing, _) = server.join(&writer).await;
    // 1,000 messages of 2,000 four-byte characters: 8 MB of history.
    // In tens, read as they go: the writer is not the slow reader here.
    let body = "😀".repeat(2_000);
    for ten in 0..100 {
        for n in ten * 10..ten * 10 + 10 {
            writing.say_with_id(&body, &format!("c{n}")).await;
        }
        writing.wait_for_ack(&format!("c{}", ten * 10 + 9)).await;
    }

    // Someone reads the whole history: a megabyte at most, then `complete:false`.
    let reader = server.login("Reader").await;
    let (_reading, welcome) = server.resume(&reader, 0).await;
    assert!(!welcome.complete, "the rest is for the client to page in");
    let bytes: usize = welcome.history.iter().map(|m| m.message.len()).sum();
    assert!(
        !welcome.history.is_empty() && bytes <= 1024 * 1024,
        "{} messages, {bytes} bytes of text",
        welcome.history.len()
    );
    assert_eq!(welcome.history[0].id, 1);

    // Someone asks for the same and never reads a byte.
    let ghost = server.login("Ghost").await;
    let _ghost_socket = server.connect_after(&ghost, Some(0)).await;
    writing
        .wait_for(|f| matches!(f, ServerFrame::UserJoined { username } if username == "Ghost"))
        .await;
    writing
        .wait_for(|f| matches!(f, ServerFrame::UserLeft { username } if username == "Ghost"))
        .await;
    assert!(server.metric("chat_dropped_clients_total").await >= Some(1.0));
}

/// SIGTERM while messages flow: every socket gets its 1001, none is cut
/// off without a close frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_traffic_closes_every_socket_with_1001() {
    const READERS: usize = 8;
    let server = TestServer::start_with(|config| {
        config.rate_per_sec = 1_000_000.0;
        config.rate_burst = 1_000_000.0;
    })
    .await;
    // Each reader reads all along, as a browser does, and counts.
    let warm = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for n in 0..READERS {
        let session = server.login(&format!("reader{n}")).await;
        let mut socket = server.join(&session).await.0;
        let warm = warm.clone();
        readers.push(tokio::spawn(async move {
            let mut seen = 0;
            loop {
                match socket.receive().await {
                    Received::Frame(ServerFrame::Message(_)) => {
                        seen += 1;
                        if seen == 50 {
                            warm.fetch_add(1, Relaxed);
                        }
                    }
                    Received::Frame(_) => {}
                    Received::Closed { code, .. } => return code,
                    Received::Nothing => panic!("a reader heard nothing for a while"),
                }
            }
        }));
    }
    let talker = server.login("Talker").await;
    let (mut talking, _) = server.join(&talker).await;
    let body = "x".repeat(1_000);
    let flood = tokio::spawn(async move {
        // Ten in flight at a time: a steady stream the readers keep up with.
        let mut n = 0u64;
        loop {
            for _ in 0..10 {
                if !talking
                    .try_send_text(message_frame(&body, &format!("t{n}")))
                    .await
                {
                    return;
                }
                n += 1;
            }
            let last = format!("t{}", n - 1);
            let acked = loop {
                match talking.receive().await {
                    Received::Frame(ServerFrame::Ack { client_id, .. }) if client_id == last => {
                        break true
                    }
                    Received::Frame(_) => {}
                    Received::Closed { .. } | Received::Nothing => break false,
                }
            };
            if !acked {
                return;
            }
        }
    });
    let deadline = Instant::now() + SCENARIO_TIMEOUT;
    while warm.load(Relaxed) < READERS {
        assert!(Instant::now() < deadline, "the readers never got going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.stop().await;
    let mut codes = Vec::new();
    for reader in readers {
        codes.push(reader.await.expect("a reader task"));
    }
    flood.await.expect("the flood ends with the server");
    assert_eq!(codes, [1001; READERS], "every socket closed with 1001");
}

/// Messages the server has accepted are stored before it exits, even those
/// still waiting for a slow disk when the stop came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stores_every_message_it_had_accepted() {
    use sqlx::Connection as _;
    const QUEUED: usize = 40;
    let server = TestServer::start_with(|config| {
        config.rate_per_sec = 1_000_000.0;
        config.rate_burst = 1_000_000.0;
    })
    .await;
    let url = server.database_url().to_string();
    let alice = server.login("Alice").await;
    let (mut socket, _) = server.join(&alice).await;
    // A slow disk: each insert now takes a while.
    let mut db = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("the database");
    sqlx::query(
        "CREATE TRIGGER slow_disk BEFORE INSERT ON messages BEGIN \
         SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) SELECT x FROM c); \
         END",
    )
    .execute(&mut db)
    .await
    .expect("the trigger");
    for n in 0..QUEUED {
        socket.say(&format!("queued {n}")).await;
    }
    // The server answers frames in order: once this error is back, every
    // message before it was accepted, whether or not it is stored yet.
    socket.send_text("fence").await;
    socket
        .wait_for(|f| matches!(f, ServerFrame::Error { .. }))
        .await;
    server.stop().await;
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM messages WHERE body LIKE 'queued %'")
            .fetch_one(&mut db)
            .await
            .expect("a count");
    assert_eq!(stored, QUEUED as i64, "every accepted message is stored");
}

/// When the database refuses a batch for good, its senders are told with
/// an `unavailable` error naming the message (not an ack, not a closed
/// socket) and send it again on the same socket once the database is back;
/// nothing acked is lost, the failure is counted, and shutdown does not
/// claim everything was stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_the_database_refuses_is_refused_with_a_clear_error() {
    use sqlx::Connection as _;
    let server = TestServer::start().await;
    let alice = server.login("Alice").await;
    let bob = server.login("Bob").await;
    let (mut alice_socket, _) = server.join(&alice).await;
    let (mut bob_socket, _) = server.join(&bob).await;
    let mut db = sqlx::SqliteConnection::connect(server.database_url())
        .await
        .expect("the database");
    sqlx::query(
        "CREATE TRIGGER broken_disk BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'disk failure'); END",
    )
    .execute(&mut db)
    .await
    .expect("the trigger");
    alice_socket.say_with_id("lost in transit", "c1").await;
    let (before, refused) = alice_socket
        .frames_until(|frame| matches!(frame, ServerFrame::Error { .. }))
        .await;
    assert!(
        !before.iter().any(|f| matches!(f, ServerFrame::Ack { .. })),
        "nothing acked: {before:?}"
    );
    let ServerFrame::Error {
        code,
        message,
        client_id,
    } = refused
    else {
        unreachable!("the predicate only matches errors");
    };
    assert_eq!(code, app::protocol::ErrorCode::Unavailable);
    assert_eq!(client_id.as_deref(), Some("c1"));
    assert!(message.contains("cannot store"), "{message}");
    assert_eq!(
        server.metric("chat_unstored_messages_total").await,
        Some(1.0)
    );

    sqlx::query("DROP TRIGGER broken_disk")
        .execute(&mut db)
        .await
        .expect("the repair");
    // The same socket, the same client_id: stored once, acked, delivered.
    let id = alice_socket.post("lost in transit", "c1").await;
    assert_eq!(bob_socket.wait_for_message("lost in transit").await.id, id);
    let (_, welcome) = server.resume(&bob, 0).await;
    assert_eq!(welcome.history.len(), 1);

    let stopped = server.stop_result().await;
    let error = stopped.expect_err("shutdown reports the unstored message");
    assert!(error.to_string().contains("could not be stored"), "{error}");
}
