//! The control for `make bench`: the smallest axum 0.8 WebSocket broadcast
//! server, so the chat's speed and memory can be read against what the same
//! machine does with no product at all.
//!
//! One `tokio::sync::broadcast` channel; every text frame any socket sends is
//! broadcast, as it is, to every socket (the sender included). No storage, no
//! presence, no limits, no JSON parsing. A receiver that falls more than
//! `--capacity` frames behind skips ahead and never sees what it missed: that
//! is the loss the load generator counts against this control.
//!
//! Each socket gets axum's default `WebSocketUpgrade` settings (tungstenite's
//! 128 KiB read buffer, 128 KiB write buffer, no cap on the write buffer):
//! that is the baseline people actually run, so nothing is tuned here.
//!
//! ```sh
//! cargo run --release -p server --example bare-broadcast -- --bind 127.0.0.1:3300
//! ```
//!
//! It does not handle signals: SIGTERM ends it at once, which is all a control
//! with nothing to store needs.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use axum::{
    extract::{
        ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade},
        State,
    },
    response::Response,
    routing::get,
    serve::ListenerExt,
    Router,
};
use clap::Parser;
use futures::{SinkExt, StreamExt};
use tokio::sync::broadcast::{self, error::RecvError};

#[derive(Parser, Debug)]
#[command(
    name = "bare-broadcast",
    about = "A bare axum WebSocket broadcast loop: the control for the chat's load tests"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:3300")]
    bind: SocketAddr,

    /// Frames a receiver may fall behind before it skips ahead. 1,024 is the
    /// chat's own per-socket queue (`QUEUE_DEPTH`), so both tolerate the same
    /// backlog before a slow reader loses something.
    #[arg(long, default_value_t = 1024)]
    capacity: usize,

    /// Set TCP_NODELAY on every accepted socket. Off by default, as in
    /// `axum::serve`: then a small frame written while an earlier one is
    /// still unacknowledged waits for that ack (Nagle), up to the peer's
    /// delayed-ack timer, which shows as tens of milliseconds of latency.
    #[arg(long)]
    nodelay: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let (frames, _) = broadcast::channel::<Utf8Bytes>(args.capacity);
    let app = Router::new()
        .route("/ws/chat/", get(upgrade))
        .with_state(frames);
    let nodelay = args.nodelay;
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("could not listen on {}", args.bind))?
        .tap_io(move |tcp| {
            if nodelay {
                // A socket without it still works, just with Nagle's delays.
                let _ = tcp.set_nodelay(true);
            }
        });
    axum::serve(listener, app).await.context("server failed")
}

async fn upgrade(
    State(frames): State<broadcast::Sender<Utf8Bytes>>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| serve(socket, frames))
}

/// One socket: this task reads and publishes, a second task writes whatever
/// the channel carries.
async fn serve(socket: WebSocket, frames: broadcast::Sender<Utf8Bytes>) {
    let (mut sink, mut stream) = socket.split();
    // Subscribed before the first read, so the socket hears its own frames.
    let mut feed = frames.subscribe();
    let mut writer = tokio::spawn(async move {
        loop {
            match feed.recv().await {
                // `Utf8Bytes` shares one buffer: the frame is not copied per socket.
                Ok(text) => {
                    if sink.send(Message::Text(text)).await.is_err() {
                        break;
                    }
                }
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            }
        }
    });
    loop {
        tokio::select! {
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    // An error only means nobody is subscribed; nothing to do.
                    let _ = frames.send(text);
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                // Pings are answered by tungstenite; binary frames are ignored.
                Some(Ok(_)) => {}
            },
            // The writer stops when the peer stopped reading: so does the socket.
            _ = &mut writer => return,
        }
    }
    writer.abort();
}
