//! What a search text asks of the full-text indexes. Pure: the text a
//! person typed becomes terms, and for SQLite FTS5 queries made only of
//! quoted phrases, bound as parameters, so no input is ever read as query
//! syntax (the PostgreSQL store escapes its patterns likewise).

use app::protocol::MAX_SEARCH_CHARS;

/// Terms shorter than this go to the word index (by prefix); longer ones to
/// the trigram index, which finds them anywhere, inside words too.
const TRIGRAM: usize = 3;
/// Terms of a search used at most.
const MAX_TERMS: usize = 10;

/// The terms of one search; every term must match (AND).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Terms of [`TRIGRAM`] characters or more: found anywhere, inside
    /// words too.
    pub anywhere: Vec<String>,
    /// Shorter terms (with a letter or digit): found at the start of a word.
    pub word_starts: Vec<String>,
}

impl Plan {
    /// Nothing in the text can match anything.
    pub fn is_empty(&self) -> bool {
        self.anywhere.is_empty() && self.word_starts.is_empty()
    }

    /// For the FTS5 trigram index: `"term" "term"`.
    pub fn trigram_query(&self) -> Option<String> {
        join(self.anywhere.iter().map(|term| quoted(term)))
    }

    /// For the FTS5 word index: `"te"* "x"*`.
    pub fn word_query(&self) -> Option<String> {
        join(
            self.word_starts
                .iter()
                .map(|term| format!("{}*", quoted(term))),
        )
    }
}

fn join(parts: impl Iterator<Item = String>) -> Option<String> {
    let parts: Vec<String> = parts.collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// Why a search text was refused; the text is shown as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    #[error("Type something to search for.")]
    Empty,
    #[error("Searches can be at most {MAX_SEARCH_CHARS} characters long.")]
    TooLong,
}

/// A term as an FTS5 string: in double quotes, quotes inside doubled.
fn quoted(term: &str) -> String {
    format!("\"{}\"", term.replace('"', "\"\""))
}

/// Splits `text` into terms (the first ten) and plans the queries. Short
/// terms without a letter or digit (`-`, `*`) cannot match a word and are
/// left out. Control characters separate terms (FTS5 would read a NUL as
/// the end of the query).
pub fn plan(text: &str) -> Result<Plan, SearchError> {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim();
    if text.is_empty() {
        return Err(SearchError::Empty);
    }
    if text.chars().count() > MAX_SEARCH_CHARS {
        return Err(SearchError::TooLong);
    }
    let mut terms: Vec<&str> = Vec::new();
    for term in text.split_whitespace() {
        if !terms.contains(&term) && terms.len() < MAX_TERMS {
            terms.push(term);
        }
    }
    let (long, short): (Vec<&str>, Vec<&str>) = terms
        .into_iter()
        .partition(|term| term.chars().count() >= TRIGRAM);
    Ok(Plan {
        anywhere: long.into_iter().map(str::to_string).collect(),
        word_starts: short
            .into_iter()
            .filter(|term| term.chars().any(char::is_alphanumeric))
            .map(str::to_string)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The FTS5 queries of `text`'s plan.
    fn queries(text: &str) -> (Option<String>, Option<String>) {
        let plan = plan(text).unwrap();
        (plan.trigram_query(), plan.word_query())
    }

    #[test]
    fn terms_become_quoted_phrases() {
        assert_eq!(
            queries("  tokio::spawn ERR_42 "),
            (Some(r#""tokio::spawn" "ERR_42""#.into()), None)
        );
        assert_eq!(
            queries("hi 東京 https://example.com/a?b=1"),
            (
                Some(r#""https://example.com/a?b=1""#.into()),
                Some(r#""hi"* "東京"*"#.into())
            )
        );
        assert_eq!(
            plan("hi 東京 https://example.com/a?b=1").unwrap(),
            Plan {
                anywhere: vec!["https://example.com/a?b=1".into()],
                word_starts: vec!["hi".into(), "東京".into()],
            }
        );
    }

    #[test]
    fn query_syntax_in_the_text_stays_text() {
        assert_eq!(
            queries(r#"say "hello NEAR( -x *"#),
            (
                Some(r#""say" """hello" "NEAR(""#.into()),
                Some(r#""-x"*"#.into())
            )
        );
        assert!(plan("* - \"").unwrap().is_empty());
        assert_eq!(
            queries("ab\0cd\u{7}ef"),
            (None, Some(r#""ab"* "cd"* "ef"*"#.into()))
        );
        assert_eq!(plan(" \n\t "), Err(SearchError::Empty));
        assert_eq!(plan(&"x".repeat(10_000)), Err(SearchError::TooLong));
        assert!(plan(&"é".repeat(MAX_SEARCH_CHARS)).is_ok());
    }

    proptest! {
        /// Whatever is typed, each query is a run of whole quoted phrases:
        /// between phrases only spaces and `*`.
        #[test]
        fn any_text_plans_to_quoted_phrases_only(text in any::<String>()) {
            if let Ok(plan) = plan(&text) {
                for query in [plan.trigram_query(), plan.word_query()].into_iter().flatten() {
                    let mut outside = String::new();
                    let mut inside = false;
                    let mut chars = query.chars().peekable();
                    while let Some(c) = chars.next() {
                        match (inside, c) {
                            (true, '"') if chars.peek() == Some(&'"') => {
                                chars.next();
                            }
                            (_, '"') => inside = !inside,
                            (false, c) => outside.push(c),
                            (true, _) => {}
                        }
                    }
                    prop_assert!(!inside, "unbalanced: {query}");
                    prop_assert!(!query.chars().any(char::is_control), "{query:?}");
                    prop_assert!(outside.chars().all(|c| c == ' ' || c == '*'), "{query}");
                }
            }
        }
    }
}
