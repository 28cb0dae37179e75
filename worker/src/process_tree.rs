//! Killing an execution's processes: its group, and every descendant,
//! also one that left the group or the session.
//!
//! The child is its descendants' subreaper (PR_SET_CHILD_SUBREAPER), so
//! while it lives every process it started, orphaned or not, is in its
//! subtree. This kernel has no `/proc/<pid>/task/<tid>/children`, so the
//! subtree is found from the parent pids in `/proc/*/stat`: a few
//! milliseconds, paid only when a child did not end on its own.

use std::collections::{HashMap, HashSet};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// Rounds of find-and-kill: a descendant forking while we look is found
/// in the next round (a SIGKILLed process forks no more).
const ROUNDS: usize = 8;

/// SIGKILLs the process group led by `pid` (the child and what it did not
/// move elsewhere).
pub fn kill_group(pid: i32) {
    match killpg(Pid::from_raw(pid), Signal::SIGKILL) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(err) => tracing::warn!(pid, %err, "could not kill the child's process group"),
    }
}

/// SIGKILLs every live descendant of `root` (not `root` itself).
pub fn kill_descendants(root: i32) {
    for _ in 0..ROUNDS {
        let found = descendants(root, &parents());
        if found.is_empty() {
            return;
        }
        for pid in found {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Parent of every process visible in `/proc`.
fn parents() -> HashMap<i32, i32> {
    let mut parents = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return parents;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if let Some(ppid) = std::fs::read(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| parent_of(&stat))
        {
            parents.insert(pid, ppid);
        }
    }
    parents
}

/// The parent pid in a `/proc/<pid>/stat` line: the second field after
/// the parenthesised command name (which may itself hold `)` and spaces).
/// Zombies and dead tasks count as gone.
fn parent_of(stat: &[u8]) -> Option<i32> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.next()?.parse().ok()
}

/// Pids whose chain of parents reaches `root`.
fn descendants(root: i32, parents: &HashMap<i32, i32>) -> Vec<i32> {
    let mut found = Vec::new();
    let mut frontier: HashSet<i32> = HashSet::from([root]);
    while !frontier.is_empty() {
        frontier = parents
            .iter()
            .filter(|(pid, parent)| frontier.contains(parent) && **pid != root)
            .map(|(pid, _)| *pid)
            .collect();
        found.extend(frontier.iter().copied());
        if found.len() > parents.len() {
            break; // cannot happen with real parent links; never loop forever
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_names_parse() {
        assert_eq!(parent_of(b"12 (a) b) c) S 7 12 12 0"), Some(7));
        assert_eq!(parent_of(b"12 (zombie) Z 7 12 12 0"), None);
        assert_eq!(parent_of(b"garbage"), None);
    }

    #[test]
    fn descendants_follow_parent_links_at_any_depth() {
        let parents = HashMap::from([(2, 1), (3, 2), (4, 3), (5, 1), (9, 8)]);
        let mut found = descendants(2, &parents);
        found.sort();
        assert_eq!(found, vec![3, 4]);
        assert!(descendants(4, &parents).is_empty());
    }
}
