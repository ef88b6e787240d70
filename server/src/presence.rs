//! Who holds which name, who is online, and how fast each user may send.
//!
//! Plain data, no I/O and no clocks of its own: the hub keeps it behind a
//! mutex, never across an `.await`, and runs the timers that call
//! [`Presence::expire`].
//!
//! A login holds its name at once. A user is in a room (listed there,
//! announced there with `user_joined`) from their first socket in it until
//! their last one in it has been closed for the grace period, and online
//! while in any room; the name is freed when they are in none. A session
//! whose name was freed gets it back on its next socket if it is still free,
//! else the next free suffix of what it typed.

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    time::{Duration, Instant},
};

use app::protocol::TYPING_EVERY_MS;

use crate::{
    names::fold,
    peers::{self, Peers},
    session::SessionId,
    store::Hold,
};

#[derive(Debug)]
struct Holder {
    name: String,
    /// Open sockets, in every room.
    sockets: usize,
    /// The rooms the user is listed in. Empty: not online.
    seats: HashMap<String, Seat>,
    /// Changes whenever the holder gains a socket; a "never connected"
    /// timer armed at an older epoch is stale.
    epoch: u64,
    bucket: TokenBucket,
    /// Names this hold in the shared database: letting go of the name
    /// there takes this, so a later claim by the same session stays.
    token: i64,
    /// The user's newest stored `client_id`s: a resend of one of these (a
    /// lost ack) is answered from the store and costs no rate budget.
    stored: VecDeque<String>,
}

/// A user's place in one room.
#[derive(Debug)]
struct Seat {
    sockets: usize,
    /// When a `typing` of theirs in the room was last passed on.
    typed_at: Option<Instant>,
    /// Changes whenever a socket joins or the last one leaves; a grace timer
    /// armed at an older epoch is stale.
    epoch: u64,
}

/// The least time between two `typing` frames passed on for one user:
/// below the client's own pace, so an honest client is never thinned out.
const TYPING_GAP: Duration = Duration::from_millis(TYPING_EVERY_MS as u64 / 2);

/// How many of a user's newest `client_id`s are remembered: more than a
/// browser keeps unacknowledged across a reconnect.
const STORED_IDS: usize = 64;

/// A rate for a [`TokenBucket`]: the message limit per user, for one.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub per_sec: f64,
    pub burst: f64,
}

#[derive(Debug)]
pub struct TokenBucket {
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    pub fn full(rate: Rate) -> Self {
        Self {
            tokens: rate.burst,
            at: Instant::now(),
        }
    }

    /// Takes a token if there is one.
    pub fn take(&mut self, rate: Rate, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * rate.per_sec;
        self.tokens = (self.tokens + refill).min(rate.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A socket was refused: the session already has as many as it may.
#[derive(Debug, PartialEq, Eq)]
pub struct TooManyTabs;

/// A socket joined its session.
#[derive(Debug, PartialEq, Eq)]
pub struct Attached {
    pub name: String,
    /// The user just came into the room: announce `user_joined` there.
    pub joined: bool,
    /// The name differs from the one the session had stored.
    pub renamed: bool,
}

/// A user left rooms, and maybe let go of the name.
#[derive(Debug, PartialEq, Eq)]
pub struct Left {
    pub name: String,
    /// The name was let go: the token of its hold in the shared database.
    pub freed: Option<i64>,
    /// The rooms they were listed in: announce `user_left` in each.
    pub rooms: Vec<String>,
}

#[derive(Debug)]
pub struct Presence {
    /// By folded name.
    holders: HashMap<String, Holder>,
    /// Session to folded name.
    by_session: HashMap<SessionId, String>,
    /// The names online in any room, kept sorted as they come and go.
    online: BTreeSet<String>,
    /// Per room, the names listed there, kept sorted: a `welcome` copies
    /// its room's instead of sorting under the lock.
    rooms: HashMap<String, BTreeSet<String>>,
    /// Per folded base name, a suffix below which every `baseN` is held: the
    /// search for a free name starts there, so a thousand logins as "a" do
    /// not each walk past a thousand held names.
    suffix_from: HashMap<String, u64>,
    epoch: u64,
    rate: Rate,
    /// Who the other servers list.
    peers: Peers,
    /// Logins whose session is not stored yet: their holds are not renewed
    /// (a renewal keeps only holds of stored sessions) until it is.
    unstored: std::collections::HashSet<SessionId>,
    /// Counts this server's seats taken and given up: orders its notices
    /// and snapshots for the others.
    seq: u64,
}

impl Presence {
    pub fn new(rate: Rate) -> Self {
        Self {
            holders: HashMap::new(),
            by_session: HashMap::new(),
            online: BTreeSet::new(),
            rooms: HashMap::new(),
            suffix_from: HashMap::new(),
            epoch: 0,
            rate,
            peers: Peers::default(),
            unstored: Default::default(),
            seq: 0,
        }
    }

    fn next_epoch(&mut self) -> u64 {
        self.epoch += 1;
        self.epoch
    }

    /// The first free name of `base`, `base1`, `base2`, ... (case-insensitive).
    fn free_name(&mut self, base: &str) -> String {
        let key = fold(base);
        if !self.holders.contains_key(&key) {
            return base.to_string();
        }
        let from = self.suffix_from.get(&key).copied().unwrap_or(1);
        let (n, name) = (from..)
            .map(|n| (n, format!("{base}{n}")))
            .find(|(_, candidate)| !self.holders.contains_key(&fold(candidate)))
            .unwrap_or((from, base.to_string()));
        self.suffix_from.insert(key, n + 1);
        name
    }

    /// A held name was let go: any base it is a suffix of may now start lower.
    fn freed(&mut self, key: &str) {
        let digits = key.len() - key.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        for split in key.len() - digits..key.len() {
            let (base, suffix) = key.split_at(split);
            if suffix.starts_with('0') {
                continue;
            }
            if let (Some(from), Ok(n)) = (self.suffix_from.get_mut(base), suffix.parse::<u64>()) {
                *from = (*from).min(n);
            }
        }
        // The base itself is free again: nothing to skip.
        self.suffix_from.remove(key);
    }

    fn hold(&mut self, session: SessionId, name: String, token: i64) -> u64 {
        let epoch = self.next_epoch();
        let key = fold(&name);
        self.by_session.insert(session, key.clone());
        self.holders.insert(
            key,
            Holder {
                name,
                sockets: 0,
                seats: HashMap::new(),
                epoch,
                bucket: TokenBucket::full(self.rate),
                token,
                stored: VecDeque::new(),
            },
        );
        epoch
    }

    /// A new login holds `wanted` (the name the shared database gave it
    /// under `token`), or, should this server hold it already, the first
    /// free name after it. Returns the name and the epoch for the "never
    /// connected" timer.
    pub fn claim(&mut self, session: SessionId, wanted: &str, token: i64) -> (String, u64) {
        let name = self.free_name(wanted);
        self.unstored.insert(session.clone());
        let epoch = self.hold(session, name.clone(), token);
        (name, epoch)
    }

    /// Whether this server holds a name for the session.
    pub fn holds(&self, session: &SessionId) -> bool {
        self.by_session.contains_key(session)
    }

    /// The holds of this server's names, with the names; not those of
    /// logins whose session is not stored yet.
    pub fn held(&self) -> Vec<(Hold, String)> {
        self.by_session
            .iter()
            .filter(|(id, _)| !self.unstored.contains(*id))
            .filter_map(|(id, key)| {
                let holder = self.holders.get(key)?;
                let hold = Hold {
                    session: id.as_str().to_string(),
                    key: key.clone(),
                    token: holder.token,
                };
                Some((hold, holder.name.clone()))
            })
            .collect()
    }

    /// A login's session is stored (see [`Presence::held`]).
    pub fn stored(&mut self, session: &SessionId) {
        self.unstored.remove(session);
    }

    /// The folded names held here by sessions other than `session` that a
    /// claim of `preferred` or `base` (or a suffix of it) might want.
    pub fn taken_like(
        &self,
        session: &SessionId,
        preferred: Option<&str>,
        base: &str,
    ) -> std::collections::HashSet<String> {
        let base = fold(base);
        let preferred = preferred.map(fold);
        self.holders
            .keys()
            .filter(|key| key.starts_with(&base) || preferred.as_ref() == Some(*key))
            .filter(|key| self.by_session.get(session) != Some(*key))
            .cloned()
            .collect()
    }

    /// Whether `name` is held here by a session other than `session`.
    pub fn held_by_other(&self, session: &SessionId, name: &str) -> bool {
        let key = fold(name);
        self.holders.contains_key(&key) && self.by_session.get(session) != Some(&key)
    }

    /// The session's hold in the shared database is now under `token`.
    pub fn adopt(&mut self, session: &SessionId, token: i64) {
        if let Some(holder) = self
            .by_session
            .get(session)
            .and_then(|key| self.holders.get_mut(key))
        {
            holder.token = token;
        }
    }

    /// A socket of `session` opened in `room`. A session not held here
    /// holds `wanted` (claimed under `token`), or, should this server hold
    /// it for another session, the next free suffix of `base`, what the
    /// user typed at login.
    pub fn attach(
        &mut self,
        session: &SessionId,
        room: &str,
        wanted: &str,
        base: &str,
        token: i64,
        max_tabs: usize,
    ) -> Result<Attached, TooManyTabs> {
        let mut renamed = false;
        if !self.by_session.contains_key(session) {
            let name = if self.holders.contains_key(&fold(wanted)) {
                self.free_name(base)
            } else {
                wanted.to_string()
            };
            renamed = name != wanted;
            self.hold(session.clone(), name, token);
        }
        let epoch = self.next_epoch();
        let holder = self
            .by_session
            .get(session)
            .and_then(|key| self.holders.get_mut(key))
            .ok_or(TooManyTabs)?;
        if holder.sockets >= max_tabs {
            return Err(TooManyTabs);
        }
        holder.sockets += 1;
        holder.epoch = epoch;
        if holder.seats.is_empty() {
            self.online.insert(holder.name.clone());
        }
        let seat = holder.seats.entry(room.to_string()).or_insert(Seat {
            sockets: 0,
            typed_at: None,
            epoch,
        });
        let joined = seat.sockets == 0 && seat.epoch == epoch;
        seat.sockets += 1;
        seat.epoch = epoch;
        if joined {
            self.rooms
                .entry(room.to_string())
                .or_default()
                .insert(holder.name.clone());
        }
        Ok(Attached {
            name: holder.name.clone(),
            joined,
            renamed,
        })
    }

    /// A socket of `session` in `room` closed. Returns the epoch to arm the
    /// grace timer with when it was the session's last socket in the room.
    pub fn detach(&mut self, session: &SessionId, room: &str) -> Option<u64> {
        let epoch = self.next_epoch();
        let holder = self
            .by_session
            .get(session)
            .and_then(|key| self.holders.get_mut(key))?;
        holder.sockets = holder.sockets.saturating_sub(1);
        let seat = holder.seats.get_mut(room)?;
        seat.sockets = seat.sockets.saturating_sub(1);
        if seat.sockets > 0 {
            return None;
        }
        seat.epoch = epoch;
        Some(epoch)
    }

    /// A grace timer armed at `epoch` for `room` fired: the user leaves the
    /// room if nothing happened there since, and lets go of the name if that
    /// was their last room and no socket is open.
    pub fn expire_seat(&mut self, session: &SessionId, room: &str, epoch: u64) -> Option<Left> {
        let key = self.by_session.get(session)?;
        let holder = self.holders.get_mut(key)?;
        let seat = holder.seats.get(room)?;
        if seat.epoch != epoch || seat.sockets > 0 {
            return None;
        }
        holder.seats.remove(room);
        let name = holder.name.clone();
        let last = holder.seats.is_empty();
        let free = last && holder.sockets == 0;
        self.unlist(&name, room);
        if last {
            self.online.remove(&name);
        }
        if free {
            let mut left = self.release(session)?;
            left.rooms.push(room.to_string());
            return Some(left);
        }
        Some(Left {
            name,
            freed: None,
            rooms: vec![room.to_string()],
        })
    }

    /// A "never connected" timer armed at `epoch` fired: frees the name if
    /// no socket has opened since.
    pub fn expire(&mut self, session: &SessionId, epoch: u64) -> Option<Left> {
        let key = self.by_session.get(session)?;
        let holder = self.holders.get(key)?;
        if holder.epoch != epoch || holder.sockets > 0 || !holder.seats.is_empty() {
            return None;
        }
        self.release(session)
    }

    fn unlist(&mut self, name: &str, room: &str) {
        if let Some(names) = self.rooms.get_mut(room) {
            names.remove(name);
            if names.is_empty() {
                self.rooms.remove(room);
            }
        }
    }

    /// Lets go of the session's name now (logout), leaving every room.
    pub fn release(&mut self, session: &SessionId) -> Option<Left> {
        self.unstored.remove(session);
        let key = self.by_session.remove(session)?;
        let holder = self.holders.remove(&key)?;
        self.freed(&key);
        self.online.remove(&holder.name);
        let rooms: Vec<String> = holder.seats.into_keys().collect();
        for room in &rooms {
            self.unlist(&holder.name, room);
        }
        Some(Left {
            name: holder.name,
            freed: Some(holder.token),
            rooms,
        })
    }

    /// Who is online in any room, here or on another server: sorted, one
    /// entry per user.
    pub fn online(&self) -> Vec<String> {
        let mut names: BTreeSet<&str> = self.online.iter().map(String::as_str).collect();
        names.extend(self.peers.names());
        names.into_iter().map(str::to_string).collect()
    }

    /// Who is in `room`, here or on another server: sorted, one entry per
    /// user.
    pub fn online_in(&self, room: &str) -> Vec<String> {
        let mut names: BTreeSet<&str> = self
            .rooms
            .get(room)
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        names.extend(self.peers.in_room(room));
        names.into_iter().map(str::to_string).collect()
    }

    /// Whether this server lists the seat.
    fn listed_here(&self, (room, name): &peers::Seat) -> bool {
        self.rooms
            .get(room)
            .is_some_and(|names| names.contains(name))
    }

    /// Whether another server lists the seat: a user who comes or goes here
    /// is announced only when no other server lists them.
    pub fn listed_elsewhere(&self, seat: &peers::Seat) -> bool {
        self.peers.lists(seat)
    }

    /// Counts a seat taken or given up here; the number for its notice.
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// This server's seats, for its snapshot, and the change they are at.
    pub fn snapshot(&self) -> (u64, Vec<peers::Seat>) {
        let seats = self
            .rooms
            .iter()
            .flat_map(|(room, names)| names.iter().map(|name| (room.clone(), name.clone())))
            .collect();
        (self.seq, seats)
    }

    /// Another server listed a user: whether this server's sockets in the
    /// room should hear of it.
    pub fn peer_joined(&mut self, node: &str, seq: u64, seat: peers::Seat) -> bool {
        let here = self.listed_here(&seat);
        self.peers.joined(node, seq, seat) && !here
    }

    /// Another server no longer lists a user: whether this server's
    /// sockets in the room should hear of it.
    pub fn peer_left(&mut self, node: &str, seq: u64, seat: &peers::Seat) -> bool {
        self.peers.left(node, seq, seat) && !self.listed_here(seat)
    }

    /// Another server's snapshot: the seats to announce as joined and as
    /// left here.
    pub fn peer_snapshot(
        &mut self,
        node: &str,
        seq: u64,
        seats: BTreeSet<peers::Seat>,
    ) -> (Vec<peers::Seat>, Vec<peers::Seat>) {
        let (came, went) = self.peers.snapshot(node, seq, seats);
        (
            came.into_iter().filter(|s| !self.listed_here(s)).collect(),
            went.into_iter().filter(|s| !self.listed_here(s)).collect(),
        )
    }

    /// Another server is gone: the seats to announce as left here.
    pub fn peer_gone(&mut self, node: &str) -> Vec<peers::Seat> {
        let went = self.peers.gone(node);
        went.into_iter().filter(|s| !self.listed_here(s)).collect()
    }

    /// The other servers heard from.
    pub fn peer_nodes(&self) -> Vec<String> {
        self.peers.nodes()
    }

    pub fn online_count(&self) -> usize {
        self.online.len()
    }

    /// Whether the session may send a frame now: a resend of a stored
    /// `client_id` is free, anything else takes a token from its bucket.
    pub fn allow_frame(
        &mut self,
        session: &SessionId,
        client_id: Option<&str>,
        now: Instant,
    ) -> bool {
        let rate = self.rate;
        let Some(holder) = self.holder_mut(session) else {
            return false;
        };
        // Free once: the id is forgotten, so a client that repeats one
        // stored message in a loop pays for every repeat after the first.
        let resend = client_id
            .and_then(|id| holder.stored.iter().position(|s| s == id))
            .and_then(|at| holder.stored.remove(at))
            .is_some();
        resend || holder.bucket.take(rate, now)
    }

    /// The user is typing in `room`: their name, if it is time to tell the
    /// room again (a flood is passed on once per [`TYPING_GAP`]).
    pub fn typing(&mut self, session: &SessionId, room: &str, now: Instant) -> Option<String> {
        let holder = self.holder_mut(session)?;
        let seat = holder.seats.get_mut(room)?;
        if seat
            .typed_at
            .is_some_and(|at| now.saturating_duration_since(at) < TYPING_GAP)
        {
            return None;
        }
        seat.typed_at = Some(now);
        Some(holder.name.clone())
    }

    /// A message of the session's with this `client_id` is stored.
    pub fn remember_stored(&mut self, session: &SessionId, client_id: &str) {
        if let Some(holder) = self.holder_mut(session) {
            if holder.stored.len() == STORED_IDS {
                holder.stored.pop_front();
            }
            holder.stored.push_back(client_id.to_string());
        }
    }

    fn holder_mut(&mut self, session: &SessionId) -> Option<&mut Holder> {
        self.by_session
            .get(session)
            .and_then(|key| self.holders.get_mut(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        per_sec: 5.0,
        burst: 10.0,
    };

    fn sid(s: &str) -> SessionId {
        SessionId::from_stored(s)
    }

    #[test]
    fn names_get_the_first_free_suffix_case_insensitively() {
        let mut p = Presence::new(RATE);
        assert_eq!(p.claim(sid("a"), "John", 0).0, "John");
        assert_eq!(p.claim(sid("b"), "john", 0).0, "john1");
        assert_eq!(p.claim(sid("c"), "JOHN", 0).0, "JOHN2");
        p.release(&sid("b"));
        assert_eq!(p.claim(sid("d"), "John", 0).0, "John1");
    }

    #[test]
    fn suffixes_stay_first_free_after_releases() {
        let mut p = Presence::new(RATE);
        for i in 0..100 {
            p.claim(sid(&format!("s{i}")), "a", 0);
        }
        assert_eq!(p.claim(sid("x"), "a", 0).0, "a100");
        // Freed in the middle: the next login gets the lowest free number.
        p.release(&sid("s7"));
        p.release(&sid("s42"));
        assert_eq!(p.claim(sid("y"), "A", 0).0, "A7");
        assert_eq!(p.claim(sid("z"), "a", 0).0, "a42");
        assert_eq!(p.claim(sid("w"), "a", 0).0, "a101");
        // A name typed with digits of its own frees a suffix of a shorter base.
        let mut p = Presence::new(RATE);
        p.claim(sid("b0"), "b", 0);
        p.claim(sid("b1"), "b1", 0);
        assert_eq!(p.claim(sid("b2"), "b", 0).0, "b2");
        p.release(&sid("b1"));
        assert_eq!(p.claim(sid("b3"), "b", 0).0, "b1");
        // The base itself freed: it is given out again.
        p.release(&sid("b0"));
        assert_eq!(p.claim(sid("b4"), "B", 0).0, "B");
    }

    #[test]
    fn a_resend_of_a_stored_message_is_free() {
        let mut p = Presence::new(RATE);
        p.claim(sid("a"), "Ann", 0);
        let now = Instant::now();
        while p.allow_frame(&sid("a"), Some("new"), now) {}
        p.remember_stored(&sid("a"), "sent");
        assert!(p.allow_frame(&sid("a"), Some("sent"), now));
        // Once only.
        assert!(!p.allow_frame(&sid("a"), Some("sent"), now));
        p.remember_stored(&sid("a"), "sent");
        assert!(!p.allow_frame(&sid("a"), Some("new"), now));
        assert!(!p.allow_frame(&sid("a"), None, now));
        // Only the newest few are remembered.
        for n in 0..STORED_IDS {
            p.remember_stored(&sid("a"), &n.to_string());
        }
        assert!(!p.allow_frame(&sid("a"), Some("sent"), now));
    }

    /// The rooms left, and the name's hold let go with its token (all
    /// 0 here) when `freed`.
    fn left(name: &str, rooms: &[&str], freed: bool) -> Option<Left> {
        let freed = freed.then_some(0);
        Some(Left {
            name: name.into(),
            freed,
            rooms: rooms.iter().map(|r| r.to_string()).collect(),
        })
    }

    /// Whether the session still holds a name.
    fn holds(p: &Presence, session: &str) -> bool {
        p.by_session.contains_key(&sid(session))
    }

    #[test]
    fn tabs_are_one_user_and_leave_after_the_last() {
        let mut p = Presence::new(RATE);
        p.claim(sid("a"), "Ann", 0);
        let first = p.attach(&sid("a"), "lobby", "Ann", "Ann", 0, 10).unwrap();
        assert!(first.joined);
        assert!(
            !p.attach(&sid("a"), "lobby", "Ann", "Ann", 0, 10)
                .unwrap()
                .joined
        );
        assert_eq!(p.online(), ["Ann"]);
        assert_eq!(p.online_in("lobby"), ["Ann"]);
        assert_eq!(p.detach(&sid("a"), "lobby"), None);
        let epoch = p.detach(&sid("a"), "lobby").unwrap();
        // A reload inside the grace period: the old timer is stale, and
        // the user never left.
        assert!(
            !p.attach(&sid("a"), "lobby", "Ann", "Ann", 0, 10)
                .unwrap()
                .joined
        );
        assert_eq!(p.expire_seat(&sid("a"), "lobby", epoch), None);
        let epoch = p.detach(&sid("a"), "lobby").unwrap();
        assert_eq!(
            p.expire_seat(&sid("a"), "lobby", epoch),
            left("Ann", &["lobby"], true)
        );
        assert!(!holds(&p, "a"));
        assert!(p.online().is_empty());
        assert!(p.online_in("lobby").is_empty());
    }

    #[test]
    fn rooms_list_their_own_people_and_the_name_goes_with_the_last() {
        let mut p = Presence::new(RATE);
        p.claim(sid("a"), "Ann", 0);
        p.claim(sid("b"), "Bob", 0);
        assert!(
            p.attach(&sid("a"), "rust", "Ann", "Ann", 0, 10)
                .unwrap()
                .joined
        );
        assert!(
            p.attach(&sid("b"), "lobby", "Bob", "Bob", 0, 10)
                .unwrap()
                .joined
        );
        assert_eq!(p.online_in("rust"), ["Ann"]);
        assert_eq!(p.online_in("lobby"), ["Bob"]);
        assert_eq!(p.online(), ["Ann", "Bob"]);
        // Ann moves from rust to the lobby: she joins it at once and leaves
        // rust once its grace is over, keeping her name.
        assert!(
            p.attach(&sid("a"), "lobby", "Ann", "Ann", 0, 10)
                .unwrap()
                .joined
        );
        let epoch = p.detach(&sid("a"), "rust").unwrap();
        assert_eq!(p.online_in("rust"), ["Ann"]);
        assert_eq!(
            p.expire_seat(&sid("a"), "rust", epoch),
            left("Ann", &["rust"], false)
        );
        assert!(holds(&p, "a"), "still in the lobby: the name stays");
        assert!(p.online_in("rust").is_empty());
        assert_eq!(p.online_in("lobby"), ["Ann", "Bob"]);
        // A logout leaves every room at once.
        assert!(
            p.attach(&sid("a"), "go", "Ann", "Ann", 0, 10)
                .unwrap()
                .joined
        );
        let mut gone = p.release(&sid("a")).unwrap();
        gone.rooms.sort();
        assert_eq!(Some(gone), left("Ann", &["go", "lobby"], true));
        assert!(!holds(&p, "a"));
        assert_eq!(p.online(), ["Bob"]);
        assert!(p.online_in("go").is_empty());
    }

    #[test]
    fn a_name_never_connected_is_freed_by_its_timer_only() {
        let mut p = Presence::new(RATE);
        let (_, epoch) = p.claim(sid("a"), "Ann", 0);
        assert_eq!(p.expire(&sid("a"), epoch), left("Ann", &[], true));
        assert!(!holds(&p, "a"));
        let (_, epoch) = p.claim(sid("b"), "Bob", 0);
        p.attach(&sid("b"), "lobby", "Bob", "Bob", 0, 10).unwrap();
        assert_eq!(p.expire(&sid("b"), epoch), None);
    }

    #[test]
    fn the_eleventh_tab_is_refused() {
        let mut p = Presence::new(RATE);
        p.claim(sid("a"), "Ann", 0);
        for _ in 0..10 {
            p.attach(&sid("a"), "lobby", "Ann", "Ann", 0, 10).unwrap();
        }
        assert_eq!(
            p.attach(&sid("a"), "rust", "Ann", "Ann", 0, 10),
            Err(TooManyTabs)
        );
    }

    #[test]
    fn a_returning_session_gets_its_name_back_or_a_new_suffix() {
        let mut p = Presence::new(RATE);
        let back = p.attach(&sid("a"), "lobby", "Ann", "Ann", 0, 10).unwrap();
        assert_eq!((back.name.as_str(), back.renamed), ("Ann", false));
        p.release(&sid("a"));
        p.claim(sid("b"), "Ann", 0);
        let back = p.attach(&sid("a"), "lobby", "Ann", "Ann", 0, 10).unwrap();
        assert_eq!((back.name.as_str(), back.renamed), ("Ann1", true));
    }

    #[test]
    fn typing_is_passed_on_at_most_once_a_second_per_room() {
        let mut p = Presence::new(RATE);
        p.claim(sid("a"), "Ann", 0);
        p.attach(&sid("a"), "lobby", "Ann", "Ann", 0, 10).unwrap();
        p.attach(&sid("a"), "rust", "Ann", "Ann", 0, 10).unwrap();
        let start = Instant::now();
        assert_eq!(p.typing(&sid("a"), "lobby", start).as_deref(), Some("Ann"));
        let flood = (1..100)
            .filter(|ms| {
                p.typing(&sid("a"), "lobby", start + Duration::from_millis(*ms))
                    .is_some()
            })
            .count();
        assert_eq!(flood, 0);
        // Another room has its own pace.
        assert_eq!(p.typing(&sid("a"), "rust", start).as_deref(), Some("Ann"));
        let later = start + TYPING_GAP;
        assert_eq!(p.typing(&sid("a"), "lobby", later).as_deref(), Some("Ann"));
        assert_eq!(p.typing(&sid("nobody"), "lobby", later), None);
        // Not in a room: nobody there to tell.
        assert_eq!(p.typing(&sid("a"), "go", later), None);
    }

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let mut p = Presence::new(RATE);
        p.claim(sid("a"), "Ann", 0);
        let start = Instant::now();
        let allowed = (0..20)
            .filter(|_| p.allow_frame(&sid("a"), None, start))
            .count();
        assert_eq!(allowed, 10);
        let later = start + Duration::from_millis(200);
        assert!(p.allow_frame(&sid("a"), None, later));
        assert!(!p.allow_frame(&sid("a"), None, later));
    }
}
