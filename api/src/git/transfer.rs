//! Limits on one sync's network part: a time limit on the whole operation
//! and a cap on the bytes a fetch receives, plus the credential rule (the
//! API's token goes only to the https remote's own host).
//!
//! libgit2 blocks, so the work runs on the blocking pool ([`network`]). The
//! caller's wait ends at the time limit whatever libgit2 does; the
//! callbacks abort the transfer at their next call once the deadline or the
//! byte cap is passed; and libgit2's socket timeouts (set once per process
//! to the time limit) end a read from a remote that stalls without sending
//! anything, so an abandoned thread does not linger much past the limit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use git2::{
    CertificateCheckStatus, Cred, CredentialType, FetchOptions, PushOptions, RemoteCallbacks,
    RemoteRedirect,
};

use super::GitError;
use super::remote::Remote;
use super::slots::Slot;

/// Credentials for https remotes, from the API's environment.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub username: Option<String>,
    pub token: Option<String>,
}

/// Configured limits of one sync's network part.
#[derive(Debug, Clone, Copy)]
pub struct TransferLimits {
    /// Whole-operation time limit (`RUNEFLOW_GIT_TIMEOUT_SECS`).
    pub timeout: Duration,
    /// Most bytes a fetch may receive (`RUNEFLOW_GIT_MAX_FETCH_BYTES`).
    pub max_fetch_bytes: u64,
}

impl Default for TransferLimits {
    fn default() -> Self {
        TransferLimits {
            timeout: Duration::from_secs(runeflow_shared::config::DEFAULT_GIT_TIMEOUT_SECS),
            max_fetch_bytes: runeflow_shared::config::DEFAULT_GIT_MAX_FETCH_BYTES,
        }
    }
}

/// Why a transfer was stopped by us rather than by the remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Abort {
    Deadline,
    TooLarge,
}

/// One network operation's state, shared between the caller and the
/// blocking thread's libgit2 callbacks.
#[derive(Debug)]
pub struct Transfer {
    limits: TransferLimits,
    deadline: Instant,
    cancelled: AtomicBool,
    aborted: Mutex<Option<Abort>>,
}

impl Transfer {
    fn new(limits: TransferLimits) -> Self {
        Transfer {
            limits,
            deadline: Instant::now() + limits.timeout,
            cancelled: AtomicBool::new(false),
            aborted: Mutex::new(None),
        }
    }

    fn abort(&self, why: Abort) {
        if let Ok(mut slot) = self.aborted.lock() {
            slot.get_or_insert(why);
        }
    }

    /// False once the caller gave up or the deadline passed (and notes why).
    fn on_time(&self) -> bool {
        if self.cancelled.load(Ordering::Relaxed) || Instant::now() >= self.deadline {
            self.abort(Abort::Deadline);
            return false;
        }
        true
    }

    /// False once more than the cap was received (and notes why).
    fn within_size(&self, received: u64) -> bool {
        if received > self.limits.max_fetch_bytes {
            self.abort(Abort::TooLarge);
            return false;
        }
        true
    }

    fn timed_out(&self) -> GitError {
        GitError::TimedOut(format!(
            "the git remote did not finish within {} s (RUNEFLOW_GIT_TIMEOUT_SECS)",
            self.limits.timeout.as_secs_f64()
        ))
    }

    /// Replaces libgit2's "user callback" error with our reason, when one
    /// of our limits stopped the transfer.
    fn explain(&self, err: GitError) -> GitError {
        let aborted = self.aborted.lock().ok().and_then(|a| *a);
        match aborted {
            Some(Abort::Deadline) => self.timed_out(),
            Some(Abort::TooLarge) => GitError::TooLarge(format!(
                "the git remote sent more than {} bytes (RUNEFLOW_GIT_MAX_FETCH_BYTES)",
                self.limits.max_fetch_bytes
            )),
            None if Instant::now() >= self.deadline => self.timed_out(),
            None => err,
        }
    }

    /// Fetch options: our callbacks, and no redirect to another host.
    pub fn fetch_options<'a>(
        &'a self,
        remote: &'a Remote,
        credentials: &'a Credentials,
    ) -> FetchOptions<'a> {
        let mut callbacks = self.callbacks(remote, credentials);
        callbacks.transfer_progress(move |progress| {
            self.on_time() && self.within_size(progress.received_bytes() as u64)
        });
        let mut options = FetchOptions::new();
        options
            .remote_callbacks(callbacks)
            .follow_redirects(RemoteRedirect::None);
        options
    }

    /// Push options: our callbacks (plus `extra`), no redirect to another host.
    pub fn push_options<'a>(
        &'a self,
        remote: &'a Remote,
        credentials: &'a Credentials,
        extra: impl FnOnce(&mut RemoteCallbacks<'a>),
    ) -> PushOptions<'a> {
        let mut callbacks = self.callbacks(remote, credentials);
        callbacks.push_negotiation(move |_| {
            if self.on_time() {
                Ok(())
            } else {
                Err(git2::Error::from_str("time limit reached"))
            }
        });
        extra(&mut callbacks);
        let mut options = PushOptions::new();
        options
            .remote_callbacks(callbacks)
            .follow_redirects(RemoteRedirect::None);
        options
    }

    /// Callbacks common to fetch and push: the deadline at every call, and
    /// credentials once per operation, only where [`Remote::may_send_credentials`].
    fn callbacks<'a>(
        &'a self,
        remote: &'a Remote,
        credentials: &'a Credentials,
    ) -> RemoteCallbacks<'a> {
        let mut asked = false;
        let mut callbacks = RemoteCallbacks::new();
        callbacks.sideband_progress(move |_| self.on_time());
        callbacks.certificate_check(move |_, _| {
            if self.on_time() {
                // Keep libgit2's own certificate validation.
                Ok(CertificateCheckStatus::CertificatePassthrough)
            } else {
                Err(git2::Error::from_str("time limit reached"))
            }
        });
        callbacks.credentials(move |url, _user_from_url, allowed| {
            if !self.on_time() {
                return Err(git2::Error::from_str("time limit reached"));
            }
            if asked {
                return Err(git2::Error::from_str(
                    "the remote refused the configured credentials",
                ));
            }
            asked = true;
            if !remote.may_send_credentials(url) {
                return Err(git2::Error::from_str(
                    "the remote asks for credentials, which the API sends only over https to the remote's own host",
                ));
            }
            match (
                &credentials.token,
                allowed.contains(CredentialType::USER_PASS_PLAINTEXT),
            ) {
                (Some(token), true) => {
                    Cred::userpass_plaintext(credentials.username.as_deref().unwrap_or("git"), token)
                }
                _ => Err(git2::Error::from_str(
                    "the remote wants credentials: set RUNEFLOW_GIT_USERNAME and RUNEFLOW_GIT_TOKEN for the API",
                )),
            }
        });
        callbacks
    }
}

/// Sets libgit2's socket timeouts (connect, and each read or write) to the
/// time limit, once per process, before the first network operation: a
/// remote that accepts and then says nothing ends the blocked read instead
/// of holding a thread for good. libgit2 keeps them in C globals, so they
/// are process-wide and taken from the first sync's settings.
fn socket_timeouts(limit: Duration) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let ms = i32::try_from(limit.as_millis()).unwrap_or(i32::MAX).max(1);
        // SAFETY: libgit2 keeps these in plain C globals. They are written
        // exactly once, here, and every network operation of this crate
        // passes this `Once` before its thread starts, so each read by
        // libgit2 happens after the write.
        unsafe {
            let _ = git2::opts::set_server_connect_timeout_in_milliseconds(ms);
            let _ = git2::opts::set_server_timeout_in_milliseconds(ms);
        }
    });
}

/// Runs `work` (libgit2 calls) on the blocking pool under `limits`. The
/// answer comes by the time limit at the latest; a thread still blocked
/// then is told to stop and keeps `slot` until it has, so abandoned
/// threads still count against the cap on concurrent syncs.
pub async fn network<T: Send + 'static>(
    limits: TransferLimits,
    slot: Slot,
    work: impl FnOnce(&Transfer) -> Result<T, GitError> + Send + 'static,
) -> Result<T, GitError> {
    socket_timeouts(limits.timeout);
    let transfer = Arc::new(Transfer::new(limits));
    let shared = transfer.clone();
    let handle = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        work(&shared)
    });
    match tokio::time::timeout(limits.timeout, handle).await {
        Ok(Ok(result)) => result.map_err(|err| transfer.explain(err)),
        Ok(Err(join)) => Err(GitError::Local(format!("git task failed: {join}"))),
        Err(_) => {
            transfer.cancelled.store(true, Ordering::Relaxed);
            Err(transfer.timed_out())
        }
    }
}
