//! The worker's queue connection, watching its fetches so that no wake-up
//! is lost while one is in flight.
//!
//! apalis 1.0 (`PollWith::poll_next`) polls the wake-up stream, ignores
//! whether it fired, then polls its backend; `Persisted::poll_next`, when a
//! fetch is already in flight, just goes on waiting for it. So a wake-up
//! that arrives while a fetch is in flight is used up by that fetch, which
//! was sent before the job was pushed and comes back empty; nothing fetches
//! again until the next heartbeat (or poll). With two workers both can be
//! mid-fetch, and the job waited 100–850 ms. This connection sees every
//! fetch (the apalis-redis `fetch_next` script) and sends it again when it
//! came back empty and a wake-up arrived after it was sent: the second
//! fetch is sent after the push, so it finds the job.
//!
//! It also tells how every fetched job was fetched: counted process-wide
//! ([`fetch_counts`]) and logged at debug level (`runeflow_worker::wake`),
//! where a job whose wake-up was lost shows as `stranded` (see
//! `tests/wake_ups.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Arg, Cmd, Pipeline, RedisFuture, Value};

/// Most times one fetch is sent again (each needs a wake-up that arrived
/// during the previous send; a bound all the same).
const MAX_RESENDS: u32 = 4;

/// What made the worker send a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// The wake-up stream fired while no fetch was in flight.
    WakeUp,
    /// A wake-up arrived while the previous send was in flight.
    Resend,
    /// Anything else: a heartbeat, the poll, a slot that freed up, apalis
    /// fetching again after it took a job.
    Other,
}

/// Jobs fetched, by what sent their fetch, in this process (all workers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchCounts {
    /// By a fetch the wake-up stream started.
    pub by_wake_up: u64,
    /// By a fetch sent again because a wake-up arrived during it.
    pub by_resend: u64,
    /// By any other fetch.
    pub otherwise: u64,
    /// Of `otherwise`: jobs whose wake-up reached this worker while a fetch
    /// was in flight that then came back empty and was not sent again: that
    /// wake-up was lost, and the job waited for something else (a
    /// heartbeat, the poll) to fetch it. Zero unless re-sends run out.
    pub stranded: u64,
    /// Fetches sent again.
    pub resends: u64,
}

static BY_WAKE_UP: AtomicU64 = AtomicU64::new(0);
static BY_RESEND: AtomicU64 = AtomicU64::new(0);
static OTHERWISE: AtomicU64 = AtomicU64::new(0);
static STRANDED: AtomicU64 = AtomicU64::new(0);
static RESENDS: AtomicU64 = AtomicU64::new(0);

/// The counts so far (for tests and the bench).
pub fn fetch_counts() -> FetchCounts {
    FetchCounts {
        by_wake_up: BY_WAKE_UP.load(Ordering::Relaxed),
        by_resend: BY_RESEND.load(Ordering::Relaxed),
        otherwise: OTHERWISE.load(Ordering::Relaxed),
        stranded: STRANDED.load(Ordering::Relaxed),
        resends: RESENDS.load(Ordering::Relaxed),
    }
}

/// Wake-ups remembered by job id, to tell a stranded job (bounded: the
/// oldest half is forgotten past this).
const REMEMBERED_WAKE_UPS: usize = 4096;

/// Fetch bookkeeping of one worker process, shared by its subscription,
/// its wake-up streams and its queue connection.
#[derive(Debug, Default)]
pub(super) struct FetchWatch {
    /// Wake-ups the subscription received so far.
    received: AtomicU64,
    /// Job id → the value of `received` its wake-up brought.
    arrivals: Mutex<HashMap<String, u64>>,
    state: Mutex<WatchState>,
}

#[derive(Debug, Default)]
struct WatchState {
    in_flight: bool,
    /// Set when the wake-up stream fired with no fetch in flight; taken by
    /// the next fetch.
    woken: bool,
    /// The wake-ups (as values of `received`, from exclusive, to inclusive)
    /// that landed on the last fetch that came back empty and was not sent
    /// again.
    lost: Option<(u64, u64)>,
}

/// One send of a fetch.
#[derive(Debug, Clone, Copy)]
struct Send {
    cause: Cause,
    /// `received` when this one was sent.
    seen: u64,
}

impl FetchWatch {
    /// The subscription received the wake-up of job `id` (counted before it
    /// is fanned out, so a fetch that ends after the stream fired sees it).
    pub(super) fn received(&self, id: &str) {
        let n = self.received.fetch_add(1, Ordering::SeqCst) + 1;
        if let Ok(mut arrivals) = self.arrivals.lock() {
            if arrivals.len() >= REMEMBERED_WAKE_UPS {
                let cut = n.saturating_sub(REMEMBERED_WAKE_UPS as u64 / 2);
                arrivals.retain(|_, at| *at > cut);
            }
            arrivals.insert(id.to_owned(), n);
        }
    }

    /// The wake-up stream fired.
    pub(super) fn stream_fired(&self) {
        if let Ok(mut st) = self.state.lock()
            && !st.in_flight
        {
            st.woken = true;
        }
    }

    fn send(&self, resend: bool) -> Send {
        let seen = self.received.load(Ordering::SeqCst);
        let Ok(mut st) = self.state.lock() else {
            return Send {
                cause: Cause::Other,
                seen,
            };
        };
        let cause = match (resend, std::mem::take(&mut st.woken)) {
            (true, _) => Cause::Resend,
            (false, true) => Cause::WakeUp,
            (false, false) => Cause::Other,
        };
        st.in_flight = true;
        Send { cause, seen }
    }

    fn woken_since(&self, send: &Send) -> bool {
        self.received.load(Ordering::SeqCst) > send.seen
    }

    /// `send` came back empty after wake-ups arrived, and is not sent again.
    fn gave_up(&self, send: &Send) {
        let now = self.received.load(Ordering::SeqCst);
        if let Ok(mut st) = self.state.lock() {
            st.lost = Some((send.seen, now));
        }
    }

    fn finished(&self, send: &Send, jobs: &[String]) {
        if let Ok(mut st) = self.state.lock() {
            st.in_flight = false;
        }
        if jobs.is_empty() {
            return;
        }
        let n = jobs.len() as u64;
        tracing::debug!(cause = ?send.cause, ?jobs, "fetched");
        let counter = match send.cause {
            Cause::WakeUp => &BY_WAKE_UP,
            Cause::Resend => &BY_RESEND,
            Cause::Other => {
                let lost = self.state.lock().ok().and_then(|st| st.lost);
                let stranded: Vec<&String> = match (lost, self.arrivals.lock()) {
                    (Some((from, to)), Ok(arrivals)) => jobs
                        .iter()
                        .filter(|id| arrivals.get(*id).is_some_and(|at| from < *at && *at <= to))
                        .collect(),
                    _ => Vec::new(),
                };
                if !stranded.is_empty() {
                    tracing::debug!(
                        ?stranded,
                        "fetched jobs whose wake-up this worker received but did not answer"
                    );
                }
                let stranded = stranded.len() as u64;
                STRANDED.fetch_add(stranded, Ordering::Relaxed);
                &OTHERWISE
            }
        };
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Clears the in-flight mark when a fetch future is dropped unfinished
/// (the apalis worker loop was torn down mid-fetch).
struct InFlight<'a>(&'a FetchWatch);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut st) = self.0.state.lock() {
            st.in_flight = false;
        }
    }
}

/// The apalis queue connection of a worker: a [`ConnectionManager`] that
/// sends a fetch again when a wake-up arrived during it and it came back
/// empty. Every other command passes through untouched.
#[derive(Clone)]
pub struct WatchedConn {
    inner: ConnectionManager,
    watch: Arc<FetchWatch>,
    /// The first two keys of our queue's fetch script: its workers set and
    /// its list of waiting jobs.
    fetch_keys: Arc<(String, String)>,
}

impl WatchedConn {
    pub(super) fn new(
        inner: ConnectionManager,
        watch: Arc<FetchWatch>,
        config: &apalis_redis::Config,
    ) -> Self {
        WatchedConn {
            inner,
            watch,
            fetch_keys: Arc::new((config.workers_set(), config.active_jobs_list())),
        }
    }

    /// Whether `cmd` runs apalis-redis's `fetch_next` script on our queue:
    /// `EVALSHA <sha> 7 <workers set> <active list> ...` (the only script
    /// of apalis-redis with 7 keys, and these two first).
    fn is_fetch(&self, cmd: &Cmd) -> bool {
        let mut args = cmd.args_iter().map(|a| match a {
            Arg::Simple(bytes) => bytes,
            _ => &[][..],
        });
        let (Some(name), Some(_sha), Some(keys), Some(first), Some(second)) = (
            args.next(),
            args.next(),
            args.next(),
            args.next(),
            args.next(),
        ) else {
            return false;
        };
        name.eq_ignore_ascii_case(b"EVALSHA")
            && keys == b"7"
            && first == self.fetch_keys.0.as_bytes()
            && second == self.fetch_keys.1.as_bytes()
    }
}

/// The job ids a `fetch_next` reply carries: `{jobs, metadata}`, each
/// metadata entry led by its job's id. `None` for a reply of another shape
/// (then it is passed on untouched).
fn jobs_in(reply: &Value) -> Option<Vec<String>> {
    let Value::Array(parts) = reply else {
        return None;
    };
    let [Value::Array(_), Value::Array(meta)] = parts.as_slice() else {
        return None;
    };
    Some(
        meta.iter()
            .filter_map(|entry| match entry {
                Value::Array(fields) => match fields.first() {
                    Some(Value::BulkString(id)) => Some(String::from_utf8_lossy(id).into_owned()),
                    Some(Value::SimpleString(id)) => Some(id.clone()),
                    _ => None,
                },
                _ => None,
            })
            .collect(),
    )
}

impl ConnectionLike for WatchedConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        if !self.is_fetch(cmd) {
            return self.inner.req_packed_command(cmd);
        }
        Box::pin(async move {
            let watch = self.watch.clone();
            let _in_flight = InFlight(&watch);
            let mut send = watch.send(false);
            let mut resends = 0;
            loop {
                let reply = self.inner.req_packed_command(cmd).await?;
                let jobs = jobs_in(&reply);
                let empty = jobs.as_ref().is_some_and(Vec::is_empty);
                if empty && watch.woken_since(&send) {
                    if resends < MAX_RESENDS {
                        resends += 1;
                        RESENDS.fetch_add(1, Ordering::Relaxed);
                        send = watch.send(true);
                        continue;
                    }
                    watch.gave_up(&send);
                }
                watch.finished(&send, jobs.as_deref().unwrap_or_default());
                return Ok(reply);
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.inner.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}
