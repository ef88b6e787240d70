use std::sync::Arc;

use super::Bus;
use crate::connections::{Connections, Frames};

/// The single-process bus: straight to this process's sockets.
pub struct LocalBus {
    connections: Arc<Connections>,
}

impl LocalBus {
    pub fn new(connections: Arc<Connections>) -> Self {
        Self { connections }
    }
}

impl Bus for LocalBus {
    fn publish(&self, room: &str, frames: Frames) {
        self.connections.broadcast(room, &frames);
    }
}
