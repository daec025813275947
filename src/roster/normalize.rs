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

/// Checks an email address: one `@`, a non-empty local part, a domain of
/// dot-separated labels with a dot, no spaces. Deliberately simple: the
/// store and the invitation, not this check, prove the mailbox exists.
pub fn is_valid_email(s: &str) -> bool {
    let s = s.trim();
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    !local.is_empty()
        && local.len() <= 64
        && !local.contains(char::is_whitespace)
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && !local.contains(['@', ',', ';', '<', '>', '(', ')', '[', ']', '"', '\\'])
        && domain.contains('.')
        && domain.split('.').all(label_ok)
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
        assert_eq!(
            email(" Mandy.McCray@Example.COM "),
            "mandy.mccray@example.com"
        );
    }
}
