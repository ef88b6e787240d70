//! Finding the web addresses in a message, so that they can be shown as
//! links.
//!
//! Not a component: a pure helper of the message list
//! ([`super::message_list`]), kept beside its one user. The list turns the
//! pieces into text nodes and `<a>` elements, never into markup parsed from
//! the text.

/// A piece of a message: plain text, or an address to link to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    /// An `http://` or `https://` address, as typed; the link's target and
    /// its text.
    Link(&'a str),
}

/// Splits `text` into plain text and `http(s)://` addresses, in order.
/// Nothing but those two schemes ever becomes a link (`javascript:` and the
/// like stay text). Punctuation that ends a sentence is not part of an
/// address: "see https://example.com." links `https://example.com`, and a
/// closing bracket only belongs to it when the address opened one, as in
/// `https://en.wikipedia.org/wiki/Rust_(language)`. Linear in the length
/// of `text`.
pub fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    // Where the plain text not yet pushed starts, and where to look next.
    let mut plain = 0;
    let mut from = 0;
    while let Some(found) = find_scheme(text, from) {
        let end = found + address_len(&text[found..]);
        if end > found {
            if plain < found {
                pieces.push(Piece::Text(&text[plain..found]));
            }
            pieces.push(Piece::Link(&text[found..end]));
            plain = end;
            from = end;
        } else {
            // A scheme with nothing after it: text; look past it.
            from = found + 1;
        }
    }
    if plain < text.len() {
        pieces.push(Piece::Text(&text[plain..]));
    }
    pieces
}

/// The byte offset of the next `http://` or `https://` (any case) at or
/// after `from` that starts a word: "xhttp://" is not an address.
fn find_scheme(text: &str, from: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut at = from;
    while at < bytes.len() {
        let next = bytes[at..]
            .iter()
            .position(|b| b.eq_ignore_ascii_case(&b'h'))?;
        at += next;
        let rest = &bytes[at..];
        let is_scheme =
            starts_with_ignore_case(rest, b"http://") || starts_with_ignore_case(rest, b"https://");
        let starts_word = text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        if is_scheme && starts_word {
            return Some(at);
        }
        at += 1;
    }
    None
}

fn starts_with_ignore_case(bytes: &[u8], prefix: &[u8]) -> bool {
    bytes.len() >= prefix.len() && bytes[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// How many bytes of `candidate` (which starts with a scheme) make the
/// address; 0 when there is no host after the scheme.
fn address_len(candidate: &str) -> usize {
    let end = candidate
        .find(|c: char| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | '`'))
        .unwrap_or(candidate.len());
    let address = &candidate[..end];
    let address = &address[..without_trailing_punctuation(address)];
    // Something must follow the "//" besides more slashes.
    let after_scheme = address.find("//").map_or(address.len(), |at| at + 2);
    if address[after_scheme..].trim_start_matches('/').is_empty() {
        0
    } else {
        address.len()
    }
}

/// Brackets an address may hold in pairs, ASCII and full-width.
const BRACKETS: [(char, char); 8] = [
    ('(', ')'),
    ('[', ']'),
    ('{', '}'),
    ('（', '）'),
    ('「', '」'),
    ('『', '』'),
    ('《', '》'),
    ('【', '】'),
];

/// Whether `c` ends a sentence or a quotation rather than an address.
fn is_sentence_punctuation(c: char) -> bool {
    matches!(
        c,
        '.' | ','
            | ';'
            | ':'
            | '!'
            | '?'
            | '\''
            | '*'
            | '”'
            | '’'
            | '…'
            | '。'
            | '、'
            | '！'
            | '？'
    )
}

/// The length of `address` without the punctuation that ends the sentence
/// around it: trailing sentence punctuation, and each trailing closing
/// bracket that has more closers than openers in the address. The openers
/// and closers are counted once, and a closer cut off is taken off its
/// count, so a long run of brackets costs one look per character.
fn without_trailing_punctuation(address: &str) -> usize {
    // Closers minus openers of each pair, over the whole address.
    let mut excess = [0i64; BRACKETS.len()];
    for c in address.chars() {
        for (pair, &(open, close)) in BRACKETS.iter().enumerate() {
            if c == open {
                excess[pair] -= 1;
            } else if c == close {
                excess[pair] += 1;
            }
        }
    }
    let mut len = address.len();
    for c in address.chars().rev() {
        let cut = if is_sentence_punctuation(c) {
            true
        } else if let Some(pair) = BRACKETS.iter().position(|&(_, close)| close == c) {
            // Unbalanced: the bracket closes something before the address.
            let cut = excess[pair] > 0;
            excess[pair] -= 1;
            cut
        } else {
            false
        };
        if !cut {
            break;
        }
        len -= c.len_utf8();
    }
    len
}

#[cfg(test)]
mod tests {
    use super::Piece::{Link, Text};
    use super::*;

    #[test]
    fn plain_text_is_one_piece() {
        assert_eq!(pieces("hello there"), [Text("hello there")]);
        assert_eq!(pieces(""), []);
        assert_eq!(pieces("<b>x</b>"), [Text("<b>x</b>")]);
    }

    #[test]
    fn addresses_become_links_without_the_sentence_around_them() {
        assert_eq!(
            pieces("see https://example.com/a?b=1."),
            [Text("see "), Link("https://example.com/a?b=1"), Text(".")]
        );
        assert_eq!(
            pieces("http://a.example, and HTTPS://B.example/x!"),
            [
                Link("http://a.example"),
                Text(", and "),
                Link("HTTPS://B.example/x"),
                Text("!")
            ]
        );
        assert_eq!(
            pieces("https://a.example/x\nhttps://b.example"),
            [
                Link("https://a.example/x"),
                Text("\n"),
                Link("https://b.example")
            ]
        );
        assert_eq!(
            pieces("ends in 'https://q.example/it's'"),
            [Text("ends in '"), Link("https://q.example/it's"), Text("'")]
        );
    }

    #[test]
    fn a_closing_bracket_belongs_to_the_address_only_when_it_opened_one() {
        assert_eq!(
            pieces("(see https://example.com/a)"),
            [Text("(see "), Link("https://example.com/a"), Text(")")]
        );
        assert_eq!(
            pieces("https://en.wikipedia.org/wiki/Rust_(language)."),
            [
                Link("https://en.wikipedia.org/wiki/Rust_(language)"),
                Text(".")
            ]
        );
        assert_eq!(
            pieces("(https://en.wikipedia.org/wiki/Rust_(language))"),
            [
                Text("("),
                Link("https://en.wikipedia.org/wiki/Rust_(language)"),
                Text(")")
            ]
        );
        assert_eq!(
            pieces("[https://example.com/x]"),
            [Text("["), Link("https://example.com/x"), Text("]")]
        );
    }

    #[test]
    fn only_http_and_https_become_links() {
        for text in [
            "javascript:alert(1)",
            "JavaScript://example.com/%0aalert(1)",
            "ftp://example.com",
            "data:text/html,<script>alert(1)</script>",
            "mailto:a@example.com",
            "www.example.com",
            "https://",
            "http:///",
            "xhttps://example.com",
            "https:example.com",
        ] {
            assert_eq!(pieces(text), [Text(text)], "{text}");
        }
        assert_eq!(
            pieces("javascript:https://example.com"),
            [Text("javascript:"), Link("https://example.com")]
        );
    }

    #[test]
    fn markup_ends_an_address() {
        assert_eq!(
            pieces(r#"<a href="https://example.com/">x</a>"#),
            [
                Text(r#"<a href=""#),
                Link("https://example.com/"),
                Text(r#"">x</a>"#)
            ]
        );
    }

    #[test]
    fn text_around_non_ascii_is_kept_whole() {
        assert_eq!(
            pieces("été https://例え.jp/パス。 ok"),
            [Text("été "), Link("https://例え.jp/パス"), Text("。 ok")]
        );
        assert_eq!(
            pieces("ħhttps://example.com"),
            [Text("ħhttps://example.com")]
        );
        let joined: String = pieces("a https://b.example/c). d")
            .iter()
            .map(|p| match p {
                Text(s) | Link(s) => *s,
            })
            .collect();
        assert_eq!(joined, "a https://b.example/c). d");
    }

    #[test]
    fn quotes_ellipses_and_full_width_closers_end_a_sentence() {
        for after in [
            "”", "’", "…", "）", "」", "』", "》", "】", "。", "！", "？", ".”", "’…",
        ] {
            let text = format!("https://example.com/a{after}");
            assert_eq!(
                pieces(&text),
                [Link("https://example.com/a"), Text(after)],
                "{text}"
            );
        }
        assert_eq!(
            pieces("“https://example.com/x” she said"),
            [Text("“"), Link("https://example.com/x"), Text("” she said")]
        );
        assert_eq!(
            pieces("（https://example.com/x）。"),
            [Text("（"), Link("https://example.com/x"), Text("）。")]
        );
        assert_eq!(
            pieces("「https://ja.example/パス（一）」"),
            [
                Text("「"),
                Link("https://ja.example/パス（一）"),
                Text("」")
            ]
        );
    }

    #[test]
    fn a_long_run_of_brackets_is_cut_in_one_pass() {
        // 2,000 characters: the longest message.
        let closers = ")".repeat(2_000 - "https://a".len());
        let text = format!("https://a{closers}");
        assert_eq!(text.chars().count(), 2_000);
        assert_eq!(pieces(&text), [Link("https://a"), Text(&closers)]);

        let nested = format!("https://a/{}{}", "(".repeat(995), ")".repeat(995));
        assert_eq!(pieces(&nested), [Link(&nested)]);

        let mixed = format!("https://a/({}", ").".repeat(995));
        assert_eq!(
            pieces(&mixed),
            [Link("https://a/()"), Text(&mixed["https://a/()".len()..])]
        );
    }
}
