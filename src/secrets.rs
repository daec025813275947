//! Generated passwords and activation tokens, and how they are kept:
//! tokens as SHA-256 digests, passwords as Argon2id hashes.

use sha2::{Digest, Sha256};

/// Characters of generated passwords: letters and digits without look-alikes,
/// and symbols that survive copy and paste, CSV, and spreadsheets (none of
/// `= + - @`, which start formulas).
const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789_.%#*";

/// Length of generated passwords (≈ 144 bits).
pub const PASSWORD_LEN: usize = 24;

/// A one-time activation token: 32 random bytes, hex.
pub fn token() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    data_encoding::HEXLOWER.encode(&bytes)
}

/// `sha256:` + hex digest.
pub fn sha256(data: &[u8]) -> String {
    format!(
        "sha256:{}",
        data_encoding::HEXLOWER.encode(&Sha256::digest(data))
    )
}

/// A strong random password.
pub fn password() -> String {
    use rand::RngExt;
    let mut rng = rand::rng();
    (0..PASSWORD_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Argon2id with the crate's default parameters, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash a password: {e}"))
}

/// Whether `password` matches an Argon2id PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    use argon2::password_hash::phc::PasswordHash;
    PasswordHash::new(phc).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_random_and_verify() {
        let a = password();
        let b = password();
        assert_eq!(a.len(), PASSWORD_LEN);
        assert_ne!(a, b);
        let h = hash_password(&a).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(!h.contains(&a));
        assert!(verify_password(&a, &h));
        assert!(!verify_password(&b, &h));
    }

    #[test]
    fn tokens_differ_and_digests_are_stable() {
        assert_ne!(token(), token());
        assert_eq!(token().len(), 64);
        assert_eq!(
            sha256(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
