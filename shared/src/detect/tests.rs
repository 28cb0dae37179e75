//! Unit tests for Python entity detection.

use std::time::Duration;

use serde_json::json;

use super::python::{MAX_DIAGNOSTICS, analyze_with_budget};
use super::*;

/// Joins lines into a source file with a trailing newline.
fn py(lines: &[&str]) -> String {
    let mut source = lines.join("\n");
    source.push('\n');
    source
}

fn analyze(lines: &[&str]) -> Analysis {
    analyze_python(&py(lines))
}

/// The only entry point of a valid file.
fn single(lines: &[&str]) -> WorkflowMeta {
    let analysis = analyze(lines);
    assert!(
        analysis.diagnostics.is_empty(),
        "{:?}",
        analysis.diagnostics
    );
    assert_eq!(analysis.workflows.len(), 1, "{analysis:?}");
    analysis.workflows.into_iter().next().unwrap()
}

fn param<'a>(meta: &'a WorkflowMeta, name: &str) -> &'a Parameter {
    meta.parameters
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no parameter {name} in {:?}", meta.parameters))
}

fn names(meta: &WorkflowMeta) -> Vec<&str> {
    meta.parameters.iter().map(|p| p.name.as_str()).collect()
}

/// The default of a single parameter `x` declared as `x=<default>`.
fn default_of(default: &str) -> (Option<serde_json::Value>, Option<String>) {
    let def = format!("def f(x={default}):");
    let meta = single(&["@workflow", &def, "    pass"]);
    let x = param(&meta, "x");
    assert!(!x.required);
    (x.default.clone(), x.default_source.clone())
}

fn assert_module(analysis: &Analysis) {
    assert_eq!(analysis.entity_type, EntityType::Module, "{analysis:?}");
    assert!(analysis.workflows.is_empty());
}

// --- entity type -----------------------------------------------------------

#[test]
fn detect_all_workflow_decorator_forms_on_def_and_async_def() {
    for decorator in [
        "@workflow",
        "@workflow(name='x')",
        "@runeflow.workflow",
        "@runeflow.workflow(timeout=5)",
    ] {
        for (def, is_async) in [("def run():", false), ("async def run():", true)] {
            let analysis = analyze(&["import runeflow", "", decorator, def, "    pass"]);
            assert_eq!(
                analysis.entity_type,
                EntityType::Workflow,
                "{decorator} {def}"
            );
            assert_eq!(analysis.workflows.len(), 1);
            let meta = &analysis.workflows[0];
            assert_eq!(meta.kind, WorkflowKind::Workflow);
            assert_eq!(meta.function, "run");
            assert_eq!(meta.is_async, is_async);
            assert_eq!(meta.line, 4);
        }
    }
}

#[test]
fn detect_all_data_provider_decorator_forms_on_def_and_async_def() {
    for decorator in [
        "@data_provider",
        "@data_provider()",
        "@runeflow.data_provider",
        "@runeflow.data_provider(name='choices')",
    ] {
        for (def, is_async) in [("def options():", false), ("async def options():", true)] {
            let analysis = analyze(&[decorator, def, "    return []"]);
            assert_eq!(
                analysis.entity_type,
                EntityType::DataProvider,
                "{decorator} {def}"
            );
            assert_eq!(analysis.workflows.len(), 1);
            assert_eq!(analysis.workflows[0].kind, WorkflowKind::DataProvider);
            assert_eq!(analysis.workflows[0].is_async, is_async);
        }
    }
}

#[test]
fn detect_mixed_file_is_workflow_and_lists_both_in_order() {
    let analysis = analyze(&[
        "from runeflow import workflow, data_provider",
        "",
        "@data_provider",
        "def regions():",
        "    return ['eu', 'us']",
        "",
        "@workflow",
        "async def deploy(region: str):",
        "    pass",
    ]);
    assert_eq!(analysis.entity_type, EntityType::Workflow);
    let kinds: Vec<_> = analysis
        .workflows
        .iter()
        .map(|w| (w.function.as_str(), w.kind, w.line))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("regions", WorkflowKind::DataProvider, 4),
            ("deploy", WorkflowKind::Workflow, 8),
        ]
    );
}

#[test]
fn detect_plain_files_are_modules() {
    assert_module(&analyze_python(""));
    assert!(analyze_python("").diagnostics.is_empty());
    assert_module(&analyze(&[
        "import os",
        "",
        "def helper(x):",
        "    return x",
    ]));
    assert_module(&analyze(&[
        "import functools",
        "@functools.cache",
        "def helper():",
        "    return 1",
    ]));
}

#[test]
fn detect_decorator_in_comment_does_not_count() {
    let analysis = analyze(&[
        "# @workflow",
        "def run():",
        "    pass",
        "#@runeflow.workflow",
    ]);
    assert_module(&analysis);
    assert!(analysis.diagnostics.is_empty());
}

#[test]
fn detect_decorator_text_in_strings_and_docstrings_does_not_count() {
    assert_module(&analyze(&[
        "'''",
        "@workflow",
        "def run():",
        "    pass",
        "'''",
        "TEMPLATE = \"@workflow\\ndef run(): pass\"",
        "def helper():",
        "    \"\"\"Use @workflow on a def.\"\"\"",
    ]));
}

#[test]
fn detect_nested_function_does_not_count() {
    assert_module(&analyze(&[
        "def outer():",
        "    @workflow",
        "    def inner():",
        "        pass",
        "    return inner",
    ]));
}

#[test]
fn detect_methods_and_decorated_classes_do_not_count() {
    assert_module(&analyze(&[
        "class Jobs:",
        "    @workflow",
        "    def run(self):",
        "        pass",
        "",
        "    @runeflow.data_provider",
        "    async def options(self):",
        "        pass",
        "",
        "@workflow",
        "class NotAFunction:",
        "    pass",
    ]));
}

#[test]
fn detect_only_direct_module_children_count_not_if_or_try_blocks() {
    assert_module(&analyze(&[
        "if True:",
        "    @workflow",
        "    def a():",
        "        pass",
        "try:",
        "    @workflow",
        "    def b():",
        "        pass",
        "except ImportError:",
        "    pass",
    ]));
}

#[test]
fn detect_stacked_decorators_above_or_below() {
    let analysis = analyze(&[
        "@other",
        "@workflow",
        "def a():",
        "    pass",
        "",
        "@runeflow.workflow(name='b')",
        "@functools.wraps(x)",
        "# a comment between decorators",
        "@other.thing(1)",
        "def b():",
        "    pass",
    ]);
    assert_eq!(analysis.entity_type, EntityType::Workflow);
    let names: Vec<_> = analysis.workflows.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(analysis.workflows[0].line, 3);
    assert_eq!(analysis.workflows[1].line, 10);
}

#[test]
fn detect_workflow_and_data_provider_on_one_function_is_a_workflow() {
    let meta = single(&[
        "@data_provider(name='dp')",
        "@workflow(name='wf')",
        "def both():",
        "    pass",
    ]);
    assert_eq!(meta.kind, WorkflowKind::Workflow);
    assert_eq!(meta.name, "wf");
}

#[test]
fn detect_empty_call_uses_function_name() {
    let meta = single(&["@workflow()", "def nightly_report():", "    pass"]);
    assert_eq!(meta.name, "nightly_report");
    assert_eq!(meta.function, "nightly_report");
    assert_eq!(meta.description, None);
    assert_eq!(meta.timeout_seconds, None);
    assert!(meta.parameters.is_empty());
}

#[test]
fn detect_other_dotted_decorators_do_not_count() {
    for decorator in [
        "@some.other.workflow",
        "@other.workflow",
        "@runeflow.sub.workflow",
        "@workflow.something",
        "@runeflow.workflows",
        "@Workflow",
        "@workflow_helper",
        "@workflow[0]",
        "@some.other.data_provider()",
    ] {
        assert_module(&analyze(&[decorator, "def run():", "    pass"]));
    }
}

// --- syntax errors ---------------------------------------------------------

#[test]
fn detect_syntax_error_missing_token_position_and_message() {
    let analysis = analyze(&["@workflow", "def run(:", "    pass"]);
    assert_module(&analysis);
    assert_eq!(
        analysis.diagnostics,
        vec![Diagnostic {
            line: 2,
            column: 9,
            message: "missing `)`".to_owned(),
        }]
    );
}

#[test]
fn detect_syntax_error_spanning_lines_quotes_first_and_last_line() {
    let analysis = analyze(&["x = 1", "@workflow", "def run(a, b:", "    pass"]);
    assert_module(&analysis);
    assert_eq!(
        analysis.diagnostics,
        vec![Diagnostic {
            line: 2,
            column: 1,
            message: "syntax error in lines 2-3: `@workflow` … `def run(a, b:`".to_owned(),
        }]
    );
}

#[test]
fn detect_syntax_error_quotes_unexpected_text_with_char_columns() {
    let analysis = analyze(&["x = 1", "print(\"héllo wörld\" $ 3)"]);
    assert_module(&analysis);
    assert_eq!(
        analysis.diagnostics,
        vec![Diagnostic {
            line: 2,
            column: 21,
            message: "syntax error at `$ 3`".to_owned(),
        }]
    );
}

#[test]
fn detect_syntax_error_in_workflow_file_gives_module_without_workflows() {
    let analysis = analyze(&[
        "@workflow",
        "def good():",
        "    pass",
        "",
        "x = (1, 2",
        "y = [3",
    ]);
    assert_module(&analysis);
    let first = &analysis.diagnostics[0];
    assert_eq!(
        (first.line, first.column),
        (5, 1),
        "{:?}",
        analysis.diagnostics
    );
    assert_eq!(
        first.message,
        "syntax error in lines 5-6: `x = (1, 2` … `y = [3`"
    );
}

#[test]
fn detect_syntax_error_snippet_is_shortened() {
    let long = format!("class class class {} b", "a".repeat(200));
    let analysis = analyze(&["x = 1", &long]);
    assert_module(&analysis);
    let message = &analysis.diagnostics[0].message;
    assert_eq!(
        message,
        &format!("syntax error at `class class class {}…`", "a".repeat(12))
    );
}

#[test]
fn detect_diagnostics_are_limited_to_twenty() {
    let lines: Vec<String> = (0..100).map(|i| format!("x{i} = = {i}")).collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let analysis = analyze(&lines);
    assert_module(&analysis);
    assert_eq!(analysis.diagnostics.len(), MAX_DIAGNOSTICS);
    let rows: Vec<u32> = analysis.diagnostics.iter().map(|d| d.line).collect();
    let mut sorted = rows.clone();
    sorted.sort_unstable();
    assert_eq!(rows, sorted, "document order");
    assert_eq!(rows[0], 1);
}

// --- decorator keywords and docstrings -----------------------------------

#[test]
fn detect_name_description_and_timeout_keywords() {
    let meta = single(&[
        "@runeflow.workflow(name=\"Nightly report\", description='Sends it.', timeout=90)",
        "def nightly():",
        "    \"\"\"Ignored docstring.\"\"\"",
    ]);
    assert_eq!(meta.name, "Nightly report");
    assert_eq!(meta.function, "nightly");
    assert_eq!(meta.description.as_deref(), Some("Sends it."));
    assert_eq!(meta.timeout_seconds, Some(90.0));

    let meta = single(&["@workflow(timeout=2.5)", "def f():", "    pass"]);
    assert_eq!(meta.timeout_seconds, Some(2.5));
}

#[test]
fn detect_non_literal_keywords_fall_back() {
    let meta = single(&[
        "@workflow(name=NAME, description=f'{x}', timeout=TIMEOUT)",
        "def run():",
        "    'Docstring wins.'",
    ]);
    assert_eq!(meta.name, "run");
    assert_eq!(meta.description.as_deref(), Some("Docstring wins."));
    assert_eq!(meta.timeout_seconds, None);

    for timeout in ["'10'", "-5", "1e400", "None", "10 * 60"] {
        let decorator = format!("@workflow(timeout={timeout})");
        // Out-of-range numbers also get a diagnostic (tested below).
        let analysis = analyze(&[&decorator, "def run():", "    pass"]);
        assert_eq!(analysis.workflows[0].timeout_seconds, None, "{timeout}");
    }
}

#[test]
fn out_of_range_timeouts_are_dropped_with_a_diagnostic() {
    for timeout in ["1e20", "0", "-5", "1e400", "604801"] {
        let source = format!(
            "from runeflow import workflow\n\n@workflow(timeout={timeout})\ndef run():\n    pass\n"
        );
        let analysis = analyze_python(&source);
        assert_eq!(analysis.entity_type, EntityType::Workflow, "{timeout}");
        assert_eq!(analysis.workflows[0].timeout_seconds, None, "{timeout}");
        assert_eq!(
            analysis.diagnostics.len(),
            1,
            "{timeout}: {:?}",
            analysis.diagnostics
        );
        let diagnostic = &analysis.diagnostics[0];
        assert_eq!(diagnostic.line, 4, "{timeout}");
        assert!(
            diagnostic.message.contains("out of range"),
            "{}",
            diagnostic.message
        );
    }
    let fine = analyze_python(
        "from runeflow import workflow\n@workflow(timeout=604800)\ndef run():\n    pass\n",
    );
    assert_eq!(fine.workflows[0].timeout_seconds, Some(604800.0));
    assert!(fine.diagnostics.is_empty());
}

#[test]
fn detect_name_keyword_concatenated_and_empty() {
    let meta = single(&["@workflow(name='a' \"b\")", "def run():", "    pass"]);
    assert_eq!(meta.name, "ab");
    let meta = single(&["@workflow(name='')", "def run():", "    pass"]);
    assert_eq!(meta.name, "run");
}

#[test]
fn detect_docstring_first_paragraph() {
    let meta = single(&[
        "@workflow",
        "def run():",
        "    \"\"\"Summary line",
        "        continues here.",
        "",
        "    Details that are not part of the description.",
        "    \"\"\"",
        "    pass",
    ]);
    assert_eq!(
        meta.description.as_deref(),
        Some("Summary line continues here.")
    );
}

#[test]
fn detect_docstring_forms() {
    let cases: [(&[&str], Option<&str>); 9] = [
        (&["    '''Single quotes.'''"], Some("Single quotes.")),
        (
            &["    \"\"\"", "    Leading newline.", "    \"\"\""],
            Some("Leading newline."),
        ),
        (&["    r'''Raw \\d+ pattern.'''"], Some("Raw \\d+ pattern.")),
        (&["    R\"Raw upper.\""], Some("Raw upper.")),
        (&["    'Tab\\tand\\nnewline.'"], Some("Tab\tand newline.")),
        (
            &["    ('Implicit '", "     \"concatenation.\")"],
            Some("Implicit concatenation."),
        ),
        (&["    f'Not a {docstring}.'"], None),
        (&["    x = 'not a docstring'"], None),
        (&["    \"\"\"   \"\"\""], None),
    ];
    for (body, expected) in cases {
        let mut lines = vec!["@workflow", "def run():"];
        lines.extend_from_slice(body);
        let meta = single(&lines);
        assert_eq!(meta.description.as_deref(), expected, "{body:?}");
    }
}

#[test]
fn detect_docstring_after_comment_and_one_line_def() {
    let meta = single(&["@workflow", "def run():", "    # note", "    'Doc.'"]);
    assert_eq!(meta.description.as_deref(), Some("Doc."));
    let meta = single(&["@workflow", "def run(): 'Inline doc.'"]);
    assert_eq!(meta.description.as_deref(), Some("Inline doc."));
}

// --- parameters ------------------------------------------------------------

#[test]
fn detect_parameters_with_annotations_and_defaults() {
    let meta = single(&[
        "@workflow",
        "def run(",
        "    names: list[str],",
        "    limit: int | None = None,",
        "    plain,",
        "    when=datetime.now(),",
        "    mode: str = 'fast',",
        "):",
        "    pass",
    ]);
    assert_eq!(names(&meta), ["names", "limit", "plain", "when", "mode"]);
    assert_eq!(
        meta.parameters[0],
        Parameter {
            name: "names".to_owned(),
            annotation: Some("list[str]".to_owned()),
            default: None,
            default_source: None,
            required: true,
        }
    );
    assert_eq!(
        meta.parameters[1],
        Parameter {
            name: "limit".to_owned(),
            annotation: Some("int | None".to_owned()),
            default: Some(serde_json::Value::Null),
            default_source: Some("None".to_owned()),
            required: false,
        }
    );
    let plain = param(&meta, "plain");
    assert_eq!((plain.annotation.as_deref(), plain.required), (None, true));
    let when = param(&meta, "when");
    assert_eq!(when.default, None);
    assert_eq!(when.default_source.as_deref(), Some("datetime.now()"));
    assert!(!when.required);
    assert_eq!(param(&meta, "mode").default, Some(json!("fast")));
}

#[test]
fn detect_keyword_only_and_positional_only_parameters() {
    let meta = single(&[
        "@workflow",
        "def run(a, b=2, /, c=3, *, d, e: bool = False):",
        "    pass",
    ]);
    assert_eq!(names(&meta), ["a", "b", "c", "d", "e"]);
    let required: Vec<bool> = meta.parameters.iter().map(|p| p.required).collect();
    assert_eq!(required, [true, false, false, true, false]);
    assert_eq!(param(&meta, "e").default, Some(json!(false)));
    assert_eq!(param(&meta, "e").annotation.as_deref(), Some("bool"));
}

#[test]
fn detect_star_args_and_kwargs_are_excluded() {
    let meta = single(&["@workflow", "def run(a, *args, b=1, **kwargs):", "    pass"]);
    assert_eq!(names(&meta), ["a", "b"]);
    let meta = single(&[
        "@workflow",
        "def run(*args: int, key: str, **kwargs: object):",
        "    pass",
    ]);
    assert_eq!(names(&meta), ["key"]);
    assert!(param(&meta, "key").required);
}

#[test]
fn detect_context_parameters_are_excluded() {
    let meta = single(&[
        "@workflow",
        "def run(",
        "    context,",
        "    ctx: Context,",
        "    c2: runeflow.Context,",
        "    c3: ExecutionContext,",
        "    c4: runeflow.ExecutionContext = None,",
        "    c5: 'Context',",
        "    user: str,",
        "    self,",
        "    other: MyContext,",
        "):",
        "    pass",
    ]);
    assert_eq!(names(&meta), ["user", "self", "other"]);
    let meta = single(&["@workflow", "def run(context: dict = {}):", "    pass"]);
    assert!(meta.parameters.is_empty());
}

#[test]
fn detect_parameter_comments_are_ignored() {
    let meta = single(&[
        "@workflow",
        "def run(",
        "    a,  # the first",
        "    # a whole-line comment",
        "    b=[1,  # one",
        "       2],",
        "):",
        "    pass",
    ]);
    assert_eq!(names(&meta), ["a", "b"]);
    assert_eq!(param(&meta, "b").default, Some(json!([1, 2])));
}

// --- literal defaults ------------------------------------------------------

#[test]
fn detect_numeric_defaults() {
    let cases = [
        ("0", json!(0)),
        ("-1", json!(-1)),
        ("+7", json!(7)),
        ("- 3", json!(-3)),
        ("--4", json!(4)),
        ("1_000_000", json!(1_000_000)),
        ("-1_000", json!(-1000)),
        ("0x_ff", json!(255)),
        ("0o17", json!(15)),
        ("0B101", json!(5)),
        (
            "18446744073709551615",
            json!(18_446_744_073_709_551_615_u64),
        ),
        ("-9223372036854775808", json!(i64::MIN)),
        ("1.5", json!(1.5)),
        ("-0.25", json!(-0.25)),
        ("1e3", json!(1000.0)),
        ("1_0.5e-1", json!(1.05)),
        (".5", json!(0.5)),
        ("5.", json!(5.0)),
        ("(3)", json!(3)),
    ];
    for (source, expected) in cases {
        let (default, default_source) = default_of(source);
        assert_eq!(default, Some(expected), "{source}");
        assert_eq!(default_source.as_deref(), Some(source));
    }
}

#[test]
fn detect_non_json_numbers_are_not_literal() {
    for source in [
        "1j",
        "2.5J",
        "1e400",
        "-1e400",
        "99999999999999999999999",
        "~1",
        "1 + 2",
    ] {
        let (default, default_source) = default_of(source);
        assert_eq!(default, None, "{source}");
        assert_eq!(default_source.as_deref(), Some(source));
    }
}

#[test]
fn detect_string_defaults() {
    let cases = [
        ("'plain'", "plain"),
        ("\"double\"", "double"),
        ("'a\\nb\\tc\\\\d\\'e'", "a\nb\tc\\d'e"),
        ("'\\x41\\u00e9\\U0001F600\\101\\0'", "Aé😀A\0"),
        ("'unknown \\d escape'", "unknown \\d escape"),
        ("'\\N{DASH}'", "\\N{DASH}"),
        ("r'raw\\n'", "raw\\n"),
        ("U'x'", "x"),
        ("u'unicode prefix'", "unicode prefix"),
        ("'con' \"cat\" '''ena''' 'tion'", "concatenation"),
        ("'''triple\nquoted'''", "triple\nquoted"),
        ("'line \\\ncontinued'", "line continued"),
        ("'héllo wörld ✓'", "héllo wörld ✓"),
        ("''", ""),
    ];
    for (source, expected) in cases {
        let (default, default_source) = default_of(source);
        assert_eq!(default, Some(json!(expected)), "{source}");
        assert_eq!(default_source.as_deref(), Some(source));
    }
}

#[test]
fn detect_bytes_and_fstrings_are_not_literal() {
    for source in [
        "b'x'",
        "f'{a}'",
        "F'plain'",
        "'a' b'b'",
        "rb'x'",
        "'a' f'{b}'",
    ] {
        let (default, default_source) = default_of(source);
        assert_eq!(default, None, "{source}");
        assert_eq!(default_source.as_deref(), Some(source));
    }
}

#[test]
fn detect_container_defaults() {
    let cases = [
        ("[]", json!([])),
        ("()", json!([])),
        ("{}", json!({})),
        (
            "[1, 'a', None, True, -2.5]",
            json!([1, "a", null, true, -2.5]),
        ),
        ("(1,)", json!([1])),
        ("[[1, [2, (3, 4)]], []]", json!([[1, [2, [3, 4]]], []])),
        (
            "{'a': 1, \"b\": [True, {'c': None}], 'd' 'e': (1, 2)}",
            json!({"a": 1, "b": [true, {"c": null}], "de": [1, 2]}),
        ),
        ("{'k': 1, 'k': 2}", json!({"k": 2})),
    ];
    for (source, expected) in cases {
        let (default, default_source) = default_of(source);
        assert_eq!(default, Some(expected), "{source}");
        assert_eq!(default_source.as_deref(), Some(source));
    }
}

#[test]
fn detect_non_literal_containers() {
    for source in [
        "{1: 'a'}",
        "{'a': x}",
        "{**base}",
        "[*items]",
        "{1, 2}",
        "[i for i in range(3)]",
        "[1, SOME_CONSTANT]",
        "lambda: 1",
        "list()",
        "x",
    ] {
        let (default, default_source) = default_of(source);
        assert_eq!(default, None, "{source}");
        assert_eq!(default_source.as_deref(), Some(source));
    }
}

#[test]
fn detect_deeply_nested_default_is_bounded() {
    let depth = 500;
    let source = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let (default, default_source) = default_of(&source);
    assert_eq!(default, None);
    assert_eq!(default_source, Some(source));

    let (default, _) = default_of(&format!("{}1{}", "[".repeat(10), "]".repeat(10)));
    assert_eq!(default, Some(json!([[[[[[[[[[1]]]]]]]]]])));
}

#[test]
fn detect_unicode_identifiers_and_strings() {
    let meta = single(&[
        "@workflow(name='Überweisung ✓', description=\"Zahlt € aus\")",
        "def überweisen(betrag: int = 5, empfänger: str = 'Jürgen'):",
        "    pass",
    ]);
    assert_eq!(meta.name, "Überweisung ✓");
    assert_eq!(meta.function, "überweisen");
    assert_eq!(meta.description.as_deref(), Some("Zahlt € aus"));
    assert_eq!(names(&meta), ["betrag", "empfänger"]);
    assert_eq!(param(&meta, "empfänger").default, Some(json!("Jürgen")));

    let analysis = analyze(&["# ünïcödé ✓", "größe = 1", "ü = print('ö', größe $ 1)"]);
    assert_module(&analysis);
    assert_eq!(
        analysis.diagnostics,
        vec![Diagnostic {
            line: 3,
            column: 22,
            message: "syntax error at `$ 1`".to_owned(),
        }]
    );

    // A comment folded into an error region is skipped for the position.
    let analysis = analyze(&["# ünïcödé ✓", "größe = (1,", "ü = 'ö' $"]);
    assert_module(&analysis);
    assert_eq!(
        (analysis.diagnostics[0].line, analysis.diagnostics[0].column),
        (2, 1)
    );
    assert!(
        analysis.diagnostics[0]
            .message
            .contains("`größe = (1,` … `ü = 'ö' $`"),
        "{:?}",
        analysis.diagnostics
    );
}

#[test]
fn detect_line_numbers_with_crlf_and_long_decorators() {
    let source = "import runeflow\r\n\r\n@runeflow.workflow(\r\n    name='x',\r\n)\r\nasync def run(\r\n    a: int = 1,\r\n):\r\n    pass\r\n";
    let analysis = analyze_python(source);
    assert_eq!(analysis.entity_type, EntityType::Workflow, "{analysis:?}");
    let meta = &analysis.workflows[0];
    assert_eq!(
        (meta.line, meta.is_async, meta.name.as_str()),
        (6, true, "x")
    );
    assert_eq!(meta.parameters[0].default, Some(json!(1)));
}

#[test]
fn detect_analysis_serializes_as_snake_case() {
    let analysis = analyze(&["@data_provider", "def options(): pass"]);
    let value = serde_json::to_value(&analysis).unwrap();
    assert_eq!(value["entity_type"], "data_provider");
    assert_eq!(value["workflows"][0]["kind"], "data_provider");
}

// --- big inputs ------------------------------------------------------------

/// About `target` bytes of valid Python: many helpers and a few workflows.
fn big_valid_source(target: usize) -> String {
    let mut source = String::from("import runeflow\n\n");
    let mut i = 0;
    while source.len() < target {
        if i % 5000 == 2500 {
            source.push_str(&format!(
                "@runeflow.workflow(name='wf {i}', timeout={i})\nasync def wf_{i}(ctx: Context, n: int = {i}, *, tag: str = 'ünï'):\n    \"\"\"Workflow {i}.\n\n    More.\"\"\"\n    return n\n\n\n"
            ));
        } else {
            source.push_str(&format!(
                "def helper_{i}(a: int, b: str = \"x{i}\", *rest) -> int:\n    \"\"\"Doc {i}: @workflow in a docstring.\"\"\"\n    # @workflow in a comment\n    values = [a, {i}, {{'k': (b, None)}}]\n    return len(values) + a\n\n\n"
            ));
        }
        i += 1;
    }
    source
}

#[test]
fn detect_big_valid_file() {
    let source = big_valid_source(4 * 1024 * 1024);
    assert!(source.len() >= 4 * 1024 * 1024);
    let analysis = analyze_python(&source);
    assert!(
        analysis.diagnostics.is_empty(),
        "{:?}",
        analysis.diagnostics
    );
    assert_eq!(analysis.entity_type, EntityType::Workflow);
    let expected = source.matches("@runeflow.workflow(").count();
    assert!(expected >= 3);
    assert_eq!(analysis.workflows.len(), expected);
    for meta in &analysis.workflows {
        let i: u64 = meta.function.trim_start_matches("wf_").parse().unwrap();
        assert_eq!(meta.name, format!("wf {i}"));
        assert_eq!(meta.timeout_seconds, Some(i as f64));
        assert_eq!(
            meta.description.as_deref(),
            Some(format!("Workflow {i}.").as_str())
        );
        assert!(meta.is_async);
        assert_eq!(names(meta), ["n", "tag"]);
        assert_eq!(meta.parameters[0].default, Some(json!(i)));
        assert_eq!(meta.parameters[1].default, Some(json!("ünï")));
        let def_line = source
            .lines()
            .position(|l| l.starts_with(&format!("async def {}(", meta.function)))
            .unwrap();
        assert_eq!(meta.line as usize, def_line + 1);
    }
}

#[test]
fn detect_big_file_full_of_syntax_errors() {
    let chunk = "x = = 1\n@workflow\ndef broken(:\n    pass\nprint(1 2)\n$ 1\n@runeflow.workflow\nasync def ok(a, b=[1, 2]):\n    return a\n";
    let source = chunk.repeat(4 * 1024 * 1024 / chunk.len() + 1);
    let analysis = analyze_python(&source);
    assert_module(&analysis);
    assert_eq!(
        analysis.diagnostics.len(),
        MAX_DIAGNOSTICS,
        "{:?}",
        analysis.diagnostics
    );
    for d in &analysis.diagnostics {
        assert!(d.line >= 1 && d.line < 200 && d.column >= 1, "{d:?}");
    }
}

#[test]
fn detect_big_file_with_many_independent_errors() {
    let source = "x = = 1\nprint('ok')\n".repeat(4 * 1024 * 1024 / 20);
    let analysis = analyze_python(&source);
    assert_module(&analysis);
    assert_eq!(
        analysis.diagnostics.len(),
        MAX_DIAGNOSTICS,
        "{:?}",
        analysis.diagnostics
    );
    assert_eq!(
        (analysis.diagnostics[0].line, analysis.diagnostics[0].column),
        (1, 5),
        "{:?}",
        analysis.diagnostics
    );
}

#[test]
fn detect_error_after_big_valid_prefix_is_found() {
    let mut source = big_valid_source(300 * 1024);
    let line = source.lines().count() + 1;
    source.push_str("def tail(:\n    pass\n");
    let analysis = analyze_python(&source);
    assert_module(&analysis);
    assert_eq!(
        analysis.diagnostics[0].line as usize, line,
        "{:?}",
        analysis.diagnostics
    );
}

/// When time runs out (a tiny budget here), the analysis still reports where
/// the trouble starts and says where the check stopped.
#[test]
fn detect_over_budget_parse_stops_with_a_note() {
    let source = "x = (1, 2\n".repeat(400_000);
    let analysis = analyze_with_budget(&source, Duration::from_millis(300));
    assert_module(&analysis);
    assert!(analysis.diagnostics.len() <= MAX_DIAGNOSTICS);
    assert_eq!(
        analysis.diagnostics[0].line, 1,
        "{:?}",
        analysis.diagnostics
    );
    let last = analysis.diagnostics.last().unwrap();
    assert!(
        last.message.starts_with("syntax check stopped here"),
        "{last:?}"
    );

    let analysis = analyze_with_budget(&source, Duration::ZERO);
    assert_eq!(
        analysis.diagnostics,
        vec![Diagnostic {
            line: 1,
            column: 1,
            message: "syntax check stopped here: the file is too large and broken to check in full"
                .to_owned(),
        }]
    );
}

/// Valid code crossing the prefix cuts (16 KiB, 64 KiB, ...) must parse as
/// if read in one go: a big literal, a long docstring, a decorator before
/// the first cut with its `def` after it.
#[test]
fn detect_valid_constructs_across_prefix_cuts() {
    let filler = "def ok():\n    pass\n".repeat(16 * 1024 / 19);
    let mut source = filler.clone();
    source.push_str("@workflow(name='across')\n");
    source.push_str("def across(x=[\n");
    source.push_str(&"    1,\n".repeat(3000));
    source.push_str("]):\n    '''Doc\n");
    source.push_str(&"text\n".repeat(20_000));
    source.push_str("'''\n");
    source.push_str(&filler.repeat(20));
    assert!(source.find("def across").unwrap() > 16 * 1024);
    assert!(source.find("@workflow").unwrap() < 16 * 1024);
    let analysis = analyze_python(&source);
    assert!(
        analysis.diagnostics.is_empty(),
        "{:?}",
        analysis.diagnostics
    );
    assert_eq!(analysis.entity_type, EntityType::Workflow);
    let meta = &analysis.workflows[0];
    assert_eq!(meta.name, "across");
    let default = meta.parameters[0]
        .default
        .as_ref()
        .and_then(|v| v.as_array());
    assert_eq!(default.map(Vec::len), Some(3000));
    let summary = format!("Doc {}", ["text"; 20_000].join(" "));
    assert_eq!(meta.description.as_deref(), Some(summary.as_str()));
}

#[test]
fn detect_prefix_scan_keeps_errors_caused_by_the_cut_apart() {
    // 19 real errors, valid code up to past the 16 KiB cut with a bracket
    // open across it, then more errors. The open bracket at the cut must not
    // be reported as the 20th problem.
    let mut source = "x = = 1\n".repeat(MAX_DIAGNOSTICS - 1);
    source.push_str(&"def ok():\n    pass\n".repeat(16 * 1024 / 19));
    let bracket_line = source.lines().count() + 1;
    source.push_str("DATA = [\n");
    source.push_str(&"    1,\n".repeat(2000));
    source.push_str("]\n");
    let oops_line = source.lines().count() + 1;
    source.push_str(&"oops = = 1\n".repeat(5));
    let analysis = analyze_python(&source);
    assert_module(&analysis);
    assert_eq!(analysis.diagnostics.len(), MAX_DIAGNOSTICS);
    assert!(
        analysis
            .diagnostics
            .iter()
            .all(|d| d.line as usize != bracket_line),
        "{:?}",
        analysis.diagnostics
    );
    assert_eq!(analysis.diagnostics[19].line as usize, oops_line);
}
