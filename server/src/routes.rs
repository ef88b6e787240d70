//! The HTTP surface: pages, the JSON API, health and metrics.

use app::{
    protocol::{
        LoginRequest, LoginResponse, MessagePage, OnlineUsers, RoomList, RoomSummary,
        SearchResults, ServerFrame, HISTORY_PAGE, MAX_HISTORY_PAGE, SEARCH_RESULTS,
    },
    room::{self, RoomName},
    seed::Seed,
};
use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, RawQuery, Request, State},
    middleware,
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
    Json, Router,
};
use http::{header, HeaderMap, HeaderValue, StatusCode};

use crate::{
    auth::{self, Authenticated},
    error::AppError,
    limits::ClientAddr,
    names, security, session,
    state::AppState,
    ws,
};

/// Largest login or logout body: a name is at most a few hundred bytes even
/// percent-encoded.
const MAX_FORM_BYTES: usize = 4 * 1024;

/// The pages, the API and the socket; `/metrics` too unless `METRICS_BIND`
/// moves it elsewhere or turns it off.
pub fn router(state: AppState) -> Router {
    let router = Router::new()
        .route("/", get(page))
        .route("/chat/", get(page))
        .route("/chat", get(|| async { Redirect::permanent("/chat/") }))
        .route("/chat/{room}/", get(page))
        .route("/chat/{room}", get(page))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/get_online_users/", get(online_users))
        .route("/api/messages", get(messages))
        .route("/api/rooms", get(rooms))
        .route("/api/search", get(search))
        .route("/healthz", get(healthz))
        .route("/ws/chat/", get(ws::upgrade));
    let router = match state.config.metrics_bind {
        None => router.route("/metrics", get(metrics)),
        Some(_) => router,
    };
    let site = std::path::Path::new(&state.config.site_root);
    router
        .nest("/pkg", precompressed(site.join("pkg")))
        .nest("/vendor", precompressed(site.join("vendor")))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(
            app::shell,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(middleware::from_fn_with_state(
            state.config.clone(),
            security::headers,
        ))
        .with_state(state)
}

/// The built scripts, WASM and styles: the build writes a brotli and a gzip
/// copy beside each (`precompress.mjs`), sent to browsers that take them
/// (the WASM is about a third of its size in brotli). A name that carries
/// its content's hash is kept for a year; any other is revalidated on every
/// load, so that a new build is never hidden behind a cached old one.
fn precompressed(dir: std::path::PathBuf) -> Router<AppState> {
    let files = tower_http::services::ServeDir::new(dir)
        .precompressed_br()
        .precompressed_gzip();
    Router::new()
        .fallback_service(files)
        .layer(middleware::from_fn(cache_lifetime))
        // A cache between here and the browser keeps one copy per encoding.
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            header::VARY,
            HeaderValue::from_static("accept-encoding"),
        ))
}

async fn cache_lifetime(request: Request, next: middleware::Next) -> Response {
    let lasting = content_named(request.uri().path());
    let mut response = next.run(request).await;
    let status = response.status();
    let policy = if lasting && (status.is_success() || status == StatusCode::NOT_MODIFIED) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    response
}

/// Whether a file's name carries the hash of its content, as the build
/// names the client's files (`chat.<22 base64url characters>.wasm`): such a
/// file never changes under its name.
fn content_named(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or_default();
    let mut parts = name.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(stem), Some(hash), Some(_extension), None) => {
            !stem.is_empty()
                && hash.len() == 22
                && hash
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }
        _ => false,
    }
}

/// `/metrics` alone, for `METRICS_BIND=<address>`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// `/`, `/chat/` and `/chat/<room>/`: the Leptos pages, after sending people
/// where they belong. A room name in capitals goes to its lowercase page;
/// one outside the rule renders the not-found page.
async fn page(State(state): State<AppState>, request: Request) -> Result<Response, AppError> {
    let path = request.uri().path();
    // The room on a room's page, in its one spelling.
    let room = match path.strip_prefix("/chat/") {
        Some("") => Some(room::LOBBY.to_string()),
        Some(raw) => match room::check(raw.strip_suffix('/').unwrap_or(raw)) {
            RoomName::Valid(name) | RoomName::Lowercase(name) if room::path(&name) != path => {
                return Ok(Redirect::permanent(&room::path(&name)).into_response());
            }
            RoomName::Invalid => None,
            RoomName::Valid(name) | RoomName::Lowercase(name) => Some(name),
        },
        None => None,
    };
    let session = auth::current(&state, request.headers()).await?;
    let seed = match (path, room, session) {
        ("/", _, Some(_)) => return Ok(Redirect::to("/chat/").into_response()),
        (_, Some(_), None) => return Ok(Redirect::to("/").into_response()),
        (_, Some(room), Some(session)) => Some(seed(&state, room, session).await?),
        _ => None,
    };
    let options = state.leptos.clone();
    let render = leptos_axum::render_app_to_stream_with_context(
        move || {
            if let Some(seed) = seed.clone() {
                leptos::prelude::provide_context(seed);
            }
        },
        move || app::shell(options.clone()),
    );
    Ok(render(request).await)
}

/// What a room's page starts from: its latest messages, drawn by the
/// server, so they are on screen before the WASM arrives (and in a page
/// the browser keeps for offline use). Who is online is left to the
/// socket: a page kept for later must not show stale company.
async fn seed(
    state: &AppState,
    room: String,
    session: crate::store::SessionRow,
) -> Result<Seed, AppError> {
    let history = state.hub.history(&room, None).await?;
    Ok(Seed(ServerFrame::Welcome {
        room,
        author: session::author_tag(&session.id),
        username: session.username,
        online_users: Vec::new(),
        history: history.messages,
        complete: history.complete,
    }))
}

/// How the client wants its answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wants {
    Json,
    /// A browser form: redirects and pages.
    Html,
}

fn wants(headers: &HeaderMap, body: &[u8]) -> Wants {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let content_type = header(header::CONTENT_TYPE);
    if content_type.starts_with("application/json") {
        Wants::Json
    } else if content_type.starts_with("application/x-www-form-urlencoded")
        || content_type.starts_with("multipart/form-data")
        || (body.is_empty() && header(header::ACCEPT).contains("text/html"))
    {
        Wants::Html
    } else {
        Wants::Json
    }
}

async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    if !security::post_allowed(&state.config, &headers) {
        return Err(AppError::ForeignOrigin);
    }
    let body = match body {
        Ok(body) => body,
        // Only a name far over the limit makes a body this large.
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let wants = wants(&headers, b"-");
            let error = AppError::Invalid(names::NameError::TooLong.to_string());
            return Ok(refuse(wants, error, String::new()));
        }
        Err(rejection) => return Ok(rejection.into_response()),
    };
    let wants = wants(&headers, &body);
    let typed = match wants {
        Wants::Json => {
            serde_json::from_slice::<LoginRequest>(&body)
                .map_err(|_| {
                    AppError::BadRequest(r#"expected a JSON body like {"username":"John"}"#.into())
                })?
                .username
        }
        Wants::Html => form_urlencoded::parse(&body)
            .find(|(key, _)| key == "username")
            .map(|(_, value)| value.into_owned())
            .unwrap_or_default(),
    };
    if let Err(error) = state.limits.login(client) {
        tracing::debug!(%client, "too many logins");
        return Ok(refuse(wants, error, typed));
    }
    let name = match names::validate(&typed) {
        Ok(name) => name,
        Err(error) => return Ok(refuse(wants, AppError::Invalid(error.to_string()), typed)),
    };
    // A browser that logs in again leaves its old session first, so that
    // session cannot be used again and its name is free for this login.
    if let Some(old) = session::presented(&headers, state.config.cookie_secure) {
        state.hub.logout(&old).await?;
    }
    let (token, id) = session::mint();
    let username = state.hub.login(id, &name).await?;
    tracing::info!(user = %username, "login");
    let cookie = session::set_cookie(&token, state.config.cookie_secure);
    // What an earlier login left for offline use is not cleared here: its
    // outbox is its own (by author tag), and its kept pages went when the
    // login page was served (see `public/sw.js`).
    let headers = [(header::SET_COOKIE, cookie)];
    Ok(match wants {
        Wants::Json => (headers, Json(LoginResponse { username })).into_response(),
        Wants::Html => (headers, Redirect::to("/chat/")).into_response(),
    })
}

/// A refused login: the login page again with the reason (form), or
/// `{"error": ...}` (JSON), with the error's status and `Retry-After`.
fn refuse(wants: Wants, error: AppError, typed: String) -> Response {
    match wants {
        Wants::Html => {
            let status = error.status();
            let retry_after = error
                .retry_after()
                .map(|seconds| [(header::RETRY_AFTER, HeaderValue::from(seconds))]);
            let page = app::login_error_document(error.to_string(), typed);
            (status, retry_after, Html(page)).into_response()
        }
        Wants::Json => error.into_response(),
    }
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    if !security::post_allowed(&state.config, &headers) {
        return Err(AppError::ForeignOrigin);
    }
    let wants = wants(&headers, &body);
    // The browser forgets the session, and with it the pages kept for
    // offline use and the messages still waiting to be sent.
    let clear = [
        (
            header::SET_COOKIE,
            session::clear_cookie(state.config.cookie_secure),
        ),
        clear_site_storage(),
    ];
    let ended = match session::presented(&headers, state.config.cookie_secure) {
        // The name and the sockets are gone even when the database failed:
        // the browser forgets the cookie too, so it cannot come back on it.
        Some(id) => match state.hub.logout(&id).await {
            Ok(ended) => ended,
            Err(error) => return Ok((clear, AppError::from(error)).into_response()),
        },
        None => false,
    };
    if ended {
        tracing::info!("logout");
    }
    Ok(match (wants, ended) {
        (Wants::Html, _) => (clear, Redirect::to("/")).into_response(),
        (Wants::Json, true) => (clear, StatusCode::NO_CONTENT).into_response(),
        (Wants::Json, false) => (clear, AppError::Unauthorized).into_response(),
    })
}

/// `Clear-Site-Data: "storage"`: the service worker, its caches and the
/// outbox of messages typed offline go (cookies are set apart).
fn clear_site_storage() -> (header::HeaderName, String) {
    (
        header::HeaderName::from_static("clear-site-data"),
        "\"storage\"".to_string(),
    )
}

/// Everyone online, or with `?room=NAME` that room's people.
async fn online_users(
    State(state): State<AppState>,
    _: Authenticated,
    RawQuery(query): RawQuery,
) -> Result<Json<OnlineUsers>, AppError> {
    let mut room = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if key == "room" {
            room = Some(names::room(&value)?);
        }
    }
    Ok(Json(OnlineUsers {
        online_users: state.hub.online(room.as_deref()),
    }))
}

/// The session's room list.
async fn rooms(
    State(state): State<AppState>,
    Authenticated(session): Authenticated,
) -> Result<Json<RoomList>, AppError> {
    let id = session::SessionId::from_stored(&session.id);
    let rooms = state.hub.rooms(&id).await?;
    Ok(Json(RoomList {
        rooms: rooms
            .into_iter()
            .map(|(name, unread)| RoomSummary { name, unread })
            .collect(),
    }))
}

/// `?q=TEXT[&room=NAME]`: the newest messages with every term of the text.
async fn search(
    State(state): State<AppState>,
    _: Authenticated,
    RawQuery(query): RawQuery,
) -> Result<Json<SearchResults>, AppError> {
    let mut text = String::new();
    let mut room = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*key {
            "q" => text = value.into_owned(),
            "room" => room = Some(names::room(&value)?),
            _ => {}
        }
    }
    let plan =
        crate::search::plan(&text).map_err(|error| AppError::BadRequest(error.to_string()))?;
    let results = if plan.is_empty() {
        Vec::new()
    } else {
        state
            .hub
            .store()
            .search(&plan, room.as_deref(), SEARCH_RESULTS)
            .await?
    };
    Ok(Json(SearchResults { results }))
}

/// `?room=NAME&before=ID&limit=N`: a room's older history, newest last.
async fn messages(
    State(state): State<AppState>,
    _: Authenticated,
    RawQuery(query): RawQuery,
) -> Result<Json<MessagePage>, AppError> {
    let mut before = None;
    let mut limit = HISTORY_PAGE;
    let mut room = room::LOBBY.to_string();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*key {
            "room" => room = names::room(&value)?,
            "before" => {
                before = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| AppError::BadRequest("before must be a message id".into()))?,
                )
            }
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .map_err(|_| AppError::BadRequest("limit must be a positive number".into()))?
                    .clamp(1, MAX_HISTORY_PAGE)
            }
            _ => {}
        }
    }
    let store = state.hub.store();
    let messages = match before {
        Some(before) => store.before(&room, before, limit).await?,
        None => store.latest(&room, limit).await?,
    };
    Ok(Json(MessagePage { messages }))
}

/// Each dependency on a line of its own (`database: ok`, `redis:
/// unreachable`). 503 only when the database does not answer: without
/// Redis a server still stores, acks and serves its own sockets, and the
/// others' messages come from the database.
async fn healthz(State(state): State<AppState>) -> Response {
    let database = state.hub.store().ping().await;
    if let Err(error) = &database {
        tracing::error!(%error, "health check failed");
    }
    let word = |ok: bool| if ok { "ok" } else { "unreachable" };
    let mut body = format!("database: {}\n", word(database.is_ok()));
    if let Some(reachable) = state.hub.bus_reachable() {
        body.push_str(&format!("redis: {}\n", word(reachable)));
    }
    let status = if database.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.hub.metrics().render(),
    )
        .into_response()
}
