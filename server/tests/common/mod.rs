//! What every integration test needs: a real server on a free port with its
//! own database, logins over HTTP, and WebSocket clients that read protocol
//! frames with a timeout instead of hoping they have arrived.

#![allow(dead_code)]

use std::{net::SocketAddr, time::Duration};

use app::protocol::{ChatMessage, MessagePage, OnlineUsers, ServerFrame};
use futures::{SinkExt, StreamExt};
use http::{header, HeaderValue, StatusCode};
use server::config::Config;
use tempfile::TempDir;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::oneshot,
    task::JoinHandle,
    time::{timeout, Instant},
};
use tokio_tungstenite::{
    tungstenite::{self, client::IntoClientRequest, Message},
    MaybeTlsStream, WebSocketStream,
};

/// How long one frame may take to arrive before the test fails.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a polled condition (health, a metric) may take to come true.
pub const CONDITION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server may take to answer its first health check (migrations).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two polls of a condition.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// The machine's PostgreSQL, unless `TEST_POSTGRES_URL` names another.
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";
/// The machine's Redis, unless `TEST_REDIS_URL` names another.
const REDIS: &str = "redis://127.0.0.1:6379";

/// A name no other test of any run uses: for a schema or a key prefix.
pub fn unique_name() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    format!(
        "chat_test_{}_{nanos}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// A URL of the machine's PostgreSQL for a schema no other test uses, the
/// schema made, and a connection to drop it with.
pub async fn postgres_schema() -> (String, sqlx::PgPool, String) {
    let base = std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| POSTGRES.to_string());
    let schema = unique_name();
    let admin = sqlx::PgPool::connect(&base)
        .await
        .unwrap_or_else(|error| panic!("PostgreSQL at {base} cannot be reached: {error}"));
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .expect("a schema of its own");
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options[search_path]={schema},public");
    (url, admin, schema)
}

/// What the servers of one chat share: a PostgreSQL schema and a Redis key
/// prefix of their own. [`Cluster::done`] drops the schema.
pub struct Cluster {
    pub database_url: String,
    pub redis_url: String,
    pub redis_prefix: String,
    admin: sqlx::PgPool,
    schema: String,
}

impl Cluster {
    /// A new chat on the machine's PostgreSQL and Redis; fails the test
    /// when either cannot be reached.
    pub async fn new() -> Self {
        let redis_url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| REDIS.to_string());
        Self::on_redis(redis_url).await
    }

    /// A new chat on the machine's PostgreSQL and the Redis at `redis_url`.
    pub async fn on_redis(redis_url: String) -> Self {
        let (database_url, admin, schema) = postgres_schema().await;
        Self {
            database_url,
            redis_url,
            redis_prefix: format!("{}:", unique_name()),
            admin,
            schema,
        }
    }

    /// Points a server's settings at this chat.
    pub fn join(&self, config: &mut Config) {
        config.database_url.clone_from(&self.database_url);
        config.redis_url = Some(self.redis_url.clone());
        config.redis_prefix.clone_from(&self.redis_prefix);
    }

    /// A server of this chat; `adjust` may change its other settings.
    pub async fn start(&self, adjust: impl FnOnce(&mut Config)) -> TestServer {
        TestServer::start_with(|config| {
            self.join(config);
            adjust(config);
        })
        .await
    }

    /// Drops the chat's schema (stop its servers first).
    pub async fn done(self) {
        sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .execute(&self.admin)
            .await
            .expect("the test's schema is dropped");
    }
}

/// An address on 127.0.0.1 that was free a moment ago.
pub fn free_addr() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    probe.local_addr().expect("its address")
}

/// The server binary as a child process (for a real SIGTERM or SIGKILL),
/// killed when dropped.
pub struct ServerProcess {
    child: tokio::process::Child,
}

impl ServerProcess {
    /// Starts it on `addr` with these settings, and waits until it answers.
    pub async fn start(addr: SocketAddr, env: &[(&str, &str)]) -> Self {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_server"))
            .env("BIND", addr.to_string())
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .kill_on_drop(true)
            .spawn()
            .expect("the server binary starts");
        wait_for_health(&reqwest::Client::new(), addr, START_TIMEOUT, || true).await;
        Self { child }
    }

    /// SIGTERM, then the exit status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("a running child");
        let killed = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .expect("kill runs");
        assert!(killed.success());
        timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the server exits after SIGTERM")
            .expect("an exit status")
    }

    /// SIGKILL: no goodbye, no flush.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("the server is killed");
    }
}

/// A running server with its own temporary database. Dropping it stops the
/// server (the shutdown future resolves when the sender goes away).
pub struct TestServer {
    addr: SocketAddr,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    database_url: String,
    _dir: TempDir,
}

/// A logged-in user: the name the server gave out and the cookie to send.
#[derive(Clone, Debug)]
pub struct Session {
    pub username: String,
    /// `chat_session=<token>`, ready for a `Cookie` header.
    pub cookie: String,
}

/// The fields of a `welcome` frame.
#[derive(Clone, Debug)]
pub struct Welcome {
    pub room: String,
    pub username: String,
    pub author: String,
    pub online_users: Vec<String>,
    pub history: Vec<ChatMessage>,
    pub complete: bool,
}

impl TestServer {
    /// A server with the default settings.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A server whose settings `adjust` may change (shorter timers, limits).
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut config = Config::defaults();
        config.database_url = format!("sqlite://{}/chat.db", dir.path().display());
        adjust(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port on 127.0.0.1");
        let addr = listener.local_addr().expect("the bound address");
        config.bind = addr;
        let (stop, stopped) = oneshot::channel::<()>();
        let stopped = async move {
            let _ = stopped.await;
        };
        let database_url = config.database_url.clone();
        let task = tokio::spawn(server::serve(config, listener, stopped));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        let server = Self {
            addr,
            http,
            stop: Some(stop),
            task: Some(task),
            database_url,
            _dir: dir,
        };
        server.wait_until_healthy().await;
        server
    }

    async fn wait_until_healthy(&self) {
        let task = self.task.as_ref();
        wait_for_health(&self.http, self.addr, START_TIMEOUT, || {
            task.is_none_or(|task| !task.is_finished())
        })
        .await;
    }

    /// Stops the server and checks that it shut down cleanly.
    pub async fn stop(self) {
        self.stop_result()
            .await
            .expect("the server shuts down without an error");
    }

    /// Stops the server; what `serve` returned.
    pub async fn stop_result(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => timeout(CONDITION_TIMEOUT, task)
                .await
                .expect("the server stops in time")
                .expect("the server task does not panic"),
            None => Ok(()),
        }
    }

    /// The server's own database, for a test that reaches into it (to make
    /// it fail on cue, or to count what it holds).
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's own origin, as a browser on its pages would send it.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// An HTTP client that does not follow redirects and keeps no cookies.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `GET path`, with the session cookie when given.
    pub async fn get(&self, path: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(self.url(path));
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.send().await.expect("the server answers")
    }

    /// `POST /api/login` as JSON, whatever the answer.
    pub async fn login_json(&self, username: &str) -> reqwest::Response {
        self.http
            .post(self.url("/api/login"))
            .json(&serde_json::json!({ "username": username }))
            .send()
            .await
            .expect("the server answers")
    }

    /// `POST /api/login` with a form body (already encoded), whatever the answer.
    pub async fn login_form(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.http
            .post(self.url("/api/login"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("the server answers")
    }

    /// Logs in with JSON and expects success.
    pub async fn login(&self, username: &str) -> Session {
        login_at(&self.http, self.addr, username).await
    }

    /// `POST /api/logout` as JSON, whatever the answer.
    pub async fn logout(&self, cookie: &str) -> reqwest::Response {
        self.http
            .post(self.url("/api/logout"))
            .header(header::COOKIE, cookie)
            .header(header::CONTENT_TYPE, "application/json")
            .body("{}")
            .send()
            .await
            .expect("the server answers")
    }

    /// `/get_online_users/` for a session that must be valid.
    pub async fn online_users(&self, cookie: &str) -> Vec<String> {
        self.online_users_in(cookie, None).await
    }

    /// `/get_online_users/?room=ROOM`, or without a room.
    pub async fn online_users_in(&self, cookie: &str, room: Option<&str>) -> Vec<String> {
        let path = match room {
            Some(room) => format!("/get_online_users/?room={room}"),
            None => "/get_online_users/".to_string(),
        };
        let response = self.get(&path, Some(cookie)).await;
        assert_eq!(response.status(), StatusCode::OK);
        response
            .json::<OnlineUsers>()
            .await
            .expect("the online users as JSON")
            .online_users
    }

    /// `/api/messages?{query}` for a session that must be valid.
    pub async fn history(&self, cookie: &str, query: &str) -> Vec<ChatMessage> {
        history_at(&self.http, self.addr, cookie, query).await
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let response = self.get("/metrics", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.expect("the metrics text")
    }

    /// One metric's value, if `/metrics` lists it.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        metric_value(&self.metrics().await, name)
    }

    /// Polls `/metrics` until `name` has the value `expected`.
    pub async fn wait_for_metric(&self, name: &str, expected: f64) {
        let deadline = Instant::now() + CONDITION_TIMEOUT;
        loop {
            let value = self.metric(name).await;
            if value == Some(expected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} stayed at {value:?}, expected {expected}"
            );
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Polls until the server holds exactly `n` sockets: a socket the test
    /// closed has then been fully taken down on the server's side.
    pub async fn wait_for_connections(&self, n: usize) {
        self.wait_for_metric("chat_connections", n as f64).await;
    }

    /// Polls `/get_online_users/` until `pred` holds for the list.
    pub async fn wait_for_online_users(
        &self,
        cookie: &str,
        pred: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + CONDITION_TIMEOUT;
        loop {
            let users = self.online_users(cookie).await;
            if pred(&users) {
                return users;
            }
            assert!(
                Instant::now() < deadline,
                "the online users stayed {users:?}"
            );
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Opens `/ws/chat/{query}` with the given cookie and `Origin`. The HTTP
    /// status is the error when the upgrade is refused.
    pub async fn try_connect(
        &self,
        query: &str,
        cookie: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Client, StatusCode> {
        match timeout(FRAME_TIMEOUT, open_socket(self.addr, query, cookie, origin)).await {
            Err(_) => panic!("the WebSocket upgrade timed out"),
            Ok(Ok(client)) => Ok(client),
            Ok(Err(tungstenite::Error::Http(response))) => Err(response.status()),
            Ok(Err(error)) => panic!("the WebSocket upgrade failed: {error}"),
        }
    }

    /// Opens a socket for `session` from the server's own origin, `?after=`
    /// when given, without reading anything yet.
    pub async fn connect_after(&self, session: &Session, after: Option<i64>) -> Client {
        let query = after.map(|id| format!("?after={id}")).unwrap_or_default();
        self.connect_query(session, &query).await
    }

    /// Opens `/ws/chat/{query}` for `session` from the server's own origin,
    /// without reading anything yet.
    pub async fn connect_query(&self, session: &Session, query: &str) -> Client {
        let origin = self.origin();
        match self
            .try_connect(query, Some(&session.cookie), Some(&origin))
            .await
        {
            Ok(client) => client,
            Err(status) => panic!(
                "the upgrade for {} was refused with {status}",
                session.username
            ),
        }
    }

    pub async fn connect(&self, session: &Session) -> Client {
        self.connect_after(session, None).await
    }

    /// Opens a socket in `room` and reads its `welcome`.
    pub async fn join_room(&self, session: &Session, room: &str) -> (Client, Welcome) {
        let mut client = self.connect_query(session, &format!("?room={room}")).await;
        let welcome = client.welcome().await;
        assert_eq!(welcome.room, room);
        (client, welcome)
    }

    /// Opens a socket and reads its `welcome`.
    pub async fn join(&self, session: &Session) -> (Client, Welcome) {
        let mut client = self.connect(session).await;
        let welcome = client.welcome().await;
        (client, welcome)
    }

    /// Opens a socket with `?after=ID` and reads its `welcome`.
    pub async fn resume(&self, session: &Session, after: i64) -> (Client, Welcome) {
        let mut client = self.connect_after(session, Some(after)).await;
        let welcome = client.welcome().await;
        (client, welcome)
    }
}

impl TestServer {
    /// Opens a socket for `session` from the server's own origin, as a
    /// trusted proxy would pass it on for the client at `forwarded_for`.
    /// The refusal (status and headers) is the error when the upgrade fails.
    pub async fn try_connect_forwarded(
        &self,
        session: &Session,
        forwarded_for: &str,
    ) -> Result<Client, http::Response<Option<Vec<u8>>>> {
        let mut request = format!("ws://{}/ws/chat/", self.addr)
            .into_client_request()
            .expect("a WebSocket request");
        let headers = request.headers_mut();
        let value = |text: &str| HeaderValue::from_str(text).expect("a header value");
        headers.insert(header::COOKIE, value(&session.cookie));
        headers.insert(header::ORIGIN, value(&self.origin()));
        headers.insert("x-forwarded-for", value(forwarded_for));
        match timeout(FRAME_TIMEOUT, tokio_tungstenite::connect_async(request)).await {
            Err(_) => panic!("the WebSocket upgrade timed out"),
            Ok(Ok((ws, _))) => Ok(Client { ws }),
            Ok(Err(tungstenite::Error::Http(response))) => Err(*response),
            Ok(Err(error)) => panic!("the WebSocket upgrade failed: {error}"),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The session cookie's name: `chat_session`, or `__Host-chat_session`
/// when the server runs behind HTTPS.
fn is_session_cookie(name: &str) -> bool {
    name == "chat_session" || name == "__Host-chat_session"
}

/// `chat_session=<token>` (or `__Host-chat_session=<token>`) from a
/// response's `Set-Cookie`, if it starts a session.
pub fn session_cookie(response: &reqwest::Response) -> Option<String> {
    set_cookie(response)
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .filter(|pair| {
            pair.split_once('=')
                .is_some_and(|(_, token)| !token.is_empty())
        })
}

/// The full `Set-Cookie` value for the session cookie, if any.
pub fn set_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| {
            value
                .split_once('=')
                .is_some_and(|(name, _)| is_session_cookie(name.trim()))
        })
        .map(str::to_string)
}

/// A header as text, or "" when absent.
pub fn header_text(response: &reqwest::Response, name: header::HeaderName) -> String {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The value of an unlabelled Prometheus series in `text`.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.split_once(' ')?;
            (series == name)
                .then(|| value.trim().parse().ok())
                .flatten()
        })
}

/// What a socket delivered next.
#[derive(Debug)]
pub enum Received {
    Frame(ServerFrame),
    /// The server closed the socket (1006: dropped without a close frame).
    Closed {
        code: u16,
        reason: String,
    },
    /// Nothing arrived within [`FRAME_TIMEOUT`].
    Nothing,
}

/// Polls `http://{addr}/healthz` until it answers 200, failing the test if
/// `alive` turns false (the server stopped) or `limit` passes.
pub async fn wait_for_health(
    http: &reqwest::Client,
    addr: SocketAddr,
    limit: Duration,
    alive: impl Fn() -> bool,
) {
    let deadline = Instant::now() + limit;
    loop {
        assert!(alive(), "the server stopped before it answered /healthz");
        if let Ok(response) = http.get(format!("http://{addr}/healthz")).send().await {
            if response.status() == StatusCode::OK {
                return;
            }
        }
        assert!(Instant::now() < deadline, "/healthz never answered 200");
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// `/api/messages?{query}` at `addr` for a session that must be valid.
pub async fn history_at(
    http: &reqwest::Client,
    addr: SocketAddr,
    cookie: &str,
    query: &str,
) -> Vec<ChatMessage> {
    let response = http
        .get(format!("http://{addr}/api/messages?{query}"))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .expect("the server answers");
    assert_eq!(response.status(), StatusCode::OK, "/api/messages?{query}");
    response
        .json::<MessagePage>()
        .await
        .expect("a page of messages as JSON")
        .messages
}

/// Opens `ws://{addr}/ws/chat/{query}` with an optional cookie and `Origin`.
pub async fn open_socket(
    addr: SocketAddr,
    query: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
) -> Result<Client, tungstenite::Error> {
    let url = format!("ws://{addr}/ws/chat/{query}");
    let mut request = url.into_client_request()?;
    let headers = request.headers_mut();
    if let Some(cookie) = cookie {
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(cookie).expect("a cookie header"),
        );
    }
    if let Some(origin) = origin {
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_str(origin).expect("an origin header"),
        );
    }
    let (ws, _) = tokio_tungstenite::connect_async(request).await?;
    Ok(Client { ws })
}

/// Logs in with JSON at `addr`; the name given and the cookie.
pub async fn login_at(http: &reqwest::Client, addr: SocketAddr, username: &str) -> Session {
    let response = http
        .post(format!("http://{addr}/api/login"))
        .json(&serde_json::json!({ "username": username }))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(response.status(), StatusCode::OK, "login as {username:?}");
    let cookie = session_cookie(&response).expect("the login sets the session cookie");
    let body: serde_json::Value = response.json().await.expect("a JSON login answer");
    let username = body["username"]
        .as_str()
        .expect("the login answer names the user")
        .to_string();
    Session { username, cookie }
}

/// One WebSocket, read frame by frame.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    /// The next frame or close, skipping pings and pongs.
    pub async fn receive(&mut self) -> Received {
        loop {
            let next = match timeout(FRAME_TIMEOUT, self.ws.next()).await {
                Err(_) => return Received::Nothing,
                Ok(next) => next,
            };
            match next {
                Some(Ok(Message::Text(text))) => {
                    let frame = serde_json::from_str::<ServerFrame>(text.as_str())
                        .unwrap_or_else(|error| panic!("not a server frame ({error}): {text}"));
                    return Received::Frame(frame);
                }
                Some(Ok(Message::Close(frame))) => {
                    return match frame {
                        Some(frame) => Received::Closed {
                            code: frame.code.into(),
                            reason: frame.reason.to_string(),
                        },
                        None => Received::Closed {
                            code: 1005,
                            reason: String::new(),
                        },
                    }
                }
                Some(Ok(Message::Binary(bytes))) => {
                    panic!("the server sent a binary frame: {bytes:?}")
                }
                Some(Ok(_)) => continue,
                Some(Err(error)) => {
                    return Received::Closed {
                        code: 1006,
                        reason: error.to_string(),
                    }
                }
                None => {
                    return Received::Closed {
                        code: 1006,
                        reason: "the connection ended without a close frame".into(),
                    }
                }
            }
        }
    }

    /// The next frame; fails the test on a timeout or a close.
    pub async fn next_frame(&mut self) -> ServerFrame {
        match self.receive().await {
            Received::Frame(frame) => frame,
            Received::Closed { code, reason } => {
                panic!("the socket closed ({code} {reason:?}) while a frame was expected")
            }
            Received::Nothing => panic!("no frame within {FRAME_TIMEOUT:?}"),
        }
    }

    /// Reads the first frame, which must be `welcome`.
    pub async fn welcome(&mut self) -> Welcome {
        match self.next_frame().await {
            ServerFrame::Welcome {
                room,
                username,
                author,
                online_users,
                history,
                complete,
            } => Welcome {
                room,
                username,
                author,
                online_users,
                history,
                complete,
            },
            other => panic!("the first frame is not a welcome: {other:?}"),
        }
    }

    /// Reads until a frame matches; returns the frames before it and the match.
    pub async fn frames_until(
        &mut self,
        mut pred: impl FnMut(&ServerFrame) -> bool,
    ) -> (Vec<ServerFrame>, ServerFrame) {
        let deadline = Instant::now() + CONDITION_TIMEOUT;
        let mut before = Vec::new();
        loop {
            assert!(
                Instant::now() < deadline,
                "no matching frame within {CONDITION_TIMEOUT:?}; got {before:?}"
            );
            match self.receive().await {
                Received::Frame(frame) if pred(&frame) => return (before, frame),
                Received::Frame(frame) => before.push(frame),
                Received::Closed { code, reason } => {
                    panic!("the socket closed ({code} {reason:?}) before a matching frame; got {before:?}")
                }
                Received::Nothing => {
                    panic!("no matching frame within {FRAME_TIMEOUT:?}; got {before:?}")
                }
            }
        }
    }

    /// Reads until a frame matches and returns it.
    pub async fn wait_for(&mut self, pred: impl FnMut(&ServerFrame) -> bool) -> ServerFrame {
        self.frames_until(pred).await.1
    }

    /// Waits for the `message` frame carrying `text`.
    pub async fn wait_for_message(&mut self, text: &str) -> ChatMessage {
        match self
            .wait_for(|frame| matches!(frame, ServerFrame::Message(m) if m.message == text))
            .await
        {
            ServerFrame::Message(message) => message,
            _ => unreachable!("the predicate only matches messages"),
        }
    }

    /// Waits for the `ack` of `client_id` and returns its message id.
    pub async fn wait_for_ack(&mut self, client_id: &str) -> i64 {
        match self
            .wait_for(
                |frame| matches!(frame, ServerFrame::Ack { client_id: c, .. } if c == client_id),
            )
            .await
        {
            ServerFrame::Ack { id, .. } => id,
            _ => unreachable!("the predicate only matches acks"),
        }
    }

    /// Reads until the server closes the socket; returns the close code, the
    /// reason and the frames that came first.
    pub async fn expect_close_with_frames(&mut self) -> (u16, String, Vec<ServerFrame>) {
        let mut before = Vec::new();
        let deadline = Instant::now() + CONDITION_TIMEOUT;
        loop {
            assert!(
                Instant::now() < deadline,
                "the socket stayed open; got {before:?}"
            );
            match self.receive().await {
                Received::Frame(frame) => before.push(frame),
                Received::Closed { code, reason } => return (code, reason, before),
                Received::Nothing => {
                    panic!("the socket stayed open for {FRAME_TIMEOUT:?}; got {before:?}")
                }
            }
        }
    }

    /// Reads until the server closes the socket and returns the close code.
    pub async fn expect_close(&mut self) -> u16 {
        self.expect_close_with_frames().await.0
    }

    /// Sends a text frame; false if the socket is already gone.
    pub async fn try_send_text(&mut self, text: impl Into<String>) -> bool {
        self.ws.send(Message::text(text.into())).await.is_ok()
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws
            .send(Message::text(text.into()))
            .await
            .expect("the frame goes out");
    }

    pub async fn send_json(&mut self, value: serde_json::Value) {
        self.send_text(value.to_string()).await;
    }

    /// Sends a chat message without a `client_id`.
    pub async fn say(&mut self, text: &str) {
        self.send_json(serde_json::json!({ "type": "message", "message": text }))
            .await;
    }

    /// Sends a chat message with a `client_id`.
    pub async fn say_with_id(&mut self, text: &str, client_id: &str) {
        self.send_json(
            serde_json::json!({ "type": "message", "message": text, "client_id": client_id }),
        )
        .await;
    }

    /// Sends a message with a `client_id` and waits for its ack: the message id.
    pub async fn post(&mut self, text: &str, client_id: &str) -> i64 {
        self.say_with_id(text, client_id).await;
        self.wait_for_ack(client_id).await
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(Message::binary(bytes))
            .await
            .expect("the frame goes out");
    }

    /// Closes from the client's side and waits for the server's answer, so
    /// the server has seen the close when this returns.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        let deadline = Instant::now() + CONDITION_TIMEOUT;
        while Instant::now() < deadline {
            match timeout(FRAME_TIMEOUT, self.ws.next()).await {
                Ok(Some(Ok(_))) => continue,
                _ => return,
            }
        }
    }
}
