use leptos::prelude::*;

use crate::chat_state::{ChatState, Typist};

/// "Ann is typing…", just above the message box. The line keeps its height
/// when empty, so the page does not jump when someone starts or stops.
#[component]
pub fn TypingIndicator() -> impl IntoView {
    let chat = expect_context::<ChatState>();
    view! {
        <div class="typing-indicator small text-body-secondary text-truncate" id="typing" aria-live="polite" aria-atomic="true">
            {move || chat.typing.with(|typing| typing_text(typing))}
        </div>
    }
    .into_any()
}

/// What the line says: one name, two names, or "Several people".
fn typing_text(typing: &[Typist]) -> Option<String> {
    let mut text = String::new();
    match typing {
        [] => return None,
        [one] => {
            text.push_str(&one.name);
            text.push_str(" is typing…");
        }
        [one, two] => {
            text.push_str(&one.name);
            text.push_str(" and ");
            text.push_str(&two.name);
            text.push_str(" are typing…");
        }
        _ => text.push_str("Several people are typing…"),
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typists(names: &[&str]) -> Vec<Typist> {
        names
            .iter()
            .map(|name| Typist {
                name: name.to_string(),
                until: 0.0,
            })
            .collect()
    }

    #[test]
    fn the_line_names_up_to_two_people() {
        assert_eq!(typing_text(&typists(&[])), None);
        assert_eq!(
            typing_text(&typists(&["Ann"])).as_deref(),
            Some("Ann is typing…")
        );
        assert_eq!(
            typing_text(&typists(&["Ann", "Bob"])).as_deref(),
            Some("Ann and Bob are typing…")
        );
        assert_eq!(
            typing_text(&typists(&["Ann", "Bob", "Cy"])).as_deref(),
            Some("Several people are typing…")
        );
    }
}
