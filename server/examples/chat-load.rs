//! chat-load: a load generator that speaks the chat's real protocol, and puts
//! the same load on the bare control (`bare-broadcast`), so the product's
//! speed and memory can be read against a plain axum broadcast loop on the
//! same machine in the same run (`make bench`).
//!
//! Scenarios, each bounded in time and in count, loopback only:
//!
//! - `fanout`: N clients in one room, every client a sender. Open loop: the
//!   k-th message of a step is due at `t0 + k / rate` and is sent by client
//!   `k mod N`, whatever happened to the earlier ones. Every message text
//!   carries the time it was *due* (nanoseconds since this process started,
//!   one monotonic clock), so a sender that falls behind shows up as
//!   latency instead of quietly sending less (coordinated omission).
//!   Every client receives every message, its own included: expected
//!   deliveries are sent × N. `--sweep` doubles the rate each step until a
//!   message or an ack is lost, a socket drops, or p99 passes 1 s. Without
//!   `--sweep`, any such loss makes the exit status 1 (`make bench-smoke`).
//! - `idle`: C clients that connect and only read (tungstenite answers the
//!   server's pings while a socket is read), with the server's RSS before
//!   and after.
//! - `churn`: logins, connects and disconnects at a fixed rate; errors are
//!   counted, and afterwards the online list must be exactly the clients
//!   still connected.
//!
//! ```sh
//! chat-load --addr 127.0.0.1:3200 --target product --scenario fanout \
//!     --clients 100 --rate 1000 --duration 3 --sweep --json out.json
//! chat-load --table target/bench     # product-X.json beside bare-X.json
//! ```

use std::{
    borrow::Cow,
    collections::BTreeSet,
    fmt::Write as _,
    io,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{
        atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed},
        Arc, Mutex,
    },
    time::Duration,
};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use futures::{
    stream::{self, SplitSink, SplitStream},
    SinkExt, StreamExt,
};
use hdrhistogram::Histogram;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::{
    net::{TcpSocket, TcpStream},
    sync::{mpsc, watch, OnceCell},
    task::JoinHandle,
    time::{sleep, sleep_until, timeout, Instant},
};
use tokio_tungstenite::{
    client_async_with_config,
    tungstenite::{
        client::IntoClientRequest,
        http::{header, HeaderValue},
        protocol::WebSocketConfig,
        Message,
    },
    WebSocketStream,
};

type Ws = WebSocketStream<TcpStream>;

/// Login, TCP connect, upgrade and `welcome` together: a server that needs
/// longer than this for one client is failing the scenario, not slow.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections opened at once. Far below the listen backlog (1,024 in tokio),
/// so a ramp of thousands measures the server, not SYN retransmits.
const CONNECT_CONCURRENCY: usize = 128;
/// A fan-out sender more than this behind its schedule gives up on the step:
/// the step fails for messages never sent, and the run stays bounded.
const LATE_LIMIT: Duration = Duration::from_secs(5);
/// How long a step waits after the last send for deliveries and acks still
/// on their way; what has not arrived by then counts as lost.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// A sweep step whose p99 is above this has stopped being a chat.
const SWEEP_P99_LIMIT_US: u64 = 1_000_000;
/// Between connecting every idle socket and reading the server's memory:
/// the last handshakes and welcomes are done and their buffers freed.
const SETTLE: Duration = Duration::from_secs(2);
/// Before the first fan-out step, single probe messages go round until
/// this many in a row reach everyone (and are acked) within `PROBE_FAST`.
/// Connecting a room leaves work behind (join announcements to every
/// socket; for the chat, a database write per login and per socket), and
/// a measured message queued behind it would be measuring the connect.
const PROBES_IN_A_ROW: u32 = 3;
const PROBE_FAST: Duration = Duration::from_millis(100);
/// How long one probe may take before the next is sent.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Probes are numbered as steps from here, far above any real step: each
/// probe needs a `client_id` of its own, or the chat would take a second
/// probe for a resend of the first and only ack it.
const PROBE_STEPS: u32 = 1_000_000;
/// ... but a room that never settles is measured anyway after this.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);
/// Latency histograms record microseconds, 1 µs to 60 s, 3 significant digits.
const HIST_MAX_US: u64 = 60_000_000;
/// Receivers record latency into one of these, chosen by client index, so
/// a thousand receivers do not queue on one lock.
const HIST_SHARDS: usize = 32;
/// Every fan-out message starts with this word; anything else (history in a
/// `welcome`, other people's text) is not ours to count.
const STAMP: &str = "load";
/// A cap on `--clients`: the machines this runs on allow 20,000 open files
/// per process, and a few are needed besides the sockets.
const MAX_CLIENTS: usize = 19_000;

#[derive(Parser, Debug)]
#[command(
    name = "chat-load",
    about = "Load generator for the chat and its bare control (loopback only)"
)]
struct Args {
    /// The server under load; must be in 127.0.0.0/8.
    #[arg(long, required_unless_present = "table")]
    addr: Option<SocketAddr>,

    /// More servers of the same chat (in 127.0.0.0/8): sockets are opened
    /// on `--addr` and these in turn; logins go to `--addr`.
    #[arg(long)]
    also: Vec<SocketAddr>,

    /// `product`: log in, send cookies and `Origin`, wait for `welcome`,
    /// count acks. `bare`: just open the socket.
    #[arg(long, value_enum, default_value_t = Target::Product)]
    target: Target,

    #[arg(long, value_enum, default_value_t = Scenario::Fanout)]
    scenario: Scenario,

    /// Clients (fan-out, idle) or clients that stay connected (churn).
    #[arg(long, default_value_t = 10)]
    clients: usize,

    /// Fan-out: messages per second, all senders together (the first step of
    /// a sweep). Churn: login-connect-disconnect cycles per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,

    /// Seconds: each fan-out step; how long idle clients are held; how long
    /// churn goes on.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,

    /// Fan-out: double the rate each step until something fails; report the
    /// best step that did not.
    #[arg(long)]
    sweep: bool,

    /// Fan-out sweep: at most this many steps.
    #[arg(long, default_value_t = 12)]
    max_steps: u32,

    /// The server's process id, for its memory (`VmRSS` and `VmHWM` in
    /// `/proc/<pid>/status`).
    #[arg(long)]
    server_pid: Option<u32>,

    /// Write the results here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,

    /// The scenario's name in the comparison table (default: from the scenario).
    #[arg(long)]
    label: Option<String>,

    /// Product, idle: sockets per login. Every new user is announced to every
    /// socket, so one login per socket would measure presence traffic, not
    /// idle memory; 10 is the product's default `MAX_TABS`.
    #[arg(long, default_value_t = 10)]
    tabs_per_login: usize,

    /// Product, churn: the server's `GRACE_MS`, so the online list is checked
    /// only once users who left are allowed to be gone.
    #[arg(long, default_value_t = 5_000)]
    grace_ms: u64,

    /// Something about the server's settings to print and keep beside the
    /// figures (repeatable), e.g. "RATE_PER_SEC=1000000 (raised for fan-out)".
    #[arg(long)]
    note: Vec<String>,

    /// Print the comparison of every `product-X.json` in this directory with
    /// its `bare-X.json`, and write it to `summary.json` there.
    #[arg(long, conflicts_with = "addr")]
    table: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Target {
    Product,
    Bare,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Fanout,
    Idle,
    Churn,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Product => "product",
            Target::Bare => "bare",
        }
    }
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Fanout => "fanout",
            Scenario::Idle => "idle",
            Scenario::Churn => "churn",
        }
    }
}

#[tokio::main]
async fn main() -> Result<ExitCode> {
    let args = Args::parse();
    if let Some(dir) = &args.table {
        print_table(dir)?;
        return Ok(ExitCode::SUCCESS);
    }
    let addr = args.addr.context("--addr is required")?;
    for addr in std::iter::once(&addr).chain(&args.also) {
        match addr.ip() {
            IpAddr::V4(ip) if ip.is_loopback() => {}
            _ => bail!("--addr must be in 127.0.0.0/8: this tool loads nothing but this machine"),
        }
    }
    if args.clients == 0 || args.clients > MAX_CLIENTS {
        bail!("--clients must be 1 to {MAX_CLIENTS}");
    }
    if !(args.rate.is_finite() && args.rate > 0.0) {
        bail!("--rate must be above 0");
    }
    if !(args.duration.is_finite() && args.duration > 0.0 && args.duration <= 600.0) {
        bail!("--duration must be above 0 and at most 600 seconds");
    }
    if args.tabs_per_login == 0 {
        bail!("--tabs-per-login must be at least 1");
    }
    check_open_files(args.clients)?;
    for note in &args.note {
        eprintln!("server settings: {note}");
    }

    let endpoint = Arc::new(Endpoint::new(addr, &args.also, args.target)?);
    for addr in std::iter::once(&addr).chain(&args.also) {
        wait_until_listening(*addr).await?;
    }
    let cpu_before = CpuSample::take(args.server_pid);
    let mut report = match args.scenario {
        Scenario::Fanout => fanout(&endpoint, &args).await?,
        Scenario::Idle => idle(&endpoint, &args).await?,
        Scenario::Churn => churn(&endpoint, &args).await?,
    };
    report.notes.extend(args.note.iter().cloned());
    // The machine is shared: say how much of it others used meanwhile.
    if let (Some(before), Some(after)) = (cpu_before, CpuSample::take(args.server_pid)) {
        let cpu = before.cores_used_until(&after);
        report.notes.push(format!(
            "CPU in cores of {}: server {:.2}, generator {:.2}, other processes {:.2}",
            after.cpus, cpu.server, cpu.generator, cpu.other
        ));
        report.details["cpu_cores"] = json!({
            "cpus": after.cpus, "server": cpu.server,
            "generator": cpu.generator, "other": cpu.other,
        });
    }
    let failure = report.failure.clone();
    let document = report.into_json(&args);
    println!("{}", render_report(&document));
    if let Some(path) = &args.json {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("could not create {}", dir.display()))?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&document)?)
            .with_context(|| format!("could not write {}", path.display()))?;
    }
    // A failed run is an answer, not a crash: said plainly, exit status 1.
    Ok(match failure {
        Some(why) => {
            eprintln!("chat-load: {why}");
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    })
}

// --- results ---------------------------------------------------------------

/// What a scenario measured: named figures for the table, and the details.
struct Report {
    label: String,
    figures: Vec<Figure>,
    details: Value,
    notes: Vec<String>,
    /// Set when the run itself must fail (a fixed-rate fan-out that lost
    /// something): the process exits non-zero after writing its results.
    failure: Option<String>,
}

struct Figure {
    name: &'static str,
    unit: &'static str,
    value: Value,
}

fn figure(name: &'static str, unit: &'static str, value: impl Into<Value>) -> Figure {
    Figure {
        name,
        unit,
        value: value.into(),
    }
}

impl Report {
    fn into_json(self, args: &Args) -> Value {
        json!({
            "target": args.target.name(),
            "scenario": args.scenario.name(),
            "label": args.label.clone().unwrap_or(self.label),
            "clients": args.clients,
            "rate": args.rate,
            "duration_s": args.duration,
            "sweep": args.sweep,
            "notes": self.notes,
            "failure": self.failure,
            "figures": self.figures.iter().map(|f| json!({
                "name": f.name, "unit": f.unit, "value": f.value,
            })).collect::<Vec<_>>(),
            "details": self.details,
        })
    }
}

/// One result file as text, for the terminal.
fn render_report(document: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "== {} / {}",
        document["target"].as_str().unwrap_or("?"),
        document["label"].as_str().unwrap_or("?")
    );
    for note in document["notes"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "   note: {}", note.as_str().unwrap_or(""));
    }
    for f in document["figures"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "   {:<28} {:>14} {}",
            f["name"].as_str().unwrap_or("?"),
            format_value(&f["value"]),
            f["unit"].as_str().unwrap_or("")
        );
    }
    if let Some(failure) = document["failure"].as_str() {
        let _ = writeln!(out, "   FAILED: {failure}");
    }
    out
}

// --- talking to a server ---------------------------------------------------

/// The server under load, and how this process reaches it.
struct Endpoint {
    addr: SocketAddr,
    /// Where sockets are opened, in turn: `addr` and the other servers.
    sockets_at: Vec<SocketAddr>,
    opened: std::sync::atomic::AtomicUsize,
    target: Target,
    http: reqwest::Client,
    sources: Sources,
    /// Zero of every stamp: messages carry nanoseconds since this instant.
    start: Instant,
}

/// A logged-in user: the name the server gave out, and the cookie to send.
#[derive(Clone)]
struct Session {
    username: String,
    cookie: String,
}

impl Endpoint {
    fn new(addr: SocketAddr, also: &[SocketAddr], target: Target) -> Result<Self> {
        let http = reqwest::Client::builder()
            // Loopback only, whatever proxy the environment names.
            .no_proxy()
            .timeout(CONNECT_TIMEOUT)
            .pool_max_idle_per_host(CONNECT_CONCURRENCY)
            .build()
            .context("could not build the HTTP client")?;
        Ok(Self {
            addr,
            sockets_at: std::iter::once(addr).chain(also.iter().copied()).collect(),
            opened: std::sync::atomic::AtomicUsize::new(0),
            target,
            http,
            sources: Sources::new(),
            start: Instant::now(),
        })
    }

    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// `POST /api/login`; the session cookie comes back in `Set-Cookie`.
    async fn login(&self, base: &str) -> Result<Session> {
        let response = self
            .http
            .post(format!("http://{}/api/login", self.addr))
            .json(&json!({ "username": base }))
            .send()
            .await
            .context("login request")?;
        let status = response.status();
        if !status.is_success() {
            bail!("login answered {status}");
        }
        let cookie = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(|value| value.split(';').next())
            .find(|pair| pair.starts_with("chat_session="))
            .map(str::to_string)
            .context("login set no chat_session cookie")?;
        let body: Value = response.json().await.context("login body")?;
        let username = body["username"]
            .as_str()
            .context("login body has no username")?
            .to_string();
        Ok(Session { username, cookie })
    }

    async fn logout(&self, session: &Session) -> Result<()> {
        let response = self
            .http
            .post(format!("http://{}/api/logout", self.addr))
            .header(reqwest::header::COOKIE, &session.cookie)
            .send()
            .await
            .context("logout request")?;
        if !response.status().is_success() {
            bail!("logout answered {}", response.status());
        }
        Ok(())
    }

    async fn online_users(&self, session: &Session) -> Result<BTreeSet<String>> {
        let body: Value = self
            .http
            .get(format!("http://{}/get_online_users/", self.addr))
            .header(reqwest::header::COOKIE, &session.cookie)
            .send()
            .await
            .context("online users request")?
            .error_for_status()?
            .json()
            .await
            .context("online users body")?;
        Ok(body["online_users"]
            .as_array()
            .context("no online_users in the answer")?
            .iter()
            .filter_map(|name| name.as_str().map(str::to_string))
            .collect())
    }

    /// Logs in `count` users named `{base}{i}` (product), or none (bare:
    /// every client goes without a session).
    async fn login_many(&self, base: &str, count: usize) -> Result<Vec<Option<Session>>> {
        if self.target == Target::Bare {
            return Ok(vec![None; count]);
        }
        stream::iter(0..count)
            .map(|i| async move {
                timeout(CONNECT_TIMEOUT, self.login(&format!("{base}{i}")))
                    .await
                    .context("login timed out")?
                    .map(Some)
            })
            .buffered(CONNECT_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    /// Opens `/ws/chat/` as a browser would (`Origin`, `Cookie`) and, for the
    /// product, waits for the `welcome` that starts every connection.
    async fn open(&self, session: Option<&Session>, config: WebSocketConfig) -> Result<Ws> {
        let turn = self
            .opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let addr = self.sockets_at[turn % self.sockets_at.len()];
        let attempt = async {
            let tcp = self.sources.connect(addr).await.context("TCP connect")?;
            // Frames are small and each matters on its own: no Nagle delay on
            // this side of the measurement.
            tcp.set_nodelay(true)?;
            let mut request = format!("ws://{addr}/ws/chat/").into_client_request()?;
            let headers = request.headers_mut();
            headers.insert(
                header::ORIGIN,
                HeaderValue::from_str(&format!("http://{addr}"))?,
            );
            if let Some(session) = session {
                headers.insert(header::COOKIE, HeaderValue::from_str(&session.cookie)?);
            }
            let (mut ws, _) = client_async_with_config(request, tcp, Some(config))
                .await
                .context("upgrade")?;
            if self.target == Target::Product {
                wait_for_welcome(&mut ws).await?;
            }
            anyhow::Ok(ws)
        };
        timeout(CONNECT_TIMEOUT, attempt)
            .await
            .context("connect timed out")?
    }
}

async fn wait_for_welcome(ws: &mut Ws) -> Result<()> {
    while let Some(frame) = ws.next().await {
        match frame? {
            Message::Text(text)
                if parse_frame(&text).is_some_and(|frame| frame.kind == "welcome") =>
            {
                return Ok(());
            }
            Message::Close(close) => bail!("closed before welcome: {close:?}"),
            _ => {}
        }
    }
    bail!("closed before welcome")
}

/// The server may not be listening yet when this starts: try for a while.
async fn wait_until_listening(addr: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match TcpStream::connect(addr).await {
            Ok(_) => return Ok(()),
            Err(error) if Instant::now() > deadline => {
                return Err(error).with_context(|| format!("nothing listens on {addr}"))
            }
            Err(_) => sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Source addresses for the sockets. One address has the kernel's ephemeral
/// ports (32768-60999 by default, about 28,000) to itself; when none is left
/// for 127.0.0.N the kernel refuses with EADDRINUSE or EADDRNOTAVAIL and the
/// next socket binds 127.0.0.N+1. Any 127/8 address reaches a listener on
/// 127.0.0.1 through the loopback interface.
struct Sources {
    octet: AtomicU8,
}

impl Sources {
    fn new() -> Self {
        Self {
            octet: AtomicU8::new(1),
        }
    }

    async fn connect(&self, to: SocketAddr) -> io::Result<TcpStream> {
        loop {
            let octet = self.octet.load(Relaxed);
            if octet == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::AddrNotAvailable,
                    "no source address left in 127.0.0.0/8",
                ));
            }
            let socket = TcpSocket::new_v4()?;
            // The first address is the kernel's own choice, without a bind:
            // `connect` picks a port that is free for this destination, while
            // `bind(port 0)` needs one free for every destination and gets
            // slow (and runs out sooner) with many thousands in use.
            let bound = match octet {
                1 => Ok(()),
                _ => socket.bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, octet), 0))),
            };
            let result = match bound {
                Ok(()) => socket.connect(to).await,
                Err(error) => Err(error),
            };
            match result {
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::AddrInUse | io::ErrorKind::AddrNotAvailable
                    ) =>
                {
                    // Another task may have moved on already; 255 wraps to 0: done.
                    let _ =
                        self.octet
                            .compare_exchange(octet, octet.wrapping_add(1), Relaxed, Relaxed);
                }
                other => return other,
            }
        }
    }
}

/// The fields of a server frame this tool reads; everything else (history,
/// names, times) is skipped without being built.
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    client_id: Option<Cow<'a, str>>,
}

fn parse_frame(text: &str) -> Option<Frame<'_>> {
    serde_json::from_str(text).ok()
}

/// `load <step> <due_ns> <sender>.<k>` → (step, due_ns).
fn parse_stamp(text: &str) -> Option<(u32, u64)> {
    let mut words = text.split(' ');
    if words.next()? != STAMP {
        return None;
    }
    Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
}

/// `<step>.<k>` → step.
fn parse_ack_step(client_id: &str) -> Option<u32> {
    client_id.split('.').next()?.parse().ok()
}

fn new_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).context("histogram bounds")
}

// --- fan-out ---------------------------------------------------------------

/// What the senders and receivers of a fan-out share. Counters are per step:
/// the coordinator resets them, then moves `step` on; frames stamped with
/// another step are not counted.
struct Fanout {
    endpoint: Arc<Endpoint>,
    clients: usize,
    step: AtomicU32,
    sent: AtomicU64,
    received: AtomicU64,
    acks: AtomicU64,
    refused: AtomicU64,
    senders_done: AtomicUsize,
    last_receive_ns: AtomicU64,
    disconnected: AtomicU64,
    first_disconnect: Mutex<Option<String>>,
    closing: AtomicBool,
    latency: Vec<Mutex<Histogram<u64>>>,
}

/// One step's schedule, handed to every sender.
#[derive(Clone, Copy)]
struct Plan {
    step: u32,
    rate: f64,
    total: u64,
    t0: Instant,
    give_up: Instant,
}

struct StepResult {
    rate: f64,
    planned: u64,
    sent: u64,
    expected: u64,
    received: u64,
    acks: u64,
    refused: u64,
    disconnects: u64,
    deliveries_per_s: f64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
    max_us: u64,
    failure: Option<String>,
}

impl StepResult {
    fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.received)
    }

    fn to_json(&self) -> Value {
        json!({
            "rate": self.rate, "planned": self.planned, "sent": self.sent,
            "expected_deliveries": self.expected, "received": self.received,
            "lost": self.lost(), "acks": self.acks, "refused": self.refused,
            "disconnects": self.disconnects, "deliveries_per_s": self.deliveries_per_s,
            "p50_ms": ms(self.p50_us), "p99_ms": ms(self.p99_us),
            "p999_ms": ms(self.p999_us), "max_ms": ms(self.max_us),
            "failure": self.failure,
        })
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

async fn fanout(endpoint: &Arc<Endpoint>, args: &Args) -> Result<Report> {
    let n = args.clients;
    eprintln!("fan-out: connecting {n} clients");
    let sessions = endpoint.login_many("fan", n).await?;
    let sockets: Vec<Ws> = stream::iter(sessions.iter())
        .map(|session| endpoint.open(session.as_ref(), WebSocketConfig::default()))
        .buffered(CONNECT_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()
        .context("a fan-out client could not connect")?;

    let state = Arc::new(Fanout {
        endpoint: endpoint.clone(),
        clients: n,
        step: AtomicU32::new(0),
        sent: AtomicU64::new(0),
        received: AtomicU64::new(0),
        acks: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        senders_done: AtomicUsize::new(0),
        last_receive_ns: AtomicU64::new(0),
        disconnected: AtomicU64::new(0),
        first_disconnect: Mutex::new(None),
        closing: AtomicBool::new(false),
        latency: (0..HIST_SHARDS)
            .map(|_| new_histogram().map(Mutex::new))
            .collect::<Result<_>>()?,
    });
    let mut plans = Vec::with_capacity(n);
    let mut tasks = Vec::with_capacity(2 * n);
    for (i, ws) in sockets.into_iter().enumerate() {
        let (sink, stream) = ws.split();
        let (plan_tx, plan_rx) = mpsc::channel(1);
        plans.push(plan_tx);
        tasks.push(tokio::spawn(send_loop(i, sink, plan_rx, state.clone())));
        tasks.push(tokio::spawn(receive_loop(i, stream, state.clone())));
    }
    let settled_in = settle(&state, &plans).await;
    eprintln!("fan-out: room settled in {:.1} s", settled_in.as_secs_f64());

    let mut steps = Vec::new();
    let step_count = if args.sweep { args.max_steps.max(1) } else { 1 };
    for step in 1..=step_count {
        let rate = args.rate * f64::powi(2.0, step as i32 - 1);
        let result = run_step(&state, &plans, step, rate, args).await?;
        eprintln!(
            "fan-out step {step}: {rate:.0} msg/s, {:.0} deliveries/s, p50 {:.2} ms, \
             p99 {:.2} ms, max {:.2} ms, lost {}{}",
            result.deliveries_per_s,
            ms(result.p50_us),
            ms(result.p99_us),
            ms(result.max_us),
            result.lost(),
            result
                .failure
                .as_deref()
                .map(|why| format!(" ({why})"))
                .unwrap_or_default()
        );
        let failed = result.failure.is_some();
        steps.push(result);
        if failed {
            break;
        }
    }

    // Dropping the plans tells each sender to close its socket.
    state.closing.store(true, Relaxed);
    drop(plans);
    for task in tasks {
        let abort = task.abort_handle();
        if timeout(Duration::from_secs(5), task).await.is_err() {
            abort.abort();
        }
    }

    let best = steps.iter().rev().find(|step| step.failure.is_none());
    let shown = best.or(steps.first()).context("no step ran")?;
    let mut figures = Vec::new();
    if args.sweep {
        figures.push(figure(
            "best sustained rate",
            "msg/s",
            best.map_or(0.0, |step| step.rate),
        ));
    } else {
        figures.push(figure("rate", "msg/s", shown.rate));
    }
    figures.extend([
        figure("deliveries", "/s", shown.deliveries_per_s.round()),
        figure("latency p50", "ms", ms(shown.p50_us)),
        figure("latency p99", "ms", ms(shown.p99_us)),
        figure("latency p99.9", "ms", ms(shown.p999_us)),
        figure("latency max", "ms", ms(shown.max_us)),
        figure("lost", "deliveries", shown.lost()),
    ]);
    if endpoint.target == Target::Product {
        figures.push(figure(
            "acks missing",
            "",
            shown.sent.saturating_sub(shown.acks),
        ));
    }
    if args.sweep {
        let stopped = steps
            .last()
            .and_then(|step| step.failure.as_ref().map(|why| (step.rate, why.clone())));
        figures.push(figure(
            "failed at",
            "msg/s",
            stopped
                .as_ref()
                .map_or(Value::Null, |(rate, _)| json!(rate)),
        ));
        figures.push(figure(
            "failed because",
            "",
            stopped.map_or(Value::Null, |(_, why)| json!(why)),
        ));
    }
    if let Some(pid) = args.server_pid {
        figures.push(figure(
            "server peak RSS",
            "MiB",
            mib(proc_status_kib(pid, "VmHWM")),
        ));
    }
    let mut notes = Vec::new();
    if best.is_none() && args.sweep {
        notes.push("no step passed: the figures are those of the first step".to_string());
    }
    let failure = (!args.sweep)
        .then(|| shown.failure.clone())
        .flatten()
        .map(|why| format!("fan-out at {:.0} msg/s failed: {why}", shown.rate));
    Ok(Report {
        label: format!("fan-out, {n} clients"),
        figures,
        details: json!({
            "settled_s": settled_in.as_secs_f64(),
            "steps": steps.iter().map(StepResult::to_json).collect::<Vec<_>>(),
        }),
        notes,
        failure,
    })
}

async fn run_step(
    state: &Arc<Fanout>,
    plans: &[mpsc::Sender<Plan>],
    step: u32,
    rate: f64,
    args: &Args,
) -> Result<StepResult> {
    let n = state.clients as u64;
    let product = state.endpoint.target == Target::Product;
    let planned = ((rate * args.duration).round() as u64).max(1);
    for counter in [&state.sent, &state.received, &state.acks, &state.refused] {
        counter.store(0, Relaxed);
    }
    state.senders_done.store(0, Relaxed);
    for shard in &state.latency {
        if let Ok(mut histogram) = shard.lock() {
            histogram.reset();
        }
    }
    let disconnected_before = state.disconnected.load(Relaxed);
    state.step.store(step, Relaxed);

    let duration = Duration::from_secs_f64(args.duration);
    let t0 = Instant::now() + Duration::from_millis(100);
    let plan = Plan {
        step,
        rate,
        total: planned,
        t0,
        give_up: t0 + duration + LATE_LIMIT,
    };
    for sender in plans {
        // A sender that is gone (its socket failed) shows up as unsent.
        let _ = sender.send(plan).await;
    }
    let senders = plans.len();
    wait_for(
        || state.senders_done.load(Relaxed) >= senders,
        plan.give_up + Duration::from_secs(1),
    )
    .await;
    let sent = state.sent.load(Relaxed);
    let expected = sent * n;
    wait_for(
        || {
            state.received.load(Relaxed) >= expected
                && (!product || state.acks.load(Relaxed) >= sent)
        },
        Instant::now() + DRAIN_TIMEOUT,
    )
    .await;

    let received = state.received.load(Relaxed);
    let acks = state.acks.load(Relaxed);
    let refused = state.refused.load(Relaxed);
    let disconnects = state.disconnected.load(Relaxed) - disconnected_before;
    let mut latency = new_histogram()?;
    for shard in &state.latency {
        if let Ok(histogram) = shard.lock() {
            latency.add(&*histogram).context("merging histograms")?;
        }
    }
    let t0_ns = t0.duration_since(state.endpoint.start).as_nanos() as u64;
    let span_s = state.last_receive_ns.load(Relaxed).saturating_sub(t0_ns) as f64 / 1e9;
    let mut result = StepResult {
        rate,
        planned,
        sent,
        expected,
        received,
        acks,
        refused,
        disconnects,
        deliveries_per_s: if span_s > 0.0 {
            received as f64 / span_s
        } else {
            0.0
        },
        p50_us: latency.value_at_quantile(0.5),
        p99_us: latency.value_at_quantile(0.99),
        p999_us: latency.value_at_quantile(0.999),
        max_us: latency.max(),
        failure: None,
    };
    let first_disconnect = state
        .first_disconnect
        .lock()
        .ok()
        .and_then(|reason| reason.clone());
    result.failure = if disconnects > 0 {
        Some(format!(
            "{disconnects} sockets dropped ({})",
            first_disconnect.unwrap_or_default()
        ))
    } else if sent < planned {
        Some(format!(
            "{} of {planned} messages not sent within {}s of their time",
            planned - sent,
            LATE_LIMIT.as_secs()
        ))
    } else if refused > 0 {
        Some(format!("{refused} messages refused by the server"))
    } else if result.lost() > 0 {
        Some(format!("{} deliveries lost", result.lost()))
    } else if product && acks < sent {
        Some(format!("{} acks missing", sent - acks))
    } else if args.sweep && result.p99_us > SWEEP_P99_LIMIT_US {
        Some("p99 above 1 s".to_string())
    } else {
        None
    };
    Ok(result)
}

/// Sends probes (one message from client 0) until they reach the
/// whole room fast, several in a row; returns how long that took.
async fn settle(state: &Fanout, plans: &[mpsc::Sender<Plan>]) -> Duration {
    let n = state.clients as u64;
    let product = state.endpoint.target == Target::Product;
    let Some(first) = plans.first() else {
        return Duration::ZERO;
    };
    let started = Instant::now();
    let mut fast = 0;
    let mut probe_step = PROBE_STEPS;
    while fast < PROBES_IN_A_ROW && started.elapsed() < SETTLE_LIMIT {
        probe_step += 1;
        state.step.store(probe_step, Relaxed);
        state.received.store(0, Relaxed);
        state.acks.store(0, Relaxed);
        let t0 = Instant::now();
        let probe = Plan {
            step: probe_step,
            rate: 1.0,
            total: 1,
            t0,
            give_up: t0 + PROBE_TIMEOUT,
        };
        if first.send(probe).await.is_err() {
            break;
        }
        wait_for(
            || state.received.load(Relaxed) >= n && (!product || state.acks.load(Relaxed) >= 1),
            t0 + PROBE_TIMEOUT,
        )
        .await;
        fast = if t0.elapsed() <= PROBE_FAST {
            fast + 1
        } else {
            0
        };
    }
    started.elapsed()
}

/// Polls `done` every 10 ms until it holds or `deadline` passes.
async fn wait_for(done: impl Fn() -> bool, deadline: Instant) {
    while !done() && Instant::now() < deadline {
        sleep(Duration::from_millis(10)).await;
    }
}

/// Client `i` sends messages i, i+N, i+2N... of each step, each at its due
/// time; one that is late goes at once, still stamped with when it was due.
async fn send_loop(
    i: usize,
    mut sink: SplitSink<Ws, Message>,
    mut plans: mpsc::Receiver<Plan>,
    state: Arc<Fanout>,
) {
    let n = state.clients as u64;
    let mut broken = false;
    while let Some(plan) = plans.recv().await {
        let mut k = i as u64;
        while k < plan.total && !broken {
            let due = plan.t0 + Duration::from_secs_f64(k as f64 / plan.rate);
            if Instant::now() > plan.give_up {
                break;
            }
            sleep_until(due).await;
            let due_ns = due.duration_since(state.endpoint.start).as_nanos() as u64;
            let frame = json!({
                "type": "message",
                "message": format!("{STAMP} {} {due_ns} {i}.{k}", plan.step),
                "client_id": format!("{}.{k}", plan.step),
            });
            if sink.send(Message::text(frame.to_string())).await.is_err() {
                broken = true;
                break;
            }
            state.sent.fetch_add(1, Relaxed);
            k += n;
        }
        state.senders_done.fetch_add(1, Relaxed);
    }
    let _ = timeout(Duration::from_secs(2), sink.close()).await;
}

async fn receive_loop(i: usize, mut stream: SplitStream<Ws>, state: Arc<Fanout>) {
    let shard = &state.latency[i % HIST_SHARDS];
    let reason = loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => {
                // Read the clock before parsing: the parse is this side's cost.
                let now_ns = state.endpoint.now_ns();
                let Some(frame) = parse_frame(&text) else {
                    continue;
                };
                let step = state.step.load(Relaxed);
                match &*frame.kind {
                    "message" => {
                        let Some((stamp_step, due_ns)) =
                            frame.message.as_deref().and_then(parse_stamp)
                        else {
                            continue;
                        };
                        if stamp_step != step {
                            continue;
                        }
                        state.received.fetch_add(1, Relaxed);
                        state.last_receive_ns.fetch_max(now_ns, Relaxed);
                        if let Ok(mut histogram) = shard.lock() {
                            histogram.saturating_record(now_ns.saturating_sub(due_ns) / 1000);
                        }
                    }
                    "ack" if frame.client_id.as_deref().and_then(parse_ack_step) == Some(step) => {
                        state.acks.fetch_add(1, Relaxed);
                    }
                    "error" => {
                        state.refused.fetch_add(1, Relaxed);
                    }
                    _ => {}
                }
            }
            Some(Ok(Message::Close(close))) => break format!("closed: {close:?}"),
            Some(Ok(_)) => {}
            Some(Err(error)) => break format!("error: {error}"),
            None => break "ended".to_string(),
        }
    };
    if !state.closing.load(Relaxed) {
        state.disconnected.fetch_add(1, Relaxed);
        if let Ok(mut first) = state.first_disconnect.lock() {
            first.get_or_insert(reason);
        }
    }
}

// --- idle ------------------------------------------------------------------

/// Idle sockets hold little: a small read buffer keeps this process's own
/// memory (19,000 sockets) far below the server's.
fn idle_socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Tally {
    fn fail(&self, counter: &AtomicU64, error: impl std::fmt::Display) {
        counter.fetch_add(1, Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert_with(|| format!("{error:#}"));
        }
    }

    fn first_error(&self) -> Value {
        self.first_error
            .lock()
            .ok()
            .and_then(|first| first.clone())
            .map_or(Value::Null, Value::from)
    }
}

async fn idle(endpoint: &Arc<Endpoint>, args: &Args) -> Result<Report> {
    let count = args.clients;
    let pid = args.server_pid;
    let rss_before = pid.and_then(|pid| proc_status_kib(pid, "VmRSS"));
    let logins = count.div_ceil(args.tabs_per_login);
    eprintln!("idle: {count} sockets");
    let started = Instant::now();
    // Each login happens just before its first socket, as in a browser: the
    // chat forgets a login that opens no socket for a minute, and a ramp of
    // thousands of sockets takes longer than that.
    let sessions: Vec<OnceCell<Option<Session>>> = (0..logins).map(|_| OnceCell::new()).collect();
    let tally = Arc::new(Tally::default());
    let (stop, stopped) = watch::channel(false);
    let mut holders: Vec<JoinHandle<()>> = Vec::with_capacity(count);
    let mut opening = stream::iter(0..count)
        .map(|i| {
            let group = i / args.tabs_per_login;
            let session = &sessions[group];
            async move {
                let session = session
                    .get_or_try_init(|| async {
                        match endpoint.target {
                            Target::Product => {
                                timeout(CONNECT_TIMEOUT, endpoint.login(&format!("idle{group}")))
                                    .await
                                    .context("login timed out")?
                                    .map(Some)
                            }
                            Target::Bare => Ok(None),
                        }
                    })
                    .await?;
                endpoint.open(session.as_ref(), idle_socket_config()).await
            }
        })
        .buffer_unordered(CONNECT_CONCURRENCY);
    while let Some(opened) = opening.next().await {
        match opened {
            Ok(ws) => {
                tally.ok.fetch_add(1, Relaxed);
                holders.push(tokio::spawn(hold(ws, stopped.clone(), tally.clone())));
            }
            Err(error) => tally.fail(&tally.failed, error),
        }
    }
    drop(opening);
    let connect_s = started.elapsed().as_secs_f64();
    let connected = tally.ok.load(Relaxed);
    eprintln!("idle: {connected} connected in {connect_s:.1} s; holding");
    sleep(SETTLE + Duration::from_secs_f64(args.duration)).await;
    let rss_after = pid.and_then(|pid| proc_status_kib(pid, "VmRSS"));
    let peak = pid.and_then(|pid| proc_status_kib(pid, "VmHWM"));
    let dropped = tally.dropped.load(Relaxed);

    let _ = stop.send(true);
    for holder in holders {
        let abort = holder.abort_handle();
        if timeout(Duration::from_secs(10), holder).await.is_err() {
            abort.abort();
        }
    }

    let per_connection_kib = match (rss_before, rss_after) {
        (Some(before), Some(after)) if connected > 0 => {
            json!(after.saturating_sub(before) as f64 / connected as f64)
        }
        _ => Value::Null,
    };
    let mut notes = Vec::new();
    if endpoint.target == Target::Product {
        notes.push(format!(
            "{} sockets per login ({logins} users)",
            args.tabs_per_login
        ));
    }
    Ok(Report {
        label: format!("idle, {count} sockets"),
        figures: vec![
            figure("connected", "sockets", connected),
            figure("failed to connect", "", tally.failed.load(Relaxed)),
            figure("dropped while idle", "", dropped),
            figure(
                "connect rate",
                "sockets/s",
                (connected as f64 / connect_s).round(),
            ),
            figure("server RSS before", "MiB", mib(rss_before)),
            figure("server RSS connected", "MiB", mib(rss_after)),
            figure("RSS per socket", "KiB", per_connection_kib),
            figure("server peak RSS", "MiB", mib(peak)),
        ],
        details: json!({
            "requested": count,
            "logins": if endpoint.target == Target::Product { logins } else { 0 },
            "connect_s": connect_s,
            "first_error": tally.first_error(),
        }),
        notes,
        failure: None,
    })
}

/// An idle client: reads (so pings are answered and presence frames do not
/// pile up in the server's queue) until told to close.
async fn hold(mut ws: Ws, mut stop: watch::Receiver<bool>, tally: Arc<Tally>) {
    loop {
        tokio::select! {
            _ = stop.changed() => {
                let _ = timeout(Duration::from_secs(5), ws.close(None)).await;
                return;
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Close(close))) => {
                    tally.fail(&tally.dropped, format!("closed by the server: {close:?}"));
                    return;
                }
                Some(Err(error)) => {
                    tally.fail(&tally.dropped, error);
                    return;
                }
                None => {
                    tally.fail(&tally.dropped, "connection ended");
                    return;
                }
                Some(Ok(_)) => {}
            }
        }
    }
}

// --- churn -----------------------------------------------------------------

#[derive(Default)]
struct Churn {
    logins: AtomicU64,
    connects: AtomicU64,
    disconnects: AtomicU64,
    login_errors: AtomicU64,
    connect_errors: AtomicU64,
    early_closes: AtomicU64,
    logout_errors: AtomicU64,
    tally: Tally,
}

async fn churn(endpoint: &Arc<Endpoint>, args: &Args) -> Result<Report> {
    let product = endpoint.target == Target::Product;
    let cycles = ((args.rate * args.duration).round() as u64).max(1);
    let stats = Arc::new(Churn::default());
    let latency = Arc::new(Mutex::new(new_histogram()?));

    // The clients that stay: afterwards, exactly they must be online.
    eprintln!("churn: {} staying clients", args.clients);
    let stayer_sessions = endpoint.login_many("stay", args.clients).await?;
    let (stop, stopped) = watch::channel(false);
    let mut stayers = Vec::with_capacity(args.clients);
    for session in &stayer_sessions {
        let ws = endpoint
            .open(session.as_ref(), idle_socket_config())
            .await
            .context("a staying client could not connect")?;
        stayers.push(tokio::spawn(hold(
            ws,
            stopped.clone(),
            Arc::new(Tally::default()),
        )));
    }

    eprintln!("churn: {cycles} cycles at {} per second", args.rate);
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(cycles as usize);
    for k in 0..cycles {
        sleep_until(t0 + Duration::from_secs_f64(k as f64 / args.rate)).await;
        tasks.push(tokio::spawn(cycle(
            endpoint.clone(),
            k,
            stats.clone(),
            latency.clone(),
        )));
    }
    for task in tasks {
        // Every step of a cycle has its own timeout; this bounds the rest.
        let abort = task.abort_handle();
        if timeout(Duration::from_secs(30), task).await.is_err() {
            abort.abort();
        }
    }
    let span_s = t0.elapsed().as_secs_f64();
    let ended = Instant::now();
    // Per second of the schedule: at a fixed offered rate, what was achieved
    // (the rate itself when nothing failed). The tail after the window (the
    // last holds and closes) is in `span_s`.
    let window_s = args.duration;

    let mut online = json!({ "checked": false });
    let mut online_exact = Value::Null;
    if let Some(Some(observer)) = stayer_sessions.first() {
        let expected: BTreeSet<String> = stayer_sessions
            .iter()
            .flatten()
            .map(|session| session.username.clone())
            .collect();
        let grace = Duration::from_millis(args.grace_ms);
        // Gone users are allowed to stay listed for the grace period; after
        // that (plus a moment for the timer to run) the list must be exact.
        sleep(grace + Duration::from_millis(250)).await;
        let deadline = ended + grace + Duration::from_secs(5);
        let (got, settled_ms) = loop {
            let got = endpoint.online_users(observer).await?;
            if got == expected || Instant::now() > deadline {
                break (got, ended.elapsed().as_millis() as u64);
            }
            sleep(Duration::from_millis(250)).await;
        };
        let exact = got == expected;
        online_exact = json!(if exact { "yes" } else { "no" });
        online = json!({
            "checked": true,
            "exact": exact,
            "after_last_disconnect_ms": settled_ms,
            "grace_ms": args.grace_ms,
            "missing": expected.difference(&got).collect::<Vec<_>>(),
            "extra": got.difference(&expected).collect::<Vec<_>>(),
        });
    }
    let _ = stop.send(true);
    for stayer in stayers {
        let abort = stayer.abort_handle();
        if timeout(Duration::from_secs(10), stayer).await.is_err() {
            abort.abort();
        }
    }

    let count = |counter: &AtomicU64| counter.load(Relaxed);
    let errors = count(&stats.login_errors)
        + count(&stats.connect_errors)
        + count(&stats.early_closes)
        + count(&stats.logout_errors);
    let per_s = |counter: &AtomicU64| (count(counter) as f64 / window_s * 10.0).round() / 10.0;
    let (p50, p99) = latency
        .lock()
        .map(|h| (ms(h.value_at_quantile(0.5)), ms(h.value_at_quantile(0.99))))
        .unwrap_or_default();
    let mut figures = vec![figure("cycles", "", cycles)];
    if product {
        figures.push(figure("logins", "/s", per_s(&stats.logins)));
    }
    figures.extend([
        figure("connects", "/s", per_s(&stats.connects)),
        figure("disconnects", "/s", per_s(&stats.disconnects)),
        figure("errors", "", errors),
        figure("connect p50", "ms", p50),
        figure("connect p99", "ms", p99),
        figure("online list exact", "", online_exact),
    ]);
    Ok(Report {
        label: format!("churn, {}/s for {}s", args.rate, args.duration),
        figures,
        details: json!({
            "span_s": span_s,
            "logins": count(&stats.logins),
            "connects": count(&stats.connects),
            "disconnects": count(&stats.disconnects),
            "login_errors": count(&stats.login_errors),
            "connect_errors": count(&stats.connect_errors),
            "closed_early": count(&stats.early_closes),
            "logout_errors": count(&stats.logout_errors),
            "first_error": stats.tally.first_error(),
            "online_users": online,
        }),
        notes: vec![if product {
            format!(
                "{} clients stay connected throughout; every fourth churning user logs out",
                args.clients
            )
        } else {
            format!("{} clients stay connected throughout", args.clients)
        }],
        failure: None,
    })
}

/// One churning user: log in, connect, read for 0.2 to 1 s, close; every
/// fourth one also logs out. Connect latency is login through `welcome`.
async fn cycle(
    endpoint: Arc<Endpoint>,
    k: u64,
    stats: Arc<Churn>,
    latency: Arc<Mutex<Histogram<u64>>>,
) {
    let started = Instant::now();
    let session = if endpoint.target == Target::Product {
        match timeout(CONNECT_TIMEOUT, endpoint.login(&format!("churn{k}"))).await {
            Ok(Ok(session)) => {
                stats.logins.fetch_add(1, Relaxed);
                Some(session)
            }
            Ok(Err(error)) => return stats.tally.fail(&stats.login_errors, error),
            Err(_) => return stats.tally.fail(&stats.login_errors, "login timed out"),
        }
    } else {
        None
    };
    let mut ws = match endpoint.open(session.as_ref(), idle_socket_config()).await {
        Ok(ws) => ws,
        Err(error) => return stats.tally.fail(&stats.connect_errors, error),
    };
    stats.connects.fetch_add(1, Relaxed);
    if let Ok(mut histogram) = latency.lock() {
        histogram.saturating_record(started.elapsed().as_micros() as u64);
    }
    // A spread of hold times (deterministic, so runs compare) keeps
    // connects and disconnects interleaved rather than in waves.
    let hold_for = Duration::from_millis(200 + (k * 7_919) % 800);
    let reading = async {
        while let Some(frame) = ws.next().await {
            if matches!(frame, Err(_) | Ok(Message::Close(_))) {
                break;
            }
        }
    };
    if timeout(hold_for, reading).await.is_ok() {
        return stats
            .tally
            .fail(&stats.early_closes, "closed by the server");
    }
    let closing = async {
        ws.close(None).await?;
        // Until the server's close frame: the close handshake is complete.
        while ws.next().await.is_some() {}
        anyhow::Ok(())
    };
    match timeout(Duration::from_secs(5), closing).await {
        Ok(Ok(())) => {
            stats.disconnects.fetch_add(1, Relaxed);
        }
        Ok(Err(error)) => return stats.tally.fail(&stats.early_closes, error),
        Err(_) => return stats.tally.fail(&stats.early_closes, "close timed out"),
    }
    if let Some(session) = session.filter(|_| k % 4 == 3) {
        if let Err(error) = endpoint.logout(&session).await {
            stats.tally.fail(&stats.logout_errors, error);
        }
    }
}

// --- memory ----------------------------------------------------------------

/// CPU time so far, in clock ticks: the whole machine's (`/proc/stat`),
/// the server's and this process's (`/proc/<pid>/stat`).
struct CpuSample {
    busy: u64,
    total: u64,
    server: u64,
    generator: u64,
    cpus: usize,
}

/// Average cores busy between two samples, by whom.
struct CoresUsed {
    server: f64,
    generator: f64,
    other: f64,
}

impl CpuSample {
    fn take(server_pid: Option<u32>) -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let mut lines = stat.lines();
        let ticks: Vec<u64> = lines
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|field| field.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal ...
        let busy = [0, 1, 2, 5, 6, 7]
            .iter()
            .filter_map(|&i| ticks.get(i))
            .sum();
        let idle: u64 = [3, 4].iter().filter_map(|&i| ticks.get(i)).sum();
        let cpus = lines.filter(|line| line.starts_with("cpu")).count().max(1);
        Some(Self {
            busy,
            total: busy + idle,
            server: server_pid.and_then(process_ticks).unwrap_or(0),
            generator: process_ticks(std::process::id()).unwrap_or(0),
            cpus,
        })
    }

    fn cores_used_until(&self, later: &Self) -> CoresUsed {
        let total = later.total.saturating_sub(self.total).max(1) as f64;
        let cores = |ticks: u64| (ticks as f64 / total * later.cpus as f64 * 100.0).round() / 100.0;
        let server = later.server.saturating_sub(self.server);
        let generator = later.generator.saturating_sub(self.generator);
        let busy = later.busy.saturating_sub(self.busy);
        CoresUsed {
            server: cores(server),
            generator: cores(generator),
            other: cores(busy.saturating_sub(server + generator)),
        }
    }
}

/// User plus system time of a process, in clock ticks.
fn process_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name in parentheses may hold spaces: count fields after it.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15; the state (field 3) is first here.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`: now, `VmHWM`: the peak).
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        line.strip_prefix(field)?
            .strip_prefix(':')?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

fn mib(kib: Option<u64>) -> Value {
    kib.map_or(Value::Null, |kib| {
        json!((kib as f64 / 1024.0 * 10.0).round() / 10.0)
    })
}

/// Refuses early, with the fix, when the sockets would not fit in this
/// process's open-file limit (each socket is one file).
fn check_open_files(clients: usize) -> Result<()> {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse::<usize>().ok());
    match soft {
        Some(soft) if clients + 64 > soft => bail!(
            "{clients} sockets do not fit in the open-file limit of {soft}: \
             raise it first (ulimit -n \"$(ulimit -Hn)\")"
        ),
        _ => Ok(()),
    }
}

// --- the comparison table --------------------------------------------------

fn print_table(dir: &Path) -> Result<()> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("could not read {}", dir.display()))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("product-") && name.ends_with(".json"))
        .collect();
    names.sort();
    let read = |name: &str| -> Result<Value> {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("could not read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
    };
    let mut out = String::new();
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let _ = writeln!(
        out,
        "| scenario | figure | product | control | product ÷ control |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|");
    for name in &names {
        let product = read(name)?;
        let bare = read(&name.replacen("product-", "bare-", 1)).unwrap_or(Value::Null);
        let label = product["label"].as_str().unwrap_or(name);
        for side in [&product, &bare] {
            let mut said: Vec<String> = side["notes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|note| note.as_str().map(str::to_string))
                .collect();
            if let Some(failure) = side["failure"].as_str() {
                said.push(format!("FAILED: {failure}"));
            }
            if !said.is_empty() {
                let side = match side["target"].as_str() {
                    Some("bare") => "control",
                    _ => "product",
                };
                notes.push(format!("{label}, {side}: {}", said.join("; ")));
            }
        }
        let figure_of = |document: &Value, name: &Value| {
            document["figures"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|g| &g["name"] == name)
                .map_or(Value::Null, |g| g["value"].clone())
        };
        let mut lines: Vec<(String, String, Value, Value)> = product["figures"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                (
                    f["name"].as_str().unwrap_or("?").to_string(),
                    f["unit"].as_str().unwrap_or("").to_string(),
                    f["value"].clone(),
                    figure_of(&bare, &f["name"]),
                )
            })
            .collect();
        lines.extend(latency_at_a_shared_rate(&product, &bare));
        for (figure_name, unit, mine, control) in lines {
            let ratio = match (mine.as_f64(), control.as_f64()) {
                (Some(p), Some(c)) if c != 0.0 => format!("{:.2}", p / c),
                _ => String::new(),
            };
            let with_unit = |value: &Value| match (value, unit.as_str()) {
                (Value::Null, _) => "n/a".to_string(),
                (_, "") => format_value(value),
                _ => format!("{} {unit}", format_value(value)),
            };
            let _ = writeln!(
                out,
                "| {label} | {figure_name} | {} | {} | {ratio} |",
                with_unit(&mine),
                with_unit(&control)
            );
            rows.push(json!({
                "scenario": label, "figure": figure_name, "unit": unit,
                "product": mine, "control": control,
            }));
        }
    }
    let _ = writeln!(out);
    for note in &notes {
        let _ = writeln!(out, "- {note}");
    }
    println!("{out}");
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&json!({ "rows": rows, "notes": notes }))?,
    )?;
    std::fs::write(dir.join("summary.md"), out)?;
    Ok(())
}

/// A sweep reports each side's latency at its own best rate, which need not
/// be the same rate. These rows put both at the highest rate both held.
fn latency_at_a_shared_rate(product: &Value, bare: &Value) -> Vec<(String, String, Value, Value)> {
    let held = |document: &Value| -> Vec<Value> {
        document["details"]["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|step| step["failure"].is_null())
            .cloned()
            .collect()
    };
    let (mine, theirs) = (held(product), held(bare));
    let shared = mine
        .iter()
        .filter_map(|step| {
            let rate = step["rate"].as_f64()?;
            let other = theirs.iter().find(|o| o["rate"].as_f64() == Some(rate))?;
            Some((rate, step, other))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let Some((rate, step, other)) = shared else {
        return Vec::new();
    };
    let best = |steps: &[Value]| {
        steps
            .iter()
            .filter_map(|step| step["rate"].as_f64())
            .fold(0.0, f64::max)
    };
    if best(&mine) == rate && best(&theirs) == rate {
        // Both did best at the same rate: the rows above already say it.
        return Vec::new();
    }
    ["p50", "p99", "p999"]
        .into_iter()
        .map(|quantile| {
            let key = format!("{quantile}_ms");
            let shown = if quantile == "p999" {
                "p99.9"
            } else {
                quantile
            };
            (
                format!(
                    "latency {shown} at {} msg/s (both held)",
                    group_thousands(rate as i64)
                ),
                "ms".to_string(),
                step[&key].clone(),
                other[&key].clone(),
            )
        })
        .collect()
}

/// Numbers as people read them: thousands grouped, at most two decimals.
fn format_value(value: &Value) -> String {
    match value {
        Value::Number(number) => match number.as_f64() {
            Some(x) if x.fract() == 0.0 || x.abs() >= 100.0 => group_thousands(x.round() as i64),
            Some(x) => format!("{x:.2}"),
            None => number.to_string(),
        },
        Value::String(text) => text.clone(),
        Value::Null => "n/a".to_string(),
        other => other.to_string(),
    }
}

fn group_thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}
