//! What a client may send up a socket, and the documented answer to anything
//! else. Pure functions: the property tests throw arbitrary text at them.

use app::protocol::{ClientFrame, ErrorCode, MAX_CLIENT_ID_CHARS, MAX_MESSAGE_CHARS};
use serde::Deserialize;

/// A frame that passed its checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Message(Incoming),
    /// The user is typing: forwarded to the room, never stored.
    Typing,
    /// The user has seen the room up to this message id.
    Read(i64),
    /// Replace the text of message `id` (checked like a message's).
    Edit {
        id: i64,
        text: String,
        client_id: Option<String>,
    },
    /// Delete message `id`.
    Delete {
        id: i64,
        client_id: Option<String>,
    },
}

/// A message worth storing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// Trimmed of surrounding whitespace.
    pub message: String,
    pub client_id: Option<String>,
}

/// A frame that gets an `error` frame back (the socket stays open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
    /// Repeated from the frame, so the client can settle its pending message.
    pub client_id: Option<String>,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>, client_id: Option<String>) -> Self {
        Self {
            code,
            message: message.into(),
            client_id,
        }
    }
}

/// Decodes and checks one text frame.
pub fn decode(text: &str) -> Result<Inbound, Refusal> {
    match serde_json::from_str::<ClientFrame>(text) {
        Ok(ClientFrame::Message { message, client_id }) => {
            check_message(message, client_id).map(Inbound::Message)
        }
        Ok(ClientFrame::Typing) => Ok(Inbound::Typing),
        Ok(ClientFrame::Read { id }) if id >= 0 => Ok(Inbound::Read(id)),
        Ok(ClientFrame::Read { .. }) => Err(Refusal::new(
            ErrorCode::BadFrame,
            "read needs a message id",
            None,
        )),
        Ok(ClientFrame::Edit {
            id,
            message,
            client_id,
        }) => check_message(message, client_id).map(|checked| Inbound::Edit {
            id,
            text: checked.message,
            client_id: checked.client_id,
        }),
        Ok(ClientFrame::Delete { id, client_id }) => {
            check_client_id(&client_id)?;
            Ok(Inbound::Delete { id, client_id })
        }
        Err(_) => Err(Refusal::new(
            ErrorCode::BadFrame,
            r#"Not a frame this server knows: send {"type":"message","message":"..."}, {"type":"typing"}, {"type":"read","id":N}, {"type":"edit","id":N,"message":"..."} or {"type":"delete","id":N}"#,
            loose_client_id(text),
        )),
    }
}

fn check_message(message: String, client_id: Option<String>) -> Result<Incoming, Refusal> {
    check_client_id(&client_id)?;
    let trimmed = message.trim();
    if trimmed.is_empty() {
        return Err(Refusal::new(
            ErrorCode::Empty,
            "The message is empty.",
            client_id,
        ));
    }
    if trimmed.chars().count() > MAX_MESSAGE_CHARS {
        return Err(Refusal::new(
            ErrorCode::TooLong,
            format!("Messages can be at most {MAX_MESSAGE_CHARS} characters long."),
            client_id,
        ));
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Refusal::new(
            ErrorCode::BadFrame,
            "Messages may not contain control characters other than newline and tab.",
            client_id,
        ));
    }
    Ok(Incoming {
        message: trimmed.to_string(),
        client_id,
    })
}

/// A `client_id` is 1 to [`MAX_CLIENT_ID_CHARS`] printable characters (one
/// that is not cannot be repeated in the answer).
fn check_client_id(client_id: &Option<String>) -> Result<(), Refusal> {
    match client_id {
        Some(id)
            if id.is_empty()
                || id.chars().count() > MAX_CLIENT_ID_CHARS
                || id.chars().any(char::is_control) =>
        {
            Err(Refusal::new(
                ErrorCode::BadFrame,
                format!("client_id must be 1 to {MAX_CLIENT_ID_CHARS} printable characters"),
                None,
            ))
        }
        _ => Ok(()),
    }
}

/// The `client_id` of a frame that did not decode, if it has a usable one.
fn loose_client_id(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Loose {
        client_id: Option<String>,
    }
    serde_json::from_str::<Loose>(text)
        .ok()?
        .client_id
        .filter(|id| !id.is_empty() && id.chars().count() <= MAX_CLIENT_ID_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code(text: &str) -> Option<ErrorCode> {
        decode(text).err().map(|r| r.code)
    }

    /// The message a frame carries, if it is a message that passed.
    fn message(text: &str) -> Result<Incoming, Refusal> {
        decode(text).map(|inbound| match inbound {
            Inbound::Message(incoming) => incoming,
            other => panic!("not a message: {other:?}"),
        })
    }

    #[test]
    fn edits_are_checked_like_messages() {
        assert_eq!(
            decode(r#"{"type":"edit","id":4,"message":"  fixed  ","client_id":"e1"}"#),
            Ok(Inbound::Edit {
                id: 4,
                text: "fixed".into(),
                client_id: Some("e1".into()),
            })
        );
        assert_eq!(
            code(r#"{"type":"edit","id":4,"message":"x","client_id":""}"#),
            Some(ErrorCode::BadFrame)
        );
        assert_eq!(
            code(r#"{"type":"edit","id":4,"message":"  "}"#),
            Some(ErrorCode::Empty)
        );
        let long = "x".repeat(MAX_MESSAGE_CHARS + 1);
        assert_eq!(
            code(&format!(r#"{{"type":"edit","id":4,"message":"{long}"}}"#)),
            Some(ErrorCode::TooLong)
        );
        assert_eq!(
            code(r#"{"type":"edit","id":4,"message":"a\u0000b"}"#),
            Some(ErrorCode::BadFrame)
        );
        assert_eq!(code(r#"{"type":"edit","id":4}"#), Some(ErrorCode::BadFrame));
        assert_eq!(
            decode(r#"{"type":"delete","id":9}"#),
            Ok(Inbound::Delete {
                id: 9,
                client_id: None
            })
        );
        let long_id = "c".repeat(MAX_CLIENT_ID_CHARS + 1);
        assert_eq!(
            code(&format!(
                r#"{{"type":"delete","id":9,"client_id":"{long_id}"}}"#
            )),
            Some(ErrorCode::BadFrame)
        );
        assert_eq!(
            code(r#"{"type":"delete","id":"9"}"#),
            Some(ErrorCode::BadFrame)
        );
    }

    #[test]
    fn typing_and_read_frames_decode() {
        assert_eq!(decode(r#"{"type":"typing"}"#), Ok(Inbound::Typing));
        assert_eq!(
            decode(r#"{"type":"typing","message":"ignored"}"#),
            Ok(Inbound::Typing)
        );
        assert_eq!(decode(r#"{"type":"read","id":42}"#), Ok(Inbound::Read(42)));
        assert_eq!(
            code(r#"{"type":"read","id":-1}"#),
            Some(ErrorCode::BadFrame)
        );
        assert_eq!(
            code(r#"{"type":"read","id":"7"}"#),
            Some(ErrorCode::BadFrame)
        );
        assert_eq!(code(r#"{"type":"read"}"#), Some(ErrorCode::BadFrame));
    }

    #[test]
    fn every_bad_frame_gets_its_documented_code() {
        assert_eq!(code("not json"), Some(ErrorCode::BadFrame));
        assert_eq!(
            code(r#"{"type":"shout","message":"x"}"#),
            Some(ErrorCode::BadFrame)
        );
        assert_eq!(code(r#"{"type":"message"}"#), Some(ErrorCode::BadFrame));
        assert_eq!(code(r#"{"message":"x"}"#), Some(ErrorCode::BadFrame));
        assert_eq!(
            code(r#"{"type":"message","message":"  \n\t "}"#),
            Some(ErrorCode::Empty)
        );
        let long = format!(r#"{{"type":"message","message":"{}"}}"#, "x".repeat(2_001));
        assert_eq!(code(&long), Some(ErrorCode::TooLong));
        assert_eq!(
            code(r#"{"type":"message","message":"a\u0000b"}"#),
            Some(ErrorCode::BadFrame)
        );
        assert_eq!(
            code(r#"{"type":"message","message":"bell\u0007"}"#),
            Some(ErrorCode::BadFrame)
        );
        let long_id = format!(
            r#"{{"type":"message","message":"x","client_id":"{}"}}"#,
            "c".repeat(65)
        );
        assert_eq!(code(&long_id), Some(ErrorCode::BadFrame));
    }

    #[test]
    fn text_is_kept_as_text() {
        let ok = message(r#"{"type":"message","message":" <img src=x onerror=alert(1)>\nline\ttab ","username":"Eve"}"#)
            .unwrap();
        assert_eq!(ok.message, "<img src=x onerror=alert(1)>\nline\ttab");
        assert_eq!(
            message(&format!(
                r#"{{"type":"message","message":"{}"}}"#,
                "é".repeat(2_000)
            ))
            .map(|_| ()),
            Ok(())
        );
    }

    #[test]
    fn a_refusal_repeats_the_client_id() {
        let refusal = decode(r#"{"type":"message","message":"","client_id":"c7"}"#).unwrap_err();
        assert_eq!(refusal.client_id.as_deref(), Some("c7"));
        let refusal = decode(r#"{"type":"nope","client_id":"c8"}"#).unwrap_err();
        assert_eq!(refusal.client_id.as_deref(), Some("c8"));
    }

    /// Any JSON value, a few levels deep.
    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            any::<String>().prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::hash_map(any::<String>(), inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Frames shaped like the protocol's, with every field free to be wrong:
    /// another type, a missing or mistyped field, a long or odd client_id,
    /// extra fields.
    fn frame() -> impl Strategy<Value = serde_json::Value> {
        (
            prop_oneof![
                Just("message".to_string()),
                Just("typing".to_string()),
                Just("read".to_string()),
                Just("edit".to_string()),
                Just("delete".to_string()),
                any::<String>()
            ],
            proptest::option::of(prop_oneof![
                any::<String>().prop_map(serde_json::Value::from),
                json_value(),
            ]),
            proptest::option::of(prop_oneof![
                "[ -~]{0,70}".prop_map(serde_json::Value::from),
                any::<String>().prop_map(serde_json::Value::from),
                json_value(),
            ]),
            proptest::collection::hash_map(
                prop_oneof![
                    Just("id".to_string()),
                    Just("client_id".to_string()),
                    "[a-z_]{1,10}"
                ],
                json_value(),
                0..3,
            ),
        )
            .prop_map(|(kind, message, client_id, extra)| {
                let mut frame: serde_json::Map<String, serde_json::Value> =
                    extra.into_iter().collect();
                frame.insert("type".into(), kind.into());
                if let Some(message) = message {
                    frame.insert("message".into(), message);
                }
                if let Some(client_id) = client_id {
                    frame.insert("client_id".into(), client_id);
                }
                serde_json::Value::Object(frame)
            })
    }

    proptest! {
        #[test]
        fn structured_frames_get_a_documented_answer(frame in frame()) {
            let text = frame.to_string();
            match decode(&text) {
                Ok(Inbound::Typing) => prop_assert_eq!(frame["type"].as_str(), Some("typing")),
                Ok(Inbound::Read(_)) => prop_assert_eq!(frame["type"].as_str(), Some("read")),
                Ok(Inbound::Delete { id, client_id }) => {
                    prop_assert_eq!(frame["type"].as_str(), Some("delete"));
                    prop_assert_eq!(frame["id"].as_i64(), Some(id));
                    prop_assert_eq!(client_id.as_deref(), frame["client_id"].as_str());
                }
                Ok(Inbound::Edit { id, text, client_id }) => {
                    prop_assert_eq!(client_id.as_deref(), frame["client_id"].as_str());
                    prop_assert_eq!(frame["type"].as_str(), Some("edit"));
                    prop_assert_eq!(frame["id"].as_i64(), Some(id));
                    let message = frame["message"].as_str().unwrap_or_default();
                    prop_assert_eq!(text.as_str(), message.trim());
                    prop_assert!(!text.is_empty() && text.chars().count() <= MAX_MESSAGE_CHARS);
                }
                Ok(Inbound::Message(incoming)) => {
                    prop_assert_eq!(frame["type"].as_str(), Some("message"));
                    let message = frame["message"].as_str().unwrap_or_default();
                    prop_assert_eq!(incoming.message.as_str(), message.trim());
                    prop_assert!(incoming.message.chars().count() <= MAX_MESSAGE_CHARS);
                    prop_assert_eq!(incoming.client_id.as_deref(), frame["client_id"].as_str());
                }
                Err(refusal) => {
                    prop_assert!(!refusal.message.is_empty());
                    if let Some(id) = &refusal.client_id {
                        prop_assert!(!id.is_empty() && id.chars().count() <= MAX_CLIENT_ID_CHARS);
                    }
                }
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            match decode(&text) {
                Ok(Inbound::Message(incoming)) => prop_assert!(!incoming.message.is_empty()),
                Ok(_) => {}
                Err(refusal) => prop_assert!(!refusal.message.is_empty()),
            }
        }

        #[test]
        fn arbitrary_messages_get_a_documented_answer(message in any::<String>(), id in proptest::option::of("[a-z0-9-]{1,64}")) {
            let frame = serde_json::json!({"type": "message", "message": message, "client_id": id}).to_string();
            match self::message(&frame) {
                Ok(incoming) => {
                    prop_assert_eq!(incoming.message.as_str(), message.trim());
                    prop_assert_eq!(incoming.client_id, id);
                }
                Err(refusal) => {
                    prop_assert!(matches!(refusal.code, ErrorCode::Empty | ErrorCode::TooLong | ErrorCode::BadFrame));
                    prop_assert_eq!(refusal.client_id, id);
                }
            }
        }
    }
}
