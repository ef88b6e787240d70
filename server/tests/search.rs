//! Search across rooms: words, parts of words, URLs, identifiers, CJK text
//! and several terms at once, newest first; any text at all gets a
//! defined answer.

mod common;

use app::protocol::{ChatMessage, SearchResults};
use common::{Session, TestServer};
use http::StatusCode;

/// `/api/search?{query}`: the status and, when 200, the texts found.
async fn search(server: &TestServer, who: &Session, query: &str) -> (StatusCode, Vec<String>) {
    let response = server
        .get(&format!("/api/search?{query}"), Some(&who.cookie))
        .await;
    let status = response.status();
    if status != StatusCode::OK {
        return (status, Vec::new());
    }
    let found: SearchResults = response.json().await.expect("search results");
    let texts = found
        .results
        .iter()
        .map(|m: &ChatMessage| m.message.clone())
        .collect();
    (status, texts)
}

fn q(text: &str) -> String {
    format!("q={}", urlencode(text))
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_words_parts_urls_identifiers_and_cjk_newest_first() {
    let server = TestServer::start().await;
    let ann = server.login("Ann").await;
    let (mut rust, _) = server.join_room(&ann, "rust").await;
    let (mut lobby, _) = server.join(&ann).await;
    let deploy = "Deploy the fix with tokio::spawn before Friday";
    rust.post(deploy, "m1").await;
    lobby
        .post("Build failed: ERR_42 in the pipeline", "m2")
        .await;
    let docs = "Docs at https://example.com/guide?page=2#top";
    rust.post(docs, "m3").await;
    lobby.post("東京都に行きます", "m4").await;
    lobby.post("unrelated chatter", "m5").await;
    lobby.post("hi there", "m6").await;
    lobby.post("Un café, s'il vous plaît", "m8").await;

    let found = |text: &'static str| {
        let server = &server;
        let ann = &ann;
        async move { search(server, ann, &q(text)).await.1 }
    };
    assert_eq!(found("deploy").await, [deploy], "a word, in any case");
    assert_eq!(found("PLOY").await, [deploy], "a part of a word");
    assert_eq!(found("example.com/guide").await, [docs], "a URL");
    assert_eq!(found("tokio::spawn").await, [deploy], "an identifier");
    assert_eq!(
        found("err_42").await,
        ["Build failed: ERR_42 in the pipeline"]
    );
    assert_eq!(
        found("東京都").await,
        ["東京都に行きます"],
        "CJK without spaces"
    );
    assert_eq!(found("京都に").await, ["東京都に行きます"]);
    assert_eq!(found("friday FIX").await, [deploy], "every term, any order");
    assert!(found("fix chatter").await.is_empty());
    assert_eq!(found("hi").await, ["hi there"], "a short word by its start");
    assert_eq!(
        found("CAFE plait").await,
        ["Un café, s'il vous plaît"],
        "accents and case folded"
    );
    assert!(found("nothing like it").await.is_empty());

    // Across rooms unless one is named; newest first.
    let again = "deploy again";
    lobby.post(again, "m7").await;
    assert_eq!(found("deploy").await, [again, deploy]);
    let (_, in_rust) = search(&server, &ann, &format!("{}&room=rust", q("deploy"))).await;
    assert_eq!(in_rust, [deploy]);
    let (status, _) = search(&server, &ann, &format!("{}&room=Rust", q("deploy"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_search_text_gets_a_defined_answer() {
    let server = TestServer::start().await;
    let ann = server.login("Ann").await;
    let (mut lobby, _) = server.join(&ann).await;
    let odd = r#"Quotes "inside" and NEAR(a b) - *stars* OR x"#;
    lobby.post(odd, "m1").await;
    lobby.post("plain words", "m2").await;

    for text in [
        "\"",
        "*",
        "-",
        "NEAR(",
        "\"unbalanced",
        "a\"b",
        "OR",
        "x AND y",
        "^",
        "col:umn",
        "'; DROP TABLE messages; --",
        "ab\0cd",
        "a\0",
        "NUL\0inside",
    ] {
        let (status, _) = search(&server, &ann, &q(text)).await;
        assert_eq!(status, StatusCode::OK, "{text:?}");
    }
    // Query syntax is searched for as text.
    for text in ["NEAR(a", "\"inside\"", "*stars*", "(a b) -"] {
        let (_, found) = search(&server, &ann, &q(text)).await;
        assert_eq!(found, [odd], "{text:?}");
    }
    for text in ["", "   ", &"x".repeat(201), &"é".repeat(10_000)] {
        let response = server
            .get(&format!("/api/search?{}", q(text)), Some(&ann.cookie))
            .await;
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "{} chars",
            text.len()
        );
        let body = response.text().await.expect("a body");
        assert!(
            body.contains("Type something") || body.contains("at most 200"),
            "{body}"
        );
    }
    let (status, _) = search(&server, &ann, "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no q at all");
    assert_eq!(
        server.get("/api/search?q=plain", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // And the store answers as before.
    assert_eq!(search(&server, &ann, &q("plain")).await.1, ["plain words"]);
    assert_eq!(server.history(&ann.cookie, "").await.len(), 2);
}
