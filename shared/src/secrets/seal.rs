//! Sealing a secret with XChaCha20-Poly1305 (RustCrypto `chacha20poly1305`).
//! The nonce is 24 random bytes per seal, so it never needs a counter; the
//! entry's name is the associated data, so a ciphertext copied to another
//! name does not open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::Zeroizing;

use super::SecretKey;

const NONCE_BYTES: usize = 24;

/// A sealed value as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
    /// [`SecretKey::id`] of the key that sealed it.
    pub key_id: String,
}

/// The cipher refused to seal (only past its length limit, 256 GiB).
#[derive(Debug, thiserror::Error)]
#[error("secret '{0}' could not be sealed")]
pub struct SealError(pub String);

/// Why a sealed value did not open. Never holds plaintext.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "secret '{name}' was sealed with key {sealed_with}, but RUNEFLOW_SECRET_KEY is key {given}"
    )]
    WrongKey {
        name: String,
        sealed_with: String,
        given: String,
    },
    #[error("secret '{0}' does not decrypt: its stored ciphertext is damaged")]
    Damaged(String),
}

/// Seals `plaintext` as the value of entry `name`.
pub fn seal(key: &SecretKey, name: &str, plaintext: &str) -> Result<Sealed, SealError> {
    let cipher = XChaCha20Poly1305::new(key.bytes().into());
    let mut nonce = [0u8; NONCE_BYTES];
    rand::rng().fill_bytes(&mut nonce);
    let payload = Payload {
        msg: plaintext.as_bytes(),
        aad: name.as_bytes(),
    };
    let ciphertext = cipher
        .encrypt(&XNonce::from(nonce), payload)
        .map_err(|_| SealError(name.to_owned()))?;
    Ok(Sealed {
        ciphertext,
        nonce: nonce.to_vec(),
        key_id: key.id(),
    })
}

/// Opens entry `name`'s sealed value; the plaintext is wiped when dropped.
pub fn open(key: &SecretKey, name: &str, sealed: &Sealed) -> Result<Zeroizing<String>, OpenError> {
    if sealed.key_id != key.id() {
        return Err(OpenError::WrongKey {
            name: name.to_owned(),
            sealed_with: sealed.key_id.clone(),
            given: key.id(),
        });
    }
    let damaged = || OpenError::Damaged(name.to_owned());
    let nonce: [u8; NONCE_BYTES] = sealed.nonce.as_slice().try_into().map_err(|_| damaged())?;
    let cipher = XChaCha20Poly1305::new(key.bytes().into());
    let payload = Payload {
        msg: &sealed.ciphertext,
        aad: name.as_bytes(),
    };
    let bytes = Zeroizing::new(
        cipher
            .decrypt(&XNonce::from(nonce), payload)
            .map_err(|_| damaged())?,
    );
    let text = std::str::from_utf8(&bytes).map_err(|_| damaged())?;
    Ok(Zeroizing::new(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_name() {
        let key = SecretKey::generate();
        let sealed = seal(&key, "API_KEY", "s3cr3t-value").unwrap();
        assert!(
            !sealed.ciphertext.windows(6).any(|w| w == b"s3cr3t"),
            "no plaintext in the ciphertext"
        );
        assert_eq!(
            open(&key, "API_KEY", &sealed).unwrap().as_str(),
            "s3cr3t-value"
        );
        // Same value twice: different nonces, different ciphertexts.
        assert_ne!(seal(&key, "API_KEY", "s3cr3t-value").unwrap(), sealed);
        assert!(matches!(
            open(&key, "OTHER", &sealed),
            Err(OpenError::Damaged(_))
        ));
        let other = SecretKey::generate();
        let err = open(&other, "API_KEY", &sealed).unwrap_err();
        assert!(matches!(err, OpenError::WrongKey { .. }));
        // A forged key id does not get past the tag.
        let forged = Sealed {
            key_id: other.id(),
            ..sealed.clone()
        };
        assert!(matches!(
            open(&other, "API_KEY", &forged),
            Err(OpenError::Damaged(_))
        ));
        let mut flipped = sealed.clone();
        flipped.ciphertext[0] ^= 1;
        assert!(matches!(
            open(&key, "API_KEY", &flipped),
            Err(OpenError::Damaged(_))
        ));
    }
}
