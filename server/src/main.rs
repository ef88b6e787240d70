use anyhow::Context;
use clap::Parser;
use server::config::Config;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")),
        )
        .init();
    let config = Config::parse();
    config
        .validate()
        .map_err(|problems| anyhow::anyhow!("invalid configuration: {problems}"))?;
    server::log_config(&config);
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("binding {}", config.bind))?;
    server::serve(config, listener, server::signal()).await
}
