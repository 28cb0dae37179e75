//! The three-way comparison behind `git pull`: for each path, its blob at
//! the last synced commit (base), on the remote now, and in the workspace
//! now (all as git blob ids; `None` = absent). Pure, so every case is a
//! unit test.

use std::collections::{BTreeMap, BTreeSet};

use git2::Oid;

/// What a pull does with one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The remote changed it and the workspace did not: take the remote's.
    Take,
    /// Changed on both sides differently and no preference: left untouched.
    Conflict,
    /// Changed on both sides; the request preferred the workspace's.
    KeepOurs,
}

/// Which side wins a conflict, if the request says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefer {
    Ours,
    Theirs,
}

/// Paths that need something, in path order. Paths the remote did not
/// change since the base, or changed to what the workspace already has,
/// need nothing.
pub fn plan(
    base: &BTreeMap<String, Oid>,
    remote: &BTreeMap<String, Oid>,
    local: &BTreeMap<String, Oid>,
    prefer: Option<Prefer>,
) -> Vec<(String, Step)> {
    let paths: BTreeSet<&String> = base
        .keys()
        .chain(remote.keys())
        .chain(local.keys())
        .collect();
    let mut steps = Vec::new();
    for path in paths {
        let (b, r, l) = (base.get(path), remote.get(path), local.get(path));
        if r == b || r == l {
            continue;
        }
        let step = if l == b {
            Step::Take
        } else {
            match prefer {
                Some(Prefer::Theirs) => Step::Take,
                Some(Prefer::Ours) => Step::KeepOurs,
                None => Step::Conflict,
            }
        };
        steps.push((path.clone(), step));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(n: u8) -> Oid {
        Oid::from_bytes(&[n; 20]).unwrap()
    }

    fn files(entries: &[(&str, u8)]) -> BTreeMap<String, Oid> {
        entries
            .iter()
            .map(|(p, n)| ((*p).to_owned(), oid(*n)))
            .collect()
    }

    #[test]
    fn remote_changes_are_taken_unless_the_workspace_changed_too() {
        let base = files(&[
            ("same", 1),
            ("theirs", 1),
            ("both", 1),
            ("gone", 1),
            ("ours", 1),
        ]);
        let remote = files(&[
            ("same", 1),
            ("theirs", 2),
            ("both", 2),
            ("ours", 1),
            ("new", 5),
        ]);
        let local = files(&[
            ("same", 1),
            ("theirs", 1),
            ("both", 3),
            ("gone", 1),
            ("ours", 9),
        ]);
        assert_eq!(
            plan(&base, &remote, &local, None),
            [
                ("both".to_owned(), Step::Conflict),
                ("gone".to_owned(), Step::Take),
                ("new".to_owned(), Step::Take),
                ("theirs".to_owned(), Step::Take),
            ]
        );
        assert_eq!(
            plan(&base, &remote, &local, Some(Prefer::Ours))[0],
            ("both".to_owned(), Step::KeepOurs)
        );
        assert_eq!(
            plan(&base, &remote, &local, Some(Prefer::Theirs))[0],
            ("both".to_owned(), Step::Take)
        );
    }

    #[test]
    fn without_a_base_only_differing_files_on_both_sides_conflict() {
        let empty = BTreeMap::new();
        let remote = files(&[("a", 1), ("b", 2), ("c", 3)]);
        let local = files(&[("a", 1), ("b", 7), ("d", 4)]);
        assert_eq!(
            plan(&empty, &remote, &local, None),
            [
                ("b".to_owned(), Step::Conflict),
                ("c".to_owned(), Step::Take)
            ]
        );
    }

    #[test]
    fn the_same_change_on_both_sides_is_no_conflict() {
        let base = files(&[("a", 1), ("b", 1)]);
        let remote = files(&[("a", 2)]);
        let local = files(&[("a", 2)]);
        assert!(plan(&base, &remote, &local, None).is_empty());
    }
}
