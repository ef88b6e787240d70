//! What a room's page starts from: the reader's name and the room's latest
//! messages, as the server read them when it drew the page.
//!
//! The server hands it to the render as context (so the messages are in
//! the HTML) and writes it into the page's head as JSON; the browser reads
//! it back before it hydrates, so both sides draw the same list. A page the
//! browser keeps for offline use keeps its seed too: it opens with the
//! history it had.

use crate::protocol::ServerFrame;

/// A `welcome` that came with the page rather than over a socket (nobody
/// online in it: that is the socket's to say).
#[derive(Clone, Debug)]
pub struct Seed(pub ServerFrame);

/// The `id` of the `<script type="application/json">` that carries it.
pub const SCRIPT_ID: &str = "chat-seed";

#[cfg(feature = "ssr")]
impl Seed {
    /// As JSON that cannot end its `<script>` element or open a comment in
    /// it: `<`, `>` and `&` are written as `\u` escapes, which JSON reads
    /// back as the same characters.
    pub fn script_text(&self) -> String {
        let json = serde_json::to_string(&self.0).unwrap_or_else(|_| "null".to_string());
        let mut text = String::with_capacity(json.len() + 16);
        for c in json.chars() {
            match c {
                '<' => text.push_str("\\u003c"),
                '>' => text.push_str("\\u003e"),
                '&' => text.push_str("\\u0026"),
                c => text.push(c),
            }
        }
        text
    }
}

/// This page's seed, if it has one.
#[cfg(feature = "ssr")]
pub fn take() -> Option<ServerFrame> {
    leptos::prelude::use_context::<Seed>().map(|seed| seed.0)
}

/// This page's seed, read from its head.
#[cfg(feature = "hydrate")]
pub fn take() -> Option<ServerFrame> {
    let text = leptos::prelude::document()
        .get_element_by_id(SCRIPT_ID)?
        .text_content()?;
    serde_json::from_str(&text).ok()
}

#[cfg(not(any(feature = "ssr", feature = "hydrate")))]
pub fn take() -> Option<ServerFrame> {
    None
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;
    use crate::protocol::ChatMessage;

    #[test]
    fn the_seed_cannot_end_its_script_element_and_reads_back_the_same() {
        let text = "</script><!-- & <b>";
        let seed = Seed(ServerFrame::Welcome {
            room: "lobby".into(),
            username: "Ann".into(),
            author: "tag".into(),
            online_users: Vec::new(),
            history: vec![ChatMessage {
                id: 1,
                room: "lobby".into(),
                username: "Ann".into(),
                author: "tag".into(),
                message: text.into(),
                sent_at: "2026-12-03T10:00:00.000Z".into(),
                client_id: None,
                edited_at: None,
            }],
            complete: true,
        });
        let script = seed.script_text();
        assert!(!script.contains('<') && !script.contains('>') && !script.contains('&'));
        let ServerFrame::Welcome { history, .. } = serde_json::from_str(&script).unwrap() else {
            panic!("not a welcome: {script}");
        };
        assert_eq!(history[0].message, text);
    }
}
