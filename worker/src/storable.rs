//! Making whatever user code produced storable in PostgreSQL.
//!
//! `text` and `jsonb` refuse U+0000 (and `jsonb` a lone surrogate escape,
//! which a Rust `String` cannot hold anyway). A workflow may print or raise
//! anything, and a refused outcome must never look like a worker fault (the
//! job would run user code again), so every string is escaped before it is
//! written, and a refusal that is still caused by the content is told apart
//! from a PostgreSQL fault ([`is_content_refusal`]).

use std::borrow::Cow;

use sea_orm::{DbErr, RuntimeErr};
use serde_json::Value;

/// What a NUL character becomes: the escape Python's `repr` would show.
pub const NUL_ESCAPE: &str = "\\x00";

/// `text` with every NUL replaced by [`NUL_ESCAPE`].
pub fn text(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', NUL_ESCAPE))
    } else {
        Cow::Borrowed(text)
    }
}

/// Escapes NULs in every string and every object key of `value`, in place
/// (a result may be large: no second copy is built).
pub fn escape_json(value: &mut Value) {
    match value {
        Value::String(s) if s.contains('\0') => *s = s.replace('\0', NUL_ESCAPE),
        Value::Array(items) => items.iter_mut().for_each(escape_json),
        Value::Object(map) => {
            let bad: Vec<String> = map.keys().filter(|k| k.contains('\0')).cloned().collect();
            for key in bad {
                if let Some(v) = map.remove(&key) {
                    map.insert(key.replace('\0', NUL_ESCAPE), v);
                }
            }
            map.values_mut().for_each(escape_json);
        }
        _ => {}
    }
}

/// True when PostgreSQL refused a statement because of the data in it
/// (SQLSTATE class 22, data exception, or 54, program limit exceeded, e.g.
/// a value too large), not because it is unreachable or failing: retrying
/// the same write can never succeed.
pub fn is_content_refusal(err: &DbErr) -> bool {
    let runtime = match err {
        DbErr::Query(runtime) | DbErr::Exec(runtime) => runtime,
        _ => return false,
    };
    let RuntimeErr::SqlxError(sqlx) = runtime else {
        return false;
    };
    sqlx.as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code.starts_with("22") || code.starts_with("54"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_is_escaped_everywhere_and_nothing_else_changes() {
        assert_eq!(text("a\0b"), "a\\x00b");
        assert!(matches!(text("plain ü"), Cow::Borrowed(_)));
        let mut value = json!({"k\u{0}": ["x\u{0}", 1, null, {"n": "\u{0}"}], "ok": "ü"});
        escape_json(&mut value);
        assert_eq!(
            value,
            json!({"k\\x00": ["x\\x00", 1, null, {"n": "\\x00"}], "ok": "ü"})
        );
    }
}
