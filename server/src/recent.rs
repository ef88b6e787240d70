//! The newest messages of every room, kept in memory: a `welcome` and most
//! resumes are answered from here instead of a database read per connection.
//!
//! Delivery appends each stored entry before it broadcasts it, so the
//! window always ends at the newest delivered id. One window for all
//! rooms keeps memory bounded however many rooms there are: busy rooms are
//! answered from it, a quiet room whose messages slid out reads the store.

use std::collections::VecDeque;

use app::protocol::ChatMessage;

use crate::store::Entry;

#[derive(Debug)]
pub struct Recent {
    /// Messages as they now are (a deleted one is taken out) and the
    /// changes to them, in id order.
    entries: VecDeque<Entry>,
    capacity: usize,
    /// Every stored entry with an id above this is in `entries`.
    complete_after: i64,
    /// Every id up to this has been delivered, when that is beyond the
    /// last entry (the newest ids were a deleted message's own rows).
    reached: i64,
}

impl Recent {
    /// `newest` is the store's newest `capacity` entries (or all of them),
    /// oldest first.
    pub fn new(capacity: usize, newest: Vec<Entry>) -> Self {
        let complete_after = match newest.first() {
            Some(first) if newest.len() >= capacity => first.id() - 1,
            _ => 0,
        };
        let mut recent = Self {
            entries: VecDeque::with_capacity(capacity),
            capacity,
            complete_after,
            reached: 0,
        };
        recent.extend(newest);
        recent
    }

    /// An entry was stored (ids only grow). A change also applies to its
    /// message, when that is still here; a deletion turns the earlier edits
    /// of its message into deletions too, as the store reads them, so the
    /// old text is gone from memory as well.
    pub fn push(&mut self, entry: Entry) {
        match &entry {
            Entry::Message(_) => {}
            Entry::Edited { message, .. } => {
                if let Ok(at) = self.entries.binary_search_by_key(&message.id, Entry::id) {
                    self.entries[at] = Entry::Message(message.clone());
                }
            }
            Entry::Deleted { message_id, .. } => {
                if let Ok(at) = self.entries.binary_search_by_key(message_id, Entry::id) {
                    self.entries.remove(at);
                }
                for earlier in self.entries.iter_mut() {
                    if let Entry::Edited { id, message } = earlier {
                        if message.id == *message_id {
                            *earlier = Entry::Deleted {
                                id: *id,
                                room: std::mem::take(&mut message.room),
                                message_id: *message_id,
                            };
                        }
                    }
                }
            }
        }
        if self.entries.len() == self.capacity {
            if let Some(oldest) = self.entries.pop_front() {
                self.complete_after = oldest.id();
            }
        }
        self.entries.push_back(entry);
    }

    /// Entries were stored, in id order.
    pub fn extend(&mut self, entries: impl IntoIterator<Item = Entry>) {
        entries.into_iter().for_each(|e| self.push(e));
    }

    /// Every id up to `id` has been delivered.
    pub fn reached(&mut self, id: i64) {
        self.reached = self.reached.max(id);
    }

    /// The newest delivered id, message or change (0 when nothing is stored).
    pub fn newest_id(&self) -> i64 {
        self.entries
            .back()
            .map_or(self.complete_after, Entry::id)
            .max(self.reached)
    }

    /// The newest `limit` messages of `room` as they now are, oldest first,
    /// or `None` when the window holds fewer and older ones may exist (read
    /// the store).
    pub fn latest(&self, room: &str, limit: usize) -> Option<Vec<ChatMessage>> {
        let mut newest: Vec<ChatMessage> = self
            .entries
            .iter()
            .rev()
            .filter_map(|entry| match entry {
                Entry::Message(message) if message.room == room => Some(message),
                _ => None,
            })
            .take(limit)
            .cloned()
            .collect();
        if newest.len() < limit && self.complete_after > 0 {
            return None;
        }
        newest.reverse();
        Some(newest)
    }

    /// The first `limit` entries of `room` after `after` while `keep` says
    /// yes, or `None` when the window does not reach back that far (read the
    /// store instead). Only what is kept is copied.
    pub fn after(
        &self,
        room: &str,
        after: i64,
        limit: usize,
        keep: impl FnMut(&&Entry) -> bool,
    ) -> Option<Vec<Entry>> {
        if after < self.complete_after {
            return None;
        }
        let start = self.entries.partition_point(|e| e.id() <= after);
        Some(
            self.entries
                .range(start..)
                .filter(|e| e.room() == room)
                .take(limit)
                .take_while(keep)
                .cloned()
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: i64) -> Entry {
        in_room(id, "lobby")
    }

    fn text(id: i64, room: &str, body: &str) -> ChatMessage {
        ChatMessage {
            id,
            room: room.into(),
            username: "A".into(),
            author: "tag".into(),
            message: body.into(),
            sent_at: "2026-01-01T00:00:00.000Z".into(),
            client_id: None,
            edited_at: None,
        }
    }

    fn in_room(id: i64, room: &str) -> Entry {
        Entry::Message(text(id, room, &format!("m{id}")))
    }

    fn ids<T: Id>(entries: &[T]) -> Vec<i64> {
        entries.iter().map(Id::id).collect()
    }

    trait Id {
        fn id(&self) -> i64;
    }
    impl Id for Entry {
        fn id(&self) -> i64 {
            Entry::id(self)
        }
    }
    impl Id for ChatMessage {
        fn id(&self) -> i64 {
            self.id
        }
    }

    #[test]
    fn a_small_room_is_answered_from_memory_entirely() {
        let recent = Recent::new(4, vec![message(1), message(2)]);
        assert_eq!(recent.newest_id(), 2);
        assert_eq!(
            ids(&recent.after("lobby", 0, 10, |_| true).unwrap()),
            [1, 2]
        );
        assert_eq!(ids(&recent.latest("lobby", 1).unwrap()), [2]);
        assert_eq!(ids(&recent.latest("lobby", 5).unwrap()), [1, 2]);
        assert_eq!(Recent::new(4, vec![]).newest_id(), 0);
    }

    #[test]
    fn the_window_slides_and_sends_older_resumes_to_the_store() {
        let mut recent = Recent::new(3, vec![message(1), message(2), message(3)]);
        // Full at start: whatever came before id 1 is unknown here.
        assert_eq!(
            ids(&recent.after("lobby", 0, 10, |_| true).unwrap()),
            [1, 2, 3]
        );
        recent.push(message(5));
        assert_eq!(recent.after("lobby", 0, 10, |_| true), None);
        assert_eq!(
            ids(&recent.after("lobby", 1, 10, |_| true).unwrap()),
            [2, 3, 5]
        );
        assert_eq!(ids(&recent.after("lobby", 3, 1, |_| true).unwrap()), [5]);
        assert_eq!(
            ids(&recent.after("lobby", 1, 10, |m| m.id() < 5).unwrap()),
            [2, 3]
        );
        assert!(recent.after("lobby", 9, 10, |_| true).unwrap().is_empty());
        assert_eq!(recent.newest_id(), 5);
        // Older messages may exist: a page the window cannot fill is read
        // from the store.
        assert_eq!(recent.latest("lobby", 4), None);
        assert_eq!(ids(&recent.latest("lobby", 3).unwrap()), [2, 3, 5]);
    }

    #[test]
    fn rooms_share_the_window_and_see_only_their_own() {
        let mut recent = Recent::new(4, vec![in_room(1, "a"), in_room(2, "b")]);
        recent.extend([in_room(3, "a"), in_room(4, "b")]);
        assert_eq!(ids(&recent.latest("a", 10).unwrap()), [1, 3]);
        assert_eq!(ids(&recent.after("b", 0, 10, |_| true).unwrap()), [2, 4]);
        assert!(recent.latest("c", 10).unwrap().is_empty());
        // Room a's first message slides out: its full history is no longer here.
        recent.push(in_room(5, "b"));
        assert_eq!(recent.latest("a", 10), None);
        assert_eq!(ids(&recent.latest("a", 1).unwrap()), [3]);
        assert_eq!(recent.after("a", 0, 10, |_| true), None);
        assert_eq!(ids(&recent.after("a", 1, 10, |_| true).unwrap()), [3]);
    }

    #[test]
    fn changes_apply_to_the_messages_they_name_and_are_replayed_in_order() {
        let mut recent = Recent::new(10, vec![message(1), message(2), message(3)]);
        let mut edited = text(2, "lobby", "better");
        edited.edited_at = Some("2026-01-01T00:01:00.000Z".into());
        recent.push(Entry::Edited {
            id: 4,
            message: edited.clone(),
        });
        recent.push(Entry::Deleted {
            id: 5,
            room: "lobby".into(),
            message_id: 1,
        });
        // History shows messages as they now are: 1 gone, 2 edited.
        let latest = recent.latest("lobby", 10).unwrap();
        assert_eq!(ids(&latest), [2, 3]);
        assert_eq!(latest[0], edited);
        // A resume after 3 gets the two changes, in order.
        assert_eq!(
            ids(&recent.after("lobby", 3, 10, |_| true).unwrap()),
            [4, 5]
        );
        assert_eq!(recent.newest_id(), 5);
        // Deleting the edited message takes its text out of the edit too.
        recent.push(Entry::Deleted {
            id: 7,
            room: "lobby".into(),
            message_id: 2,
        });
        assert!(matches!(
            recent.after("lobby", 3, 10, |_| true).unwrap()[0],
            Entry::Deleted {
                id: 4,
                message_id: 2,
                ..
            }
        ));
    }

    #[test]
    fn a_change_to_a_message_that_slid_out_is_kept_for_resumes() {
        let mut recent = Recent::new(3, vec![message(1), message(2), message(3)]);
        recent.push(message(4));
        recent.push(Entry::Deleted {
            id: 5,
            room: "lobby".into(),
            message_id: 1,
        });
        // Message 1 had slid out; the others stay, and the deletion is
        // there for a resume after 4.
        assert_eq!(ids(&recent.latest("lobby", 2).unwrap()), [3, 4]);
        assert_eq!(ids(&recent.after("lobby", 4, 10, |_| true).unwrap()), [5]);
    }
}
