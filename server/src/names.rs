//! What a user's or a room's name may be. Allocation (John, John1, ...)
//! lives in `presence`, which knows which names are held.

use app::{
    protocol::MAX_NAME_CHARS,
    room::{self, RoomName},
};

use crate::error::AppError;

/// A room named in a query, in its one spelling, or a clear 400.
pub fn room(raw: &str) -> Result<String, AppError> {
    match room::check(raw) {
        RoomName::Valid(name) => Ok(name),
        _ => Err(AppError::BadRequest(format!(
            "a room name is 1 to {} of a-z, 0-9, - and _",
            room::MAX_ROOM_CHARS
        ))),
    }
}

/// Why a name was refused; the text is shown to the user as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("Please enter a name.")]
    Empty,
    #[error("Names can be at most {MAX_NAME_CHARS} characters long.")]
    TooLong,
    #[error("Names may contain only letters, digits, spaces and the characters _ - .")]
    BadCharacter,
}

/// Trims `raw` and checks it: 1 to 32 letters (any script), digits, spaces,
/// `_`, `-`, `.`. Controls, bidi overrides, zero-width characters and markup
/// are all outside that set.
pub fn validate(raw: &str) -> Result<String, NameError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(NameError::TooLong);
    }
    if !name.chars().all(allowed) {
        return Err(NameError::BadCharacter);
    }
    Ok(name.to_string())
}

fn allowed(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, ' ' | '_' | '-' | '.')
}

/// The key under which names are compared: uniqueness ignores case.
pub fn fold(name: &str) -> String {
    name.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_names_people_use() {
        for name in ["John", "Zoë", "李雷", "Ана-Мария", "j.doe_42", "Mary Ann"] {
            assert_eq!(validate(name).as_deref(), Ok(name));
        }
        assert_eq!(validate("  John  ").as_deref(), Ok("John"));
    }

    #[test]
    fn refuses_what_is_not_a_name() {
        assert_eq!(validate(""), Err(NameError::Empty));
        assert_eq!(validate("   \t "), Err(NameError::Empty));
        assert_eq!(validate(&"a".repeat(33)), Err(NameError::TooLong));
        assert_eq!(validate(&"a".repeat(10_000)), Err(NameError::TooLong));
        for bad in [
            "<b>x</b>",
            "a\u{0}b",
            "a\u{7}b",
            "evil\u{202E}txt",
            "zero\u{200B}width",
            "joiner\u{200D}",
            "tab\there",
            "new\nline",
            "\u{FFFD}",
        ] {
            assert_eq!(validate(bad), Err(NameError::BadCharacter), "{bad:?}");
        }
    }

    #[test]
    fn thirty_two_characters_count_as_scalar_values() {
        assert!(validate(&"é".repeat(32)).is_ok());
        assert_eq!(validate(&"é".repeat(33)), Err(NameError::TooLong));
    }

    proptest! {
        #[test]
        fn any_input_is_accepted_cleanly_or_refused(raw in any::<String>()) {
            match validate(&raw) {
                Ok(name) => {
                    prop_assert!(!name.is_empty());
                    prop_assert!(name.chars().count() <= MAX_NAME_CHARS);
                    prop_assert!(name.chars().all(allowed));
                    prop_assert_eq!(name.trim(), name.as_str());
                }
                Err(error) => prop_assert!(!error.to_string().is_empty()),
            }
        }
    }
}
