//! Big valid files parsed in pieces, in parallel, with bounded memory.
//!
//! A full tree-sitter tree of a dense 4 MB file is hundreds of MB and one
//! parse of it takes over a second on one core. Python's top-level
//! statements are independent for our purpose, so a big file is cut before
//! top-level `def` / `async def` / `class` / `@` lines that follow a blank
//! line, and the pieces are parsed on a few threads, each tree dropped as
//! soon as its entry points are read.
//!
//! A cut is only a guess (the line could sit inside a triple-quoted string
//! or a bracket), so the result is used only when **every** piece parses
//! without an error: a piece that ends inside a string, a bracket, a
//! decorator or a block header is itself broken, so a clean set of pieces
//! means every cut fell between complete top-level statements, where
//! Python's tokenizer state is the same as at the start of a file. On any
//! error the caller parses the whole file the careful way, which also finds
//! the real diagnostics.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use tree_sitter::Parser;

use super::WorkflowMeta;
use super::python::{entry_points, parse_text};

/// Target size of one piece; files under two pieces are parsed whole.
pub(crate) const PIECE_BYTES: usize = 256 * 1024;

/// At most this many parser threads for one file.
const MAX_THREADS: usize = 4;

/// One piece: its text and the 0-based row of its first line in the file.
struct Piece<'s> {
    text: &'s str,
    first_row: usize,
}

/// Entry points of `source` parsed in pieces, or `None` when the file is
/// small, any piece shows a syntax problem, or the deadline passed.
pub(crate) fn entry_points_in_pieces(
    source: &str,
    deadline: Option<Instant>,
) -> Option<Vec<WorkflowMeta>> {
    let pieces = split(source, PIECE_BYTES);
    if pieces.len() < 2 {
        return None;
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_THREADS)
        .min(pieces.len());
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let found: Mutex<Vec<(usize, Vec<WorkflowMeta>)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| parse_pieces(&pieces, &next, &failed, &found, deadline));
        }
    });
    if failed.load(Ordering::Relaxed) {
        return None;
    }
    let mut found = found.into_inner().ok()?;
    if found.len() != pieces.len() {
        return None;
    }
    found.sort_by_key(|(index, _)| *index);
    Some(found.into_iter().flat_map(|(_, metas)| metas).collect())
}

/// One parser thread: takes pieces until none are left or one failed.
fn parse_pieces(
    pieces: &[Piece],
    next: &AtomicUsize,
    failed: &AtomicBool,
    found: &Mutex<Vec<(usize, Vec<WorkflowMeta>)>>,
    deadline: Option<Instant>,
) {
    let mut parser = Parser::new();
    if parser
        .set_language(&tree_sitter_python::LANGUAGE.into())
        .is_err()
    {
        failed.store(true, Ordering::Relaxed);
        return;
    }
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        let Some(piece) = pieces.get(index) else {
            return;
        };
        if failed.load(Ordering::Relaxed) {
            return;
        }
        let stop = || failed.load(Ordering::Relaxed);
        let tree = parse_text(&mut parser, piece.text, None, deadline, &stop);
        let Some(tree) = tree.filter(|t| !t.root_node().has_error()) else {
            failed.store(true, Ordering::Relaxed);
            return;
        };
        let mut metas = entry_points(tree.root_node(), piece.text);
        drop(tree);
        let offset = u32::try_from(piece.first_row).unwrap_or(u32::MAX);
        for meta in &mut metas {
            meta.line = meta.line.saturating_add(offset);
            for problem in &mut meta.problems {
                problem.line = problem.line.saturating_add(offset);
            }
            if let Some((line, _)) = &mut meta.schedule_at {
                *line = line.saturating_add(offset);
            }
        }
        match found.lock() {
            Ok(mut found) => found.push((index, metas)),
            Err(_) => {
                failed.store(true, Ordering::Relaxed);
                return;
            }
        }
    }
}

/// Cuts `source` into pieces of about `target` bytes, each cut just before
/// a line that starts a top-level definition after a blank line.
fn split(source: &str, target: usize) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut piece_start = 0;
    let mut piece_row = 0;
    let mut offset = 0;
    let mut previous_blank = false;
    for (row, line) in source.split_inclusive('\n').enumerate() {
        if offset - piece_start >= target && previous_blank && starts_definition(line) {
            pieces.push(Piece {
                text: &source[piece_start..offset],
                first_row: piece_row,
            });
            piece_start = offset;
            piece_row = row;
        }
        previous_blank = line.trim().is_empty();
        offset += line.len();
    }
    if piece_start < source.len() {
        pieces.push(Piece {
            text: &source[piece_start..],
            first_row: piece_row,
        });
    }
    pieces
}

/// A line at column 0 that begins a decorated or plain definition.
fn starts_definition(line: &str) -> bool {
    ["@", "def ", "async def ", "class "]
        .iter()
        .any(|start| line.starts_with(start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_cuts_only_before_definitions_after_blank_lines() {
        let source = "x = 1\n\ndef a():\n    pass\n\n@d\ndef b():\n    '''\n\ndef fake():\n'''\n";
        let pieces = split(source, 1);
        let texts: Vec<_> = pieces.iter().map(|p| p.text).collect();
        assert_eq!(
            texts,
            [
                "x = 1\n\n",
                "def a():\n    pass\n\n",
                "@d\ndef b():\n    '''\n\n",
                "def fake():\n'''\n"
            ]
        );
        let rows: Vec<_> = pieces.iter().map(|p| p.first_row).collect();
        assert_eq!(rows, [0, 2, 5, 9]);
        assert_eq!(texts.concat(), source);
    }

    #[test]
    fn a_cut_inside_a_string_is_rejected() {
        // Every cut candidate after the first sits inside one big docstring.
        let mut source = String::from("def first():\n    '''\n");
        source.push_str(&"\ndef not_real():\n    pass\n".repeat(PIECE_BYTES / 8));
        source.push_str("'''\n");
        assert!(entry_points_in_pieces(&source, None).is_none());
    }

    #[test]
    fn pieces_give_the_lines_of_the_whole_file() {
        let mut source = String::new();
        for i in 0..40_000 {
            source.push_str(&format!("@workflow\ndef w{i}(a=1):\n    return a\n\n\n"));
        }
        let metas = entry_points_in_pieces(&source, None).expect("clean pieces");
        assert_eq!(metas.len(), 40_000);
        for (i, meta) in metas.iter().enumerate() {
            assert_eq!(meta.function, format!("w{i}"));
            assert_eq!(meta.line as usize, i * 5 + 2);
        }
    }
}
