use async_trait::async_trait;

use super::{Bus, BusError, Snapshot};
use crate::{peers::Seat, store::Entry};

/// The bus of a server that is the whole chat: there is no one to tell.
pub struct LocalBus;

#[async_trait]
impl Bus for LocalBus {
    fn stored(&self, _prev: i64, _entries: &[Entry]) {}

    fn room(&self, _room: &str, _frame: &str) {}

    fn logged_out(&self, _session: &str) {}

    fn joined(&self, _seq: u64, _room: &str, _name: &str) {}

    fn left(&self, _seq: u64, _name: &str, _rooms: &[String]) {}

    async fn exchange(
        &self,
        _seq: u64,
        _seats: &[Seat],
    ) -> Result<Vec<(String, Snapshot)>, BusError> {
        Ok(Vec::new())
    }

    fn reachable(&self) -> Option<bool> {
        None
    }
}
