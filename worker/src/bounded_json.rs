//! Parsing a child's JSON result within a memory budget.
//!
//! A parsed `serde_json::Value` can take far more memory than its text:
//! `[0,0,0,…]` is 2 bytes of JSON per element and 32–64 bytes of `Value`,
//! and `[[],[],…]` or `{"":0,…}` are worse. Bounding the frame alone
//! (RUNEFLOW_MAX_RESULT_BYTES) would still let an 8 MiB result take
//! hundreds of MiB of the worker. So the result is built node by node,
//! each charged an estimate of what it costs, and refused once the budget
//! is spent, before the memory is taken.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// What one value costs where it sits (a `Value` is 32 bytes).
const NODE: usize = std::mem::size_of::<Value>();
/// What an array element costs beyond its own node: spare capacity of the
/// growing `Vec`, at most as much again.
const ARRAY_SLOT: usize = NODE;
/// What an object entry costs beyond its value: the key's `String` header
/// and the map's node and bookkeeping.
const MAP_ENTRY: usize = 64;

/// Why a result could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum BoundedError {
    #[error("the result would take more than {budget} bytes of the worker's memory once parsed")]
    OverBudget { budget: usize },
    #[error("the result is not valid JSON: {0}")]
    Malformed(serde_json::Error),
}

/// Parses `text` into a `Value` taking at most about `budget` bytes.
pub fn parse(text: &str, budget: usize) -> Result<Value, BoundedError> {
    let mut left = budget;
    let mut exceeded = false;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = Charged {
        left: &mut left,
        exceeded: &mut exceeded,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));
    match parsed {
        Ok(value) => Ok(value),
        Err(_) if exceeded => Err(BoundedError::OverBudget { budget }),
        Err(err) => Err(BoundedError::Malformed(err)),
    }
}

/// A seed that charges every node it builds to the shared budget.
struct Charged<'b> {
    left: &'b mut usize,
    exceeded: &'b mut bool,
}

impl Charged<'_> {
    fn charge<E: de::Error>(&mut self, bytes: usize) -> Result<(), E> {
        match self.left.checked_sub(bytes) {
            Some(left) => {
                *self.left = left;
                Ok(())
            }
            None => {
                *self.exceeded = true;
                Err(E::custom("over the memory budget"))
            }
        }
    }

    fn reborrow(&mut self) -> Charged<'_> {
        Charged {
            left: self.left,
            exceeded: self.exceeded,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Charged<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Charged<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(mut self) -> Result<Value, E> {
        self.charge(NODE)?;
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(mut self, v: bool) -> Result<Value, E> {
        self.charge(NODE)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(mut self, v: i64) -> Result<Value, E> {
        self.charge(NODE)?;
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(mut self, v: u64) -> Result<Value, E> {
        self.charge(NODE)?;
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(mut self, v: f64) -> Result<Value, E> {
        self.charge(NODE)?;
        // JSON text cannot hold a non-finite number, so this is never Null.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<Value, E> {
        self.charge(NODE.saturating_add(v.len()))?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        self.charge(NODE)?;
        let mut items = Vec::new();
        loop {
            self.charge(ARRAY_SLOT)?;
            match seq.next_element_seed(self.reborrow())? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        self.charge(NODE)?;
        let mut entries = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.charge(MAP_ENTRY.saturating_add(key.len()))?;
            let value = map.next_value_seed(self.reborrow())?;
            entries.insert(key, value);
        }
        Ok(Value::Object(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_what_serde_json_parses_within_the_budget() {
        let text = r#"{"a": [1, -2, 3.5, "x\u0000y", null, true, {"b": []}], "": {}}"#;
        let expected: Value = serde_json::from_str(text).unwrap();
        assert_eq!(parse(text, 1 << 20).unwrap(), expected);
        assert_eq!(
            parse("12345678901234567890", 1024).unwrap(),
            json!(12345678901234567890u64)
        );
    }

    #[test]
    fn small_text_that_would_be_large_in_memory_is_refused() {
        // 2 bytes of JSON per element: 200 000 bytes of text.
        let zeros = format!("[{}0]", "0,".repeat(99_999));
        assert!(parse(&zeros, 100_000 * 2 * NODE + 2 * NODE).is_ok());
        let budget = 4 * zeros.len();
        assert!(matches!(
            parse(&zeros, budget),
            Err(BoundedError::OverBudget { budget: b }) if b == budget
        ));
        let empties = format!("[{}[]]", "[],".repeat(50_000));
        assert!(matches!(
            parse(&empties, 4 * empties.len()),
            Err(BoundedError::OverBudget { .. })
        ));
        let keys = format!("{{{}\"\":0}}", "\"\":0,".repeat(50_000));
        assert!(matches!(
            parse(&keys, 4 * keys.len()),
            Err(BoundedError::OverBudget { .. })
        ));
    }

    #[test]
    fn malformed_and_trailing_text_are_not_budget_errors() {
        assert!(matches!(
            parse("[1,", 1 << 20),
            Err(BoundedError::Malformed(_))
        ));
        assert!(matches!(
            parse("1 2", 1 << 20),
            Err(BoundedError::Malformed(_))
        ));
    }
}
