//! The newest messages of every room, kept in memory: a `welcome` and most
//! resumes are answered from here instead of a database read per connection.
//!
//! The one message writer appends each stored message before it broadcasts
//! it, so the window always ends at the newest stored id. One window for all
//! rooms keeps memory bounded however many rooms there are: busy rooms are
//! answered from it, a quiet room whose messages slid out reads the store.

use std::collections::VecDeque;

use app::protocol::ChatMessage;

#[derive(Debug)]
pub struct Recent {
    messages: VecDeque<ChatMessage>,
    capacity: usize,
    /// Every stored message with an id above this is in `messages`.
    complete_after: i64,
}

impl Recent {
    /// `newest` is the store's newest `capacity` messages (or all of them),
    /// oldest first.
    pub fn new(capacity: usize, newest: Vec<ChatMessage>) -> Self {
        let complete_after = match newest.first() {
            Some(first) if newest.len() >= capacity => first.id - 1,
            _ => 0,
        };
        let mut recent = Self {
            messages: VecDeque::with_capacity(capacity),
            capacity,
            complete_after,
        };
        recent.extend(newest);
        recent
    }

    /// A message was stored (ids only grow).
    pub fn push(&mut self, message: ChatMessage) {
        if self.messages.len() == self.capacity {
            if let Some(oldest) = self.messages.pop_front() {
                self.complete_after = oldest.id;
            }
        }
        self.messages.push_back(message);
    }

    /// Messages were stored, in id order.
    pub fn extend(&mut self, messages: impl IntoIterator<Item = ChatMessage>) {
        messages.into_iter().for_each(|m| self.push(m));
    }

    /// The newest stored id (0 when the room is empty).
    pub fn newest_id(&self) -> i64 {
        self.messages
            .back()
            .map_or(self.complete_after, |newest| newest.id)
    }

    /// The newest `limit` messages of `room`, oldest first, or `None` when
    /// the window holds fewer and older ones may exist (read the store).
    pub fn latest(&self, room: &str, limit: usize) -> Option<Vec<ChatMessage>> {
        let mut newest: Vec<ChatMessage> = self
            .messages
            .iter()
            .rev()
            .filter(|m| m.room == room)
            .take(limit)
            .cloned()
            .collect();
        if newest.len() < limit && self.complete_after > 0 {
            return None;
        }
        newest.reverse();
        Some(newest)
    }

    /// The first `limit` messages of `room` after `after` while `keep` says
    /// yes, or `None` when the window does not reach back that far (read the
    /// store instead). Only what is kept is copied.
    pub fn after(
        &self,
        room: &str,
        after: i64,
        limit: usize,
        keep: impl FnMut(&&ChatMessage) -> bool,
    ) -> Option<Vec<ChatMessage>> {
        if after < self.complete_after {
            return None;
        }
        let start = self.messages.partition_point(|m| m.id <= after);
        Some(
            self.messages
                .range(start..)
                .filter(|m| m.room == room)
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

    fn message(id: i64) -> ChatMessage {
        in_room(id, "lobby")
    }

    fn in_room(id: i64, room: &str) -> ChatMessage {
        ChatMessage {
            id,
            room: room.into(),
            username: "A".into(),
            message: format!("m{id}"),
            sent_at: "2026-01-01T00:00:00.000Z".into(),
            client_id: None,
        }
    }

    fn ids(messages: &[ChatMessage]) -> Vec<i64> {
        messages.iter().map(|m| m.id).collect()
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
            ids(&recent.after("lobby", 1, 10, |m| m.id < 5).unwrap()),
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
}
