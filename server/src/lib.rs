//! The chat server: axum serving the Leptos pages, a JSON API and the
//! WebSocket room. `main.rs` only parses the configuration and calls [`run`].

pub mod auth;
pub mod bus;
pub mod clock;
pub mod config;
pub mod connections;
pub mod delivery;
pub mod error;
pub mod hub;
pub mod inbound;
pub mod limits;
pub mod metrics;
pub mod names;
pub mod peers;
pub mod persister;
pub mod presence;
pub mod reads;
pub mod recent;
pub mod routes;
pub mod search;
pub mod security;
pub mod session;
pub mod state;
pub mod store;
pub mod ws;

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use axum::serve::ListenerExt;
use leptos::config::LeptosOptions;
use tokio::{
    net::TcpListener,
    sync::{watch, Semaphore},
};

use crate::{
    config::{Config, MetricsBind},
    hub::Hub,
    limits::Limits,
    state::AppState,
};

/// How long shutdown waits for sockets to take their close frames.
const SOCKETS_CLOSE_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves on `listener` until `shutdown` resolves, then closes every socket
/// with 1001, stores every message already accepted, and returns.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config
        .validate()
        .map_err(|problems| anyhow::anyhow!("invalid configuration: {problems}"))?;
    let store = store::open(&config.database_url)
        .await
        .with_context(|| format!("opening the database {}", config.masked_database_url()))?;
    let metrics_listener = match config.metrics_bind {
        Some(MetricsBind::At(addr)) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding METRICS_BIND {addr}"))?,
        ),
        _ => None,
    };
    // Leptos renders pages with async tasks; they run on tokio. (A second
    // server in the same process finds it already set, which is fine.)
    let _ = any_spawner::Executor::init_tokio();
    let (hub, writer) = Hub::start(store, &config)
        .await
        .context("starting the chat")?;
    let leptos = LeptosOptions::builder()
        .output_name(app::OUTPUT_NAME)
        .site_root(config.site_root.as_str())
        .site_addr(config.bind)
        .hash_files(built_with_hashes())
        .build();
    let pkg = std::path::Path::new(&config.site_root).join("pkg");
    if !leptos.hash_files && pkg.is_dir() && !pkg.join(format!("{}.js", app::OUTPUT_NAME)).is_file()
    {
        tracing::warn!(
            site = %pkg.display(),
            "the client's files are named by their hash but hash.txt is not beside this binary: \
             pages will name files that do not exist; copy target/release/hash.txt along"
        );
    }
    let config = Arc::new(config);
    let state = AppState {
        hub: hub.clone(),
        connection_slots: Arc::new(Semaphore::new(config.max_connections)),
        limits: Arc::new(Limits::new(&config)),
        config: config.clone(),
        leptos,
    };
    // Work beside the server that stops with it: dropping `stop` ends it.
    let (stop, stopped) = watch::channel(());
    let mut beside = vec![tokio::spawn(auth::purge_ended_sessions(
        hub.clone(),
        config.session_idle(),
        config.unclaimed_name(),
        stopped.clone(),
    ))];
    if let Some(metrics_listener) = metrics_listener {
        tracing::info!(addr = %metrics_listener.local_addr()?, "serving /metrics");
        let metrics = routes::metrics_router(state.clone());
        let mut stopped = stopped.clone();
        beside.push(tokio::spawn(async move {
            let served = axum::serve(metrics_listener, metrics)
                .with_graceful_shutdown(async move {
                    let _ = stopped.changed().await;
                })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "the metrics server failed");
            }
        }));
    }
    // The peer's address reaches the handlers, for the per-address limits.
    let app = routes::router(state).into_make_service_with_connect_info::<SocketAddr>();
    tracing::info!(addr = %listener.local_addr()?, "serving");
    let closing = hub.clone();
    // No Nagle delay: a chat frame is small and should leave at once, not
    // wait for the previous one's acknowledgement.
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: closing sockets");
            closing.shut_down();
        })
        .await
        .context("serving")?;
    drop(stop);
    for task in beside {
        if let Err(error) = task.await {
            tracing::error!(%error, "a task beside the server failed");
        }
    }
    hub.shut_down();
    hub.connections().drained(SOCKETS_CLOSE_WITHIN).await;
    if let Err(error) = hub.flush_reads().await {
        tracing::warn!(%error, "could not store the last read marks");
    }
    let unstored = writer.await.context("the message writer failed")?;
    if unstored > 0 {
        anyhow::bail!(
            "{unstored} accepted messages could not be stored; their senders were told to resend"
        );
    }
    tracing::info!("all accepted messages stored; bye");
    Ok(())
}

/// Locks a mutex of this server's state. A poisoned lock still holds
/// consistent data here: every critical section is a few field updates with
/// nothing that can panic half-way.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Awaits a task that must not be cancelled with its request: dropping the
/// caller leaves the task running; its panic is the caller's.
pub(crate) async fn finish<T>(
    task: tokio::task::JoinHandle<Result<T, store::StoreError>>,
) -> Result<T, store::StoreError> {
    match task.await {
        Ok(result) => result,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(_) => Err(store::StoreError::Stopping),
    }
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
        redis = %config.masked_redis_url(),
        redis_prefix = %config.redis_prefix,
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
        unclaimed_name_ms = config.unclaimed_name_ms,
        session_idle_ms = config.session_idle_ms,
        login_rate = config.login_rate,
        socket_rate = config.socket_rate,
        max_sockets_per_address = config.max_sockets_per_address,
        trusted_proxies = ?config.trusted_proxies,
        metrics_bind = %config
            .metrics_bind
            .map_or_else(|| "beside the pages".to_string(), |bind| bind.to_string()),
        "configuration"
    );
}

/// Whether the client's files were built under names that carry their
/// hash: the build then leaves `hash.txt` beside the server's binary, and
/// the pages name the files by it. (A test binary finds none, and names
/// them plainly.)
fn built_with_hashes() -> bool {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("hash.txt")))
        .is_some_and(|file| file.is_file())
}
