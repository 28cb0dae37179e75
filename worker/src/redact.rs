//! Masking the secrets an execution read in everything it leaves behind
//! (logs, result, error message, traceback) before any of it is stored.
//!
//! A value is masked as written, and as `json.dumps` and `repr` would
//! escape it, since a workflow that prints a dict or a traceback that
//! shows a local shows the escaped form. A secret the workflow transforms
//! (base64, reversed, split across writes) is beyond any text filter.

use serde_json::Value;
use zeroize::Zeroizing;

use crate::execution::{Finished, Outcome, TRUNCATION_NOTE};

/// What a masked value becomes.
pub const MASK: &str = "***";

/// The forms of the secrets to mask, longest first (so a secret that
/// contains another is masked whole).
pub struct Redactor {
    needles: Vec<Zeroizing<String>>,
}

impl Redactor {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut needles: Vec<Zeroizing<String>> = Vec::new();
        for secret in secrets {
            let forms = [
                secret.to_owned(),
                json_escaped(secret),
                json_ascii_escaped(secret),
                repr_escaped(secret),
            ];
            for form in forms {
                if !form.is_empty() && !needles.iter().any(|n| n.as_str() == form) {
                    needles.push(Zeroizing::new(form));
                }
            }
        }
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        Redactor { needles }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `text` with every form of every secret replaced by [`MASK`].
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        self.text_in_place(&mut out);
        out
    }

    fn text_in_place(&self, text: &mut String) {
        for needle in &self.needles {
            if text.contains(needle.as_str()) {
                *text = text.replace(needle.as_str(), MASK);
            }
        }
    }

    /// Masks every string (and object key) of a JSON value.
    pub fn value(&self, value: &mut Value) {
        match value {
            Value::String(s) => self.text_in_place(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.value(v)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (mut key, mut item) in entries {
                    self.text_in_place(&mut key);
                    self.value(&mut item);
                    map.insert(key, item);
                }
            }
            _ => {}
        }
    }

    /// Masks an execution's logs and outcome.
    pub fn finished(&self, finished: &mut Finished) {
        if self.is_empty() {
            return;
        }
        self.text_in_place(&mut finished.logs);
        if finished.logs_truncated {
            self.cut_tail(&mut finished.logs);
        }
        match &mut finished.outcome {
            Outcome::Success(value) => self.value(value),
            Outcome::Failed(error) => {
                self.text_in_place(&mut error.kind);
                self.text_in_place(&mut error.message);
                if let Some(traceback) = &mut error.traceback {
                    self.text_in_place(traceback);
                }
            }
            Outcome::Timeout | Outcome::Cancelled => {}
        }
    }
}

impl Redactor {
    /// Logs cut at their budget may end (before the truncation note) with
    /// the first part of a secret: that part is masked too.
    fn cut_tail(&self, logs: &mut String) {
        let Some(at) = logs.rfind(TRUNCATION_NOTE) else {
            return;
        };
        let head = &logs[..at];
        let longest = self
            .needles
            .iter()
            .filter_map(|needle| {
                // The longest proper prefix of the needle that ends `head`.
                needle
                    .char_indices()
                    .map(|(i, _)| i)
                    .skip(1)
                    .filter(|&i| head.ends_with(&needle[..i]))
                    .max()
            })
            .max();
        if let Some(len) = longest {
            logs.replace_range(at - len..at, MASK);
        }
    }
}

/// `json.dumps(secret)` with `ensure_ascii=True` (Python's default),
/// without its quotes: every non-ASCII character as `\uXXXX`.
fn json_ascii_escaped(secret: &str) -> String {
    let mut out = String::with_capacity(secret.len());
    for c in json_escaped(secret).chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// `json.dumps(secret, ensure_ascii=False)` without its quotes.
fn json_escaped(secret: &str) -> String {
    let quoted = serde_json::to_string(secret).unwrap_or_default();
    quoted
        .get(1..quoted.len().saturating_sub(1))
        .unwrap_or_default()
        .to_owned()
}

/// `repr(secret)` without its quotes (CPython's rules for `str`).
fn repr_escaped(secret: &str) -> String {
    let quote = if secret.contains('\'') && !secret.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(secret.len());
    for c in secret.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if !printable(c) => {
                let code = c as u32;
                if code < 0x100 {
                    out.push_str(&format!("\\x{code:02x}"));
                } else if code < 0x10000 {
                    out.push_str(&format!("\\u{code:04x}"));
                } else {
                    out.push_str(&format!("\\U{code:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// `str.isprintable` for the characters a secret plausibly holds: ASCII
/// controls, C1 controls, and the separators and format characters of
/// Unicode that CPython's `repr` escapes. (Unassigned code points, which
/// it escapes too, are not known here.)
fn printable(c: char) -> bool {
    let code = c as u32;
    !matches!(code,
        0..=0x1f
        | 0x7f..=0xa0
        | 0xad
        | 0x600..=0x605
        | 0x61c
        | 0x6dd
        | 0x70f
        | 0x1680
        | 0x180e
        | 0x2000..=0x200f
        | 0x2028..=0x202f
        | 0x205f..=0x2064
        | 0x2066..=0x206f
        | 0x3000
        | 0xd800..=0xf8ff
        | 0xfeff
        | 0xfff9..=0xfffb
        | 0xe0000..=0xe007f
        | 0xf0000..=0x10ffff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use runeflow_shared::protocol::ErrorInfo;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn every_form_of_a_secret_is_masked_in_logs_result_and_error() {
        let redactor = Redactor::new(["s3cr3t", "a\"b\\c\nd", "s3cr3t-longer"]);
        assert_eq!(redactor.text("key=s3cr3t-longer;"), "key=***;");
        assert_eq!(redactor.text(r#"{"k": "a\"b\\c\nd"}"#), r#"{"k": "***"}"#);
        assert_eq!(redactor.text(r#"'a"b\\c\nd'"#), "'***'");
        let mut finished = Finished {
            outcome: Outcome::Success(json!({"s3cr3t": ["x s3cr3t y", 1]})),
            logs: "token s3cr3t\n".to_owned(),
            logs_truncated: false,
            duration: Duration::ZERO,
            spawn: Duration::ZERO,
        };
        redactor.finished(&mut finished);
        assert_eq!(finished.logs, "token ***\n");
        let Outcome::Success(value) = &finished.outcome else {
            panic!("still a success");
        };
        assert_eq!(value, &json!({"***": ["x *** y", 1]}));
        let mut failed = Finished {
            outcome: Outcome::Failed(ErrorInfo {
                kind: "ValueError".to_owned(),
                message: "bad s3cr3t".to_owned(),
                traceback: Some("raise ValueError('bad s3cr3t')".to_owned()),
            }),
            ..finished
        };
        redactor.finished(&mut failed);
        let Outcome::Failed(error) = &failed.outcome else {
            panic!("still failed");
        };
        assert_eq!(error.message, "bad ***");
        assert_eq!(
            error.traceback.as_deref(),
            Some("raise ValueError('bad ***')")
        );
    }

    #[test]
    fn a_secret_cut_by_the_log_budget_is_masked_up_to_the_cut() {
        let redactor = Redactor::new(["s3cr3t-value"]);
        let mut finished = Finished {
            outcome: Outcome::Timeout,
            logs: format!("token s3cr3t-va{TRUNCATION_NOTE}"),
            logs_truncated: true,
            duration: Duration::ZERO,
            spawn: Duration::ZERO,
        };
        redactor.finished(&mut finished);
        assert_eq!(finished.logs, format!("token ***{TRUNCATION_NOTE}"));
        // Not truncated: a trailing prefix is just text.
        let mut whole = Finished {
            logs: "ends with s3c".to_owned(),
            logs_truncated: false,
            ..finished
        };
        redactor.finished(&mut whole);
        assert_eq!(whole.logs, "ends with s3c");
    }

    #[test]
    fn non_ascii_secrets_are_masked_as_python_escapes_them() {
        let secret = "pässwörd\u{a0}😀";
        assert_eq!(
            json_ascii_escaped(secret),
            r"p\u00e4ssw\u00f6rd\u00a0\ud83d\ude00"
        );
        let redactor = Redactor::new([secret]);
        // json.dumps(secret), json.dumps(secret, ensure_ascii=False), repr(secret)
        for shown in [
            r#""p\u00e4ssw\u00f6rd\u00a0\ud83d\ude00""#,
            "\"pässwörd\u{a0}😀\"",
            r"'pässwörd\xa0😀'",
        ] {
            let masked = redactor.text(shown);
            assert!(
                masked == "\"***\"" || masked == "'***'",
                "{shown} -> {masked}"
            );
        }
    }

    #[test]
    fn repr_follows_cpython_quoting() {
        assert_eq!(repr_escaped("it's"), "it's");
        assert_eq!(repr_escaped("it's \"x\""), "it\\'s \"x\"");
        assert_eq!(repr_escaped("a\u{1}b"), "a\\x01b");
        assert_eq!(json_escaped("a\"b"), "a\\\"b");
    }
}
