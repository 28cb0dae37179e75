//! What the fuzz targets (`fuzz_*.rs`) share: how many cases each runs,
//! and where failing cases are kept.
//!
//! The defaults keep every proptest target together well under 30 s in a
//! debug build, so they run in the normal test command. A longer run:
//! `PROPTEST_CASES=20000 cargo nextest run -p runeflow-shared fuzz_`.
//! A failure is saved beside the test file (`fuzz_*.proptest-regressions`)
//! and replayed first on every later run: commit those files.

use proptest::test_runner::{Config, FileFailurePersistence};

/// A proptest config running `default` cases, or `PROPTEST_CASES` when set.
///
/// `Config::with_cases` would ignore the variable, so it is read here.
pub fn cases(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    }
}
