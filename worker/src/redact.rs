//! Masking the secrets an execution read in everything it leaves behind
//! (logs, result, error message, traceback) before any of it is stored.
//!
//! A value is masked as written, and as `json.dumps` and `repr` would
//! escape it, since a workflow that prints a dict or a traceback that
//! shows a local shows the escaped form. A secret the workflow transforms
//! (base64, reversed, split across writes) is beyond any text filter.

use serde_json::Value;
use zeroize::Zeroizing;

use crate::execution::{Finished, Outcome};

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
            for form in [
                secret.to_owned(),
                json_escaped(secret),
                repr_escaped(secret),
            ] {
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

/// `json.dumps(secret)` without its quotes.
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
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
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
    fn repr_follows_cpython_quoting() {
        assert_eq!(repr_escaped("it's"), "it's");
        assert_eq!(repr_escaped("it's \"x\""), "it\\'s \"x\"");
        assert_eq!(repr_escaped("a\u{1}b"), "a\\x01b");
        assert_eq!(json_escaped("a\"b"), "a\\\"b");
    }
}
