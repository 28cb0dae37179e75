//! Fuzz target for entity detection (`detect::analyze_python`): arbitrary
//! and mutated Python sources never panic and always come back; trailing
//! whitespace never changes what a file is; a generated `@workflow` function
//! in any of its decorator forms, among module noise, is found with its
//! name, parameters, defaults, timeout and line.

mod fuzz_support;

use proptest::prelude::*;
use runeflow_shared::detect::{Analysis, EntityType, WorkflowKind, analyze_python};
use serde_json::Value;

/// Python's keywords (hard and soft): never generated as names.
const KEYWORDS: [&str; 40] = [
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield", "match", "case", "type", "print", "exec",
];

fn identifier() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,9}".prop_filter("not a keyword or the context", |s| {
        !KEYWORDS.contains(&s.as_str()) && s != "context" && s != "_"
    })
}

/// What detection sees of a file: type and entry points. Diagnostics are
/// left out on purpose: their wording and position may follow the text.
fn seen(analysis: &Analysis) -> (EntityType, String) {
    let workflows = serde_json::to_string(&analysis.workflows).expect("metadata serialises");
    (analysis.entity_type, workflows)
}

// ---------------------------------------------------------------------------
// A generated workflow and what detection must report for it
// ---------------------------------------------------------------------------

/// A literal default: its source text and the JSON detection reports.
fn literal() -> impl Strategy<Value = (String, Value)> {
    let leaf = prop_oneof![
        Just(("None".to_owned(), Value::Null)),
        Just(("True".to_owned(), Value::Bool(true))),
        Just(("False".to_owned(), Value::Bool(false))),
        any::<i64>().prop_map(|i| (i.to_string(), Value::from(i))),
        (-1_000_000i32..1_000_000, 1u8..100).prop_map(|(whole, hundredths)| {
            let text = format!("{whole}.{hundredths:02}");
            let value: f64 = text.parse().expect("a float literal");
            (text, Value::from(value))
        }),
        "[a-zA-Z0-9 _.,:-]{0,12}".prop_map(|s| (format!("{s:?}"), Value::String(s))),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(|items| {
                let text = items.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>();
                (
                    format!("[{}]", text.join(", ")),
                    Value::Array(items.into_iter().map(|(_, v)| v).collect()),
                )
            }),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..3).prop_map(|map| {
                let text: Vec<String> = map
                    .iter()
                    .map(|(k, (t, _))| format!("{k:?}: {t}"))
                    .collect();
                (
                    format!("{{{}}}", text.join(", ")),
                    Value::Object(map.into_iter().map(|(k, (_, v))| (k, v)).collect()),
                )
            }),
        ]
    })
}

#[derive(Debug, Clone)]
struct Param {
    name: String,
    annotation: Option<String>,
    default: Option<(String, Value)>,
}

fn annotation() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop::sample::select(vec![
        "int",
        "str",
        "float",
        "bool",
        "list[str]",
        "dict[str, int]",
        "Optional[int]",
        "int | None",
        "\"Forward\"",
    ]))
    .prop_map(|a| a.map(str::to_owned))
}

/// Parameters with unique names, the defaulted ones after the required ones.
fn params() -> impl Strategy<Value = Vec<Param>> {
    prop::collection::vec(
        (identifier(), annotation(), prop::option::of(literal())),
        0..6,
    )
    .prop_map(|raw| {
        let mut seen = std::collections::HashSet::new();
        let mut params: Vec<Param> = raw
            .into_iter()
            .filter(|(name, _, _)| seen.insert(name.clone()))
            .map(|(name, annotation, default)| Param {
                name,
                annotation,
                default,
            })
            .collect();
        params.sort_by_key(|p| p.default.is_some());
        params
    })
}

#[derive(Debug, Clone)]
struct Generated {
    source: String,
    function: String,
    name: String,
    kind: WorkflowKind,
    params: Vec<Param>,
    timeout: Option<u32>,
    is_async: bool,
    line: u32,
}

/// Module-level statements that are not entry points.
fn noise() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop::sample::select(vec![
            "import os",
            "from runeflow import workflow, data_provider, context",
            "import runeflow",
            "# @workflow\n# def commented(): pass",
            "X = 1",
            "TEXT = \"\"\"\n@workflow\ndef in_a_string(): pass\n\"\"\"",
            "def helper(a, b=2):\n    return a + b",
            "class Thing:\n    @workflow\n    def method(self):\n        pass",
            "if False:\n    @workflow\n    def hidden():\n        pass",
            "@other\ndef decorated():\n    pass",
            "@runeflow.other\ndef decorated_too():\n    pass",
            "try:\n    import missing\nexcept ImportError:\n    missing = None",
        ]),
        0..4,
    )
    .prop_map(|lines| lines.into_iter().map(str::to_owned).collect())
}

fn generated_workflow() -> impl Strategy<Value = Generated> {
    (
        identifier(),
        prop::option::of("[a-z][a-z0-9-]{0,10}"),
        prop::sample::select(vec![
            "workflow",
            "runeflow.workflow",
            "data_provider",
            "runeflow.data_provider",
        ]),
        any::<bool>(),
        prop::option::of(1u32..86_400),
        params(),
        any::<bool>(),
        prop::option::of("[A-Za-z][A-Za-z ]{0,20}"),
        noise(),
        noise(),
    )
        .prop_map(
            |(function, name, decorator, called, timeout, params, is_async, doc, before, after)| {
                let mut keywords = Vec::new();
                if let Some(name) = &name {
                    keywords.push(format!("name={name:?}"));
                }
                if let Some(t) = timeout {
                    keywords.push(format!("timeout={t}"));
                }
                let decorator_line = if called || !keywords.is_empty() {
                    format!("@{decorator}({})", keywords.join(", "))
                } else {
                    format!("@{decorator}")
                };
                let signature: Vec<String> = params
                    .iter()
                    .map(|p| {
                        let mut s = p.name.clone();
                        if let Some(a) = &p.annotation {
                            s.push_str(&format!(": {a}"));
                        }
                        if let Some((text, _)) = &p.default {
                            s.push_str(if p.annotation.is_some() { " = " } else { "=" });
                            s.push_str(text);
                        }
                        s
                    })
                    .collect();
                let mut source = before.join("\n\n");
                if !source.is_empty() {
                    source.push_str("\n\n");
                }
                let line = source.lines().count() as u32 + 2;
                source.push_str(&decorator_line);
                source.push('\n');
                if is_async {
                    source.push_str("async ");
                }
                source.push_str(&format!("def {function}({}):\n", signature.join(", ")));
                if let Some(doc) = &doc {
                    source.push_str(&format!("    \"\"\"{doc}\"\"\"\n"));
                }
                source.push_str("    return None\n");
                for statement in &after {
                    source.push('\n');
                    source.push_str(statement);
                    source.push('\n');
                }
                Generated {
                    name: name.unwrap_or_else(|| function.clone()),
                    function,
                    kind: if decorator.ends_with("data_provider") {
                        WorkflowKind::DataProvider
                    } else {
                        WorkflowKind::Workflow
                    },
                    params,
                    timeout,
                    is_async,
                    line,
                    source,
                }
            },
        )
}

fn check_generated(g: &Generated, analysis: &Analysis) -> Result<(), TestCaseError> {
    prop_assert!(
        analysis.diagnostics.is_empty(),
        "{:?}\n{}",
        analysis.diagnostics,
        g.source
    );
    prop_assert_eq!(analysis.workflows.len(), 1, "{}", g.source);
    let found = &analysis.workflows[0];
    let expected_type = match g.kind {
        WorkflowKind::Workflow => EntityType::Workflow,
        WorkflowKind::DataProvider => EntityType::DataProvider,
    };
    prop_assert_eq!(analysis.entity_type, expected_type);
    prop_assert_eq!(&found.function, &g.function);
    prop_assert_eq!(&found.name, &g.name);
    prop_assert_eq!(found.kind, g.kind);
    prop_assert_eq!(found.is_async, g.is_async);
    prop_assert_eq!(found.line, g.line, "{}", g.source);
    prop_assert_eq!(found.timeout_seconds, g.timeout.map(f64::from));
    prop_assert_eq!(
        found.parameters.len(),
        g.params.len(),
        "{:?}",
        found.parameters
    );
    for (got, want) in found.parameters.iter().zip(&g.params) {
        prop_assert_eq!(&got.name, &want.name);
        prop_assert_eq!(&got.annotation, &want.annotation);
        prop_assert_eq!(got.required, want.default.is_none());
        prop_assert_eq!(
            got.default_source.as_deref(),
            want.default.as_ref().map(|(t, _)| t.as_str())
        );
        prop_assert_eq!(got.default.as_ref(), want.default.as_ref().map(|(_, v)| v));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Sources that are not (quite) Python
// ---------------------------------------------------------------------------

/// Python-looking token soup: keywords, brackets, quotes, indentation.
fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            "@workflow",
            "@runeflow.workflow(",
            "def ",
            "async ",
            "f",
            "(",
            ")",
            ":",
            "\n",
            "    ",
            "\t",
            "\"",
            "'",
            "\"\"\"",
            "#",
            "=",
            ",",
            "*",
            "**",
            "x",
            "1",
            "1e999",
            "\\",
            "[",
            "]",
            "{",
            "}",
            "class ",
            "if ",
            "else",
            "return",
            "lambda",
            "\r\n",
            "\0",
            "é",
            "timeout=",
            "name=",
            "f\"{",
            "}\"",
            "b'",
            "...",
            ";",
        ]),
        0..120,
    )
    .prop_map(|tokens| tokens.concat())
}

/// One edit of a source: delete, duplicate or insert.
fn mutate(source: &str, at: usize, len: usize, op: u8, insert: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let at = if chars.is_empty() {
        0
    } else {
        at % (chars.len() + 1)
    };
    let end = (at + len).min(chars.len());
    let (head, rest) = chars.split_at(at);
    let (middle, tail) = rest.split_at(end - at);
    let mut out: String = head.iter().collect();
    match op % 3 {
        0 => {}
        1 => {
            out.extend(middle);
            out.extend(middle);
        }
        _ => {
            out.push_str(insert);
            out.extend(middle);
        }
    }
    out.extend(tail);
    out
}

fn trailing_whitespace() -> impl Strategy<Value = String> {
    "[ \\t\\n]{1,6}"
}

proptest! {
    #![proptest_config(fuzz_support::cases(256))]

    /// Any text comes back with an analysis; a broken file is a module
    /// with diagnostics, never a workflow.
    #[test]
    fn fuzz_detect_arbitrary_text_never_panics(
        source in prop_oneof![any::<String>(), token_soup()],
    ) {
        let analysis = analyze_python(&source);
        if !analysis.diagnostics.is_empty() {
            prop_assert_eq!(analysis.entity_type, EntityType::Module);
            prop_assert!(analysis.workflows.is_empty());
        }
        prop_assert_eq!(analysis.workflows.is_empty(), analysis.entity_type == EntityType::Module);
    }

    /// A generated entry point is found with everything it declares.
    #[test]
    fn fuzz_detect_finds_a_generated_workflow_with_its_parameters(g in generated_workflow()) {
        check_generated(&g, &analyze_python(&g.source))?;
    }

    /// Trailing whitespace and newlines never change what a file is, valid
    /// or not; and detection gives the same answer twice. Not after a final
    /// line continuation `\`: CPython itself refuses `x = 1 \` + newline
    /// but accepts it with one more newline.
    #[test]
    fn fuzz_detect_trailing_whitespace_changes_nothing(
        source in prop_oneof![
            generated_workflow().prop_map(|g| g.source),
            generated_workflow().prop_map(|g| g.source.trim_end().to_owned()),
            token_soup(),
        ],
        tail in trailing_whitespace(),
    ) {
        prop_assume!(!source.trim_end().ends_with('\\'));
        let plain = analyze_python(&source);
        prop_assert_eq!(seen(&analyze_python(&source)), seen(&plain), "not deterministic");
        let padded = analyze_python(&format!("{source}{tail}"));
        prop_assert_eq!(seen(&padded), seen(&plain), "{:?} + {:?}", source, tail);
        prop_assert_eq!(padded.diagnostics.is_empty(), plain.diagnostics.is_empty());
    }

    /// Valid workflows with one edit (a deleted, duplicated or inserted
    /// piece) never panic; whatever is still found is a real `def` line.
    #[test]
    fn fuzz_detect_mutated_workflows_never_panic(
        g in generated_workflow(),
        edits in prop::collection::vec(
            (any::<usize>(), 0usize..40, any::<u8>(), prop_oneof![
                Just(String::new()), Just("(".to_owned()), Just("\"\"\"".to_owned()),
                Just("\n    ".to_owned()), Just("@workflow\n".to_owned()), any::<String>(),
            ]),
            1..4,
        ),
    ) {
        let mut source = g.source.clone();
        for (at, len, op, insert) in &edits {
            source = mutate(&source, *at, *len, *op, insert);
        }
        let analysis = analyze_python(&source);
        let lines: Vec<&str> = source.lines().collect();
        for found in &analysis.workflows {
            // The `def` line; tree-sitter also takes `async` NEWLINE INDENT
            // `def` as one function (CPython refuses it), the line is then
            // the `async` one and the `def` follows.
            let at = found.line as usize - 1;
            let def = lines.get(at..(at + 3).min(lines.len())).unwrap_or_default().join("\n");
            prop_assert!(
                def.contains("def") && def.contains(found.function.as_str()),
                "line {} is {:?} in {:?}", found.line, lines.get(at), source
            );
        }
    }
}
