//! Per-address limits: how fast one client address may log in, and how many
//! sockets it may hold. The address is the TCP peer's, or the last hop of
//! `X-Forwarded-For` when the peer is a trusted proxy. Each process counts
//! its own clients.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::extract::{ConnectInfo, FromRequestParts};
use http::{request::Parts, HeaderMap};

use crate::{config::Config, error::AppError, lock, state::AppState};

/// Logins (or socket upgrades) allowed in one burst, as a multiple of the
/// sustained rate.
const LOGIN_BURST_PER_RATE: f64 = 10.0;
/// What an address over its socket cap is told to wait: sockets close all
/// the time, and the client backs off by itself after that.
const SOCKET_RETRY_AFTER_SECS: u64 = 5;
/// How often buckets that have filled up again are dropped: a full bucket
/// says nothing that an absent one does not.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Buckets kept before a sweep comes early: a flood from many addresses is
/// swept as it grows, not only once a minute.
const SWEEP_AT_LEAST: usize = 4_096;

/// The address of the client a request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let ConnectInfo(peer) = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .copied()
            .ok_or(AppError::Internal("served without the peers' addresses"))?;
        Ok(Self(client_address(
            peer.ip(),
            &parts.headers,
            &state.config.trusted_proxies,
        )))
    }
}

/// The peer, or the last hop of `X-Forwarded-For` when the peer is a
/// trusted proxy: the hop the proxy itself added, so a client cannot pick
/// its own address by sending the header.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.iter().any(|proxy| proxy.to_canonical() == peer) {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .and_then(|hop| {
            let hop = hop.trim();
            // Some proxies append the client's port as well.
            hop.parse::<IpAddr>()
                .or_else(|_| hop.parse::<SocketAddr>().map(|addr| addr.ip()))
                .ok()
        })
        .map_or(peer, |hop| hop.to_canonical())
}

/// What the limits count by: an IPv4 address, or an IPv6 address's /64,
/// since one host or household gets a whole /64 and could otherwise take a
/// fresh address for every request.
fn key(addr: IpAddr) -> IpAddr {
    match addr.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & (u128::MAX << 64))),
        v4 => v4,
    }
}

/// The limits; each is off when its setting is 0.
pub struct Limits {
    logins: Option<Logins>,
    upgrades: Option<Logins>,
    sockets: Option<Arc<Sockets>>,
}

impl Limits {
    pub fn new(config: &Config) -> Self {
        let bucket = |per_sec: u32| {
            let rate = f64::from(per_sec);
            (per_sec > 0).then(|| Logins::new(rate, rate * LOGIN_BURST_PER_RATE))
        };
        Self {
            logins: bucket(config.login_rate),
            upgrades: bucket(config.socket_rate),
            sockets: (config.max_sockets_per_address > 0).then(|| {
                Arc::new(Sockets {
                    max: config.max_sockets_per_address,
                    held: Mutex::new(HashMap::new()),
                })
            }),
        }
    }

    /// Counts a login from `addr`, or refuses it with the wait.
    pub fn login(&self, addr: IpAddr) -> Result<(), AppError> {
        let Some(logins) = &self.logins else {
            return Ok(());
        };
        logins
            .take(addr, Instant::now())
            .map_err(|wait| AppError::TooMany {
                what: "logins",
                retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
            })
    }

    /// A socket slot for `addr`, held until the socket is gone (`None` when
    /// the limit is off), or a refusal: too many sockets open, or opened
    /// too fast.
    pub fn socket(&self, addr: IpAddr) -> Result<Option<SocketSlot>, AppError> {
        if let Some(upgrades) = &self.upgrades {
            upgrades
                .take(addr, Instant::now())
                .map_err(|wait| AppError::TooMany {
                    what: "new sockets",
                    retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
                })?;
        }
        let Some(sockets) = &self.sockets else {
            return Ok(None);
        };
        Sockets::take(sockets, addr)
            .map(Some)
            .ok_or(AppError::TooMany {
                what: "open sockets",
                retry_after: SOCKET_RETRY_AFTER_SECS,
            })
    }
}

/// A token bucket per address.
struct Logins {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<Buckets>,
}

struct Buckets {
    by_key: HashMap<IpAddr, Bucket>,
    next_sweep: Instant,
    sweep_at: usize,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Logins {
    fn new(per_sec: f64, burst: f64) -> Self {
        Self {
            per_sec,
            burst,
            buckets: Mutex::new(Buckets {
                by_key: HashMap::new(),
                next_sweep: Instant::now() + SWEEP_EVERY,
                sweep_at: SWEEP_AT_LEAST,
            }),
        }
    }

    /// The bucket's tokens at `now`, refilled since it was last used.
    fn tokens(&self, bucket: Bucket, now: Instant) -> f64 {
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * self.per_sec;
        (bucket.tokens + refill).min(self.burst)
    }

    /// Takes a token for `addr`, or says how long until one is there.
    fn take(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut buckets = lock(&self.buckets);
        if now >= buckets.next_sweep || buckets.by_key.len() >= buckets.sweep_at {
            buckets
                .by_key
                .retain(|_, bucket| self.tokens(*bucket, now) < self.burst);
            buckets.next_sweep = now + SWEEP_EVERY;
            buckets.sweep_at = (buckets.by_key.len() * 2).max(SWEEP_AT_LEAST);
        }
        let bucket = buckets.by_key.entry(key(addr)).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let tokens = self.tokens(*bucket, now);
        *bucket = Bucket { tokens, at: now };
        if tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - tokens) / self.per_sec))
        }
    }
}

/// Open sockets per address. An address has an entry only while it holds
/// a socket, so the map never outgrows the connection cap.
struct Sockets {
    max: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

impl Sockets {
    fn take(sockets: &Arc<Self>, addr: IpAddr) -> Option<SocketSlot> {
        let key = key(addr);
        let mut held = lock(&sockets.held);
        let count = held.entry(key).or_insert(0);
        if *count >= sockets.max {
            return None;
        }
        *count += 1;
        Some(SocketSlot {
            sockets: sockets.clone(),
            key,
        })
    }
}

/// One socket's place in its address's count, given back on drop.
pub struct SocketSlot {
    sockets: Arc<Sockets>,
    key: IpAddr,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut held = lock(&self.sockets.held);
        if let Some(count) = held.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy_and_only_its_last_hop() {
        let proxy = ip("10.0.0.1");
        let headers = forwarded("6.6.6.6, 203.0.113.7");
        assert_eq!(client_address(proxy, &headers, &[proxy]), ip("203.0.113.7"));
        assert_eq!(client_address(proxy, &headers, &[]), proxy);
        assert_eq!(
            client_address(proxy, &forwarded("203.0.113.7:4711"), &[proxy]),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_address(proxy, &forwarded("garbage"), &[proxy]),
            proxy
        );
        assert_eq!(client_address(proxy, &HeaderMap::new(), &[proxy]), proxy);
        let mapped = ip("::ffff:10.0.0.1");
        assert_eq!(
            client_address(mapped, &headers, &[proxy]),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn an_ipv6_host_counts_as_its_slash_64() {
        assert_eq!(key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(key(ip("2001:db8:1:2:bbbb::9")), ip("2001:db8:1:2::"));
        assert_eq!(key(ip("192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn logins_come_in_a_burst_then_at_the_rate() {
        let logins = Logins::new(5.0, 50.0);
        let start = Instant::now();
        let addr = ip("192.0.2.1");
        for _ in 0..50 {
            assert_eq!(logins.take(addr, start), Ok(()));
        }
        let wait = logins.take(addr, start).expect_err("the burst is spent");
        assert_eq!(wait, Duration::from_millis(200));
        assert_eq!(logins.take(ip("192.0.2.2"), start), Ok(()));
        assert_eq!(logins.take(addr, start + wait), Ok(()));
    }

    #[test]
    fn buckets_that_filled_up_again_are_swept() {
        let logins = Logins::new(5.0, 50.0);
        let start = Instant::now();
        for n in 0..=255u8 {
            assert_eq!(logins.take(IpAddr::from([192, 0, 2, n]), start), Ok(()));
        }
        assert_eq!(lock(&logins.buckets).by_key.len(), 256);
        let later = start + SWEEP_EVERY;
        assert_eq!(logins.take(ip("198.51.100.1"), later), Ok(()));
        assert_eq!(lock(&logins.buckets).by_key.len(), 1);
    }

    #[test]
    fn zero_turns_either_limit_off() {
        let mut config = Config::defaults();
        config.login_rate = 0;
        config.socket_rate = 0;
        config.max_sockets_per_address = 0;
        let limits = Limits::new(&config);
        let addr = ip("192.0.2.1");
        for _ in 0..1_000 {
            assert!(limits.login(addr).is_ok());
            assert!(matches!(limits.socket(addr), Ok(None)));
        }
    }

    #[test]
    fn a_socket_slot_is_given_back_on_drop() {
        let sockets = Arc::new(Sockets {
            max: 2,
            held: Mutex::new(HashMap::new()),
        });
        let addr = ip("192.0.2.1");
        let first = Sockets::take(&sockets, addr).expect("a slot");
        let _second = Sockets::take(&sockets, addr).expect("a slot");
        assert!(Sockets::take(&sockets, addr).is_none());
        assert!(Sockets::take(&sockets, ip("192.0.2.2")).is_some());
        drop(first);
        assert!(Sockets::take(&sockets, addr).is_some());
        assert!(lock(&sockets.held).get(&ip("192.0.2.2")).is_none());
    }
}
