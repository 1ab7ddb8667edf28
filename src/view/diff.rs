//! A unified diff of a file before and after its edits, for `plan`. Edits replace scalars
//! on one line each, so lines correspond one to one; a change of line count (never expected)
//! is shown as the whole file replaced. Pure.

use std::fmt::Write;

/// Lines of context around each change.
const CONTEXT: usize = 3;

/// `diff -u`-style text for `path` going from `old` to `new`; empty when they are equal.
pub fn unified(path: &str, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let a: Vec<&str> = old.split_inclusive('\n').collect();
    let b: Vec<&str> = new.split_inclusive('\n').collect();
    let mut out = format!("--- a/{path}\n+++ b/{path}\n");
    if a.len() != b.len() {
        let _ = writeln!(out, "@@ -1,{} +1,{} @@", a.len(), b.len());
        a.iter().for_each(|l| push(&mut out, '-', l));
        b.iter().for_each(|l| push(&mut out, '+', l));
        return out;
    }
    let changed: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    let mut i = 0;
    while i < changed.len() {
        // Grow a hunk while the next change is within reach of this one's context.
        let start = changed[i].saturating_sub(CONTEXT);
        let mut last = changed[i];
        while i + 1 < changed.len() && changed[i + 1] <= last + 2 * CONTEXT {
            i += 1;
            last = changed[i];
        }
        let end = (last + CONTEXT + 1).min(a.len());
        let n = end - start;
        let _ = writeln!(out, "@@ -{},{n} +{},{n} @@", start + 1, start + 1);
        for k in start..end {
            if a[k] == b[k] {
                push(&mut out, ' ', a[k]);
            } else {
                push(&mut out, '-', a[k]);
                push(&mut out, '+', b[k]);
            }
        }
        i += 1;
    }
    out
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
}
