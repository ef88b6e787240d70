//! Room names, the one rule both sides apply: 1 to 32 of `a-z`, `0-9`, `-`
//! and `_`. `/chat/` is the room [`LOBBY`]; `/chat/<room>/` any other.

/// The room of `/chat/` and of a socket that names none.
pub const LOBBY: &str = "lobby";
/// Longest room name, in characters (all ASCII).
pub const MAX_ROOM_CHARS: usize = 32;

/// What a typed or requested room name amounts to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoomName {
    /// Already in its one spelling.
    Valid(String),
    /// Valid once lowercased: send people to this spelling.
    Lowercase(String),
    /// Outside the rule.
    Invalid,
}

/// Checks a room name against the rule.
pub fn check(raw: &str) -> RoomName {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    if raw.is_empty() || raw.len() > MAX_ROOM_CHARS {
        return RoomName::Invalid;
    }
    if raw.chars().all(allowed) {
        return RoomName::Valid(raw.to_string());
    }
    let lower = raw.to_ascii_lowercase();
    if lower.chars().all(allowed) {
        RoomName::Lowercase(lower)
    } else {
        RoomName::Invalid
    }
}

/// The page of a room: `/chat/` for the lobby, `/chat/<room>/` otherwise.
pub fn path(room: &str) -> String {
    if room == LOBBY {
        "/chat/".to_string()
    } else {
        format!("/chat/{room}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        assert_eq!(check("rust"), RoomName::Valid("rust".into()));
        assert_eq!(check("a-b_9"), RoomName::Valid("a-b_9".into()));
        assert_eq!(check(&"x".repeat(32)), RoomName::Valid("x".repeat(32)));
        assert_eq!(check("Rust"), RoomName::Lowercase("rust".into()));
        for bad in [
            "",
            "a b",
            "é",
            "a/b",
            "a.b",
            "%2e",
            &"x".repeat(33),
            "ﬀ",
            "\u{212A}",
        ] {
            assert_eq!(check(bad), RoomName::Invalid, "{bad:?}");
        }
        assert_eq!(path(LOBBY), "/chat/");
        assert_eq!(path("rust"), "/chat/rust/");
    }
}
