//! The chat server: axum serving the Leptos pages, a JSON API and the
//! WebSocket room. `main.rs` only parses the configuration and calls [`run`].

pub mod bus;
pub mod clock;
pub mod config;
pub mod connections;
pub mod error;
pub mod hub;
pub mod inbound;
pub mod metrics;
pub mod names;
pub mod persister;
pub mod presence;
pub mod routes;
pub mod security;
pub mod session;
pub mod store;
pub mod ws;

use std::{future::Future, sync::Arc};

use anyhow::Context;
use leptos::config::LeptosOptions;
use tokio::{net::TcpListener, sync::Semaphore};

use crate::{config::Config, hub::Hub, routes::AppState};

/// How long shutdown waits for sockets to take their close frames.
const SOCKETS_CLOSE_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves on `listener` until `shutdown` resolves, then closes every socket
/// with 1001, stores every message already accepted, and returns.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Leptos renders pages with async tasks; they run on tokio. (A second
    // server in the same process finds it already set, which is fine.)
    let _ = any_spawner::Executor::init_tokio();
    let store = store::open(&config.database_url)
        .await
        .with_context(|| format!("opening the database {}", config.masked_database_url()))?;
    let (hub, writer) = Hub::start(store, &config);
    let leptos = LeptosOptions::builder()
        .output_name(app::OUTPUT_NAME)
        .site_root(config.site_root.as_str())
        .site_addr(config.bind)
        .build();
    let state = AppState {
        hub: hub.clone(),
        connection_slots: Arc::new(Semaphore::new(config.max_connections)),
        config: Arc::new(config),
        leptos,
    };
    let app = routes::router(state);
    tracing::info!(addr = %listener.local_addr()?, "serving");
    let closing = hub.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: closing sockets");
            closing.shut_down();
        })
        .await
        .context("serving")?;
    hub.shut_down();
    hub.connections().drained(SOCKETS_CLOSE_WITHIN).await;
    writer.await.context("the message writer failed")?;
    tracing::info!("all accepted messages stored; bye");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Logs the configuration once, secrets masked.
pub fn log_config(config: &Config) {
    tracing::info!(
        bind = %config.bind,
        database = %config.masked_database_url(),
        allowed_origins = ?config.allowed_origins,
        site_root = %config.site_root,
        grace_ms = config.grace_ms,
        ping_interval_ms = config.ping_interval_ms,
        peer_timeout_ms = config.peer_timeout_ms,
        rate_per_sec = config.rate_per_sec,
        rate_burst = config.rate_burst,
        queue_depth = config.queue_depth,
        max_tabs = config.max_tabs,
        max_connections = config.max_connections,
        "configuration"
    );
}
