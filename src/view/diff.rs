//! Unified diffs for `plan`: of a file before and after its edits, and of every file a
//! preview's bumps change. Lines are matched by their longest common subsequence, so an
//! inserted `images:` entry shows as the lines added, with context. Pure.

use std::fmt::Write;

use crate::engine::PassReport;

/// Lines of context around each change.
const CONTEXT: usize = 3;
/// The most cells the line matching may fill for the part between the common head and
/// tail; a larger change is shown as that part replaced.
const MAX_CELLS: usize = 4_000_000;

/// The diff of every file the report's bumps would change (`plan`), named by destination
/// when the rules write to several.
pub fn planned(report: &PassReport, several: bool) -> String {
    report
        .planned
        .iter()
        .map(|f| {
            let name = match several {
                true => format!("{}:{}", f.destination, f.path.display()),
                false => f.path.display().to_string(),
            };
            unified(&name, &f.before, &f.after)
        })
        .collect()
}

/// One line of the edit script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// The same line: index in old, in new.
    Same(usize, usize),
    /// A line of old removed.
    Removed(usize),
    /// A line of new added.
    Added(usize),
}

/// The edit script from `a` to `b`: common head and tail kept, the middle matched by
/// longest common subsequence.
fn script(a: &[&str], b: &[&str]) -> Vec<Op> {
    let head = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (am, bm) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let mut ops: Vec<Op> = (0..head).map(|i| Op::Same(i, i)).collect();
    if am.len().saturating_mul(bm.len()) > MAX_CELLS {
        ops.extend((0..am.len()).map(|i| Op::Removed(head + i)));
        ops.extend((0..bm.len()).map(|j| Op::Added(head + j)));
    } else {
        // lcs[i][j]: the longest common subsequence of am[i..] and bm[j..].
        let w = bm.len() + 1;
        let mut lcs = vec![0u32; (am.len() + 1) * w];
        for i in (0..am.len()).rev() {
            for j in (0..bm.len()).rev() {
                lcs[i * w + j] = if am[i] == bm[j] {
                    lcs[(i + 1) * w + j + 1] + 1
                } else {
                    lcs[(i + 1) * w + j].max(lcs[i * w + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < am.len() || j < bm.len() {
            if i < am.len() && j < bm.len() && am[i] == bm[j] {
                ops.push(Op::Same(head + i, head + j));
                (i, j) = (i + 1, j + 1);
            } else if i < am.len() && (j == bm.len() || lcs[(i + 1) * w + j] >= lcs[i * w + j + 1])
            {
                // Removals before additions, as `diff -u` shows a changed line.
                ops.push(Op::Removed(head + i));
                i += 1;
            } else {
                ops.push(Op::Added(head + j));
                j += 1;
            }
        }
    }
    let (ta, tb) = (a.len() - tail, b.len() - tail);
    ops.extend((0..tail).map(|k| Op::Same(ta + k, tb + k)));
    ops
}

/// `diff -u`-style text for `path` going from `old` to `new`; empty when they are equal.
pub fn unified(path: &str, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let a: Vec<&str> = old.split_inclusive('\n').collect();
    let b: Vec<&str> = new.split_inclusive('\n').collect();
    let ops = script(&a, &b);
    let changed: Vec<usize> = (0..ops.len())
        .filter(|&k| !matches!(ops[k], Op::Same(..)))
        .collect();
    let mut out = format!("--- a/{path}\n+++ b/{path}\n");
    let mut k = 0;
    while k < changed.len() {
        // Grow a hunk while the next change is within reach of this one's context.
        let start = changed[k].saturating_sub(CONTEXT);
        let mut last = changed[k];
        while k + 1 < changed.len() && changed[k + 1] <= last + 2 * CONTEXT {
            k += 1;
            last = changed[k];
        }
        let end = (last + CONTEXT + 1).min(ops.len());
        let hunk = &ops[start..end];
        let (old_len, new_len) = hunk.iter().fold((0, 0), |(o, n), op| match op {
            Op::Same(..) => (o + 1, n + 1),
            Op::Removed(_) => (o + 1, n),
            Op::Added(_) => (o, n + 1),
        });
        // Where each side's range starts: its first line, or the line before an empty one.
        let first_old = hunk
            .iter()
            .find_map(|op| match op {
                Op::Same(i, _) | Op::Removed(i) => Some(*i + 1),
                Op::Added(_) => None,
            })
            .unwrap_or_else(|| lines_before(&ops[..start], true));
        let first_new = hunk
            .iter()
            .find_map(|op| match op {
                Op::Same(_, j) | Op::Added(j) => Some(*j + 1),
                Op::Removed(_) => None,
            })
            .unwrap_or_else(|| lines_before(&ops[..start], false));
        let _ = writeln!(out, "@@ -{first_old},{old_len} +{first_new},{new_len} @@");
        for op in hunk {
            match *op {
                Op::Same(i, _) => push(&mut out, ' ', a[i]),
                Op::Removed(i) => push(&mut out, '-', a[i]),
                Op::Added(j) => push(&mut out, '+', b[j]),
            }
        }
        k += 1;
    }
    out
}

/// How many lines of one side come before `ops` end (old side when `old`).
fn lines_before(ops: &[Op], old: bool) -> usize {
    ops.iter()
        .filter(|op| match op {
            Op::Same(..) => true,
            Op::Removed(_) => old,
            Op::Added(_) => !old,
        })
        .count()
}

fn push(out: &mut String, mark: char, line: &str) {
    out.push(mark);
    out.push_str(line.trim_end_matches(['\n', '\r']));
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hunks_carry_three_lines_of_context() {
        let old: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        let new = old
            .replace("line 5\n", "line five\n")
            .replace("line 18\n", "line eighteen\n");
        let d = unified("f.yaml", &old, &new);
        assert!(d.starts_with("--- a/f.yaml\n+++ b/f.yaml\n@@ -2,7 +2,7 @@\n line 2\n"));
        assert!(d.contains("-line 5\n+line five\n"));
        assert!(d.contains("@@ -15,6 +15,6 @@\n"));
        assert_eq!(unified("f.yaml", &old, &old), "");
    }

    #[test]
    fn an_insertion_shows_as_lines_added() {
        let old = "a\nb\nc\nd\ne\n";
        let new = "a\nb\nc\nd\ne\nimages:\n- name: x\n";
        assert_eq!(
            unified("k.yaml", old, new),
            "--- a/k.yaml\n+++ b/k.yaml\n@@ -3,3 +3,5 @@\n c\n d\n e\n+images:\n+- name: x\n"
        );
        let middle = "a\nb\nX\nc\nd\n";
        assert_eq!(
            unified("k.yaml", "a\nb\nc\nd\n", middle),
            "--- a/k.yaml\n+++ b/k.yaml\n@@ -1,4 +1,5 @@\n a\n b\n+X\n c\n d\n"
        );
        assert_eq!(
            unified("k.yaml", "", "x\n"),
            "--- a/k.yaml\n+++ b/k.yaml\n@@ -0,0 +1,1 @@\n+x\n"
        );
    }
}
