//! SCIM 2.0 (RFC 7643/7644): the filter grammar and the resource mapping
//! shared by the client store and `roster serve`.
pub mod error;
pub mod filter;
pub mod patch;
pub mod resource;

/// Characters of a client's input quoted back in an error message.
pub const EXCERPT_CHARS: usize = 80;

/// `input` as an error message quotes it: whole when short, else its first
/// [`EXCERPT_CHARS`] characters and its length, so that an error never
/// echoes a hostile request back at its full size.
pub fn excerpt(input: &str) -> std::borrow::Cow<'_, str> {
    clip(input, EXCERPT_CHARS)
}

/// `text` cut after `max` characters (never inside one), marked with its
/// full length in bytes when cut.
pub fn clip(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => std::borrow::Cow::Borrowed(text),
        Some((end, _)) => {
            std::borrow::Cow::Owned(format!("{}…({} bytes)", &text[..end], text.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_cut_on_character_boundaries() {
        assert_eq!(excerpt("userName"), "userName");
        let exact = "é".repeat(EXCERPT_CHARS);
        assert_eq!(excerpt(&exact), exact);
        let long = format!("{exact}ü");
        assert_eq!(excerpt(&long), format!("{exact}…({} bytes)", long.len()));
        let huge = "x".repeat(200_000);
        assert!(excerpt(&huge).len() < 100);
        assert!(excerpt(&huge).ends_with("…(200000 bytes)"));
    }
}
