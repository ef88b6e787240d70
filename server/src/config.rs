//! Settings, from flags or the environment. Every limit the protocol names is
//! here, so tests can shorten the timers instead of waiting them out.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(name = "server", about = "The chat server: pages, API and WebSocket")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:3000")]
    pub bind: SocketAddr,

    /// Where messages and sessions live (`sqlite://path`).
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/chat.db")]
    pub database_url: String,

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

    /// The database URL with any password replaced, for logs.
    pub fn masked_database_url(&self) -> String {
        mask_password(&self.database_url)
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
