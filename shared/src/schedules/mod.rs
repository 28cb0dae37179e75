//! Schedules: the rows of `schedules` (decorator ones derived from
//! `workflows.settings`, API ones created over REST) and which ticks of one
//! are due. The API's scheduler loop drives both.

pub mod statements;
pub mod ticks;

pub use statements::{ScheduleRow, Source};
pub use ticks::{Due, ON_TIME, due, tick_key};
