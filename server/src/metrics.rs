//! Counters for `/metrics`, in Prometheus' text format. Atomics only: the hot
//! path never takes a lock to count.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Metrics {
    pub connections: AtomicI64,
    pub users_online: AtomicI64,
    pub messages_total: AtomicU64,
    pub deliveries_total: AtomicU64,
    pub dropped_clients_total: AtomicU64,
    pub unstored_messages_total: AtomicU64,
    pub rate_limited_total: AtomicU64,
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let gauges = [
            (
                "chat_connections",
                "Open WebSocket connections.",
                self.connections.load(Relaxed),
            ),
            (
                "chat_users_online",
                "Users listed as online.",
                self.users_online.load(Relaxed),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        let counters = [
            (
                "chat_messages_total",
                "Messages stored.",
                &self.messages_total,
            ),
            (
                "chat_deliveries_total",
                "Frames queued to sockets by broadcasts.",
                &self.deliveries_total,
            ),
            (
                "chat_dropped_clients_total",
                "Sockets closed for falling behind (1013) or going silent.",
                &self.dropped_clients_total,
            ),
            (
                "chat_unstored_messages_total",
                "Accepted messages the database refused; their senders were closed with 1011 to resend.",
                &self.unstored_messages_total,
            ),
            (
                "chat_rate_limited_total",
                "Frames refused for the per-user rate.",
                &self.rate_limited_total,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Relaxed)
            );
        }
        out
    }
}
