//! `workflows`: one row per decorated function, rebuilt on every write of its file.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "workflows")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Path of the file that defines it.
    pub path: String,
    /// Decorator `name=` or the function name; not unique across files.
    pub name: String,
    pub function_name: String,
    /// `workflow` | `data_provider`.
    pub kind: String,
    pub description: Option<String>,
    /// `[Parameter]` as JSON (see `detect::Parameter`).
    pub parameters: Json,
    pub timeout_seconds: Option<f64>,
    pub is_async: bool,
    pub line: i32,
    /// `detect::Settings` as JSON: schedule, retries, endpoint, concurrency, cache.
    pub settings: Json,
    pub updated_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
