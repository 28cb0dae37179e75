//! Workspace paths: the identity of a file. Validated once, at the edge, so
//! nothing downstream (PostgreSQL, Redis, a `pull` onto disk, a git tree) ever
//! sees a path that could escape a folder or mean two things.

use std::fmt;

use serde::Serialize;

/// Longest accepted path, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;
/// Longest accepted segment, in bytes (the common file-system limit).
pub const MAX_SEGMENT_BYTES: usize = 255;

/// Which path rule a refused path broke; the `code` is stable for clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathRule {
    Empty,
    Absolute,
    DotSegment,
    EmptySegment,
    Backslash,
    ControlCharacter,
    NotUtf8,
    SegmentTooLong,
    PathTooLong,
}

impl PathRule {
    pub fn code(self) -> &'static str {
        match self {
            PathRule::Empty => "empty",
            PathRule::Absolute => "absolute",
            PathRule::DotSegment => "dot_segment",
            PathRule::EmptySegment => "empty_segment",
            PathRule::Backslash => "backslash",
            PathRule::ControlCharacter => "control_character",
            PathRule::NotUtf8 => "not_utf8",
            PathRule::SegmentTooLong => "segment_too_long",
            PathRule::PathTooLong => "path_too_long",
        }
    }
}

/// A refused path: the rule and a sentence naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path ({}): {message}", rule.code())]
pub struct PathError {
    pub rule: PathRule,
    pub message: String,
}

fn refuse(rule: PathRule, message: impl Into<String>) -> PathError {
    PathError {
        rule,
        message: message.into(),
    }
}

/// A validated, relative, `/`-separated workspace path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkspacePath(String);

impl WorkspacePath {
    /// Validates raw bytes (e.g. a percent-decoded URL segment).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PathError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| refuse(PathRule::NotUtf8, "path is not valid UTF-8"))?;
        Self::parse(text)
    }

    /// Validates a path against every rule, cheapest first.
    pub fn parse(path: &str) -> Result<Self, PathError> {
        if path.is_empty() {
            return Err(refuse(PathRule::Empty, "path is empty"));
        }
        if path.len() > MAX_PATH_BYTES {
            return Err(refuse(
                PathRule::PathTooLong,
                format!(
                    "path is {} bytes, the limit is {MAX_PATH_BYTES}",
                    path.len()
                ),
            ));
        }
        if let Some(c) = path.chars().find(|c| c.is_control()) {
            return Err(refuse(
                PathRule::ControlCharacter,
                format!("path contains the control character U+{:04X}", c as u32),
            ));
        }
        if path.contains('\\') {
            return Err(refuse(
                PathRule::Backslash,
                "path contains a backslash; separate segments with '/'",
            ));
        }
        if path.starts_with('/') {
            return Err(refuse(
                PathRule::Absolute,
                "path is absolute; workspace paths are relative",
            ));
        }
        for segment in path.split('/') {
            if segment.is_empty() {
                return Err(refuse(
                    PathRule::EmptySegment,
                    "path has an empty segment ('//' or a trailing '/')",
                ));
            }
            if segment == "." || segment == ".." {
                return Err(refuse(
                    PathRule::DotSegment,
                    format!("path has a '{segment}' segment"),
                ));
            }
            if segment.len() > MAX_SEGMENT_BYTES {
                return Err(refuse(
                    PathRule::SegmentTooLong,
                    format!(
                        "a segment is {} bytes, the limit is {MAX_SEGMENT_BYTES}",
                        segment.len()
                    ),
                ));
            }
        }
        Ok(WorkspacePath(path.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// True for Python source files (`.py`).
    pub fn is_python(&self) -> bool {
        self.0.ends_with(".py")
    }

    /// The dotted module name a `.py` file is imported as (`pkg/__init__.py` →
    /// `pkg`), or `None` when the file is not Python or a segment is not an
    /// identifier (such a file is stored but cannot be imported).
    pub fn module_name(&self) -> Option<String> {
        module_name(&self.0)
    }
}

impl fmt::Display for WorkspacePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// See [`WorkspacePath::module_name`]; takes an already stored path.
pub fn module_name(path: &str) -> Option<String> {
    let stem = path.strip_suffix(".py")?;
    let stem = match stem.strip_suffix("__init__") {
        Some("") => return None,
        Some(parent) => parent.strip_suffix('/')?,
        None => stem,
    };
    let parts: Vec<&str> = stem.split('/').collect();
    if parts.iter().all(|p| is_identifier(p)) {
        Some(parts.join("."))
    } else {
        None
    }
}

/// Python's `str.isidentifier()`, approximated with Unicode alphanumerics
/// (Python uses XID_Start/XID_Continue, which these cover for real names).
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c == '_' || c.is_alphabetic() => {}
        _ => return false,
    }
    chars.all(|c| c == '_' || c.is_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str) -> PathRule {
        match WorkspacePath::parse(path) {
            Err(e) => e.rule,
            Ok(p) => panic!("{p} was accepted"),
        }
    }

    #[test]
    fn every_rule_refuses() {
        assert_eq!(rule(""), PathRule::Empty);
        assert_eq!(rule("/etc/passwd"), PathRule::Absolute);
        assert_eq!(rule("a/../b.py"), PathRule::DotSegment);
        assert_eq!(rule("./b.py"), PathRule::DotSegment);
        assert_eq!(rule("a//b.py"), PathRule::EmptySegment);
        assert_eq!(rule("a/"), PathRule::EmptySegment);
        assert_eq!(rule("a\\b.py"), PathRule::Backslash);
        assert_eq!(rule("a\0b.py"), PathRule::ControlCharacter);
        assert_eq!(rule("a\nb.py"), PathRule::ControlCharacter);
        assert_eq!(rule(&"x".repeat(256)), PathRule::SegmentTooLong);
        assert_eq!(rule(&"abc/".repeat(300)), PathRule::PathTooLong);
        let err = WorkspacePath::from_bytes(b"a\xffb.py").unwrap_err();
        assert_eq!(err.rule, PathRule::NotUtf8);
    }

    #[test]
    fn accepts_ordinary_paths() {
        for p in [
            "a.py",
            "shared/halo.py",
            "pkg/__init__.py",
            "data/x y.json",
            "é/ü.py",
            "..a/b..py",
        ] {
            assert_eq!(
                WorkspacePath::parse(p).map(|p| p.into_string()),
                Ok(p.to_owned())
            );
        }
        assert!(WorkspacePath::parse(&"x".repeat(255)).is_ok());
    }

    #[test]
    fn module_names() {
        assert_eq!(
            module_name("shared/halo.py").as_deref(),
            Some("shared.halo")
        );
        assert_eq!(module_name("pkg/__init__.py").as_deref(), Some("pkg"));
        assert_eq!(module_name("a/b/__init__.py").as_deref(), Some("a.b"));
        assert_eq!(module_name("top.py").as_deref(), Some("top"));
        assert_eq!(module_name("scripts/my-script.py"), None);
        assert_eq!(module_name("1abc.py"), None);
        assert_eq!(module_name("__init__.py"), None);
        assert_eq!(module_name("data.json"), None);
        assert_eq!(module_name("a.b/c.py"), None);
        assert_eq!(module_name("ünï/çode.py").as_deref(), Some("ünï.çode"));
    }
}
