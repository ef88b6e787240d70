//! Settings, from flags or the environment. Every limit the protocol names is
//! here, so tests can shorten the timers instead of waiting them out.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    str::FromStr,
    time::Duration,
};

use clap::Parser;

/// The longest any timer may be set to: nothing here needs to wait more than
/// a year, and the bound keeps time arithmetic far from overflowing.
const MAX_DURATION_MS: u64 = 365 * 24 * 60 * 60 * 1000;
/// The longest grace period: someone whose last tab closed an hour ago is
/// not online any more, whatever the reason.
const MAX_GRACE_MS: u64 = 60 * 60 * 1000;
/// The deepest send queue: a million frames held for one slow client is
/// already gigabytes; the default is 1,024.
const MAX_QUEUE_DEPTH: usize = 1 << 20;

#[derive(Parser, Debug, Clone)]
#[command(name = "server", about = "The chat server: pages, API and WebSocket")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:3000")]
    pub bind: SocketAddr,

    /// Where messages and sessions live (`sqlite://path` or
    /// `postgres://user@host/database`).
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/chat.db")]
    pub database_url: String,

    /// Redis, shared by several servers of one chat (`redis://host:6379`):
    /// each stored message, logout and typing notice reaches the sockets of
    /// every server. Unset, this server is the whole chat.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// What this chat's Redis channel and keys start with: two chats may
    /// share one Redis under different prefixes.
    #[arg(long, env = "REDIS_PREFIX", default_value = "chat:")]
    pub redis_prefix: String,

    /// Origins allowed besides the server's own, comma-separated
    /// (`https://chat.example.com,http://localhost:3000`).
    #[arg(long, env = "ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// The built site (cargo-leptos writes it here): `/pkg`, `/vendor`, favicon.
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: String,

    /// Served over HTTPS (behind a proxy): cookies get `Secure`, origins `https://`.
    #[arg(long, env = "COOKIE_SECURE")]
    pub cookie_secure: bool,

    /// How long a user stays listed after their last socket closed, so a
    /// reload does not flap the sidebar.
    #[arg(long, env = "GRACE_MS", default_value_t = 5_000)]
    pub grace_ms: u64,

    /// How long a login holds its name if it never opens a socket.
    #[arg(long, env = "UNCLAIMED_NAME_MS", default_value_t = 60_000)]
    pub unclaimed_name_ms: u64,

    /// How often the server pings each socket.
    #[arg(long, env = "PING_INTERVAL_MS", default_value_t = 20_000)]
    pub ping_interval_ms: u64,

    /// A socket silent for this long is dropped (a vanished laptop).
    #[arg(long, env = "PEER_TIMEOUT_MS", default_value_t = 40_000)]
    pub peer_timeout_ms: u64,

    /// Sustained messages per second per user.
    #[arg(long, env = "RATE_PER_SEC", default_value_t = 5.0)]
    pub rate_per_sec: f64,

    /// Messages a user may send in a burst above the sustained rate.
    #[arg(long, env = "RATE_BURST", default_value_t = 10.0)]
    pub rate_burst: f64,

    /// Frames queued for one socket before it counts as too slow (closed with 1013).
    #[arg(long, env = "QUEUE_DEPTH", default_value_t = 1_024)]
    pub queue_depth: usize,

    /// Sockets one session may hold (tabs).
    #[arg(long, env = "MAX_TABS", default_value_t = 10)]
    pub max_tabs: usize,

    /// Sockets the whole server holds before refusing upgrades with 503.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Logins per second from one client address, with bursts of ten times
    /// that (429 beyond); 0 turns the limit off. Five a second with bursts of
    /// 50 lets a whole class behind one school's NAT log in at the bell.
    #[arg(long, env = "LOGIN_RATE", default_value_t = 5)]
    pub login_rate: u32,

    /// Socket upgrades per second per client address, with bursts of ten
    /// times that (429 beyond); 0 turns the limit off. Opening a socket costs
    /// session reads and a history copy: 20 a second with bursts of 200 lets
    /// a whole NAT reconnect at once after a restart, but no one address
    /// reconnect in a loop.
    #[arg(long, env = "SOCKET_RATE", default_value_t = 20)]
    pub socket_rate: u32,

    /// Sockets one client address may hold (429 beyond); 0 turns the limit
    /// off. 200 is a hundred people with two tabs each behind one NAT, and
    /// it takes fifty addresses to fill the 10,000 sockets of a server.
    #[arg(long, env = "MAX_SOCKETS_PER_ADDRESS", default_value_t = 200)]
    pub max_sockets_per_address: usize,

    /// Reverse proxies, comma-separated IP addresses: a request from one of
    /// them counts as coming from the last hop of its `X-Forwarded-For`.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpAddr>,

    /// A session unused for this long ends (30 days): no page, no API call,
    /// no new socket in that time.
    #[arg(long, env = "SESSION_IDLE_MS", default_value_t = 30 * 24 * 60 * 60 * 1000)]
    pub session_idle_ms: u64,

    /// Where `/metrics` is served: unset, beside the pages; `off`; or an
    /// address of its own such as `127.0.0.1:9100`, kept off the public port.
    #[arg(long, env = "METRICS_BIND")]
    pub metrics_bind: Option<MetricsBind>,
}

/// `METRICS_BIND`: no `/metrics` at all, or `/metrics` on its own address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsBind {
    Off,
    At(SocketAddr),
}

impl FromStr for MetricsBind {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        if value.eq_ignore_ascii_case("off") {
            return Ok(Self::Off);
        }
        value
            .parse()
            .map(Self::At)
            .map_err(|_| format!("expected `off` or an address like 127.0.0.1:9100, not {value:?}"))
    }
}

impl fmt::Display for MetricsBind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::At(addr) => addr.fmt(f),
        }
    }
}

impl Config {
    /// Defaults for everything, as if started with no flags or environment.
    pub fn defaults() -> Self {
        Self::parse_from(["server"])
    }

    pub fn grace(&self) -> Duration {
        Duration::from_millis(self.grace_ms)
    }

    pub fn unclaimed_name(&self) -> Duration {
        Duration::from_millis(self.unclaimed_name_ms)
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval_ms)
    }

    pub fn peer_timeout(&self) -> Duration {
        Duration::from_millis(self.peer_timeout_ms)
    }

    pub fn session_idle(&self) -> Duration {
        Duration::from_millis(self.session_idle_ms)
    }

    /// Checks what the types cannot: every setting in a range the server
    /// can run with. The error names each setting that is not, and why.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        let mut require = |ok: bool, problem: String| {
            if !ok {
                problems.push(problem);
            }
        };
        let timer = |ms: u64, min: u64| (min..=MAX_DURATION_MS).contains(&ms);
        require(
            (1..=MAX_QUEUE_DEPTH).contains(&self.queue_depth),
            format!(
                "QUEUE_DEPTH must be 1 to {MAX_QUEUE_DEPTH}, not {}",
                self.queue_depth
            ),
        );
        require(
            timer(self.ping_interval_ms, 1),
            format!(
                "PING_INTERVAL_MS must be 1 to {MAX_DURATION_MS}, not {}",
                self.ping_interval_ms
            ),
        );
        require(
            self.peer_timeout_ms > self.ping_interval_ms && timer(self.peer_timeout_ms, 1),
            format!(
                "PEER_TIMEOUT_MS must be above PING_INTERVAL_MS ({}) and at most {MAX_DURATION_MS}, \
                 not {}: a peer needs a ping to answer before it counts as gone",
                self.ping_interval_ms, self.peer_timeout_ms
            ),
        );
        require(
            self.rate_per_sec.is_finite() && self.rate_per_sec > 0.0,
            format!(
                "RATE_PER_SEC must be a number above 0, not {}",
                self.rate_per_sec
            ),
        );
        require(
            self.rate_burst.is_finite() && self.rate_burst >= 1.0,
            format!(
                "RATE_BURST must be a number of at least 1, not {}",
                self.rate_burst
            ),
        );
        require(
            self.max_tabs >= 1,
            "MAX_TABS must be at least 1, not 0".to_string(),
        );
        require(
            (1..=tokio::sync::Semaphore::MAX_PERMITS).contains(&self.max_connections),
            format!(
                "MAX_CONNECTIONS must be 1 to {}, not {}",
                tokio::sync::Semaphore::MAX_PERMITS,
                self.max_connections
            ),
        );
        require(
            self.grace_ms <= MAX_GRACE_MS,
            format!(
                "GRACE_MS must be at most {MAX_GRACE_MS} (an hour), not {}",
                self.grace_ms
            ),
        );
        require(
            timer(self.unclaimed_name_ms, 1),
            format!(
                "UNCLAIMED_NAME_MS must be 1 to {MAX_DURATION_MS}, not {}",
                self.unclaimed_name_ms
            ),
        );
        require(
            timer(self.session_idle_ms, 1),
            format!(
                "SESSION_IDLE_MS must be 1 to {MAX_DURATION_MS}, not {}",
                self.session_idle_ms
            ),
        );
        require(
            self.metrics_bind != Some(MetricsBind::At(self.bind)),
            format!("METRICS_BIND must differ from BIND ({})", self.bind),
        );
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// The database URL with any password replaced, for logs.
    pub fn masked_database_url(&self) -> String {
        mask_password(&self.database_url)
    }

    pub fn masked_redis_url(&self) -> String {
        self.redis_url
            .as_deref()
            .map_or_else(|| "none".to_string(), mask_password)
    }
}

fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The problem `validate` reports after `adjust`.
    fn problem(adjust: impl FnOnce(&mut Config)) -> String {
        let mut config = Config::defaults();
        adjust(&mut config);
        config.validate().expect_err("the setting is refused")
    }

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(Config::defaults().validate(), Ok(()));
    }

    #[test]
    fn settings_the_server_cannot_run_with_are_refused_by_name() {
        type Adjust = fn(&mut Config);
        let refused: [(&str, Adjust); 14] = [
            ("QUEUE_DEPTH", |c| c.queue_depth = 0),
            ("QUEUE_DEPTH", |c| c.queue_depth = usize::MAX),
            ("PING_INTERVAL_MS", |c| c.ping_interval_ms = 0),
            ("PEER_TIMEOUT_MS", |c| {
                c.peer_timeout_ms = c.ping_interval_ms
            }),
            ("PEER_TIMEOUT_MS", |c| c.peer_timeout_ms = u64::MAX),
            ("RATE_PER_SEC", |c| c.rate_per_sec = 0.0),
            ("RATE_PER_SEC", |c| c.rate_per_sec = f64::NAN),
            ("RATE_BURST", |c| c.rate_burst = 0.5),
            ("MAX_TABS", |c| c.max_tabs = 0),
            ("MAX_CONNECTIONS", |c| c.max_connections = 0),
            ("MAX_CONNECTIONS", |c| c.max_connections = usize::MAX),
            ("GRACE_MS", |c| c.grace_ms = u64::MAX),
            ("SESSION_IDLE_MS", |c| c.session_idle_ms = 0),
            ("METRICS_BIND", |c| {
                c.metrics_bind = Some(MetricsBind::At(c.bind))
            }),
        ];
        for (name, adjust) in refused {
            let problem = problem(adjust);
            assert!(problem.starts_with(name), "{name}: {problem}");
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let problem = problem(|c| {
            c.queue_depth = 0;
            c.max_tabs = 0;
        });
        assert!(problem.contains("QUEUE_DEPTH") && problem.contains("MAX_TABS"));
    }

    #[test]
    fn limits_and_addresses_parse_from_flags() {
        let config = Config::parse_from([
            "server",
            "--login-rate=0",
            "--trusted-proxies=10.0.0.1,::1",
            "--metrics-bind=127.0.0.1:9100",
        ]);
        assert_eq!(config.login_rate, 0);
        assert_eq!(config.trusted_proxies.len(), 2);
        assert_eq!(
            config.metrics_bind,
            Some(MetricsBind::At("127.0.0.1:9100".parse().unwrap()))
        );
        let off = Config::parse_from(["server", "--metrics-bind", "off"]);
        assert_eq!(off.metrics_bind, Some(MetricsBind::Off));
        assert!(Config::try_parse_from(["server", "--metrics-bind", "somewhere"]).is_err());
        assert_eq!(Config::defaults().metrics_bind, None);
    }

    #[test]
    fn passwords_never_reach_the_log() {
        assert_eq!(
            mask_password("postgres://chat:s3cret@db:5432/chat"),
            "postgres://chat:***@db:5432/chat"
        );
        assert_eq!(
            mask_password("sqlite://data/chat.db"),
            "sqlite://data/chat.db"
        );
    }
}
