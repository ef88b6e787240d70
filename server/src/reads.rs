//! Room visits and read marks, written behind: a socket opening in a room
//! and a `read` frame only touch a map here; the maps are written in one
//! transaction every [`WRITE_EVERY`], and at once for a room list that must
//! be current (see [`Reads::flush`]).
//!
//! Bounded: an entry per session and room touched since the last write.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use crate::{
    finish, lock,
    session::SessionId,
    store::{ReadMark, Store, StoreError},
};

/// How often visits and marks are written: a reader's marks within it cost
/// one write, not one per message.
pub const WRITE_EVERY: Duration = Duration::from_secs(1);

type Key = (SessionId, Arc<str>);

#[derive(Default)]
struct Pending {
    /// First visits, with what counts as read at that moment.
    visits: HashMap<Key, i64>,
    /// The newest mark per session and room.
    marks: HashMap<Key, i64>,
}

impl Pending {
    fn merge(&mut self, other: Pending) {
        for (key, id) in other.visits {
            self.visits.entry(key).or_insert(id);
        }
        for (key, id) in other.marks {
            self.mark(key, id);
        }
    }

    fn mark(&mut self, key: Key, id: i64) {
        let mark = self.marks.entry(key).or_insert(id);
        *mark = (*mark).max(id);
    }
}

pub struct Reads {
    store: Arc<dyn Store>,
    pending: Mutex<Pending>,
    /// Held across a write, so a flush waits for one in flight: once
    /// [`Reads::flush`] returns, everything recorded before it is stored.
    writing: tokio::sync::Mutex<()>,
}

fn rows(entries: &HashMap<Key, i64>) -> Vec<ReadMark> {
    entries
        .iter()
        .map(|((session, room), id)| ReadMark {
            session: session.as_str().to_string(),
            room: room.to_string(),
            id: *id,
        })
        .collect()
}

impl Reads {
    /// Starts the writer, which runs for as long as this exists.
    pub fn start(store: Arc<dyn Store>) -> Arc<Self> {
        let reads = Arc::new(Self {
            store,
            pending: Mutex::new(Pending::default()),
            writing: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(write_every(Arc::downgrade(&reads)));
        reads
    }

    /// A socket of `session` opened in `room`, whose newest message then
    /// was `read_through`: a first visit counts that much as read.
    pub fn visit(&self, session: &SessionId, room: &Arc<str>, read_through: i64) {
        lock(&self.pending)
            .visits
            .entry((session.clone(), room.clone()))
            .or_insert(read_through);
    }

    /// The user has read `room` up to `id`; marks only move forward.
    pub fn mark(&self, session: &SessionId, room: &Arc<str>, id: i64) {
        lock(&self.pending).mark((session.clone(), room.clone()), id);
    }

    /// Writes everything recorded so far, visits before marks, in one
    /// transaction. Runs in a task of its own: a caller that goes away
    /// does not drop what was taken. On failure the entries go back.
    pub async fn flush(self: &Arc<Self>) -> Result<(), StoreError> {
        let reads = self.clone();
        let task = tokio::spawn(async move {
            let _writing = reads.writing.lock().await;
            let taken = std::mem::take(&mut *lock(&reads.pending));
            if taken.visits.is_empty() && taken.marks.is_empty() {
                return Ok(());
            }
            let visits = rows(&taken.visits);
            let marks = rows(&taken.marks);
            let written = reads.store.record_reads(&visits, &marks).await;
            if written.is_err() {
                lock(&reads.pending).merge(taken);
            }
            written
        });
        finish(task).await
    }
}

async fn write_every(reads: Weak<Reads>) {
    let mut every = tokio::time::interval(WRITE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(reads) = reads.upgrade() else { return };
        if let Err(error) = reads.flush().await {
            tracing::warn!(%error, "could not store read marks; retrying");
        }
    }
}
