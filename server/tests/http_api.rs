//! The HTTP surface as a browser or a script sees it: logins and names,
//! pages and redirects, the JSON API, health, metrics and headers.

mod common;

use std::{collections::BTreeSet, time::Duration};

use app::protocol::ChatMessage;
use common::{header_text, metric_value, session_cookie, set_cookie, TestServer};
use http::{header, StatusCode};
use serde_json::json;
use server::config::MetricsBind;
use tokio::time::Instant;

/// Everything after `name=` in a `Set-Cookie` value, as attribute names.
fn cookie_attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|attribute| attribute.trim().to_ascii_lowercase())
        .collect()
}

/// Asserts a 422 with exactly `{"error": "<something>"}`; returns the message.
async fn refused_as_json(response: reqwest::Response, what: &str) -> String {
    assert_eq!(
        response.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "{what}"
    );
    assert!(
        session_cookie(&response).is_none(),
        "{what}: no session for a refused name"
    );
    let body: serde_json::Value = response.json().await.expect("a JSON error body");
    let object = body.as_object().expect("the error body is an object");
    assert_eq!(object.len(), 1, "{what}: only an error key, got {body}");
    let message = object["error"].as_str().expect("the error is a string");
    assert!(
        !message.trim().is_empty(),
        "{what}: the error says what is wrong"
    );
    message.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_name_gets_the_next_number() {
    let server = TestServer::start().await;
    let mut names = Vec::new();
    for _ in 0..3 {
        names.push(server.login("John").await.username);
    }
    assert_eq!(names, ["John", "John1", "John2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_people_logging_in_as_john_at_once_all_get_different_names() {
    let server = TestServer::start().await;
    let logins = (0..20).map(|_| server.login("John"));
    let names: Vec<String> = futures::future::join_all(logins)
        .await
        .into_iter()
        .map(|session| session.username)
        .collect();
    let distinct: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(
        distinct.len(),
        20,
        "every login got its own name: {names:?}"
    );
    let expected: BTreeSet<String> = std::iter::once("John".to_string())
        .chain((1..20).map(|n| format!("John{n}")))
        .collect();
    let got: BTreeSet<String> = names.into_iter().collect();
    assert_eq!(got, expected, "the first twenty free names");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_unique_whatever_their_case() {
    let server = TestServer::start().await;
    assert_eq!(server.login("John").await.username, "John");
    assert_eq!(server.login("john").await.username, "john1");
    assert_eq!(server.login("JOHN").await.username, "JOHN2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_names_are_refused_with_422_and_a_message() {
    let server = TestServer::start().await;
    let refused = [
        ("empty", String::new()),
        ("spaces only", "     ".to_string()),
        ("33 characters", "a".repeat(33)),
        ("10,000 characters", "a".repeat(10_000)),
        ("markup", "<b>x</b>".to_string()),
        ("a control character", "bell\u{7}".to_string()),
        ("a bidi override", "evil\u{202E}txt".to_string()),
        ("a zero-width space", "zero\u{200B}width".to_string()),
    ];
    for (what, name) in refused {
        refused_as_json(server.login_json(&name).await, what).await;
    }
    // The rules refuse only what they should.
    assert_eq!(server.login(&"a".repeat(32)).await.username, "a".repeat(32));
    assert_eq!(
        server.login("Zoë Ana-María j.r_2").await.username,
        "Zoë Ana-María j.r_2"
    );
    assert_eq!(server.login("  Padded  ").await.username, "Padded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_login_redirects_to_the_chat_with_a_session_cookie() {
    let server = TestServer::start().await;
    let response = server.login_form("username=John").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(header_text(&response, header::LOCATION), "/chat/");
    let set_cookie = set_cookie(&response).expect("the login sets the session cookie");
    let attributes = cookie_attributes(&set_cookie);
    assert!(attributes.contains(&"httponly".to_string()), "{set_cookie}");
    assert!(
        attributes.contains(&"samesite=lax".to_string()),
        "{set_cookie}"
    );
    let cookie = session_cookie(&response).expect("a session token");

    let chat = server.get("/chat/", Some(&cookie)).await;
    assert_eq!(
        chat.status(),
        StatusCode::OK,
        "the cookie opens the chat page"
    );
    let (mut socket, welcome) = server
        .join(&common::Session {
            username: "John".into(),
            cookie,
        })
        .await;
    assert_eq!(welcome.username, "John");
    socket.say("hello from a form login").await;
    assert_eq!(
        socket
            .wait_for_message("hello from a form login")
            .await
            .username,
        "John"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_form_login_shows_the_form_again_without_echoing_markup() {
    let server = TestServer::start().await;
    let name = "<script>alert(1)</script>";
    let expected = refused_as_json(server.login_json(name).await, "markup as JSON").await;

    let body = format!("username={}", url_encode(name));
    let response = server.login_form(body).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(session_cookie(&response).is_none());
    assert!(
        header_text(&response, header::CONTENT_TYPE).starts_with("text/html"),
        "the answer is a page"
    );
    let page = response.text().await.expect("the page");
    assert!(page.contains("<form"), "the form is there to try again");
    assert!(
        page.contains("action=\"/api/login\""),
        "the form posts to the login"
    );
    assert!(
        page.contains("name=\"username\""),
        "the form has the name field"
    );
    assert!(
        page.contains(&expected),
        "the page says what is wrong: {expected}"
    );
    assert!(
        !page.contains("<script>alert(1)"),
        "the typed markup is never markup: {page}"
    );
    assert!(
        page.contains("value=\"&lt;script&gt;alert(1)&lt;/script&gt;\""),
        "what was typed is put back, as text: {page}"
    );
    assert!(
        page.contains("&lt;script&gt;"),
        "the typed name comes back escaped"
    );

    let breakout = "\"><img src=x onerror=alert(1)>";
    let response = server
        .login_form(format!("username={}", url_encode(breakout)))
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.expect("the page");
    assert!(!page.contains("<img"), "no attribute breakout: {page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_login_with_invalid_utf8_is_refused_and_the_server_carries_on() {
    let server = TestServer::start().await;
    let response = server.login_form("username=%FF%FE%C3").await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(session_cookie(&response).is_none());
    let response = server.login_form(b"username=J\xFFohn".to_vec()).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(server.get("/healthz", None).await.status(), StatusCode::OK);
    assert_eq!(server.login("John").await.username, "John");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_users_lists_each_connected_user_once_sorted() {
    let server = TestServer::start().await;
    let zed = server.login("Zed").await;
    let alice = server.login("Alice").await;
    let mia = server.login("Mia").await;
    let lurker = server.login("Lurker").await;
    let (_zed_socket, _) = server.join(&zed).await;
    let (_alice_tab1, _) = server.join(&alice).await;
    let (_alice_tab2, _) = server.join(&alice).await;
    let (_alice_tab3, _) = server.join(&alice).await;
    let (_mia_socket, _) = server.join(&mia).await;

    let response = server.get("/get_online_users/", Some(&lurker.cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header_text(&response, header::CONTENT_TYPE).starts_with("application/json"));
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body, json!({ "online_users": ["Alice", "Mia", "Zed"] }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_users_needs_a_session() {
    let server = TestServer::start().await;
    assert_eq!(
        server.get("/get_online_users/", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server
            .get("/get_online_users/", Some("chat_session=not-a-session"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_send_people_where_they_belong() {
    let server = TestServer::start().await;
    let home = server.get("/", None).await;
    assert_eq!(home.status(), StatusCode::OK);
    let page = home.text().await.expect("the login page");
    assert!(
        page.contains("<form") && page.contains("name=\"username\""),
        "the login form"
    );

    let chat = server.get("/chat/", None).await;
    assert_eq!(chat.status(), StatusCode::SEE_OTHER);
    assert_eq!(header_text(&chat, header::LOCATION), "/");

    let john = server.login("John").await;
    let home = server.get("/", Some(&john.cookie)).await;
    assert_eq!(home.status(), StatusCode::SEE_OTHER);
    assert_eq!(header_text(&home, header::LOCATION), "/chat/");
    assert_eq!(
        server.get("/chat/", Some(&john.cookie)).await.status(),
        StatusCode::OK
    );
}

/// The text of the page's `<script type="application/json" id="chat-seed">`.
fn seed_of(page: &str) -> Option<&str> {
    let start = page.find(r#"id="chat-seed""#)?;
    let open = start + page[start..].find('>')? + 1;
    let close = open + page[open..].find("</script>")?;
    Some(&page[open..close])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_page_already_holds_its_latest_messages_before_any_script_runs() {
    let server = TestServer::start().await;
    let ann = server.login("Ann").await;
    let (mut socket, _) = server.join_room(&ann, "rust").await;
    let texts = ["first in rust", "second </script><b>not bold</b> & more"];
    for text in texts {
        socket.say(text).await;
        socket.wait_for_message(text).await;
    }
    let bob = server.login("Bob").await;
    let response = server.get("/chat/rust/", Some(&bob.cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.expect("the room's page");

    // Drawn in the message list, as text (escaped), in order, by name.
    let list = &page[page.find(r#"id="messages""#).expect("the message list")..];
    let first = list
        .find("first in rust")
        .expect("the older message is drawn");
    let second = list
        .find("second &lt;/script&gt;&lt;b&gt;not bold&lt;/b&gt; &amp; more")
        .expect("the newer message is drawn, escaped");
    assert!(first < second, "oldest first");
    assert!(list.contains("Ann"), "under its author's name");
    assert!(
        !page.contains("<b>not bold</b>"),
        "no markup from a message"
    );

    // And handed to the browser's client as JSON that cannot end its script.
    let seed = seed_of(&page).expect("the page's seed for the client");
    assert!(!seed.contains('<'), "{seed}");
    let frame: app::protocol::ServerFrame = serde_json::from_str(seed).expect("a welcome");
    let app::protocol::ServerFrame::Welcome {
        room,
        username,
        history,
        online_users,
        ..
    } = frame
    else {
        panic!("the seed is a welcome: {seed}");
    };
    assert_eq!((room.as_str(), username.as_str()), ("rust", "Bob"));
    assert_eq!(
        history
            .iter()
            .map(|m| m.message.as_str())
            .collect::<Vec<_>>(),
        texts,
    );
    assert!(
        online_users.is_empty(),
        "who is online is the socket's to say"
    );

    // Another room's page holds only its own; the login page none.
    let lobby = server
        .get("/chat/", Some(&bob.cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(!lobby.contains("first in rust"), "{lobby}");
    assert!(seed_of(&lobby).is_some());
    let home = server.get("/", None).await.text().await.unwrap();
    assert!(seed_of(&home).is_none(), "{home}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_clears_what_the_browser_kept_for_offline_use() {
    let server = TestServer::start().await;
    let login = server.login_form("username=Ann").await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let cookie = session_cookie(&login).expect("a session");
    let logout = server.logout(&cookie).await;
    assert_eq!(
        header_text(&logout, header::HeaderName::from_static("clear-site-data")),
        r#""storage""#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_history_comes_in_pages_below_an_id() {
    let server = TestServer::start_with(|config| {
        config.rate_per_sec = 10_000.0;
        config.rate_burst = 10_000.0;
    })
    .await;
    let john = server.login("John").await;
    let (mut socket, _) = server.join(&john).await;
    let mut ids = Vec::new();
    for n in 0..120 {
        socket
            .say_with_id(&format!("message {n}"), &format!("c{n}"))
            .await;
    }
    for n in 0..120 {
        ids.push(socket.wait_for_ack(&format!("c{n}")).await);
    }
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids increase in sending order"
    );

    let before = ids[80];
    let page = server
        .history(&john.cookie, &format!("before={before}&limit=10"))
        .await;
    assert_eq!(page.iter().map(|m| m.id).collect::<Vec<_>>(), ids[70..80]);
    let texts: Vec<&str> = page.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(texts.first(), Some(&"message 70"));
    assert_eq!(texts.last(), Some(&"message 79"), "newest last");
    assert!(page.iter().all(|m| m.username == "John"));

    let default = server
        .history(&john.cookie, &format!("before={}", ids[119]))
        .await;
    assert_eq!(
        default.iter().map(|m| m.id).collect::<Vec<_>>(),
        ids[69..119],
        "50 by default"
    );

    let capped = server
        .history(&john.cookie, &format!("before={}&limit=500", ids[119]))
        .await;
    assert_eq!(capped.len(), 100, "at most 100");
    assert_eq!(
        capped.iter().map(|m| m.id).collect::<Vec<_>>(),
        ids[19..119]
    );
    assert!(capped.iter().all(|m: &ChatMessage| m.id < ids[119]));

    assert!(server
        .history(&john.cookie, &format!("before={}", ids[0]))
        .await
        .is_empty());

    assert_eq!(
        server
            .get(&format!("/api/messages?before={before}&limit=10"), None)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

/// A page is drawn for its reader: caches keep one copy per cookie, so no
/// shared cache hands one reader's page to another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_vary_by_cookie() {
    let server = TestServer::start().await;
    let ann = server.login("Ann").await;
    for (path, cookie) in [("/", None), ("/chat/", Some(ann.cookie.as_str()))] {
        let page = server.get(path, cookie).await;
        assert_eq!(page.status(), StatusCode::OK, "{path}");
        assert_eq!(header_text(&page, header::VARY), "Cookie", "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_200_and_names_the_database() {
    let server = TestServer::start().await;
    let health = server.get("/healthz", None).await;
    assert_eq!(health.status(), StatusCode::OK);
    // One server alone has no Redis to report on.
    assert_eq!(health.text().await.expect("a body"), "database: ok\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_list_every_series_from_the_start_and_move() {
    let server = TestServer::start().await;
    let names = [
        "chat_connections",
        "chat_users_online",
        "chat_messages_total",
        "chat_deliveries_total",
        "chat_dropped_clients_total",
    ];
    let text = server.metrics().await;
    for name in names {
        assert_eq!(
            metric_value(&text, name),
            Some(0.0),
            "{name} is 0 at the start:\n{text}"
        );
    }

    let john = server.login("John").await;
    let (mut socket, _) = server.join(&john).await;
    socket.post("counted", "c1").await;
    let text = server.metrics().await;
    assert_eq!(metric_value(&text, "chat_connections"), Some(1.0), "{text}");
    assert_eq!(
        metric_value(&text, "chat_users_online"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric_value(&text, "chat_messages_total"),
        Some(1.0),
        "{text}"
    );
    assert!(
        metric_value(&text, "chat_deliveries_total").unwrap_or(0.0) >= 1.0,
        "{text}"
    );
}

/// The nonce a `script-src` names, if any.
fn script_nonce(policy: &str) -> Option<String> {
    let script_src = policy
        .split(';')
        .map(str::trim)
        .find(|directive| directive.starts_with("script-src"))?;
    script_src
        .split_whitespace()
        .find_map(|source| source.strip_prefix("'nonce-"))
        .and_then(|rest| rest.strip_suffix('\''))
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_the_security_headers() {
    let server = TestServer::start().await;
    let john = server.login("John").await;
    let mut nonces = BTreeSet::new();
    for (path, cookie) in [
        ("/", None),
        ("/", None),
        ("/chat/", Some(john.cookie.as_str())),
    ] {
        let response = server.get(path, cookie).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let policy = header_text(&response, header::CONTENT_SECURITY_POLICY);
        let script_src = policy
            .split(';')
            .map(str::trim)
            .find(|directive| directive.starts_with("script-src"))
            .unwrap_or_else(|| panic!("{path}: no script-src in {policy:?}"));
        assert!(script_src.contains("'self'"), "{script_src}");
        assert!(script_src.contains("'wasm-unsafe-eval'"), "{script_src}");
        assert!(!policy.contains("'unsafe-inline'"), "{policy}");
        let nonce =
            script_nonce(&policy).unwrap_or_else(|| panic!("{path}: no nonce in {policy:?}"));
        assert!(
            nonce.len() >= 16,
            "a nonce long enough not to guess: {nonce}"
        );
        nonces.insert(nonce.clone());
        assert!(
            policy
                .split(';')
                .any(|d| d.trim() == "frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        assert_eq!(
            header_text(&response, header::X_CONTENT_TYPE_OPTIONS),
            "nosniff"
        );
        assert!(
            !header_text(&response, header::REFERRER_POLICY).is_empty(),
            "{path}: a Referrer-Policy"
        );
        let page = response.text().await.expect("the page");
        for tag in page.split("<script").skip(1) {
            let open_tag = tag.split('>').next().unwrap_or_default();
            assert!(
                open_tag.contains(&format!("nonce=\"{nonce}\"")),
                "{path}: every script carries this response's nonce: <script{open_tag}>"
            );
        }
    }
    assert_eq!(nonces.len(), 3, "a fresh nonce per response");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_from_a_foreign_origin_is_refused() {
    let server = TestServer::start().await;
    let response = server
        .http()
        .post(server.url("/api/login"))
        .header(header::ORIGIN, "http://evil.example")
        .json(&json!({ "username": "John" }))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(session_cookie(&response).is_none());

    let response = server
        .http()
        .post(server.url("/api/login"))
        .header(header::ORIGIN, server.origin())
        .json(&json!({ "username": "John" }))
        .send()
        .await
        .expect("an answer");
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the server's own origin may post"
    );
    let john = session_cookie(&response).expect("a session");
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["username"], "John", "the refused login held no name");

    let response = server
        .http()
        .post(server.url("/api/logout"))
        .header(header::ORIGIN, "http://evil.example")
        .header(header::COOKIE, &john)
        .header(header::CONTENT_TYPE, "application/json")
        .body("{}")
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        server.get("/get_online_users/", Some(&john)).await.status(),
        StatusCode::OK,
        "a forged logout ends nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_the_session_everywhere() {
    let server = TestServer::start().await;
    let john = server.login("John").await;
    assert_eq!(
        server
            .get("/get_online_users/", Some(&john.cookie))
            .await
            .status(),
        StatusCode::OK
    );

    let response = server.logout(&john.cookie).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    assert_eq!(
        server
            .get("/get_online_users/", Some(&john.cookie))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server
            .get("/api/messages", Some(&john.cookie))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let chat = server.get("/chat/", Some(&john.cookie)).await;
    assert_eq!(chat.status(), StatusCode::SEE_OTHER);
    assert_eq!(header_text(&chat, header::LOCATION), "/");
    let origin = server.origin();
    let upgrade = server
        .try_connect("", Some(&john.cookie), Some(&origin))
        .await;
    assert_eq!(upgrade.err(), Some(StatusCode::UNAUTHORIZED));

    assert_eq!(
        server.logout(&john.cookie).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.login("John").await.username,
        "John",
        "the name is free again"
    );
}

/// Percent-encodes everything but ASCII letters and digits.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The stored session a `chat_session=<token>` cookie names, however long
/// ago it was used.
async fn stored_session(server: &TestServer, cookie: &str) -> Option<server::store::SessionRow> {
    let token = cookie.split_once('=').expect("name=token").1;
    let store = server::store::open(server.database_url())
        .await
        .expect("the server's database opens");
    store
        .find_session(server::session::SessionId::of_token(token).as_str())
        .await
        .expect("the session table answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_login_ends_the_session_the_browser_presents() {
    let server = TestServer::start().await;
    let first = server.login("John").await;
    let mut socket = server.connect(&first).await;
    socket.welcome().await;

    let response = server
        .http()
        .post(server.url("/api/login"))
        .header(header::COOKIE, &first.cookie)
        .json(&json!({ "username": "John" }))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), StatusCode::OK);
    let second = session_cookie(&response).expect("a new session");
    assert_ne!(second, first.cookie);
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["username"], "John", "the old session's name was freed");

    assert_eq!(
        server
            .get("/get_online_users/", Some(&first.cookie))
            .await
            .status(),
        StatusCode::UNAUTHORIZED,
        "the old cookie opens nothing"
    );
    assert!(stored_session(&server, &first.cookie).await.is_none());
    socket.expect_close().await;
    assert_eq!(
        server
            .get("/get_online_users/", Some(&second))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_left_unused_ends_and_one_in_use_does_not() {
    // Long enough that a stall of a loaded machine between two uses of the
    // busy session (polled every tenth of a second) never looks like idling.
    let idle = Duration::from_millis(2_000);
    let server = TestServer::start_with(|config| {
        config.session_idle_ms = idle.as_millis() as u64;
    })
    .await;
    let idle_one = server.login("Sleepy").await;
    let busy = server.login("Busy").await;
    // Busy keeps using the session for over twice the idle time.
    let started = Instant::now();
    while started.elapsed() < idle * 2 + idle / 2 {
        assert_eq!(
            server
                .get("/get_online_users/", Some(&busy.cookie))
                .await
                .status(),
            StatusCode::OK,
            "a session in use lives on"
        );
        tokio::time::sleep(idle / 20).await;
    }
    let deadline = Instant::now() + common::CONDITION_TIMEOUT;
    while stored_session(&server, &idle_one.cookie).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "the idle session was never purged"
        );
        tokio::time::sleep(idle / 20).await;
    }
    assert_eq!(
        server
            .get("/get_online_users/", Some(&idle_one.cookie))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let chat = server.get("/chat/", Some(&idle_one.cookie)).await;
    assert_eq!(chat.status(), StatusCode::SEE_OTHER);
    assert_eq!(header_text(&chat, header::LOCATION), "/");
    assert!(stored_session(&server, &busy.cookie).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_that_never_connects_is_purged_after_the_unclaimed_time() {
    let server = TestServer::start_with(|config| config.unclaimed_name_ms = 1_000).await;
    let connected = server.login("Connected").await;
    let (mut socket, _) = server.join(&connected).await;
    let lurker = server.login("Lurker").await;
    let deadline = Instant::now() + common::CONDITION_TIMEOUT;
    while server
        .get("/get_online_users/", Some(&lurker.cookie))
        .await
        .status()
        == StatusCode::OK
    {
        assert!(
            Instant::now() < deadline,
            "the unclaimed session never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stored_session(&server, &lurker.cookie).await.is_none());
    assert_eq!(
        server.online_users(&connected.cookie).await,
        ["Connected"],
        "a session that opened a socket stays"
    );
    socket.say("still here").await;
    socket.wait_for_message("still here").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_https_every_answer_asks_for_https_only() {
    let secure = TestServer::start_with(|config| config.cookie_secure = true).await;
    for path in ["/", "/healthz", "/get_online_users/"] {
        let response = secure.get(path, None).await;
        assert_eq!(
            header_text(&response, header::STRICT_TRANSPORT_SECURITY),
            "max-age=31536000; includeSubDomains",
            "{path}"
        );
    }
    let plain = TestServer::start().await;
    let response = plain.get("/", None).await;
    assert!(response
        .headers()
        .get(header::STRICT_TRANSPORT_SECURITY)
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_turned_off() {
    let server =
        TestServer::start_with(|config| config.metrics_bind = Some(MetricsBind::Off)).await;
    assert_eq!(
        server.get("/metrics", None).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(server.get("/healthz", None).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_move_to_an_address_of_their_own() {
    let metrics_addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        probe.local_addr().expect("its address")
    };
    let server = TestServer::start_with(|config| {
        config.metrics_bind = Some(MetricsBind::At(metrics_addr));
    })
    .await;
    assert_eq!(
        server.get("/metrics", None).await.status(),
        StatusCode::NOT_FOUND,
        "not on the public address"
    );
    let metrics = format!("http://{metrics_addr}/metrics");
    let response = server.http().get(&metrics).send().await.expect("an answer");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("the metrics text");
    assert_eq!(metric_value(&text, "chat_connections"), Some(0.0), "{text}");

    server.stop().await;
    assert!(
        reqwest::Client::new().get(&metrics).send().await.is_err(),
        "the metrics address closes with the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_the_server_cannot_run_with_stop_it_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut config = server::config::Config::defaults();
    config.database_url = format!("sqlite://{}/chat.db", dir.path().display());
    config.queue_depth = 0;
    config.ping_interval_ms = 0;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let error = tokio::time::timeout(
        common::CONDITION_TIMEOUT,
        server::serve(config, listener, std::future::pending()),
    )
    .await
    .expect("the server gives up at once")
    .expect_err("the server refuses to start");
    let message = format!("{error:#}");
    assert!(
        message.contains("QUEUE_DEPTH") && message.contains("PING_INTERVAL_MS"),
        "{message}"
    );
}

/// The built files go out compressed to browsers that take it (the build
/// writes the copies), plain to those that do not, and are revalidated on
/// every load since their names carry no hash.
#[tokio::test]
async fn built_files_are_sent_precompressed() {
    let site = tempfile::tempdir().expect("a temporary directory");
    let pkg = site.path().join("pkg");
    std::fs::create_dir_all(&pkg).expect("the pkg folder");
    std::fs::write(pkg.join("chat.wasm"), b"\0asm plain").expect("a file");
    std::fs::write(pkg.join("chat.wasm.br"), b"brotli bytes").expect("a file");
    std::fs::write(pkg.join("chat.wasm.gz"), b"gzip bytes").expect("a file");
    let root = site.path().display().to_string();
    let server = TestServer::start_with(|config| config.site_root = root).await;
    for (accept, encoding, body) in [
        ("gzip, deflate, br", "br", &b"brotli bytes"[..]),
        ("gzip", "gzip", b"gzip bytes"),
        ("identity", "", b"\0asm plain"),
    ] {
        let response = server
            .http()
            .get(server.url("/pkg/chat.wasm"))
            .header(header::ACCEPT_ENCODING, accept)
            .send()
            .await
            .expect("the server answers");
        assert_eq!(response.status(), StatusCode::OK, "{accept}");
        assert_eq!(header_text(&response, header::CONTENT_ENCODING), encoding);
        assert_eq!(
            header_text(&response, header::CONTENT_TYPE),
            "application/wasm"
        );
        assert_eq!(header_text(&response, header::CACHE_CONTROL), "no-cache");
        assert_eq!(header_text(&response, header::VARY), "accept-encoding");
        assert_eq!(&response.bytes().await.expect("a body")[..], body);
    }
    let missing = server.get("/pkg/nothing.js", None).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(header_text(&missing, header::CACHE_CONTROL), "no-cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_named_by_their_content_are_kept_for_a_year() {
    let site = tempfile::tempdir().expect("a temporary directory");
    let pkg = site.path().join("pkg");
    std::fs::create_dir_all(pkg.join("snippets")).expect("the pkg folder");
    let hashed = "chat.Qb3K0x_rT9-aZc1mN2pL4w.wasm";
    for name in [hashed, "chat.wasm", "snippets/outbox.js"] {
        std::fs::write(pkg.join(name), b"\0asm").expect("a file");
    }
    std::fs::write(pkg.join(format!("{hashed}.br")), b"brotli bytes").expect("a file");
    let root = site.path().display().to_string();
    let server = TestServer::start_with(|config| config.site_root = root).await;
    for (path, policy) in [
        (
            format!("/pkg/{hashed}"),
            "public, max-age=31536000, immutable",
        ),
        ("/pkg/chat.wasm".to_string(), "no-cache"),
        ("/pkg/snippets/outbox.js".to_string(), "no-cache"),
    ] {
        let response = server
            .http()
            .get(server.url(&path))
            .header(header::ACCEPT_ENCODING, "br")
            .send()
            .await
            .expect("the server answers");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header_text(&response, header::CACHE_CONTROL),
            policy,
            "{path}"
        );
    }
}

/// A logout the database fails to record still ends what the user sees:
/// the sockets close with the signed-out reason, the name is free, and the
/// browser is told to forget its cookie, so it cannot walk back in on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_the_database_refuses_still_signs_the_browser_out() {
    use sqlx::Connection as _;
    let server = TestServer::start().await;
    let alice = server.login("Alice").await;
    let (mut socket, _) = server.join(&alice).await;
    let mut db = sqlx::SqliteConnection::connect(server.database_url())
        .await
        .expect("the database");
    sqlx::query(
        "CREATE TRIGGER stuck BEFORE DELETE ON sessions BEGIN SELECT RAISE(ABORT, 'disk failure'); END",
    )
    .execute(&mut db)
    .await
    .expect("the trigger");
    let response = server.logout(&alice.cookie).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let cleared = set_cookie(&response).expect("the cookie is cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let (code, reason, _) = socket.expect_close_with_frames().await;
    assert_eq!(
        (code, reason.as_str()),
        (1000, app::protocol::SIGNED_OUT_REASON)
    );
    assert_eq!(
        server.login("alice").await.username,
        "alice",
        "the name is free"
    );
}
