//! The chat: names, rooms, presence, sockets and the path of a message,
//! behind one cloneable handle.
//!
//! Invariant: the presence lock is never held across an `.await`. Presence
//! events are published while it is held (publishing only queues frames), so
//! every socket sees joins and leaves in the order they happened. Lock order:
//! presence, then connections.

use std::{
    collections::{HashMap, HashSet},
    sync::{atomic::Ordering::Relaxed, Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use app::protocol::{ChatMessage, ServerFrame, HISTORY_PAGE, MAX_RESUME, SIGNED_OUT_REASON};
use axum::extract::ws::close_code;
use tokio::{
    sync::{mpsc, Notify},
    task::JoinHandle,
};

use crate::{
    bus::{Bus, Heard, LocalBus, RedisBus},
    config::Config,
    connections::{ConnId, Connections, Link, Outgoing},
    delivery::{self, Batch, Delivery},
    finish, lock,
    metrics::Metrics,
    peers::{Seat, REFRESH_EVERY, SNAPSHOT_LIVES},
    persister::{self, Persister, Submission},
    presence::{Left, Presence, Rate},
    reads::Reads,
    recent::Recent,
    session::SessionId,
    store::{now_ms, Entry, Hold, NameClaim, SessionRecord, SessionRow, Store, StoreError},
};

/// The most history one `welcome` carries, in bytes of text: no client can
/// make the server hold megabytes for it (2,000 characters of four-byte
/// UTF-8 make 8 KB a message, so 1,000 of them would be 8 MB).
const MAX_WELCOME_BYTES: usize = 1024 * 1024;
/// A message's JSON beyond its text, name, room and `client_id`: keys, id,
/// author tag, times, quotes, and an `edited` frame's wrapper.
const MESSAGE_OVERHEAD: usize = 256;

/// A page of a resume read from the store: the byte bound is met after a
/// few pages at most, never after reading a thousand long messages.
const STORE_PAGE: usize = 100;

/// The byte bound of one `welcome`, spent message by message.
struct Budget {
    left: usize,
    spent: bool,
}

impl Budget {
    fn new(bytes: usize) -> Self {
        Self {
            left: bytes,
            spent: false,
        }
    }

    /// Whether `entry` still fits; once one does not, none does.
    fn take(&mut self, entry: &Entry) -> bool {
        let size = match entry {
            Entry::Message(message) | Entry::Edited { message, .. } => {
                // Quotes, backslashes and newlines grow by one byte in JSON.
                let escaped = message
                    .message
                    .bytes()
                    .filter(|b| matches!(b, b'"' | b'\\' | b'\n' | b'\t' | b'\r'))
                    .count();
                MESSAGE_OVERHEAD
                    + message.message.len()
                    + escaped
                    + message.username.len()
                    + message.room.len()
                    + message.client_id.as_ref().map_or(0, String::len)
            }
            Entry::Deleted { room, .. } => MESSAGE_OVERHEAD + room.len(),
        };
        if self.spent || size > self.left {
            self.spent = true;
            return false;
        }
        self.left -= size;
        true
    }
}

/// What a resume after `after` shows, from the log entries since: the new
/// messages as they now are, and for each older message changed since, its
/// last change alone (an edit carries the text as it now is; a deletion
/// ends it). A change to a new message is applied to it here: the entries
/// may have been read in several pages, so a message read before its
/// change was stored still holds its old text.
fn replay(entries: Vec<Entry>, after: i64) -> (Vec<ChatMessage>, Vec<ServerFrame>) {
    // Messages come in id order (`ids` keeps it); a deleted one leaves a
    // hole (`None`).
    let mut ids: Vec<i64> = Vec::new();
    let mut messages: Vec<Option<ChatMessage>> = Vec::new();
    // The last change of each older message, by target.
    let mut changes: std::collections::BTreeMap<i64, Entry> = Default::default();
    for entry in entries {
        match entry {
            Entry::Message(message) => {
                ids.push(message.id);
                messages.push(Some(message));
            }
            change if change.target().is_some_and(|target| target <= after) => {
                if let Some(target) = change.target() {
                    changes.insert(target, change);
                }
            }
            Entry::Edited { message, .. } => {
                if let Ok(at) = ids.binary_search(&message.id) {
                    messages[at] = Some(message);
                }
            }
            Entry::Deleted { message_id, .. } => {
                if let Ok(at) = ids.binary_search(&message_id) {
                    messages[at] = None;
                }
            }
        }
    }
    let mut changes: Vec<Entry> = changes.into_values().collect();
    changes.sort_by_key(Entry::id);
    (
        messages.into_iter().flatten().collect(),
        changes.into_iter().map(Entry::frame).collect(),
    )
}

/// Messages kept in memory: a resume that missed at most [`MAX_RESUME`] is
/// answered without reading the database (one more tells it missed more).
const RECENT: usize = MAX_RESUME + 1;

#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    presence: Arc<Mutex<Presence>>,
    recent: Arc<Mutex<Recent>>,
    connections: Arc<Connections>,
    bus: Arc<dyn Bus>,
    store: Arc<dyn Store>,
    persister: mpsc::Sender<Submission>,
    stop_persister: Arc<Notify>,
    reads: Arc<Reads>,
    metrics: Arc<Metrics>,
    grace: Duration,
    unclaimed_name: Duration,
    max_tabs: usize,
}

impl Inner {
    /// Serialises once and offers the frame to this server's sockets in
    /// `room`; returns it for the other servers.
    fn publish(&self, room: &str, frame: &ServerFrame) -> Option<Outgoing> {
        let out = Outgoing::encode(frame)?;
        self.connections.broadcast(room, &out.clone().alone());
        Some(out)
    }
}

/// Why a socket may not join.
#[derive(Debug)]
pub enum Refused {
    /// The session ended (or is ending) while the socket opened.
    SignedOut,
    /// The socket is already being closed (the server is stopping).
    Closing,
    TooManyTabs,
    Store(StoreError),
}

impl Refused {
    /// The close frame that says so.
    pub fn close_frame(&self) -> (u16, &'static str) {
        match self {
            Refused::SignedOut => (close_code::POLICY, SIGNED_OUT_REASON),
            Refused::Closing => (close_code::AWAY, "server restarting"),
            Refused::TooManyTabs => (
                close_code::POLICY,
                "too many tabs open for this session: close one and retry",
            ),
            Refused::Store(_) => (close_code::ERROR, "could not read the session; try again"),
        }
    }
}

/// What a new socket is told first.
pub struct History {
    /// As they now are.
    pub messages: Vec<ChatMessage>,
    /// On a resume: `edited` and `deleted` frames for messages up to
    /// `after` changed since, one per message, to follow the `welcome`.
    pub changes: Vec<ServerFrame>,
    pub complete: bool,
    /// Live frames with ids up to this are already in `messages` or
    /// `changes`.
    pub skip_through: i64,
}

/// An open socket's place in the hub. Dropping it (however the socket's task
/// ends: returned, panicked or cancelled) unregisters the socket and, if it
/// had joined, starts its session's grace period.
pub struct SocketGuard {
    hub: Hub,
    conn: ConnId,
    session: SessionId,
    room: Arc<str>,
    joined: bool,
    pub name: String,
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        self.hub.inner.connections.remove(self.conn);
        if self.joined {
            self.hub.detach(&self.session, &self.room);
        }
    }
}

/// How many rooms with messages the room list names besides one's own.
const LISTED_ROOMS: usize = 100;

impl Hub {
    /// Builds the hub (reading the newest messages into memory) and starts
    /// its message writer; after [`Hub::shut_down`], the writer's handle
    /// yields how many accepted messages could not be stored.
    pub async fn start(
        store: Arc<dyn Store>,
        config: &Config,
    ) -> Result<(Self, JoinHandle<u64>), StartError> {
        let recent = Arc::new(Mutex::new(Recent::new(RECENT, store.newest(RECENT).await?)));
        let metrics = Arc::new(Metrics::default());
        let connections = Arc::new(Connections::new(metrics.clone()));
        let (heard_tx, heard) = mpsc::channel(HEARD);
        let (bus, poll): (Arc<dyn Bus>, _) = match &config.redis_url {
            Some(url) => (
                Arc::new(RedisBus::start(url, &config.redis_prefix, heard_tx)?),
                Some(delivery::POLL_EVERY),
            ),
            None => (Arc::new(LocalBus), None),
        };
        let (deliver, batches) = mpsc::channel(delivery::QUEUE);
        tokio::spawn(
            Delivery::new(store.clone(), connections.clone(), recent.clone()).run(batches, poll),
        );
        let presence = Arc::new(Mutex::new(Presence::new(Rate {
            per_sec: config.rate_per_sec,
            burst: config.rate_burst,
        })));
        let (tx, rx) = mpsc::channel(persister::QUEUE);
        let stop = Arc::new(Notify::new());
        let writer = Persister {
            store: store.clone(),
            bus: bus.clone(),
            delivery: deliver.clone(),
            connections: connections.clone(),
            metrics: metrics.clone(),
            presence: presence.clone(),
            max_batch: persister::batch_for(config.queue_depth),
        };
        let handle = tokio::spawn(writer.run(rx, stop.clone()));
        let reads = Reads::start(store.clone());
        let hub = Self {
            inner: Arc::new(Inner {
                presence,
                recent,
                connections,
                bus,
                store,
                persister: tx,
                stop_persister: stop,
                reads,
                metrics,
                grace: config.grace(),
                unclaimed_name: config.unclaimed_name(),
                max_tabs: config.max_tabs,
            }),
        };
        tokio::spawn(hear(Arc::downgrade(&hub.inner), heard, deliver));
        tokio::spawn(renew_names(Arc::downgrade(&hub.inner)));
        if poll.is_some() {
            tokio::spawn(refresh_peers(Arc::downgrade(&hub.inner)));
        }
        Ok((hub, handle))
    }

    /// Whether the other servers can be reached (`None`: there are none).
    pub fn bus_reachable(&self) -> Option<bool> {
        self.inner.bus.reachable()
    }

    fn presence(&self) -> MutexGuard<'_, Presence> {
        lock(&self.inner.presence)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub fn connections(&self) -> &Arc<Connections> {
        &self.inner.connections
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Announces `user_left` in each room the user left, unless another
    /// server still lists them there, and tells the other servers. Call
    /// with the presence lock held.
    fn announce_left(&self, presence: &mut Presence, left: Option<Left>) {
        if let Some(Left { name, rooms, .. }) = left {
            self.inner
                .metrics
                .users_online
                .store(presence.online_count() as i64, Relaxed);
            let seq = presence.next_seq();
            self.inner.bus.left(seq, &name, &rooms);
            // Not gone while another server lists them there.
            let went: Vec<Seat> = rooms
                .into_iter()
                .map(|room| (room, name.clone()))
                .filter(|seat| !presence.listed_elsewhere(seat))
                .collect();
            announce(&self.inner, Came::Left, went);
        }
    }

    /// A new login: gives out a unique name for `base` (unique across
    /// every server: claimed in the shared database), stores the session
    /// under `id` and returns the name.
    ///
    /// Runs to the end even if the request is dropped half-way: the name's
    /// expiry is armed before the session is stored.
    pub async fn login(&self, id: SessionId, base: &str) -> Result<String, StoreError> {
        let hub = self.clone();
        let base = base.to_string();
        let task = tokio::spawn(async move {
            let (claimed, token) = hub.claim_name(&id, None, &base).await?;
            let (name, epoch) = hub.presence().claim(id.clone(), &claimed, token);
            hub.expire_later(id.clone(), None, epoch, hub.inner.unclaimed_name);
            let row = SessionRow {
                id: id.as_str().to_string(),
                username: name.clone(),
                base_name: base,
            };
            match hub.inner.store.create_session(&row).await {
                Ok(()) => {
                    hub.presence().stored(&id);
                    Ok(name)
                }
                Err(error) => {
                    let mut presence = hub.presence();
                    let released = presence.release(&id);
                    hub.let_go(&id, released.as_ref());
                    Err(error)
                }
            }
        });
        finish(task).await
    }

    /// Claims a name in the shared database (see [`Store::claim_name`])
    /// that this server does not hold for another session either: the
    /// name and the token of the hold. (A name held here that the database
    /// says is free is a hold on its way out: a session logged out
    /// elsewhere a moment ago.)
    async fn claim_name(
        &self,
        id: &SessionId,
        preferred: Option<&str>,
        base: &str,
    ) -> Result<(String, i64), StoreError> {
        for _ in 0..CLAIM_ROUNDS {
            let taken = self.presence().taken_like(id, preferred, base);
            let now = now_ms();
            let claim = NameClaim {
                session: id.as_str(),
                preferred,
                base,
                taken,
                token: rand::random::<i64>(),
                now,
                until: now.saturating_add(NAME_LEASE_MS),
            };
            let (name, token) = self.inner.store.claim_name(&claim).await?;
            if !self.presence().held_by_other(id, &name) {
                return Ok((name, token));
            }
        }
        Err(StoreError::NoFreeName)
    }

    /// After a renewal: this server's holds take the token the database
    /// kept; one let go here meanwhile (the renewal took it back) is let go
    /// again, as `let_go` would. Returns the sessions renewed.
    fn settle_renewed(&self, renewed: Vec<(String, i64)>) -> HashSet<String> {
        let mut presence = self.presence();
        let mut sessions = HashSet::with_capacity(renewed.len());
        for (session, token) in renewed {
            let id = SessionId::from_stored(&session);
            if presence.holds(&id) {
                presence.adopt(&id, token);
            } else if self.inner.bus.reachable().is_none() {
                self.release_later(&id, token);
            }
            sessions.insert(session);
        }
        sessions
    }

    /// A session this server holds has no hold in the shared database:
    /// ended, it ends here; else it claims its name again. Should that
    /// name have gone to another session meanwhile, its sockets here are
    /// closed to come back under the name the database gives them.
    async fn repair_hold(&self, id: &SessionId, name: &str) -> Result<(), StoreError> {
        if !self.presence().holds(id) {
            // Let go here since the renewal: nothing to repair.
            return Ok(());
        }
        let Some(session) = self.inner.store.find_session(id.as_str()).await? else {
            self.end_here(id);
            return Ok(());
        };
        let (claimed, token) = self.claim_name(id, Some(name), &session.base_name).await?;
        let mut presence = self.presence();
        if claimed == name {
            presence.adopt(id, token);
            return Ok(());
        }
        tracing::warn!(
            held = name,
            claimed,
            "a name held here was taken while its hold could not be renewed"
        );
        let released = presence.release(id);
        self.announce_left(&mut presence, released);
        self.inner
            .connections
            .close_session(id, close_code::RESTART, RENAMED_REASON);
        Ok(())
    }

    /// Lets go of a name in the shared database when this server let go
    /// of it and is the whole chat. With other servers, one of them may
    /// hold the session still (and renews its hold): the hold lapses by
    /// itself once none does. Call with the presence lock held.
    fn let_go(&self, id: &SessionId, left: Option<&Left>) {
        let Some(Left {
            freed: Some(token), ..
        }) = left
        else {
            return;
        };
        if self.inner.bus.reachable().is_some() {
            return;
        }
        self.release_later(id, *token);
    }

    /// Lets go of the session's hold under `token` in the database,
    /// without waiting.
    fn release_later(&self, id: &SessionId, token: i64) {
        let (store, id) = (self.inner.store.clone(), id.clone());
        tokio::spawn(async move {
            if let Err(error) = store.release_name(id.as_str(), token).await {
                tracing::warn!(%error, "could not let go of a name; it lapses by itself");
            }
        });
    }

    /// Ends a session everywhere: its row, its name, its sockets. Runs to
    /// the end even if the request is dropped half-way.
    pub async fn logout(&self, id: &SessionId) -> Result<bool, StoreError> {
        let hub = self.clone();
        let id = id.clone();
        let task = tokio::spawn(async move {
            let existed = hub.inner.store.delete_session(id.as_str()).await;
            // Whatever the database said: the name and the sockets go now,
            // here and on the other servers.
            let freed = hub.end_here(&id);
            hub.inner.bus.logged_out(id.as_str());
            if let (Err(_), Some(token)) = (&existed, freed) {
                // The session stayed, and its name with it: the name at
                // least is let go (as soon as can be: a login meanwhile
                // still finds it held).
                if let Err(error) = hub.inner.store.release_name(id.as_str(), token).await {
                    tracing::warn!(%error, "could not let go of a name; it lapses by itself");
                }
            }
            existed
        });
        finish(task).await
    }

    /// The session ended: its name and its sockets on this server go.
    /// Under the presence lock, so a socket of this session that is
    /// joining either joined before (and is closed here) or finds its link
    /// closing and gives up: see `open_socket`. Returns the token of the
    /// name's hold in the database, which went with the session's row.
    fn end_here(&self, id: &SessionId) -> Option<i64> {
        let mut presence = self.presence();
        let released = presence.release(id);
        let freed = released.as_ref().and_then(|left| left.freed);
        self.announce_left(&mut presence, released);
        self.inner
            .connections
            .close_session(id, close_code::NORMAL, SIGNED_OUT_REASON);
        freed
    }

    /// Who is in `room`, or online anywhere without one.
    pub fn online(&self, room: Option<&str>) -> Vec<String> {
        match room {
            Some(room) => self.presence().online_in(room),
            None => self.presence().online(),
        }
    }

    /// The rooms for a session's room list with their unread counts: the
    /// lobby, the rooms it opened and the rooms with the newest messages,
    /// the lobby first, then by name. Visits and read marks are written
    /// first, so the counts take every `read` handled so far (if that write
    /// fails, the counts are as of the last one that did not).
    pub async fn rooms(&self, session: &SessionId) -> Result<Vec<(String, u64)>, StoreError> {
        if let Err(error) = self.inner.reads.flush().await {
            tracing::warn!(%error, "could not store read marks; counting without them");
        }
        let mut rooms = self
            .inner
            .store
            .rooms(session.as_str(), LISTED_ROOMS)
            .await?;
        let lobby = rooms
            .iter()
            .position(|(room, _)| room == app::room::LOBBY)
            .map_or((app::room::LOBBY.to_string(), 0), |at| rooms.remove(at));
        rooms.insert(0, lobby);
        Ok(rooms)
    }

    /// The user has read `room` up to `id` (at most the newest id).
    pub fn mark_read(&self, session: &SessionId, room: &Arc<str>, id: i64) {
        let id = id.min(lock(&self.inner.recent).newest_id());
        self.inner.reads.mark(session, room, id);
    }

    /// Writes the visits and read marks not yet stored (at shutdown).
    pub async fn flush_reads(&self) -> Result<(), StoreError> {
        self.inner.reads.flush().await
    }

    /// The user is typing in `room`: the room hears of it, at most once a
    /// second per user and room.
    pub fn typing(&self, session: &SessionId, room: &str) {
        let name = self.presence().typing(session, room, Instant::now());
        if let Some(out) =
            name.and_then(|username| self.inner.publish(room, &ServerFrame::Typing { username }))
        {
            self.inner.bus.room(room, &out.text);
        }
    }

    /// A socket of `session` opened in `room`: registers it, checks the
    /// session is still live, and joins it to the room.
    ///
    /// The order closes the race with a logout: the socket is registered
    /// before the session is read again, so a logout that deletes the row
    /// after that read finds the socket and closes it; one that closed it
    /// first leaves its link closing, which `attach` refuses.
    pub async fn open_socket(
        &self,
        session: &SessionRow,
        room: Arc<str>,
        link: Link,
    ) -> Result<SocketGuard, Refused> {
        let id = SessionId::from_stored(&session.id);
        let mut guard = SocketGuard {
            hub: self.clone(),
            conn: self
                .inner
                .connections
                .register(id.clone(), room.clone(), link.clone()),
            session: id.clone(),
            room: room.clone(),
            joined: false,
            name: String::new(),
        };
        let live = self
            .inner
            .store
            .find_session_record(id.as_str())
            .await
            .map_err(Refused::Store)?;
        let Some(SessionRecord {
            row: session,
            connected,
            ..
        }) = live
        else {
            return Err(Refused::SignedOut);
        };
        // A session this server holds no name for claims one in the
        // shared database first: its own if still free. Should the hold
        // here go while that is awaited, the claim comes again.
        let mut claimed: Option<(String, i64)> = None;
        let (attached, renamed) = loop {
            if claimed.is_none() && !self.presence().holds(&id) {
                let claim = self
                    .claim_name(&id, Some(&session.username), &session.base_name)
                    .await
                    .map_err(Refused::Store)?;
                claimed = Some(claim);
            }
            let mut presence = self.presence();
            if link.is_closing() {
                drop(presence);
                // Logged out meanwhile: the name claimed for it goes too.
                if let Some((_, token)) = claimed {
                    if let Err(error) = self.inner.store.release_name(id.as_str(), token).await {
                        tracing::warn!(%error, "could not let go of a name; it lapses by itself");
                    }
                }
                return Err(Refused::Closing);
            }
            let (wanted, token) = match &claimed {
                Some((name, token)) => (name.as_str(), *token),
                None if presence.holds(&id) => (session.username.as_str(), 0),
                None => continue,
            };
            let attached = presence
                .attach(
                    &id,
                    &room,
                    wanted,
                    &session.base_name,
                    token,
                    self.inner.max_tabs,
                )
                .map_err(|_| Refused::TooManyTabs)?;
            if attached.joined {
                self.inner
                    .metrics
                    .users_online
                    .store(presence.online_count() as i64, Relaxed);
                let seq = presence.next_seq();
                self.inner.bus.joined(seq, &room, &attached.name);
                // Already there while another server lists them there.
                let seat = (room.to_string(), attached.name.clone());
                if !presence.listed_elsewhere(&seat) {
                    announce(&self.inner, Came::Joined, [seat]);
                }
            }
            if claimed.is_some() {
                // Another socket of the session may have been held here
                // meanwhile: the hold in the database is this claim's.
                presence.adopt(&id, token);
            }
            let renamed = attached.renamed || wanted != session.username;
            break (attached, renamed);
        };
        guard.joined = true;
        guard.name = attached.name;
        if !connected {
            // Past the purge of logins that never connected. Awaited: a
            // session this fails for is refused (and marked by its next
            // socket) rather than purged later while it chats.
            self.inner
                .store
                .mark_connected(id.as_str())
                .await
                .map_err(Refused::Store)?;
        }
        // For the room list: what is in the room now counts as read on a
        // first visit (the welcome shows it).
        let newest = lock(&self.inner.recent).newest_id();
        self.inner.reads.visit(&id, &room, newest);
        if renamed {
            let store = self.inner.store.clone();
            let name = guard.name.clone();
            tokio::spawn(async move {
                if let Err(error) = store.rename_session(id.as_str(), &name).await {
                    tracing::warn!(%error, "could not store a session's new name");
                }
            });
        }
        Ok(guard)
    }

    /// What a socket's `welcome` carries: the room's latest page, or with
    /// `after` what came since (read from memory when recent enough). An
    /// `after` beyond the newest message counts as the newest.
    pub async fn history(&self, room: &str, after: Option<i64>) -> Result<History, StoreError> {
        let Some(after) = after else {
            let in_memory = lock(&self.inner.recent).latest(room, HISTORY_PAGE);
            let messages = match in_memory {
                Some(messages) => messages,
                None => self.inner.store.latest(room, HISTORY_PAGE).await?,
            };
            let skip_through = messages.last().map_or(0, |m| m.id);
            return Ok(History {
                messages,
                changes: Vec::new(),
                complete: true,
                skip_through,
            });
        };
        let mut budget = Budget::new(MAX_WELCOME_BYTES);
        let (newest, from_memory) = {
            let recent = lock(&self.inner.recent);
            let newest = recent.newest_id();
            let copied = (after <= newest)
                .then(|| recent.after(room, after, MAX_RESUME + 1, |e| budget.take(e)))
                .flatten();
            (newest, copied)
        };
        // Beyond what this server has delivered: the client saw it on
        // another server, ahead of this one, or names an id never given.
        // The store tells; live frames up to `after` are skipped, so
        // nothing comes twice.
        let after = if after > newest {
            let stored = self.inner.store.newest(1).await?;
            after.min(stored.last().map_or(0, Entry::id).max(newest))
        } else {
            after
        };
        let mut entries = match from_memory {
            Some(entries) => entries,
            None => self.read_after(room, after, &mut budget).await?,
        };
        let mut complete = entries.len() <= MAX_RESUME && !budget.spent;
        if entries.len() > MAX_RESUME {
            entries.truncate(MAX_RESUME);
            complete = false;
        }
        let skip_through = entries.last().map_or(after, Entry::id);
        let (messages, mut changes) = replay(entries, after);
        if !complete {
            // The client starts again from the latest page: the messages
            // these changes name are no longer on its screen.
            changes.clear();
        }
        Ok(History {
            messages,
            changes,
            complete,
            skip_through,
        })
    }

    /// Up to [`MAX_RESUME`] + 1 entries after `after` from the store, page
    /// by page, within the budget.
    async fn read_after(
        &self,
        room: &str,
        mut after: i64,
        budget: &mut Budget,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut entries = Vec::new();
        while entries.len() <= MAX_RESUME {
            let page = self.inner.store.after(room, after, STORE_PAGE).await?;
            let full = page.len() == STORE_PAGE;
            for entry in page {
                if entries.len() > MAX_RESUME || !budget.take(&entry) {
                    return Ok(entries);
                }
                after = entry.id();
                entries.push(entry);
            }
            if !full {
                break;
            }
        }
        Ok(entries)
    }

    /// A socket of this session closed; its last one in the room starts the
    /// grace period there.
    fn detach(&self, id: &SessionId, room: &Arc<str>) {
        let epoch = self.presence().detach(id, room);
        if let Some(epoch) = epoch {
            self.expire_later(id.clone(), Some(room.clone()), epoch, self.inner.grace);
        }
    }

    /// Arms a timer: the session leaves `room` (or, without one, lets go of
    /// a name that never connected) unless something happened since `epoch`.
    fn expire_later(&self, id: SessionId, room: Option<Arc<str>>, epoch: u64, after: Duration) {
        // A socket dropped while the runtime itself stops has no timer to
        // arm, and no one left to tell.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let hub = self.clone();
        runtime.spawn(async move {
            tokio::time::sleep(after).await;
            let mut presence = hub.presence();
            let left = match &room {
                Some(room) => presence.expire_seat(&id, room, epoch),
                None => presence.expire(&id, epoch),
            };
            hub.let_go(&id, left.as_ref());
            hub.announce_left(&mut presence, left);
        });
    }

    /// Takes one frame from the user's rate budget (a resend of a stored
    /// `client_id` is free).
    pub fn allow_frame(&self, id: &SessionId, client_id: Option<&str>) -> bool {
        self.presence().allow_frame(id, client_id, Instant::now())
    }

    /// Hands an accepted message to the writer. False if the server is stopping.
    pub async fn submit(&self, submission: Submission) -> bool {
        self.inner.persister.send(submission).await.is_ok()
    }

    /// Closes every socket with 1001 (clients resume elsewhere) and lets the
    /// writer finish what it accepted.
    pub fn shut_down(&self) {
        self.inner
            .connections
            .close_all(close_code::AWAY, "server restarting");
        self.inner.stop_persister.notify_one();
    }
}

/// What other servers said, waiting to be acted on.
const HEARD: usize = 1_024;
/// How long a name's hold in the shared database lasts unless renewed:
/// the names of a server that dies are free again after this.
const NAME_LEASE_MS: i64 = 15_000;
/// Claims of a name in the database that a hold here may overrule, at most.
const CLAIM_ROUNDS: usize = 3;
/// Why a socket closes when its session's name had to change.
const RENAMED_REASON: &str = "your name was taken while the server could not keep it: reconnect";
/// How many sessions without a hold one round of renewals looks into; the
/// rest wait for the next round.
const REPAIRS_PER_ROUND: usize = 50;
/// How often a server renews the holds of the names it holds.
const RENEW_NAMES_EVERY: Duration = Duration::from_secs(5);

/// Renews the holds of this server's names every [`RENEW_NAMES_EVERY`]
/// (taking back, at once, any that lapsed while it could not), and forgets
/// lapsed ones, for as long as the hub lives. A session whose hold cannot
/// stand has ended (logged out on another server whose notice did not
/// come, or purged): its sockets here close; or its name went to someone
/// else meanwhile: it claims a name again.
async fn renew_names(hub: std::sync::Weak<Inner>) {
    let mut ticks = tokio::time::interval(RENEW_NAMES_EVERY);
    loop {
        ticks.tick().await;
        let Some(inner) = hub.upgrade() else {
            return;
        };
        let mut held = lock(&inner.presence).held();
        // In one order on every server: two renewals of the same holds
        // (a session with tabs on both) lock their rows in the same order.
        held.sort_by(|(a, _), (b, _)| a.key.cmp(&b.key));
        let (holds, names): (Vec<Hold>, Vec<String>) = held.into_iter().unzip();
        let now = now_ms();
        let until = now.saturating_add(NAME_LEASE_MS);
        let renewed = match inner.store.renew_names(&holds, now, until).await {
            Ok(renewed) => renewed,
            Err(error) => {
                tracing::warn!(%error, "could not renew the holds of names; retrying");
                continue;
            }
        };
        let hub = Hub { inner };
        let renewed = hub.settle_renewed(renewed);
        let unheld = holds
            .into_iter()
            .zip(names)
            .filter(|(hold, _)| !renewed.contains(&hold.session));
        for (hold, name) in unheld.take(REPAIRS_PER_ROUND) {
            let id = SessionId::from_stored(&hold.session);
            if let Err(error) = hub.repair_hold(&id, &name).await {
                tracing::warn!(%error, "could not check a session without a hold; retrying");
            }
        }
    }
}

/// Why the hub could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("reading the newest messages: {0}")]
    Store(#[from] StoreError),
    #[error("REDIS_URL: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Acts on what the other servers say, for as long as the hub lives: their
/// stored batches go to delivery (dropped when it is behind: it reads the
/// store), frames to this server's sockets, logouts end sessions here.
async fn hear(
    hub: std::sync::Weak<Inner>,
    mut heard: mpsc::Receiver<(String, Heard)>,
    deliver: mpsc::Sender<Batch>,
) {
    while let Some((node, said)) = heard.recv().await {
        let Some(inner) = hub.upgrade() else {
            return;
        };
        match said {
            Heard::Stored {
                prev,
                last,
                entries,
            } => {
                let read_through = if entries.is_empty() { last } else { 0 };
                let _ = deliver.try_send(Batch {
                    prev,
                    entries,
                    read_through,
                    replies: Vec::new(),
                });
            }
            Heard::Room { room, frame } => {
                let out = Outgoing {
                    id: None,
                    text: frame.into(),
                };
                inner.connections.broadcast(&room, &out.alone());
            }
            Heard::LoggedOut { session } => {
                Hub { inner }.end_here(&SessionId::from_stored(&session));
            }
            Heard::Joined { seq, room, name } => {
                let mut presence = lock(&inner.presence);
                let seat = (room, name);
                if presence.peer_joined(&node, seq, seat.clone()) {
                    announce(&inner, Came::Joined, [seat]);
                }
            }
            Heard::Left { seq, name, rooms } => {
                let mut presence = lock(&inner.presence);
                let went: Vec<Seat> = rooms
                    .into_iter()
                    .map(|room| (room, name.clone()))
                    .filter(|seat| presence.peer_left(&node, seq, seat))
                    .collect();
                announce(&inner, Came::Left, went);
            }
        }
    }
}

/// Whether users came into rooms or left them.
#[derive(Clone, Copy)]
enum Came {
    Joined,
    Left,
}

/// Tells this server's sockets in each seat's room that its user came or
/// went.
fn announce(inner: &Inner, came: Came, seats: impl IntoIterator<Item = Seat>) {
    for (room, username) in seats {
        let frame = match came {
            Came::Joined => ServerFrame::UserJoined { username },
            Came::Left => ServerFrame::UserLeft { username },
        };
        inner.publish(&room, &frame);
    }
}

/// Every [`REFRESH_EVERY`]: writes this server's snapshot of who it lists,
/// reads the others', announces who came and went by them, and takes the
/// users of a server off the lists when its snapshot has expired (or, not
/// named at all, it has not been seen for [`SNAPSHOT_LIVES`]). While Redis
/// is away nobody is taken off: the others cannot be seen, not gone.
async fn refresh_peers(hub: std::sync::Weak<Inner>) {
    let mut ticks = tokio::time::interval(REFRESH_EVERY);
    let mut seen: HashMap<String, Instant> = HashMap::new();
    // Since when the exchanges fail, and when they came back: the others'
    // snapshots may have expired meanwhile, and they write them again
    // within a round, so none is taken for gone right after.
    let mut blind_since: Option<Instant> = None;
    let mut back_at: Option<Instant> = None;
    loop {
        ticks.tick().await;
        let Some(inner) = hub.upgrade() else {
            return;
        };
        let (seq, seats) = lock(&inner.presence).snapshot();
        let asked = Instant::now();
        let snapshots = match inner.bus.exchange(seq, &seats).await {
            Ok(snapshots) => snapshots,
            Err(error) => {
                tracing::debug!(%error, "could not exchange who is online");
                blind_since.get_or_insert(asked);
                continue;
            }
        };
        let now = Instant::now();
        if let Some(since) = blind_since.take() {
            // Time spent blind does not count against anyone.
            back_at = Some(now);
            let blind_for = now.duration_since(since);
            seen.values_mut().for_each(|last| *last += blind_for);
        }
        let settled = back_at.is_none_or(|back| now.duration_since(back) > REFRESH_EVERY * 2);
        let mut presence = lock(&inner.presence);
        let mut gone = Vec::new();
        for (node, snapshot) in snapshots {
            match snapshot {
                Some((seq, seats)) => {
                    seen.insert(node.clone(), now);
                    let (came, went) = presence.peer_snapshot(&node, seq, seats);
                    announce(&inner, Came::Joined, came);
                    announce(&inner, Came::Left, went);
                }
                // Its snapshot expired: it stopped writing it.
                None if settled => gone.push(node),
                None => {}
            }
        }
        // One not named at all (Redis lost what it held, say) has had
        // time to write its snapshot again.
        for node in presence.peer_nodes() {
            let last = *seen.entry(node.clone()).or_insert(now);
            if settled && now.duration_since(last) > SNAPSHOT_LIVES {
                gone.push(node);
            }
        }
        for node in gone {
            seen.remove(&node);
            let went = presence.peer_gone(&node);
            if !went.is_empty() {
                tracing::info!(
                    node,
                    users = went.len(),
                    "a server went away; its users leave"
                );
            }
            announce(&inner, Came::Left, went);
        }
        inner
            .metrics
            .users_online
            .store(presence.online_count() as i64, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    //! The races between a socket that opens and a logout, and requests
    //! dropped half-way, made deterministic by a store that pauses on cue.

    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

    use async_trait::async_trait;

    use super::*;
    use crate::{
        session,
        store::{SessionRecord, SqliteStore, Stored, Write},
    };

    /// The real SQLite store, with one pause on cue: the next session read
    /// (or the next session insert) waits until the test lets it go.
    struct Paused {
        inner: SqliteStore,
        pause_read: AtomicBool,
        /// Read the row before pausing (a read that raced ahead of a logout)
        /// rather than after.
        read_first: bool,
        pause_create: AtomicBool,
        paused: Notify,
        resume: Notify,
    }

    impl Paused {
        async fn open(dir: &tempfile::TempDir, read_first: bool) -> Arc<Self> {
            let url = format!("sqlite://{}/chat.db", dir.path().display());
            Arc::new(Self {
                inner: SqliteStore::open(&url).await.expect("a store"),
                pause_read: AtomicBool::new(false),
                read_first,
                pause_create: AtomicBool::new(false),
                paused: Notify::new(),
                resume: Notify::new(),
            })
        }

        async fn pause(&self) {
            self.paused.notify_one();
            self.resume.notified().await;
        }
    }

    #[async_trait]
    impl Store for Paused {
        async fn create_session(&self, session: &SessionRow) -> Result<(), StoreError> {
            if self.pause_create.swap(false, SeqCst) {
                self.pause().await;
            }
            self.inner.create_session(session).await
        }
        async fn find_session_record(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
            if !self.pause_read.swap(false, SeqCst) {
                return self.inner.find_session_record(id).await;
            }
            if self.read_first {
                let read = self.inner.find_session_record(id).await;
                self.pause().await;
                read
            } else {
                self.pause().await;
                self.inner.find_session_record(id).await
            }
        }
        async fn touch_session(&self, id: &str) -> Result<(), StoreError> {
            self.inner.touch_session(id).await
        }
        async fn mark_connected(&self, id: &str) -> Result<(), StoreError> {
            self.inner.mark_connected(id).await
        }
        async fn purge_sessions(
            &self,
            idle_before: i64,
            unclaimed_before: i64,
        ) -> Result<Vec<String>, StoreError> {
            self.inner
                .purge_sessions(idle_before, unclaimed_before)
                .await
        }
        async fn rename_session(&self, id: &str, username: &str) -> Result<(), StoreError> {
            self.inner.rename_session(id, username).await
        }
        async fn delete_session(&self, id: &str) -> Result<bool, StoreError> {
            self.inner.delete_session(id).await
        }
        async fn names_held(
            &self,
            claim: &NameClaim<'_>,
        ) -> Result<std::collections::HashSet<String>, StoreError> {
            self.inner.names_held(claim).await
        }
        async fn hold_name(
            &self,
            claim: &NameClaim<'_>,
            key: &str,
        ) -> Result<Option<i64>, StoreError> {
            self.inner.hold_name(claim, key).await
        }
        async fn renew_names(
            &self,
            holds: &[Hold],
            now: i64,
            until: i64,
        ) -> Result<Vec<(String, i64)>, StoreError> {
            self.inner.renew_names(holds, now, until).await
        }
        async fn release_name(&self, session: &str, token: i64) -> Result<(), StoreError> {
            self.inner.release_name(session, token).await
        }
        async fn rooms(
            &self,
            session: &str,
            limit: usize,
        ) -> Result<Vec<(String, u64)>, StoreError> {
            self.inner.rooms(session, limit).await
        }
        async fn record_reads(
            &self,
            visits: &[crate::store::ReadMark],
            marks: &[crate::store::ReadMark],
        ) -> Result<(), StoreError> {
            self.inner.record_reads(visits, marks).await
        }
        async fn append(&self, batch: &[Write]) -> Result<Stored, StoreError> {
            self.inner.append(batch).await
        }
        async fn since(&self, after: i64, limit: usize) -> Result<Vec<Entry>, StoreError> {
            self.inner.since(after, limit).await
        }
        async fn newest(&self, limit: usize) -> Result<Vec<Entry>, StoreError> {
            self.inner.newest(limit).await
        }
        async fn latest(&self, room: &str, limit: usize) -> Result<Vec<ChatMessage>, StoreError> {
            self.inner.latest(room, limit).await
        }
        async fn after(
            &self,
            room: &str,
            after: i64,
            limit: usize,
        ) -> Result<Vec<Entry>, StoreError> {
            self.inner.after(room, after, limit).await
        }
        async fn before(
            &self,
            room: &str,
            before: i64,
            limit: usize,
        ) -> Result<Vec<ChatMessage>, StoreError> {
            self.inner.before(room, before, limit).await
        }
        async fn search(
            &self,
            plan: &crate::search::Plan,
            room: Option<&str>,
            limit: usize,
        ) -> Result<Vec<ChatMessage>, StoreError> {
            self.inner.search(plan, room, limit).await
        }
        async fn ping(&self) -> Result<(), StoreError> {
            self.inner.ping().await
        }
    }

    async fn hub_on(store: Arc<Paused>, adjust: impl FnOnce(&mut Config)) -> Hub {
        let mut config = Config::defaults();
        adjust(&mut config);
        Hub::start(store, &config).await.expect("a hub").0
    }

    /// Ann's socket, opening, held at its second session read (the one that
    /// closes the race with a logout).
    struct Opening {
        _dir: tempfile::TempDir,
        store: Arc<Paused>,
        hub: Hub,
        id: SessionId,
        task: JoinHandle<Result<(), Refused>>,
    }

    async fn paused_opening(read_first: bool) -> Opening {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = Paused::open(&dir, read_first).await;
        let hub = hub_on(store.clone(), |_| {}).await;
        let (_, id) = session::mint();
        hub.login(id.clone(), "Ann").await.expect("a login");
        let row = store
            .find_session(id.as_str())
            .await
            .expect("a read")
            .expect("the session");
        store.pause_read.store(true, SeqCst);
        let (link, _queue, _closer) = Link::new(8);
        let task = tokio::spawn({
            let hub = hub.clone();
            async move {
                hub.open_socket(&row, "lobby".into(), link)
                    .await
                    .map(|_| ())
            }
        });
        store.paused.notified().await;
        Opening {
            _dir: dir,
            store,
            hub,
            id,
            task,
        }
    }

    /// A logout lands while a socket of the session is between its upgrade
    /// and joining: whichever way the session read falls, the socket does
    /// not join, the name stays free and nobody sees the user come back.
    #[tokio::test]
    async fn a_logout_racing_a_socket_leaves_no_live_socket() {
        for read_first in [false, true] {
            // The directory is bound: dropped, it would take the database
            // file with it while the hub still opens connections to it.
            let Opening {
                _dir,
                store,
                hub,
                id,
                task,
            } = paused_opening(read_first).await;
            assert!(hub.logout(&id).await.expect("a logout"));
            store.resume.notify_one();

            let refused = task.await.expect("the socket task");
            assert!(
                matches!(refused, Err(Refused::SignedOut) | Err(Refused::Closing)),
                "read_first={read_first}: {refused:?}"
            );
            assert!(hub.online(None).is_empty());
            assert!(hub.connections().is_empty());
            let (_, other) = session::mint();
            assert_eq!(hub.login(other, "ann").await.expect("a login"), "ann");
        }
    }

    /// A socket whose task is dropped half-way through joining leaves nothing
    /// registered.
    #[tokio::test]
    async fn a_socket_dropped_while_joining_is_unregistered() {
        let Opening {
            _dir, hub, task, ..
        } = paused_opening(false).await;
        assert!(!hub.connections().is_empty());
        task.abort();
        assert!(task.await.is_err_and(|e| e.is_cancelled()));
        assert!(hub.connections().is_empty());
    }

    /// A login whose request is dropped while its session is being stored
    /// still lets go of the name once it goes unclaimed.
    #[tokio::test]
    async fn a_dropped_login_frees_its_name() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = Paused::open(&dir, false).await;
        let hub = hub_on(store.clone(), |config| config.unclaimed_name_ms = 50).await;
        store.pause_create.store(true, SeqCst);
        let login = tokio::spawn({
            let hub = hub.clone();
            async move { hub.login(session::mint().1, "Ann").await }
        });
        store.paused.notified().await;
        login.abort();
        // The stored row never comes (the write is still paused), yet the
        // name is given out again once the unclaimed time has passed.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let name = hub.login(session::mint().1, "Ann").await.expect("a login");
            if name == "Ann" {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the name stayed held"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn said(id: i64, text: &str) -> ChatMessage {
        ChatMessage {
            id,
            room: "lobby".into(),
            username: "Ann".into(),
            author: "tag".into(),
            message: text.into(),
            sent_at: "2026-01-01T00:00:00.000Z".into(),
            client_id: None,
            edited_at: None,
        }
    }

    #[test]
    fn a_replay_applies_changes_to_new_messages_and_keeps_the_last_change_of_old_ones() {
        let edited = |id, target, text: &str| Entry::Edited {
            id,
            message: ChatMessage {
                edited_at: Some("2026-01-01T00:00:01.000Z".into()),
                ..said(target, text)
            },
        };
        let deleted = |id, message_id| Entry::Deleted {
            id,
            room: "lobby".into(),
            message_id,
        };
        // Messages 5 and 6 are new after 4; 2 and 3 were already shown. The
        // entries came in two pages: 5 was read before its edit was stored.
        let entries = vec![
            edited(5, 2, "first edit of 2"),
            Entry::Message(said(6, "old text of 6")),
            Entry::Message(said(7, "seven")),
            deleted(8, 3),
            edited(9, 2, "second edit of 2"),
            deleted(10, 7),
            Entry::Message(said(12, "twelve")),
            edited(13, 12, "twelve, fixed"),
            edited(14, 6, "new text of 6"),
        ];
        let (messages, changes) = replay(entries, 4);
        let shown: Vec<_> = messages
            .iter()
            .map(|m| (m.id, m.message.as_str()))
            .collect();
        assert_eq!(shown, [(6, "new text of 6"), (12, "twelve, fixed")]);
        assert!(messages[0].edited_at.is_some());
        let changed: Vec<_> = changes
            .iter()
            .map(|frame| match frame {
                ServerFrame::Edited { id, message } => (*id, message.id, message.message.as_str()),
                ServerFrame::Deleted { id, message_id, .. } => (*id, *message_id, ""),
                other => panic!("not a change: {other:?}"),
            })
            .collect();
        assert_eq!(changed, [(8, 3, ""), (9, 2, "second edit of 2")]);
    }
}
