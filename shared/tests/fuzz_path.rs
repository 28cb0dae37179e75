//! Fuzz target for the path parser (`WorkspacePath`): any string or byte
//! string is either accepted as a path that keeps every documented rule and
//! round-trips unchanged, or refused with the rule it really breaks; never a
//! panic. An independent model of the rules (README, "Path rules") is the
//! oracle.

mod fuzz_support;

use proptest::prelude::*;
use runeflow_shared::path::{
    MAX_PATH_BYTES, MAX_SEGMENT_BYTES, PathRule, WorkspacePath, is_identifier, module_name,
};

/// Every rule `path` breaks, from the documented rules alone.
fn broken_rules(path: &str) -> Vec<PathRule> {
    let mut broken = Vec::new();
    if path.is_empty() {
        broken.push(PathRule::Empty);
    }
    if path.len() > MAX_PATH_BYTES {
        broken.push(PathRule::PathTooLong);
    }
    if path.chars().any(char::is_control) {
        broken.push(PathRule::ControlCharacter);
    }
    if path.contains('\\') {
        broken.push(PathRule::Backslash);
    }
    if path.starts_with('/') {
        broken.push(PathRule::Absolute);
    }
    let segments: Vec<&str> = path.split('/').collect();
    if !path.is_empty() && segments.iter().any(|s| s.is_empty()) {
        broken.push(PathRule::EmptySegment);
    }
    if segments.iter().any(|s| *s == "." || *s == "..") {
        broken.push(PathRule::DotSegment);
    }
    if segments.iter().any(|s| s.len() > MAX_SEGMENT_BYTES) {
        broken.push(PathRule::SegmentTooLong);
    }
    broken
}

/// Checks one string against the parser and the model.
fn check(input: &str) -> Result<(), TestCaseError> {
    let broken = broken_rules(input);
    match WorkspacePath::parse(input) {
        Ok(path) => {
            prop_assert!(
                broken.is_empty(),
                "{input:?} accepted but breaks {broken:?}"
            );
            // Round trip: the path is the input, and parsing it again agrees.
            prop_assert_eq!(path.as_str(), input);
            prop_assert_eq!(path.to_string(), input);
            prop_assert_eq!(WorkspacePath::parse(path.as_str()), Ok(path.clone()));
            prop_assert_eq!(
                WorkspacePath::from_bytes(input.as_bytes()),
                Ok(path.clone())
            );
            // The documented rules, checked on the accepted value itself.
            let s = path.as_str();
            prop_assert!(!s.is_empty() && s.len() <= MAX_PATH_BYTES);
            prop_assert!(!s.starts_with('/') && !s.contains('\\'));
            prop_assert!(!s.chars().any(char::is_control));
            for segment in s.split('/') {
                prop_assert!(!segment.is_empty() && segment != "." && segment != "..");
                prop_assert!(segment.len() <= MAX_SEGMENT_BYTES);
            }
            // A module name, when there is one, names the same file.
            if let Some(module) = path.module_name() {
                prop_assert!(s.ends_with(".py"));
                prop_assert!(module.split('.').all(is_identifier), "{}", module);
                let as_file = format!("{}.py", module.replace('.', "/"));
                let as_package = format!("{}/__init__.py", module.replace('.', "/"));
                prop_assert!(s == as_file || s == as_package, "{} for {}", module, s);
                prop_assert_eq!(module_name(s), Some(module));
            }
        }
        Err(error) => {
            prop_assert!(
                broken.contains(&error.rule),
                "{input:?} refused as {:?}, but the rules it breaks are {broken:?}",
                error.rule
            );
            prop_assert!(error.to_string().contains(error.rule.code()));
            prop_assert!(!error.message.is_empty());
            prop_assert_eq!(
                WorkspacePath::from_bytes(input.as_bytes()).map_err(|e| e.rule),
                Err(error.rule)
            );
        }
    }
    Ok(())
}

/// One path segment built from the characters the rules care about.
fn tricky_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just("...".to_owned()),
        Just("__init__.py".to_owned()),
        "[a-z_][a-z0-9_]{0,8}(\\.py)?",
        "[a-z. \\\\\\x00\\x1f\\x7f\\u{85}\\u{2028}é😀-]{1,6}",
        (250usize..260).prop_map(|n| "x".repeat(n)),
        (120usize..130).prop_map(|n| "é".repeat(n)),
    ]
}

/// Paths joined from tricky segments, sometimes absolute or with a trailing `/`.
fn tricky_path() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(tricky_segment(), 1..10),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(segments, lead, trail)| {
            let mut path = segments.join("/");
            if lead {
                path.insert(0, '/');
            }
            if trail {
                path.push('/');
            }
            path
        })
}

/// Long paths around the 1024-byte limit.
fn long_path() -> impl Strategy<Value = String> {
    (1000usize..1040, 1usize..300).prop_map(|(len, every)| {
        (0..len)
            .map(|i| if i % every == every - 1 { '/' } else { 'a' })
            .collect()
    })
}

proptest! {
    #![proptest_config(fuzz_support::cases(512))]

    #[test]
    fn fuzz_path_any_string_is_a_valid_path_or_the_rule_it_breaks(input in any::<String>()) {
        check(&input)?;
    }

    #[test]
    fn fuzz_path_tricky_segments_are_judged_by_the_rules(input in tricky_path()) {
        check(&input)?;
    }

    #[test]
    fn fuzz_path_lengths_around_the_limits(input in long_path()) {
        check(&input)?;
    }

    #[test]
    fn fuzz_path_any_bytes_are_a_valid_path_or_refused(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            tricky_path().prop_map(|p| p.into_bytes()),
            (tricky_path(), any::<usize>(), any::<u8>()).prop_map(|(p, at, b)| {
                let mut bytes = p.into_bytes();
                let at = at % (bytes.len() + 1);
                bytes.insert(at, 0x80 | (b & 0x7f));
                bytes
            }),
        ],
    ) {
        match std::str::from_utf8(&bytes) {
            Ok(text) => {
                prop_assert_eq!(WorkspacePath::from_bytes(&bytes), WorkspacePath::parse(text));
                check(text)?;
            }
            Err(_) => {
                let error = WorkspacePath::from_bytes(&bytes).expect_err("not UTF-8");
                prop_assert_eq!(error.rule, PathRule::NotUtf8);
            }
        }
    }
}
