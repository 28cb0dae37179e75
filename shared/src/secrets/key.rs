//! The secret key: 32 random bytes, given as 64 hex digits (e.g. the output
//! of `openssl rand -hex 32` or `runeflow secrets new-key`).

use std::fmt;

use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The environment variable the API and the worker read the key from.
pub const KEY_ENV: &str = "RUNEFLOW_SECRET_KEY";

const KEY_BYTES: usize = 32;

/// A key that seals and opens secrets. Its bytes are wiped on drop and
/// never printed (`Debug` shows only its id).
#[derive(Clone)]
pub struct SecretKey {
    bytes: Zeroizing<[u8; KEY_BYTES]>,
}

/// A key value that is not 64 hex digits. Never holds the value itself.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{KEY_ENV} must be 64 hex digits (32 bytes), got {0} characters")]
    Length(usize),
    #[error("{KEY_ENV} must be 64 hex digits (32 bytes); it holds a non-hex character")]
    NotHex,
}

impl SecretKey {
    /// A new random key.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
        rand::rng().fill_bytes(bytes.as_mut());
        SecretKey { bytes }
    }

    /// Parses 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if text.len() != KEY_BYTES * 2 {
            return Err(KeyError::Length(text.chars().count()));
        }
        let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
        hex::decode_to_slice(text, bytes.as_mut()).map_err(|_| KeyError::NotHex)?;
        Ok(SecretKey { bytes })
    }

    /// The key from `RUNEFLOW_SECRET_KEY`: `Ok(None)` when unset or empty.
    pub fn from_env() -> Result<Option<Self>, KeyError> {
        match std::env::var(KEY_ENV) {
            Ok(text) if !text.trim().is_empty() => SecretKey::from_hex(&text).map(Some),
            _ => Ok(None),
        }
    }

    /// The key as 64 hex digits (for `runeflow secrets new-key` only).
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.bytes.as_ref()))
    }

    /// A public name for the key, stored beside each secret it seals, so a
    /// wrong key is named as such rather than failing as corrupt data. A
    /// one-way hash of the key under a fixed label: it reveals nothing that
    /// helps to find the key.
    pub fn id(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"runeflow secret key id v1\0");
        hasher.update(self.bytes.as_ref());
        hex::encode(&hasher.finalize()[..8])
    }

    pub(super) fn bytes(&self) -> &[u8; KEY_BYTES] {
        &self.bytes
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(id {})", self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_from_hex_and_never_show_their_bytes() {
        let key = SecretKey::generate();
        let hex = key.to_hex();
        let again = SecretKey::from_hex(&format!(" {}\n", hex.as_str())).unwrap();
        assert_eq!(key.id(), again.id());
        assert_eq!(key.id().len(), 16);
        assert!(!format!("{key:?}").contains(hex.as_str()));
        assert_ne!(SecretKey::generate().id(), key.id());
        assert!(matches!(
            SecretKey::from_hex("abc"),
            Err(KeyError::Length(3))
        ));
        let bad = "g".repeat(64);
        let err = SecretKey::from_hex(&bad).unwrap_err();
        assert!(matches!(err, KeyError::NotHex));
        assert!(!err.to_string().contains(&bad));
    }
}
