//! Content hashing: the sha256 hex digest that names a blob everywhere.

use sha2::{Digest, Sha256};

/// Lower-case hex sha256 of `bytes` (64 characters).
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
