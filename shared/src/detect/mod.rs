//! Entity detection: what a workspace file is, read with a real Python parser.
//!
//! A `.py` file is a `workflow` or `data_provider` when a module-level `def` /
//! `async def` carries one of our decorators; otherwise it is a `module`.
//! Detection never fails: a file with a syntax error is still a module, and the
//! parser's complaints come back as [`Diagnostic`]s for the write response.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a stored file is. Stored as text in `workspace_files.entity_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntityType {
    /// A `.py` file with at least one `@workflow` function.
    Workflow,
    /// A `.py` file with `@data_provider` functions and no `@workflow`.
    DataProvider,
    /// Any other `.py` file, including ones that do not parse.
    Module,
    /// A UTF-8 data file (any other extension), readable via `importlib.resources`.
    File,
}

impl EntityType {
    /// The text stored in PostgreSQL.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityType::Workflow => "workflow",
            EntityType::DataProvider => "data_provider",
            EntityType::Module => "module",
            EntityType::File => "file",
        }
    }

    /// Parses the stored text back; `None` for anything we never write.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "workflow" => EntityType::Workflow,
            "data_provider" => EntityType::DataProvider,
            "module" => EntityType::Module,
            "file" => EntityType::File,
            _ => return None,
        })
    }
}

/// Which decorator made a function an entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowKind {
    Workflow,
    DataProvider,
}

impl WorkflowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowKind::Workflow => "workflow",
            WorkflowKind::DataProvider => "data_provider",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "workflow" => Some(WorkflowKind::Workflow),
            "data_provider" => Some(WorkflowKind::DataProvider),
            _ => None,
        }
    }
}

/// A parser complaint, 1-based line and column (column counted in characters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Diagnostic {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

/// One user-facing parameter of a workflow function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Parameter {
    pub name: String,
    /// The annotation's source text, e.g. `list[str]`, when there is one.
    pub annotation: Option<String>,
    /// The default as JSON when it is a literal (`None`, bools, numbers,
    /// strings, and lists/tuples/dicts of literals); `null` otherwise.
    #[schema(value_type = Option<Object>)]
    pub default: Option<serde_json::Value>,
    /// The default's source text whenever there is a default (literal or not).
    pub default_source: Option<String>,
    /// True when the caller must pass it (no default, not `*args`/`**kwargs`).
    pub required: bool,
}

/// Metadata of one decorated module-level function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkflowMeta {
    /// Decorator `name=` or the function name.
    pub name: String,
    /// The Python function name.
    pub function: String,
    pub kind: WorkflowKind,
    /// Decorator `description=` or the docstring's first paragraph.
    pub description: Option<String>,
    pub parameters: Vec<Parameter>,
    /// Decorator `timeout=` (alias `timeout_seconds=`) in seconds, when a numeric literal.
    pub timeout_seconds: Option<f64>,
    /// Whether the function is `async def`.
    pub is_async: bool,
    /// 1-based line of the `def`.
    pub line: u32,
    /// Schedule, retries, endpoint, concurrency, cache settings (see `settings.rs`).
    #[serde(default)]
    pub settings: Settings,
    /// What was wrong with the decorator's settings; moved into
    /// [`Analysis::diagnostics`] before detection returns.
    #[serde(skip)]
    pub(crate) problems: Vec<Diagnostic>,
    /// 1-based line and column of the `schedule=` value, for its diagnostic.
    #[serde(skip)]
    pub(crate) schedule_at: Option<(u32, u32)>,
}

/// Everything detection learns from one `.py` source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub entity_type: EntityType,
    pub workflows: Vec<WorkflowMeta>,
    pub diagnostics: Vec<Diagnostic>,
}

mod chunks;
mod python;
mod settings;
#[cfg(test)]
mod tests;

pub use python::analyze_python;
pub use settings::{
    DEFAULT_CACHE_TTL_SECONDS, MAX_CACHE_TTL_SECONDS, MAX_CONCURRENCY, MAX_RETRIES,
    MAX_RETRY_BACKOFF_SECONDS, MAX_SCHEDULES_PER_FILE, ScheduleSetting, Settings,
};
