use leptos::prelude::*;

use crate::chat_state::{Change, ChatState};
use crate::protocol::MAX_MESSAGE_CHARS;

/// The help under an edit box, until something needs saying instead.
const KEYS_HINT: &str = "Enter saves, Shift+Enter starts a new line, Escape cancels.";
/// An edit cannot empty a message: deleting it is a separate, deliberate act.
const EMPTY_HINT: &str = "A message cannot be empty: Escape cancels, or use Delete.";

/// Which message is being edited, and the text typed so far. Kept by the
/// room's page rather than the row, so that the box and its text outlive
/// the row being drawn anew (when the message before it is deleted, say),
/// and so that the message box can open it (Up arrow). One message at a
/// time.
#[derive(Clone, Copy)]
pub struct Editor {
    pub editing: RwSignal<Option<i64>>,
    /// Not reactive: only read when a box opens or saves.
    draft: StoredValue<String>,
    /// The message box, where the focus goes back after an edit that was
    /// opened from it.
    pub composer: NodeRef<leptos::html::Textarea>,
    opened_from_composer: StoredValue<bool>,
}

impl Editor {
    pub fn new() -> Self {
        Self {
            editing: RwSignal::new(None),
            draft: StoredValue::new(String::new()),
            composer: NodeRef::new(),
            opened_from_composer: StoredValue::new(false),
        }
    }

    /// Opens the box on message `id`, holding `text`.
    pub fn open(&self, id: i64, text: String) {
        self.opened_from_composer.set_value(false);
        self.draft.set_value(text);
        self.editing.set(Some(id));
    }

    /// Opens the box from the message box (Up arrow in an empty one): the
    /// focus goes back there when it closes.
    pub fn open_from_composer(&self, id: i64, text: String) {
        self.open(id, text);
        self.opened_from_composer.set_value(true);
    }

    /// Closes the box if it is on message `id`.
    pub fn close(&self, id: i64) {
        if self.editing.get_untracked() == Some(id) {
            self.editing.set(None);
        }
    }
}

/// What pressing Enter in the box does with `draft`, when the message
/// shows `shown`.
#[derive(Debug, PartialEq, Eq)]
enum Save {
    /// Send this text (trimmed, as the server would store it).
    Send(String),
    /// The text is unchanged: close the box, sending nothing.
    Unchanged,
    /// Stay open and say why.
    Refuse(String),
}

fn save(draft: &str, shown: &str) -> Save {
    let text = draft.trim();
    let length = text.chars().count();
    if text.is_empty() {
        Save::Refuse(EMPTY_HINT.into())
    } else if length > MAX_MESSAGE_CHARS {
        Save::Refuse(format!(
            "{} characters too long: a message holds at most {MAX_MESSAGE_CHARS}.",
            length - MAX_MESSAGE_CHARS
        ))
    } else if text == shown {
        Save::Unchanged
    } else {
        Save::Send(text.to_string())
    }
}

/// The box that takes the place of message `id`'s text while it is edited:
/// focused on opening, Enter saves, Shift+Enter adds a line, Escape cancels.
/// Either way focus goes back to the message's "Edit" button (`back`), or
/// to the message box when the box was opened from there.
/// A saved edit shows at once, marked "saving…", as a change waiting for the
/// server (see [`ChatState::change_waiting`]): the message itself changes
/// only with the server's `edited` frame, so a refused edit goes back to the
/// server's text, and the notice says why.
#[component]
pub fn MessageEditor(
    id: i64,
    /// The text the message shows now: saving it unchanged sends nothing.
    shown: Memo<String>,
    editor: Editor,
    back: NodeRef<leptos::html::Button>,
) -> impl IntoView {
    let chat = expect_context::<ChatState>();
    let field = NodeRef::<leptos::html::Textarea>::new();
    let hint = RwSignal::new(None::<String>);
    let hint_id = format!("edit-hint-{id}");

    // Focused once it is in the page, with the caret after the text.
    Effect::new(move |_| {
        if let Some(field) = field.get() {
            let _ = field.focus();
            let end = field.text_length();
            let _ = field.set_selection_range(end, end);
        }
    });

    let close = move || {
        editor.close(id);
        if editor.opened_from_composer.get_value() {
            if let Some(composer) = editor.composer.get_untracked() {
                let _ = composer.focus();
            }
        } else if let Some(button) = back.get_untracked() {
            let _ = button.focus();
        }
    };
    let submit = move || match editor
        .draft
        .with_value(|draft| save(draft, &shown.get_untracked()))
    {
        Save::Unchanged => close(),
        Save::Refuse(why) => hint.set(Some(why)),
        // Offline the change is refused with a notice, and the box stays
        // open with its text, to be saved once connected.
        Save::Send(text) => {
            if chat.change(
                crate::chat_state::new_client_id(),
                Change::Edit { id, text },
            ) {
                close();
            }
        }
    };

    view! {
        <div class="message-editor">
            <textarea
                class="form-control form-control-sm"
                rows="3"
                aria-label="Edit message"
                aria-describedby=hint_id.clone()
                node_ref=field
                prop:value=editor.draft.get_value()
                on:input=move |ev| {
                    editor.draft.set_value(event_target_value(&ev));
                    if hint.with_untracked(Option::is_some) {
                        hint.set(None);
                    }
                }
                on:keydown=move |ev| {
                    // An input method takes its own Escape (to drop what is being composed).
                    if ev.key() == "Escape" && !ev.is_composing() {
                        ev.prevent_default();
                        close();
                    } else if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                        ev.prevent_default();
                        submit();
                    }
                }
            ></textarea>
            <div class="form-text" class:text-danger=move || hint.with(Option::is_some) id=hint_id>
                {move || hint.get().unwrap_or_else(|| KEYS_HINT.to_string())}
            </div>
        </div>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saving_sends_the_trimmed_text_only_when_it_changed() {
        assert_eq!(save("  new text \n", "old"), Save::Send("new text".into()));
        assert_eq!(save("old  ", "old"), Save::Unchanged);
        assert_eq!(save("two\nlines", "two"), Save::Send("two\nlines".into()));
        assert_eq!(save(" \n ", "old"), Save::Refuse(EMPTY_HINT.into()));
        let long = "é".repeat(MAX_MESSAGE_CHARS + 2);
        assert!(matches!(save(&long, "old"), Save::Refuse(why) if why.starts_with("2 characters")));
        assert_eq!(
            save(&"é".repeat(MAX_MESSAGE_CHARS), "old"),
            Save::Send("é".repeat(MAX_MESSAGE_CHARS))
        );
    }
}
