//! sea-orm entities, one file per table. The schema itself is owned by the
//! `runeflow-migrations` crate; these structs must match it.

pub mod execution;
pub mod workflow;
pub mod workspace_file;
