//! What every handler shares: the hub, the settings and the page options.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use tokio::sync::Semaphore;

use crate::{config::Config, hub::Hub, limits::Limits};

#[derive(Clone)]
pub struct AppState {
    pub hub: Hub,
    pub config: Arc<Config>,
    pub leptos: LeptosOptions,
    /// One permit per open socket: the global connection cap.
    pub connection_slots: Arc<Semaphore>,
    /// Logins and sockets per client address.
    pub limits: Arc<Limits>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}
