//! Normalization shared by checks, planning and the stores: one way to
//! compare emails, names and phones everywhere.

use std::borrow::Cow;
use unicode_normalization::UnicodeNormalization;

/// Emails are compared trimmed and lower-cased.
pub fn email(s: &str) -> String {
    email_key(s).into_owned()
}

/// [`email`] without allocating when the address is already normal.
pub fn email_key(s: &str) -> Cow<'_, str> {
    let t = s.trim();
    if t.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
        Cow::Owned(t.to_lowercase())
    } else {
        Cow::Borrowed(t)
    }
}

/// A name for display: trimmed, inner whitespace collapsed to one space.
pub fn display_name(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A name for comparison: display form, Unicode NFC, case-folded.
pub fn name_key(s: &str) -> String {
    if s.is_ascii() {
        // ASCII is already in NFC.
        let mut out = String::with_capacity(s.len());
        for (i, w) in s.split_ascii_whitespace().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.extend(w.chars().map(|c| c.to_ascii_lowercase()));
        }
        return out;
    }
    display_name(s).nfc().flat_map(char::to_lowercase).collect()
}

/// A phone number as its digits.
pub fn phone_digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// How an email address reads (RFC 5322 for what is an address, RFC 5321
/// and common mail hosts for what is delivered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailForm {
    /// An ordinary address.
    Deliverable,
    /// An address RFC 5322 allows but many mail systems refuse, and why: live
    /// systems hold such addresses, so they are kept, with a warning.
    Undeliverable(&'static str),
    /// Not an email address.
    Malformed,
}

/// Classify an email address. Deliberately lenient where a live system may
/// already hold the address; the invitation, not this check, proves the
/// mailbox exists.
pub fn email_form(s: &str) -> EmailForm {
    use EmailForm::{Deliverable, Malformed, Undeliverable};
    let s = s.trim();
    if s.chars().any(char::is_control) {
        return Malformed;
    }
    // RFC 5322 atext; letters beyond ASCII as RFC 6532 allows.
    let atext = |c: char| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    let dot_atom =
        |t: &str| !t.is_empty() && t.split('.').all(|a| !a.is_empty() && a.chars().all(atext));
    let (local_len, quoted, domain) = if let Some(rest) = s.strip_prefix('"') {
        // A quoted local part: any printable character, `\` escapes the next.
        let mut chars = rest.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' if chars.next().is_none() => return Malformed,
                '"' => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let Some(end) = end else { return Malformed };
        let Some(domain) = rest[end + 1..].strip_prefix('@') else {
            return Malformed;
        };
        (end + 2, true, domain)
    } else {
        let Some((local, domain)) = s.split_once('@') else {
            return Malformed;
        };
        if !dot_atom(local) {
            return Malformed;
        }
        (local.len(), false, domain)
    };
    if domain.starts_with('[') && domain.ends_with(']') && domain.len() > 2 {
        let inner = &domain[1..domain.len() - 1];
        if inner.contains(['[', ']', '\\']) || inner.contains(char::is_whitespace) {
            return Malformed;
        }
        return Undeliverable("its domain is an address literal");
    }
    if !dot_atom(domain) || !domain.contains('.') {
        return Malformed;
    }
    let labels_ok = domain.split('.').all(|l| {
        !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    });
    if domain.contains('_') {
        Undeliverable("its domain has an underscore, which host names may not have")
    } else if !labels_ok {
        Undeliverable("its domain is not a host name (letters, digits and inner hyphens)")
    } else if quoted {
        Undeliverable("its local part is quoted")
    } else if local_len > 64 {
        Undeliverable("its local part is longer than 64 characters")
    } else {
        Deliverable
    }
}

/// True for anything that is an email address, deliverable or not (see [`email_form`]).
pub fn is_valid_email(s: &str) -> bool {
    email_form(s) != EmailForm::Malformed
}

/// The domain of an email, lower-cased.
pub fn email_domain(s: &str) -> Option<String> {
    email(s).rsplit_once('@').map(|(_, d)| d.to_string())
}

/// A calendar date `YYYY-MM-DD` that exists (no 30 February).
pub fn is_valid_date(s: &str) -> Result<(), &'static str> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return Err("is not a date in the form YYYY-MM-DD");
    }
    // Four digits, two and two: they fit.
    let y: i16 = s[0..4].parse().unwrap_or(0);
    let m: i8 = s[5..7].parse().unwrap_or(0);
    let d: i8 = s[8..10].parse().unwrap_or(0);
    if !(1..=12).contains(&m) {
        return Err("has a month outside 01-12");
    }
    if jiff::civil::Date::new(y, m, d).is_err() {
        return Err("is not a real calendar date");
    }
    if y < 1900 {
        return Err("has a year before 1900");
    }
    Ok(())
}

/// A US phone number: ten digits once punctuation is dropped, or eleven
/// starting with the country code 1. Returns the ten digits.
pub fn phone(s: &str) -> Option<String> {
    if s.chars()
        .any(|c| !(c.is_ascii_digit() || " ()-.+".contains(c)))
    {
        return None;
    }
    let d = phone_digits(s);
    match d.len() {
        10 => Some(d),
        11 if d.starts_with('1') => Some(d[1..].to_string()),
        _ => None,
    }
}

/// ZIP or ZIP+4.
pub fn is_valid_zip(s: &str) -> bool {
    let b = s.trim().as_bytes();
    let five = |x: &[u8]| x.len() == 5 && x.iter().all(u8::is_ascii_digit);
    match b.len() {
        5 => five(b),
        10 => five(&b[..5]) && b[5] == b'-' && b[6..].iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// A phone extension: 1 to 6 digits.
pub fn is_valid_extension(s: &str) -> bool {
    let s = s.trim();
    (1..=6).contains(&s.len()) && s.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_folded_and_composed() {
        // "José" precomposed vs. "Jose" + combining acute, odd spacing and case.
        assert_eq!(name_key("  JOSE\u{301}  "), name_key("josé"));
        assert_eq!(display_name("  Mary   Ann \t Lee "), "Mary Ann Lee");
        assert_ne!(name_key("Jose"), name_key("José"));
    }

    #[test]
    fn dates() {
        assert!(is_valid_date("1972-09-01").is_ok());
        assert!(is_valid_date("2000-02-29").is_ok());
        assert_eq!(
            is_valid_date("1900-02-29"),
            Err("is not a real calendar date")
        );
        assert_eq!(
            is_valid_date("1990-02-30"),
            Err("is not a real calendar date")
        );
        assert_eq!(
            is_valid_date("1990-13-01"),
            Err("has a month outside 01-12")
        );
        assert_eq!(
            is_valid_date("09/01/1972"),
            Err("is not a date in the form YYYY-MM-DD")
        );
    }

    #[test]
    fn phones_zips_emails() {
        assert_eq!(phone("217-852-9634").as_deref(), Some("2178529634"));
        assert_eq!(phone("+1 (217) 852-9634").as_deref(), Some("2178529634"));
        assert_eq!(phone("852-9634"), None);
        assert_eq!(phone("217-852-963x"), None);
        assert!(is_valid_zip("62568") && is_valid_zip("62568-1234"));
        assert!(!is_valid_zip("6256") && !is_valid_zip("62568-12") && !is_valid_zip("6256a"));
        assert!(is_valid_email(" Mandy.McCray@Example.com "));
        for bad in [
            "mandy",
            "a@b",
            "a b@c.org",
            "@c.org",
            "a@.org",
            "a@b..org",
            "a@@b.org",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
        for odd in [
            "jo@mail_server.example.org",
            "\"john doe\"@example.org",
            "\"a\\\"b\"@example.org",
            "x@[192.0.2.1]",
            "x@-bad.example.org",
        ] {
            assert!(is_valid_email(odd), "{odd}");
            assert!(
                matches!(email_form(odd), EmailForm::Undeliverable(_)),
                "{odd}"
            );
        }
        assert_eq!(
            email_form(&format!("{}@example.org", "a".repeat(65))),
            EmailForm::Undeliverable("its local part is longer than 64 characters")
        );
        assert_eq!(
            email_form("o'brien+tag@example.org"),
            EmailForm::Deliverable
        );
        for bad in [
            "\"unclosed@example.org",
            "\"q\"x@example.org",
            ".a@example.org",
            "a.@example.org",
            "a..b@example.org",
            "a<b@example.org",
            "a@exa mple.org",
            "a@[]",
            "a@b_c",
            "a\n@example.org",
        ] {
            assert_eq!(email_form(bad), EmailForm::Malformed, "{bad}");
        }
        assert_eq!(
            email(" Mandy.McCray@Example.COM "),
            "mandy.mccray@example.com"
        );
    }
}
