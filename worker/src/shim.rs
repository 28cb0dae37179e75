//! The Python shim, embedded at build time (see `build.rs`).

use std::collections::BTreeMap;

include!(concat!(env!("OUT_DIR"), "/shim_files.rs"));

/// The shim's sources keyed by path relative to `python_shim/`, as the
/// `boot` message carries them.
pub fn sources() -> BTreeMap<String, String> {
    SHIM_FILES
        .iter()
        .map(|(path, source)| ((*path).to_owned(), (*source).to_owned()))
        .collect()
}
