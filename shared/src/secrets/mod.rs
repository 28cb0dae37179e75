//! Secrets at rest: the key from `RUNEFLOW_SECRET_KEY` ([`SecretKey`]) and
//! sealing a value under it ([`seal`], [`open`]). Only the API (to write)
//! and the worker (to read for a workflow) hold the key; PostgreSQL holds
//! ciphertext, and the key's id to tell which key sealed a row.

mod key;
mod seal;

pub use key::{KEY_ENV, KeyError, SecretKey};
pub use seal::{OpenError, SealError, Sealed, open, seal};
