//! Building SCIM filters (RFC 7644 §3.4.2.2) from values that come from
//! rosters and providers: every value is a quoted literal, so `O"Brien` or
//! `x" or userName pr or "` stays one value and never becomes filter syntax.

/// A filter string literal: the JSON string of `s`, as the grammar says.
pub use crate::scim::filter::quote;

/// Attribute terms per `or` filter: short enough for any provider's URL
/// limit and filter complexity limit.
pub const TERMS: usize = 50;
/// Longest filter text (before percent-encoding) of one request.
pub const MAX_FILTER: usize = 2_000;

/// `attr op "value"`.
pub fn term(attr: &str, op: &str, value: &str) -> String {
    format!("{attr} {op} {}", quote(value))
}

/// Terms joined with `or`, at most [`TERMS`] and about [`MAX_FILTER`]
/// characters a filter; a term longer than that still gets a filter of its own.
pub fn batches(terms: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut n = 0;
    for t in terms {
        if n > 0 && (n == TERMS || cur.len() + 4 + t.len() > MAX_FILTER) {
            out.push(std::mem::take(&mut cur));
            n = 0;
        }
        if n > 0 {
            cur.push_str(" or ");
        }
        cur.push_str(t);
        n += 1;
    }
    if n > 0 {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_hostile_values_inside_one_literal() {
        for s in [
            "O\"Brien",
            "x\" or userName pr or \"",
            "back\\slash",
            "\\\"",
            "tab\there\nnewline",
            "José Núñez",
            "",
        ] {
            let q = quote(s);
            assert!(q.starts_with('"') && q.ends_with('"'), "{q}");
            // The literal reads back as exactly the value: nothing leaked out.
            let back: String = serde_json::from_str(&q).unwrap();
            assert_eq!(back, s);
            // No unescaped quote inside.
            let inner = &q[1..q.len() - 1];
            let mut escaped = false;
            for c in inner.chars() {
                assert!(escaped || c != '"', "{q}");
                escaped = !escaped && c == '\\';
            }
        }
        assert_eq!(
            term("userName", "eq", "x\" or userName pr or \""),
            r#"userName eq "x\" or userName pr or \"""#
        );
    }

    #[test]
    fn batches_are_bounded_by_terms_and_length() {
        let terms: Vec<String> = (0..120)
            .map(|i| term("userName", "eq", &format!("u{i}")))
            .collect();
        let b = batches(&terms);
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].matches(" or ").count(), TERMS - 1);
        assert_eq!(b[2].matches(" or ").count(), 19);
        let long: Vec<String> = (0..10)
            .map(|i| term("emails.value", "eq", &"x".repeat(700 + i)))
            .collect();
        let b = batches(&long);
        assert!(
            b.iter().all(|f| f.len() <= MAX_FILTER),
            "{:?}",
            b.iter().map(String::len).collect::<Vec<_>>()
        );
        assert_eq!(
            b.iter()
                .map(|f| f.matches(" or ").count() + 1)
                .sum::<usize>(),
            10
        );
        assert!(batches(&[]).is_empty());
    }
}
