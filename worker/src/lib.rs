//! Runeflow's worker: takes `RunWorkflow` jobs from apalis on Redis and runs
//! each in a child forked from a warm Python zygote, serving the child's
//! imports from an in-memory index and blob cache (memory → Redis →
//! PostgreSQL), and records each outcome exactly once.
//!
//! This crate knows nothing of axum; it never imports `runeflow-api`.

mod bounded_json;
mod byte_lru;
pub mod cancel;
mod child_frame;
pub mod child_users;
pub mod compiler;
pub mod config;
pub mod config_reads;
pub mod execution;
pub mod incoming;
pub mod index;
pub mod modules;
pub mod prefetch;
mod process_tree;
pub mod record;
mod redact;
pub mod running;
mod shim;
mod storable;
pub mod zygote;

pub use config::WorkerConfig;
pub mod janitor;
pub mod job;
pub mod run;
pub mod wake;
// Process lifecycle: restart backoff, drain on shutdown, liveness.
pub mod backoff;
pub mod consume;
pub mod drain;
pub mod health;
