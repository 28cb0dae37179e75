//! Python entity detection with tree-sitter-python.
//!
//! Only direct children of the `module` node count as entry points: a
//! `decorated_definition` whose definition is a `def` / `async def` and which
//! carries `@workflow`, `@workflow(...)`, `@runeflow.workflow` or
//! `@runeflow.workflow(...)` (and the same four forms of `@data_provider`).
//! Functions inside `if` / `try` blocks, nested functions and methods do not
//! count, and neither does anything in comments or strings, because those are
//! not decorator nodes of a module-level definition.
//!
//! A source with any ERROR or MISSING node is a module without workflows; the
//! first [`MAX_DIAGNOSTICS`] problems come back as diagnostics.
//!
//! Cost: tree-sitter's error recovery is slow on big, badly broken inputs
//! (seconds per MB, and far worse for some inputs). So the file is parsed as
//! growing prefixes, each parse reusing the previous tree (incremental
//! parsing, so a valid file costs about one parse), and parsing stops as soon
//! as a prefix shows [`MAX_DIAGNOSTICS`] problems. A wall-clock budget bounds
//! the rest (see [`budget_for`]). Files of [`PIECE_BYTES`] × 2 and more are
//! first tried in pieces on several threads (see `chunks.rs`); the careful
//! path above runs only when a piece shows a problem.

use std::time::{Duration, Instant};

use serde_json::{Map, Number, Value};
use tree_sitter::{InputEdit, Node, ParseOptions, Parser, Point, Tree};

use super::chunks::{PIECE_BYTES, entry_points_in_pieces};
use super::settings::{Keyword, check_schedules, read_settings};
use super::{Analysis, Diagnostic, EntityType, Parameter, WorkflowKind, WorkflowMeta};
use crate::timeout::timeout_duration;

/// At most this many diagnostics are reported per file.
pub(crate) const MAX_DIAGNOSTICS: usize = 20;

/// Deeper literal defaults are reported as non-literal (keeps recursion bounded).
const MAX_LITERAL_DEPTH: usize = 64;

/// Longest quoted snippet of unparsable text in a diagnostic, in characters.
const SNIPPET_CHARS: usize = 30;

/// First prefix parsed; each next one is 4× larger, the last is the whole file.
const FIRST_PREFIX_BYTES: usize = 16 * 1024;

/// Annotations that mark the SDK's execution context, which is not a user parameter.
const CONTEXT_TYPES: [&str; 4] = [
    "Context",
    "runeflow.Context",
    "ExecutionContext",
    "runeflow.ExecutionContext",
];

/// Wall-clock parse budget: 2 s plus 2 s per MiB.
///
/// Valid Python parses in roughly linear time (several MB/s, also in debug
/// builds), far inside this; only heavy error recovery runs into it. The
/// budget is wall-clock, so a valid file on a badly overloaded machine could
/// in theory be cut short: it then comes back as a module with a diagnostic
/// saying the check stopped, never as a wrong workflow.
pub(crate) fn budget_for(len: usize) -> Duration {
    let mib = u32::try_from(len / (1024 * 1024)).unwrap_or(u32::MAX);
    Duration::from_secs(2).saturating_add(Duration::from_secs(2).saturating_mul(mib))
}

/// Analyses one `.py` source: entity type, workflow metadata and syntax
/// diagnostics. Never fails and never panics on any input.
///
/// Parameters exclude `*args`, `**kwargs` and the bare `*` / `/` separators
/// (they are not user-settable named parameters), and the SDK context: a
/// parameter named `context`, or annotated `Context`, `runeflow.Context`,
/// `ExecutionContext` or `runeflow.ExecutionContext`.
pub fn analyze_python(source: &str) -> Analysis {
    analyze_with_budget(source, budget_for(source.len()))
}

/// [`analyze_python`] with an explicit time budget (tests use small ones).
pub(crate) fn analyze_with_budget(source: &str, budget: Duration) -> Analysis {
    // No deadline only if the budget is too large to represent.
    let deadline = Instant::now().checked_add(budget);
    if source.len() >= 2 * PIECE_BYTES
        && let Some(mut workflows) = entry_points_in_pieces(source, deadline)
    {
        return Analysis {
            entity_type: entity_type(&workflows),
            diagnostics: setting_diagnostics(&mut workflows),
            workflows,
        };
    }
    match parse_source(source, deadline) {
        Parsed::Clean(tree) => {
            let mut workflows = entry_points(tree.root_node(), source);
            Analysis {
                entity_type: entity_type(&workflows),
                diagnostics: setting_diagnostics(&mut workflows),
                workflows,
            }
        }
        Parsed::Broken(diagnostics) => Analysis {
            entity_type: EntityType::Module,
            workflows: Vec::new(),
            diagnostics,
        },
    }
}

/// Workflow wins over data provider; no entry point means a plain module.
fn entity_type(workflows: &[WorkflowMeta]) -> EntityType {
    if workflows.iter().any(|w| w.kind == WorkflowKind::Workflow) {
        EntityType::Workflow
    } else if workflows.is_empty() {
        EntityType::Module
    } else {
        EntityType::DataProvider
    }
}

// ---------------------------------------------------------------------------
// Parsing in growing prefixes under a budget
// ---------------------------------------------------------------------------

/// Result of parsing: a tree of the whole file without problems, or the problems.
enum Parsed {
    Clean(Tree),
    Broken(Vec<Diagnostic>),
}

/// Parses prefixes of 16 KiB, 64 KiB, ... (cut at line ends) until one shows
/// [`MAX_DIAGNOSTICS`] problems, the whole file is parsed, or time runs out.
///
/// Problems touching the end of a prefix may exist only because of the cut
/// (a bracket or string continued on the next line), so they are kept apart
/// and reported only if time runs out with nothing certain found.
fn parse_source(source: &str, deadline: Option<Instant>) -> Parsed {
    let mut parser = Parser::new();
    if parser
        .set_language(&tree_sitter_python::LANGUAGE.into())
        .is_err()
    {
        return Parsed::Broken(vec![Diagnostic {
            line: 1,
            column: 1,
            message: "internal error: the Python parser could not be loaded".to_owned(),
        }]);
    }
    let mut tree: Option<Tree> = None;
    let mut parsed_to = Position::default();
    let mut problems = Problems::default();
    let mut size = FIRST_PREFIX_BYTES;
    loop {
        let cut = line_end_after(source, size);
        let Some(text) = source.get(..cut) else { break };
        let end = parsed_to.advanced_over(text.get(parsed_to.byte..).unwrap_or_default());
        if let Some(old) = tree.as_mut() {
            old.edit(&append_edit(parsed_to, end));
        }
        let Some(new_tree) = parse_text(&mut parser, text, tree.as_ref(), deadline, &|| false)
        else {
            break;
        };
        let root = new_tree.root_node();
        if cut >= source.len() {
            return if root.has_error() {
                Parsed::Broken(all_problems(root, text))
            } else {
                Parsed::Clean(new_tree)
            };
        }
        problems = syntax_problems(root, text, Some(text.trim_end().len()));
        if problems.certain.len() >= MAX_DIAGNOSTICS {
            return Parsed::Broken(problems.certain);
        }
        tree = Some(new_tree);
        parsed_to = end;
        size = size.saturating_mul(4);
    }
    Parsed::Broken(stopped_early(problems, parsed_to.row))
}

/// Parses `text`, reusing `old` (already edited to match); `None` when the
/// deadline passed or `stop` said so.
pub(super) fn parse_text(
    parser: &mut Parser,
    text: &str,
    old: Option<&Tree>,
    deadline: Option<Instant>,
    stop: &dyn Fn() -> bool,
) -> Option<Tree> {
    let bytes = text.as_bytes();
    let mut read = |offset: usize, _| bytes.get(offset..).unwrap_or_default();
    let mut cancel = |_: &_| stop() || deadline.is_some_and(|d| Instant::now() >= d);
    let options = ParseOptions::new().progress_callback(&mut cancel);
    let tree = parser.parse_with_options(&mut read, old, Some(options));
    if tree.is_none() {
        // Otherwise the next parse call would resume the cancelled one.
        parser.reset();
    }
    tree
}

/// A place in the source, as tree-sitter counts it (row, byte column).
#[derive(Debug, Clone, Copy, Default)]
struct Position {
    byte: usize,
    row: usize,
    column: usize,
}

impl Position {
    /// The position after `added` text that starts here.
    fn advanced_over(self, added: &str) -> Position {
        let byte = self.byte + added.len();
        match added.rfind('\n') {
            Some(last) => Position {
                byte,
                row: self.row + added.bytes().filter(|&b| b == b'\n').count(),
                column: added.len() - last - 1,
            },
            None => Position {
                byte,
                row: self.row,
                column: self.column + added.len(),
            },
        }
    }

    fn point(self) -> Point {
        Point::new(self.row, self.column)
    }
}

/// The edit telling the old tree that text was appended from `old_end` to `new_end`.
fn append_edit(old_end: Position, new_end: Position) -> InputEdit {
    InputEdit {
        start_byte: old_end.byte,
        old_end_byte: old_end.byte,
        new_end_byte: new_end.byte,
        start_position: old_end.point(),
        old_end_position: old_end.point(),
        new_end_position: new_end.point(),
    }
}

/// Diagnostics when time ran out: what was certain (else the first uncertain
/// problem), plus a note on where the check stopped (`checked_rows` lines).
fn stopped_early(problems: Problems, checked_rows: usize) -> Vec<Diagnostic> {
    let mut diagnostics = problems.certain;
    if diagnostics.is_empty() {
        diagnostics.extend(problems.at_cut);
    }
    if diagnostics.len() < MAX_DIAGNOSTICS {
        diagnostics.push(Diagnostic {
            line: to_u32(checked_rows + 1),
            column: 1,
            message: "syntax check stopped here: the file is too large and broken to check in full"
                .to_owned(),
        });
    }
    diagnostics
}

/// Byte offset just past the first line end at or after `at` (or the end).
fn line_end_after(source: &str, at: usize) -> usize {
    let bytes = source.as_bytes();
    bytes
        .get(at..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
        .map_or(bytes.len(), |i| at + i + 1)
}

// ---------------------------------------------------------------------------
// Diagnostics
// ---------------------------------------------------------------------------

/// Problems found in one tree, in document order.
#[derive(Default)]
struct Problems {
    /// Problems that are real whatever follows.
    certain: Vec<Diagnostic>,
    /// The first problem reaching the end of a prefix (maybe caused by the cut).
    at_cut: Option<Diagnostic>,
}

/// The problems of a complete parse; never empty for a tree with errors.
fn all_problems(root: Node, text: &str) -> Vec<Diagnostic> {
    let mut diagnostics = syntax_problems(root, text, None).certain;
    if diagnostics.is_empty() {
        diagnostics.push(Diagnostic {
            line: 1,
            column: 1,
            message: "syntax error".to_owned(),
        });
    }
    diagnostics
}

/// Walks only into subtrees that contain errors (cheap on big files) and
/// collects ERROR / MISSING nodes, without descending into ERROR nodes.
/// With `cut_at`, problems ending at or after that byte go to `at_cut`.
fn syntax_problems(root: Node, text: &str, cut_at: Option<usize>) -> Problems {
    let mut problems = Problems::default();
    let mut cursor = root.walk();
    'walk: loop {
        let node = cursor.node();
        let is_problem = node.is_error() || node.is_missing();
        if is_problem {
            let diagnostic = diagnostic(node, text);
            if cut_at.is_some_and(|cut| node.end_byte() >= cut) {
                problems.at_cut.get_or_insert(diagnostic);
            } else {
                problems.certain.push(diagnostic);
                if problems.certain.len() >= MAX_DIAGNOSTICS {
                    break;
                }
            }
        }
        if !is_problem && node.has_error() && cursor.goto_first_child() {
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                continue 'walk;
            }
            if !cursor.goto_parent() {
                break 'walk;
            }
        }
    }
    problems
}

/// One diagnostic: what is missing, or which text could not be parsed.
fn diagnostic(node: Node, text: &str) -> Diagnostic {
    if node.is_missing() {
        let (line, column) = position(node, text);
        return Diagnostic {
            line,
            column,
            message: missing_message(node),
        };
    }
    // Comments are extras the parser may fold into an ERROR: start after them.
    let start = first_child_not_comment(node).unwrap_or(node);
    let (line, column) = position(start, text);
    let region = text
        .get(start.start_byte()..node.end_byte())
        .unwrap_or_default();
    Diagnostic {
        line,
        column,
        message: error_message(region, line),
    }
}

/// "missing `)`" for punctuation and keywords, "missing identifier" for named tokens.
fn missing_message(node: Node) -> String {
    let kind = node.kind();
    if node.is_named() || kind.starts_with('_') {
        format!("missing {}", kind.trim_start_matches('_').replace('_', " "))
    } else {
        format!("missing `{kind}`")
    }
}

/// Quotes the unparsable region: its text when on one line, else its first
/// and last lines with the line range (`line` is the region's first line).
fn error_message(region: &str, line: u32) -> String {
    let region = region.trim();
    let first = region.lines().next().unwrap_or_default().trim();
    if first.is_empty() {
        return "syntax error".to_owned();
    }
    match region.rsplit_once('\n') {
        None => format!("syntax error at `{}`", head(first)),
        Some((_, last)) => {
            let newlines = region.bytes().filter(|&b| b == b'\n').count();
            let last_line = to_u32(newlines).saturating_add(line);
            format!(
                "syntax error in lines {line}-{last_line}: `{}` … `{}`",
                head(first),
                tail(last.trim())
            )
        }
    }
}

/// The first [`SNIPPET_CHARS`] characters of `line`, with `…` when cut.
fn head(line: &str) -> String {
    let mut chars = line.chars();
    let mut out: String = chars.by_ref().take(SNIPPET_CHARS).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

/// The last [`SNIPPET_CHARS`] characters of `line`, with `…` when cut.
fn tail(line: &str) -> String {
    let mut chars = line.chars().rev();
    let mut kept: Vec<char> = chars.by_ref().take(SNIPPET_CHARS).collect();
    let cut = chars.next().is_some();
    kept.reverse();
    let kept: String = kept.into_iter().collect();
    if cut { format!("…{kept}") } else { kept }
}

/// 1-based line and character column of a node's start. The column counts
/// characters from the start of the node's line only, so it is cheap.
fn position(node: Node, text: &str) -> (u32, u32) {
    let point = node.start_position();
    let start = node.start_byte();
    let line_start = start.saturating_sub(point.column);
    let column = text
        .get(line_start..start)
        .map_or(point.column, |before| before.chars().count());
    (to_u32(point.row + 1), to_u32(column + 1))
}

/// Saturating conversion for line and column numbers.
fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

// ---------------------------------------------------------------------------
// Entry points and their metadata
// ---------------------------------------------------------------------------

/// Metadata of every decorated module-level function, in source order.
pub(super) fn entry_points(root: Node, source: &str) -> Vec<WorkflowMeta> {
    let mut cursor = root.walk();
    root.named_children(&mut cursor)
        .filter(|node| node.kind() == "decorated_definition")
        .filter_map(|node| entry_point(node, source))
        .collect()
}

/// Metadata when `decorated` is a function carrying one of our decorators.
fn entry_point(decorated: Node, source: &str) -> Option<WorkflowMeta> {
    let function = decorated
        .child_by_field_name("definition")
        .filter(|d| d.kind() == "function_definition")?;
    let (kind, arguments) = our_decorator(decorated, source)?;
    let function_name = text(function.child_by_field_name("name")?, source)?.to_owned();
    let keyword = |name: &str| arguments.and_then(|args| keyword_argument(args, name, source));

    let name = keyword("name")
        .and_then(|value| string_literal(value, source))
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| function_name.clone());
    let description = keyword("description")
        .and_then(|value| string_literal(value, source))
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty())
        .or_else(|| docstring_summary(function, source));
    // `timeout_seconds=` is Bifrost's spelling; `timeout=` wins when both are given.
    let timeout_seconds = keyword("timeout")
        .or_else(|| keyword("timeout_seconds"))
        .and_then(|value| timeout(value, source));
    let read = read_settings(kind, &function_name, &|name| {
        keyword(name).map(|value| keyword_value(name, value, source))
    });

    Some(WorkflowMeta {
        name,
        function: function_name,
        kind,
        description,
        parameters: parameters(function, source),
        timeout_seconds,
        is_async: function.child(0).is_some_and(|c| c.kind() == "async"),
        line: to_u32(function.start_position().row + 1),
        settings: read.settings,
        problems: read.problems,
        schedule_at: read.schedule_at,
    })
}

/// The kind and (if called) argument list of our decorator on `decorated`.
/// When both kinds are present, `@workflow` wins; of several decorators of the
/// chosen kind the first one supplies the keywords.
fn our_decorator<'t>(
    decorated: Node<'t>,
    source: &str,
) -> Option<(WorkflowKind, Option<Node<'t>>)> {
    let mut cursor = decorated.walk();
    let found: Vec<_> = decorated
        .children(&mut cursor)
        .filter(|child| child.kind() == "decorator")
        .filter_map(|decorator| decorator_kind(decorator, source))
        .collect();
    found
        .iter()
        .find(|(kind, _)| *kind == WorkflowKind::Workflow)
        .or_else(|| found.first())
        .copied()
}

/// Recognises `@NAME`, `@runeflow.NAME` and both called, for our two names.
fn decorator_kind<'t>(
    decorator: Node<'t>,
    source: &str,
) -> Option<(WorkflowKind, Option<Node<'t>>)> {
    let expression = first_named_child(decorator)?;
    let (target, arguments) = if expression.kind() == "call" {
        let arguments = expression
            .child_by_field_name("arguments")
            .filter(|a| a.kind() == "argument_list");
        (expression.child_by_field_name("function")?, arguments)
    } else {
        (expression, None)
    };
    let name = match target.kind() {
        "identifier" => text(target, source)?,
        "attribute" => {
            let object = target.child_by_field_name("object")?;
            if object.kind() != "identifier" || text(object, source)? != "runeflow" {
                return None;
            }
            text(target.child_by_field_name("attribute")?, source)?
        }
        _ => return None,
    };
    Some((WorkflowKind::parse(name)?, arguments))
}

/// The value of keyword argument `name` (the first, if repeated).
fn keyword_argument<'t>(arguments: Node<'t>, name: &str, source: &str) -> Option<Node<'t>> {
    let mut cursor = arguments.walk();
    let found = arguments
        .named_children(&mut cursor)
        .filter(|arg| arg.kind() == "keyword_argument")
        .find(|arg| {
            arg.child_by_field_name("name")
                .and_then(|n| text(n, source))
                .is_some_and(|n| n == name)
        });
    found?.child_by_field_name("value")
}

/// A keyword's value as the settings reader sees it.
fn keyword_value(name: &str, value: Node, source: &str) -> Keyword {
    let (line, column) = position(value, source);
    Keyword {
        name: name.to_owned(),
        value: literal(value, source, 0),
        source: text(value, source).unwrap_or_default().to_owned(),
        line,
        column,
    }
}

/// `timeout=` only counts as a plain int or float literal; its range is
/// checked afterwards ([`setting_diagnostics`]), which reports a bad one.
fn timeout(value: Node, source: &str) -> Option<f64> {
    match number(value, source, 0)? {
        Num::Int(i) => Some(i as f64),
        Num::Float(f) => Some(f),
    }
}

/// The settings problems found while reading each decorator, the bad
/// schedules (checked once per file, see `check_schedules`), plus every
/// out-of-range `timeout=`, which is dropped (the worker's default then
/// applies) and reported on the function's line. In line order.
fn setting_diagnostics(workflows: &mut [WorkflowMeta]) -> Vec<Diagnostic> {
    let mut diagnostics = check_schedules(workflows);
    for meta in workflows.iter_mut() {
        diagnostics.append(&mut meta.problems);
        if let Some(seconds) = meta.timeout_seconds
            && let Err(err) = timeout_duration(seconds)
        {
            meta.timeout_seconds = None;
            diagnostics.push(Diagnostic {
                line: meta.line,
                column: 1,
                message: format!("{}: {err}; the default timeout applies", meta.function),
            });
        }
    }
    diagnostics.sort_by_key(|d| (d.line, d.column));
    diagnostics.truncate(MAX_DIAGNOSTICS);
    diagnostics
}

/// The first paragraph of the function's docstring, lines trimmed and joined
/// by single spaces (this also removes the common indentation).
fn docstring_summary(function: Node, source: &str) -> Option<String> {
    let body = function.child_by_field_name("body")?;
    let statement = first_named_child(body).filter(|s| s.kind() == "expression_statement")?;
    if statement.named_child_count() != 1 {
        return None;
    }
    let doc = string_literal(first_named_child(statement)?, source)?;
    let summary = doc
        .lines()
        .map(str::trim)
        .skip_while(|line| line.is_empty())
        .take_while(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!summary.is_empty()).then_some(summary)
}

// ---------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------

/// User-facing parameters in declaration order (see [`analyze_python`]).
fn parameters(function: Node, source: &str) -> Vec<Parameter> {
    let Some(list) = function.child_by_field_name("parameters") else {
        return Vec::new();
    };
    let mut cursor = list.walk();
    list.named_children(&mut cursor)
        .filter_map(|node| parameter(node, source))
        .collect()
}

/// One named parameter; `None` for splats, separators, comments, the context.
fn parameter(node: Node, source: &str) -> Option<Parameter> {
    let (name, annotation, value) = match node.kind() {
        "identifier" => (node, None, None),
        // The child is an identifier, or a `*args` / `**kwargs` pattern (skipped below).
        "typed_parameter" => (
            first_named_child(node)?,
            node.child_by_field_name("type"),
            None,
        ),
        "default_parameter" | "typed_default_parameter" => (
            node.child_by_field_name("name")?,
            node.child_by_field_name("type"),
            node.child_by_field_name("value"),
        ),
        _ => return None,
    };
    if name.kind() != "identifier" {
        return None;
    }
    let name = text(name, source)?.to_owned();
    let annotation = annotation.and_then(|a| text(a, source)).map(str::to_owned);
    if is_context(&name, annotation.as_deref()) {
        return None;
    }
    Some(Parameter {
        name,
        annotation,
        default: value.and_then(|v| literal(v, source, 0)),
        default_source: value.and_then(|v| text(v, source)).map(str::to_owned),
        required: value.is_none(),
    })
}

/// The SDK's execution context: named `context`, or annotated with its type
/// (whitespace and forward-reference quotes ignored).
fn is_context(name: &str, annotation: Option<&str>) -> bool {
    name == "context"
        || annotation.is_some_and(|a| {
            let compact: String = a.split_whitespace().collect();
            let bare = compact.trim_matches(|c| c == '"' || c == '\'');
            CONTEXT_TYPES.contains(&bare)
        })
}

// ---------------------------------------------------------------------------
// Literals
// ---------------------------------------------------------------------------

/// A literal default as JSON: `None`, bools, numbers, strings, and lists,
/// tuples and string-keyed dicts of literals. `None` for anything else
/// (names, calls, f-strings, bytes, sets, non-finite or huge numbers, ...).
fn literal(node: Node, source: &str, depth: usize) -> Option<Value> {
    if depth > MAX_LITERAL_DEPTH {
        return None;
    }
    match node.kind() {
        "none" => Some(Value::Null),
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        "integer" | "float" | "unary_operator" => number(node, source, depth)?.to_json(),
        "string" | "concatenated_string" => string_literal(node, source).map(Value::String),
        "parenthesized_expression" => literal(first_named_child(node)?, source, depth + 1),
        "list" | "tuple" => {
            let mut cursor = node.walk();
            let items = node
                .named_children(&mut cursor)
                .filter(|item| item.kind() != "comment")
                .map(|item| literal(item, source, depth + 1))
                .collect::<Option<Vec<_>>>()?;
            Some(Value::Array(items))
        }
        "dictionary" => dictionary(node, source, depth),
        _ => None,
    }
}

/// A dict literal with string keys and literal values (later keys win, as in Python).
fn dictionary(node: Node, source: &str, depth: usize) -> Option<Value> {
    let mut map = Map::new();
    let mut cursor = node.walk();
    for entry in node.named_children(&mut cursor) {
        match entry.kind() {
            "comment" => continue,
            "pair" => {
                let key = string_literal(entry.child_by_field_name("key")?, source)?;
                let value = literal(entry.child_by_field_name("value")?, source, depth + 1)?;
                map.insert(key, value);
            }
            _ => return None,
        }
    }
    Some(Value::Object(map))
}

/// A Python number as parsed from a literal.
#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    /// JSON number; `None` when out of JSON's integer range or not finite.
    fn to_json(self) -> Option<Value> {
        match self {
            Num::Int(i) => i64::try_from(i)
                .map(Value::from)
                .or_else(|_| u64::try_from(i).map(Value::from))
                .ok(),
            Num::Float(f) => Number::from_f64(f).map(Value::Number),
        }
    }
}

/// An int or float literal, possibly under unary `-` / `+`.
fn number(node: Node, source: &str, depth: usize) -> Option<Num> {
    if depth > MAX_LITERAL_DEPTH {
        return None;
    }
    match node.kind() {
        "integer" => parse_int(text(node, source)?).map(Num::Int),
        "float" => parse_float(text(node, source)?).map(Num::Float),
        "unary_operator" => {
            let argument = number(node.child_by_field_name("argument")?, source, depth + 1)?;
            match node.child_by_field_name("operator")?.kind() {
                "+" => Some(argument),
                "-" => match argument {
                    Num::Int(i) => i.checked_neg().map(Num::Int),
                    Num::Float(f) => Some(Num::Float(-f)),
                },
                _ => None,
            }
        }
        _ => None,
    }
}

/// Python int syntax: underscores, `0x` / `0o` / `0b`. Imaginary (`1j`) is not a number here.
fn parse_int(raw: &str) -> Option<i128> {
    let digits: String = raw.chars().filter(|&c| c != '_').collect();
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = [("0x", 16), ("0o", 8), ("0b", 2)]
        .into_iter()
        .find_map(|(prefix, radix)| Some((radix, lower.strip_prefix(prefix)?)))
        .unwrap_or((10, lower.as_str()));
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    i128::from_str_radix(body, radix).ok()
}

/// Python float syntax with underscores; imaginary (`1.5j`) is not a number here.
fn parse_float(raw: &str) -> Option<f64> {
    let digits: String = raw.chars().filter(|&c| c != '_').collect();
    if !digits
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
    {
        return None;
    }
    digits.parse().ok()
}

/// The value of a str literal or an implicit concatenation of them. `None`
/// for bytes, f-strings and t-strings, which are not plain text constants.
fn string_literal(node: Node, source: &str) -> Option<String> {
    let mut node = node;
    // `("a" "b")`: loop rather than recurse, so deep nesting stays cheap.
    while node.kind() == "parenthesized_expression" {
        node = first_named_child(node)?;
    }
    match node.kind() {
        "string" => single_string(node, source),
        "concatenated_string" => {
            let mut cursor = node.walk();
            let parts = node
                .named_children(&mut cursor)
                .filter(|part| part.kind() != "comment")
                .map(|part| match part.kind() {
                    "string" => single_string(part, source),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?;
            Some(parts.concat())
        }
        _ => None,
    }
}

/// One string token: prefix checked, quotes removed, escapes decoded unless raw.
fn single_string(node: Node, source: &str) -> Option<String> {
    let mut start = None;
    let mut end = None;
    let mut cursor = node.walk();
    for child in node.children(&mut cursor) {
        match child.kind() {
            "string_start" => start = Some(child),
            "string_end" => end = Some(child),
            "interpolation" => return None,
            _ => {}
        }
    }
    let (start, end) = (start?, end?);
    let prefix = text(start, source)?
        .trim_end_matches(['"', '\''])
        .to_ascii_lowercase();
    if prefix.contains(['b', 'f', 't']) {
        return None;
    }
    let content = source.get(start.end_byte()..end.start_byte())?;
    Some(if prefix.contains('r') {
        content.to_owned()
    } else {
        unescape(content)
    })
}

/// Decodes Python string escapes. Unknown escapes (and `\N{...}`) stay as
/// written, as Python keeps unknown ones; a backslash-newline joins lines.
fn unescape(content: &str) -> String {
    let mut out = String::with_capacity(content.len());
    let mut rest = content;
    while let Some(at) = rest.find('\\') {
        out.push_str(rest.get(..at).unwrap_or_default());
        let after = rest.get(at + 1..).unwrap_or_default();
        let (decoded, used) = escape(after);
        out.extend(decoded);
        rest = after.get(used..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// Decodes the escape after a backslash: the character to emit (if any) and
/// how many bytes of `after` it used. Unknown escapes emit the backslash and
/// use nothing, so the next character is copied as is.
fn escape(after: &str) -> (Option<char>, usize) {
    let Some(first) = after.chars().next() else {
        return (Some('\\'), 0);
    };
    let simple = match first {
        '\\' => Some('\\'),
        '\'' => Some('\''),
        '"' => Some('"'),
        'a' => Some('\x07'),
        'b' => Some('\x08'),
        'f' => Some('\x0c'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\x0b'),
        _ => None,
    };
    if let Some(c) = simple {
        return (Some(c), 1);
    }
    match first {
        '\n' => (None, 1),
        '\r' => (None, if after.starts_with("\r\n") { 2 } else { 1 }),
        '0'..='7' => {
            let len = after
                .bytes()
                .take(3)
                .take_while(|b| (b'0'..=b'7').contains(b))
                .count();
            let code = after
                .get(..len)
                .and_then(|digits| u32::from_str_radix(digits, 8).ok());
            match code.and_then(char::from_u32) {
                Some(c) => (Some(c), len),
                None => (Some('\\'), 0),
            }
        }
        'x' | 'u' | 'U' => {
            let len = match first {
                'x' => 2,
                'u' => 4,
                _ => 8,
            };
            match hex_char(after.get(1..).unwrap_or_default(), len) {
                Some(c) => (Some(c), 1 + len),
                None => (Some('\\'), 0),
            }
        }
        _ => (Some('\\'), 0),
    }
}

/// The character whose code is the first `len` hex digits of `s`.
fn hex_char(s: &str, len: usize) -> Option<char> {
    let digits = s.get(..len)?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    char::from_u32(u32::from_str_radix(digits, 16).ok()?)
}

// ---------------------------------------------------------------------------
// Small tree helpers
// ---------------------------------------------------------------------------

/// A node's source text; `None` only if the byte range were not UTF-8.
fn text<'s>(node: Node, source: &'s str) -> Option<&'s str> {
    node.utf8_text(source.as_bytes()).ok()
}

/// The first child (named or not) that is not a comment.
fn first_child_not_comment(node: Node) -> Option<Node> {
    let mut cursor = node.walk();
    node.children(&mut cursor)
        .find(|child| child.kind() != "comment")
}

/// The first named child that is not a comment.
fn first_named_child(node: Node) -> Option<Node> {
    let mut cursor = node.walk();
    node.named_children(&mut cursor)
        .find(|child| child.kind() != "comment")
}
