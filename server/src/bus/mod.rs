//! Fan-out: how an event reaches every socket of every server process.
//! One process needs nothing more than its own sockets ([`LocalBus`]).

mod local;

pub use local::LocalBus;

use crate::connections::Frames;

pub trait Bus: Send + Sync + 'static {
    /// Delivers already serialised frames, in order, to every socket in `room`.
    fn publish(&self, room: &str, frames: Frames);
}
