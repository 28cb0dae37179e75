//! Parts of Runeflow that the API, the worker and the CLI share: config,
//! sea-orm entities, workspace paths, entity detection, the write path and the
//! Redis module store. This crate knows nothing of axum or apalis.

pub mod audit;
pub mod config;
pub mod config_entries;
pub mod detect;
pub mod durability;
pub mod endpoint_keys;
pub mod entities;
pub mod executions;
pub mod finished_notice;
pub mod hash;
pub mod jobs;
pub mod path;
pub mod protocol;
pub mod redis_conn;
pub mod schedule;
pub mod schedules;
pub mod secrets;
pub mod shutdown;
pub mod store;
pub mod timeout;
pub mod tokens;
pub mod workspace;
