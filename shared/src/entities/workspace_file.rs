//! `workspace_files`: every file of the workspace, keyed by its path.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "workspace_files")]
pub struct Model {
    /// Relative `/`-separated path; the file's identity.
    #[sea_orm(primary_key, auto_increment = false)]
    pub path: String,
    /// UTF-8 text; empty once deleted.
    pub content: String,
    /// sha256 hex of `content`.
    pub content_hash: String,
    /// `workflow` | `data_provider` | `module` | `file`.
    pub entity_type: String,
    /// Soft delete: the row stays so a late Redis write can be ordered.
    pub is_deleted: bool,
    /// Size of `content` in bytes.
    pub size: i64,
    /// Bumped from `workspace_revision_seq` on every mutation; orders the
    /// Redis store's updates of one path.
    pub revision: i64,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
    pub deleted_at: Option<DateTimeWithTimeZone>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
