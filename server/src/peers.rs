//! Who the other servers of the chat list, room by room: kept from their
//! notices (`joined`, `left`) and set right by the snapshot each of them
//! writes to Redis every [`REFRESH_EVERY`]. A server whose snapshot has
//! expired is gone, and its users with it.
//!
//! Plain data, no I/O: it lives inside the presence lock, so deciding
//! whether a user came or went (here or on any server) is one step.

use std::{
    collections::{BTreeSet, HashMap},
    time::Duration,
};

/// How often each server writes its snapshot and reads the others'.
pub const REFRESH_EVERY: Duration = Duration::from_secs(2);
/// How long a snapshot lives unless written again: a server killed without
/// a word leaves every sidebar within this and one [`REFRESH_EVERY`].
pub const SNAPSHOT_LIVES: Duration = Duration::from_secs(9);

/// A user listed in a room: `(room, name)`.
pub type Seat = (String, String);

/// What one server lists.
#[derive(Debug, Default)]
struct Node {
    /// The newest change of the server's applied here: an older snapshot
    /// (read before a notice that came since) is not applied.
    seq: u64,
    seats: BTreeSet<Seat>,
}

#[derive(Debug, Default)]
pub struct Peers {
    nodes: HashMap<String, Node>,
    /// Servers taken for gone, newest last: their notices still on the
    /// way change nothing; a snapshot of theirs brings them back.
    gone: std::collections::VecDeque<String>,
}

/// How many gone servers are remembered.
const GONE_KEPT: usize = 64;

impl Peers {
    /// Whether any other server lists `name` in `room`.
    pub fn lists(&self, seat: &Seat) -> bool {
        self.nodes.values().any(|node| node.seats.contains(seat))
    }

    /// Server `node` listed a user. True when no other server did before.
    /// A notice no newer than what is known of the server (a snapshot
    /// read since, or a notice sent again) changes nothing.
    pub fn joined(&mut self, node: &str, seq: u64, seat: Seat) -> bool {
        if self.gone.iter().any(|gone| gone == node) {
            return false;
        }
        let listed = self.lists(&seat);
        let entry = self.nodes.entry(node.to_string()).or_default();
        if seq <= entry.seq {
            return false;
        }
        entry.seq = seq;
        entry.seats.insert(seat);
        !listed
    }

    /// Server `node` no longer lists a user. True when no other server
    /// does any more.
    pub fn left(&mut self, node: &str, seq: u64, seat: &Seat) -> bool {
        let Some(entry) = self.nodes.get_mut(node) else {
            return false;
        };
        if seq < entry.seq {
            return false;
        }
        entry.seq = seq;
        entry.seats.remove(seat) && !self.lists(seat)
    }

    /// Server `node`'s snapshot, written at its change `seq`. Returns the
    /// seats no other server listed before and those none lists now.
    pub fn snapshot(
        &mut self,
        node: &str,
        seq: u64,
        seats: BTreeSet<Seat>,
    ) -> (Vec<Seat>, Vec<Seat>) {
        if self.nodes.get(node).is_some_and(|known| known.seq > seq) {
            return (Vec::new(), Vec::new());
        }
        self.gone.retain(|gone| gone != node);
        let before = self
            .nodes
            .insert(node.to_string(), Node { seq, seats })
            .unwrap_or_default();
        let now = &self.nodes[node].seats;
        let came: Vec<Seat> = now.difference(&before.seats).cloned().collect();
        let went: Vec<Seat> = before.seats.difference(now).cloned().collect();
        let others = |seat: &Seat| {
            self.nodes
                .iter()
                .any(|(name, other)| name != node && other.seats.contains(seat))
        };
        (
            came.into_iter().filter(|seat| !others(seat)).collect(),
            went.into_iter().filter(|seat| !self.lists(seat)).collect(),
        )
    }

    /// Server `node` is gone: the seats no other server lists.
    pub fn gone(&mut self, node: &str) -> Vec<Seat> {
        let Some(gone) = self.nodes.remove(node) else {
            return Vec::new();
        };
        if self.gone.len() == GONE_KEPT {
            self.gone.pop_front();
        }
        self.gone.push_back(node.to_string());
        gone.seats
            .into_iter()
            .filter(|seat| !self.lists(seat))
            .collect()
    }

    /// The servers heard from.
    pub fn nodes(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    /// The names the other servers list in `room`.
    pub fn in_room<'a>(&'a self, room: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.nodes.values().flat_map(move |node| {
            node.seats
                .iter()
                .filter(move |(r, _)| r == room)
                .map(|(_, name)| name.as_str())
        })
    }

    /// The names the other servers list anywhere.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.nodes
            .values()
            .flat_map(|node| node.seats.iter().map(|(_, name)| name.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seat(room: &str, name: &str) -> Seat {
        (room.into(), name.into())
    }

    #[test]
    fn a_user_on_two_servers_comes_and_goes_once() {
        let mut peers = Peers::default();
        assert!(peers.joined("a", 1, seat("lobby", "Ann")));
        assert!(
            !peers.joined("b", 1, seat("lobby", "Ann")),
            "already listed"
        );
        assert!(!peers.left("a", 2, &seat("lobby", "Ann")), "still on b");
        assert!(peers.left("b", 2, &seat("lobby", "Ann")));
        assert!(!peers.left("b", 3, &seat("lobby", "Ann")), "left once");
    }

    #[test]
    fn a_snapshot_sets_notices_right_unless_it_is_older() {
        let mut peers = Peers::default();
        peers.joined("a", 5, seat("lobby", "Ann"));
        // Read before Ann's notice: not applied.
        let stale = BTreeSet::from([seat("lobby", "Bob")]);
        assert_eq!(peers.snapshot("a", 4, stale), (vec![], vec![]));
        assert!(peers.lists(&seat("lobby", "Ann")));
        // Newer: Bob came (his notice was lost), Ann went.
        let newer = BTreeSet::from([seat("lobby", "Bob")]);
        let (came, went) = peers.snapshot("a", 7, newer);
        assert_eq!(came, [seat("lobby", "Bob")]);
        assert_eq!(went, [seat("lobby", "Ann")]);
        let mut names: Vec<&str> = peers.in_room("lobby").collect();
        names.sort_unstable();
        assert_eq!(names, ["Bob"]);
    }

    #[test]
    fn a_notice_older_than_a_snapshot_changes_nothing() {
        let mut peers = Peers::default();
        peers.snapshot("a", 9, BTreeSet::from([seat("lobby", "Ann")]));
        assert!(!peers.joined("a", 8, seat("lobby", "Bob")));
        assert!(!peers.left("a", 7, &seat("lobby", "Ann")));
        assert_eq!(peers.names().collect::<Vec<_>>(), ["Ann"]);
    }

    #[test]
    fn a_gone_server_takes_only_its_own_users() {
        let mut peers = Peers::default();
        peers.joined("a", 1, seat("lobby", "Ann"));
        peers.joined("a", 2, seat("rust", "Bob"));
        peers.joined("b", 1, seat("rust", "Bob"));
        assert_eq!(peers.gone("a"), [seat("lobby", "Ann")]);
        assert_eq!(peers.names().collect::<Vec<_>>(), ["Bob"]);
        assert!(peers.gone("a").is_empty());
        // A notice of it still on the way changes nothing; its snapshot
        // (it was not gone after all) brings it back.
        assert!(!peers.joined("a", 9, seat("lobby", "Cy")));
        let (came, _) = peers.snapshot("a", 10, BTreeSet::from([seat("lobby", "Cy")]));
        assert_eq!(came, [seat("lobby", "Cy")]);
    }
}
