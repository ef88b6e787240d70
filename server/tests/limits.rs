//! Per-address limits: one address that floods logins or hoards sockets is
//! told to wait (429 with `Retry-After`) while everyone else carries on.
//! The tests stand in for several addresses with a trusted proxy on
//! 127.0.0.1 and its `X-Forwarded-For`.

mod common;

use std::{net::IpAddr, time::Duration};

use common::{header_text, session_cookie, TestServer, CONDITION_TIMEOUT};
use http::{header, StatusCode};
use serde_json::json;
use tokio::time::Instant;

const LOCALHOST: &str = "127.0.0.1";
/// Pause between two tries of something that becomes possible soon.
const RETRY_EVERY: Duration = Duration::from_millis(20);

fn localhost() -> IpAddr {
    LOCALHOST.parse().expect("an address")
}

/// `POST /api/login` as JSON, passed on by a proxy for `forwarded_for`.
async fn login_from(
    server: &TestServer,
    forwarded_for: Option<&str>,
    username: &str,
) -> reqwest::Response {
    let mut request = server
        .http()
        .post(server.url("/api/login"))
        .json(&json!({ "username": username }));
    if let Some(forwarded_for) = forwarded_for {
        request = request.header("x-forwarded-for", forwarded_for);
    }
    request.send().await.expect("the server answers")
}

/// Logs in from one address until a login is refused; how many got through
/// and the refusal. Fails the test if none is refused within `attempts`.
async fn flood(
    server: &TestServer,
    forwarded_for: impl Fn(usize) -> Option<String>,
    attempts: usize,
) -> (usize, reqwest::Response) {
    for n in 0..attempts {
        let response = login_from(server, forwarded_for(n).as_deref(), &format!("user{n}")).await;
        if response.status() != StatusCode::OK {
            return (n, response);
        }
    }
    panic!("{attempts} logins from one address, none refused");
}

/// Asserts a 429 with a `Retry-After` in seconds and a JSON error; returns
/// the seconds.
async fn too_many(response: reqwest::Response) -> u64 {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        session_cookie(&response).is_none(),
        "no session when refused"
    );
    let retry_after: u64 = header_text(&response, header::RETRY_AFTER)
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(retry_after >= 1);
    let body: serde_json::Value = response.json().await.expect("a JSON error body");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.trim().is_empty()),
        "{body}"
    );
    retry_after
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_gets_429_after_the_burst_while_other_addresses_log_in() {
    let server = TestServer::start_with(|config| {
        config.login_rate = 2;
        config.trusted_proxies = vec![localhost()];
    })
    .await;
    let started = Instant::now();
    let (allowed, refused) = flood(&server, |_| Some("203.0.113.1".into()), 100).await;
    let retry_after = too_many(refused).await;
    // A burst of ten times the rate, plus what refilled meanwhile.
    let refill = (started.elapsed().as_secs_f64() * 2.0).floor() as usize;
    assert!(
        (20..=20 + refill).contains(&allowed),
        "a burst of 20 (+{refill} refilled), got {allowed}"
    );
    assert!(
        retry_after <= 1,
        "one login frees up within a second at 2/s"
    );

    for other in [Some("203.0.113.2"), Some("10.1.1.1, 203.0.113.3"), None] {
        let response = login_from(&server, other, "Bystander").await;
        assert_eq!(response.status(), StatusCode::OK, "{other:?} still logs in");
    }

    // A form login over the limit gets the login page again, with the wait.
    let refused = server
        .http()
        .post(server.url("/api/login"))
        .header("x-forwarded-for", "203.0.113.1")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("username=Mallory")
        .send()
        .await
        .expect("the server answers");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(!header_text(&refused, header::RETRY_AFTER).is_empty());
    let page = refused.text().await.expect("the login page");
    assert!(page.contains("<form") && page.contains("too many logins"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let server = TestServer::start_with(|config| config.login_rate = 1).await;
    // Every login claims another address; all come from 127.0.0.1.
    let (allowed, refused) = flood(&server, |n| Some(format!("198.51.100.{n}")), 100).await;
    too_many(refused).await;
    assert!(allowed < 20, "{allowed} logins before the limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_over_the_per_address_cap_get_429_and_a_closed_one_frees_its_slot() {
    let server = TestServer::start_with(|config| {
        config.max_sockets_per_address = 2;
        config.trusted_proxies = vec![localhost()];
    })
    .await;
    let alice = server.login("Alice").await;
    let mallory = server.login("Mallory").await;
    let crowded = "203.0.113.1";
    let mut first = server
        .try_connect_forwarded(&mallory, crowded)
        .await
        .expect("the first socket");
    first.welcome().await;
    let mut second = server
        .try_connect_forwarded(&mallory, crowded)
        .await
        .expect("the second socket");
    second.welcome().await;

    let refused = server
        .try_connect_forwarded(&alice, crowded)
        .await
        .err()
        .expect("the third socket from one address is refused");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after = refused
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    assert!(retry_after.is_some_and(|s| s >= 1), "{retry_after:?}");

    // Other addresses, and the proxy's own, are not affected.
    let (mut elsewhere, _) = match server.try_connect_forwarded(&alice, "203.0.113.2").await {
        Ok(mut client) => {
            let welcome = client.welcome().await;
            (client, welcome)
        }
        Err(refused) => panic!("another address is refused: {}", refused.status()),
    };
    let (_local, _) = server.join(&alice).await;
    second.say("still talking").await;
    elsewhere.wait_for_message("still talking").await;

    // A closed socket gives its slot back.
    first.close().await;
    let deadline = Instant::now() + CONDITION_TIMEOUT;
    let mut again = loop {
        match server.try_connect_forwarded(&mallory, crowded).await {
            Ok(client) => break client,
            Err(refused) => {
                assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
                assert!(
                    Instant::now() < deadline,
                    "the closed socket's slot never came back"
                );
                tokio::time::sleep(RETRY_EVERY).await;
            }
        }
    };
    again.welcome().await;
}

/// Opening sockets in a loop from one address is refused once past the
/// burst (each open costs the server reads); other addresses still get in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_in_a_loop_gets_429_after_the_burst() {
    let server = TestServer::start_with(|config| {
        // One a second, bursts of ten: the loop below meets the limit at
        // once, however slow the machine.
        config.socket_rate = 1;
        config.trusted_proxies = vec![localhost()];
    })
    .await;
    let mallory = server.login("Mallory").await;
    let alice = server.login("Alice").await;
    let looping = "203.0.113.7";
    let mut opened = 0;
    let refused = loop {
        assert!(opened < 100, "100 sockets opened in a row, none refused");
        match server.try_connect_forwarded(&mallory, looping).await {
            Ok(client) => {
                client.close().await;
                opened += 1;
            }
            Err(refused) => break refused,
        }
    };
    assert!(
        (10..=12).contains(&opened),
        "the burst of ten, then 429: {opened}"
    );
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key(header::RETRY_AFTER));
    let mut elsewhere = server
        .try_connect_forwarded(&alice, "203.0.113.8")
        .await
        .expect("another address still connects");
    elsewhere.welcome().await;
}
