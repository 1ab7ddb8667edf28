//! Rewriting scalars in place: the one mechanism every target kind uses.
//!
//! A [`Replacement`] names one scalar token and its new text; an [`Insertion`] adds lines a
//! target lacks (a Kustomize `images:` entry, a `digest:` key). [`apply_all`] splices them
//! into exactly those bytes, then parses the result again and checks that every other
//! scalar, every key and every collection is as it was (beside what was inserted), and that
//! the replaced ones now read as intended. Anything else is refused and the original text is
//! kept.

use std::collections::HashMap;
use std::ops::Range;

use crate::yaml::{self, Node, NodeKind, Position, Scalar, Style};

use super::EditError;

/// One scalar to rewrite.
#[derive(Debug, Clone, PartialEq)]
pub struct Replacement {
    /// Where the scalar is (for messages).
    pub position: Position,
    /// Bytes of the whole token (quotes included).
    pub token: Range<usize>,
    /// Bytes of the text between the quotes.
    pub content: Range<usize>,
    /// How the scalar is written.
    pub style: Style,
    /// The current value.
    pub old: String,
    /// The value to write (already validated as a tag, digest, repository or reference).
    pub new: String,
    /// The anchor the scalar defines (`&name`), if any: its aliases share its value.
    pub anchor: Option<usize>,
}

impl Replacement {
    /// A replacement of `node`'s scalar by `new`, refused when the scalar cannot be rewritten
    /// byte for byte (an alias, a collection, a block or multi-line scalar, escapes).
    pub fn of(node: &Node, what: &str, new: &str) -> Result<Self, EditError> {
        let scalar = editable_scalar(node, what)?;
        Ok(Self {
            position: node.position,
            token: scalar.token.clone(),
            content: scalar.content.clone(),
            style: scalar.style,
            old: scalar.value.clone(),
            new: new.to_string(),
            anchor: node.anchor,
        })
    }
}

/// Lines to add at a byte offset (the start of a line, or the end of the text): a key or
/// an entry the target lacks, written in the file's own style by the target kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Insertion {
    /// Where it goes (for messages).
    pub position: Position,
    /// The byte offset.
    pub at: usize,
    /// The text, whole lines.
    pub text: String,
}

/// The scalar of `node`, if it can be rewritten in place.
pub fn editable_scalar<'n>(node: &'n Node, what: &str) -> Result<&'n Scalar, EditError> {
    let at = node.position;
    let scalar = match &node.kind {
        NodeKind::Scalar(s) => s,
        NodeKind::Alias(_) => {
            return Err(EditError::Alias {
                at,
                what: what.to_string(),
            });
        }
        _ => {
            return Err(EditError::NotScalar {
                at,
                what: what.to_string(),
                found: node.kind_name(),
            });
        }
    };
    if !scalar.verbatim {
        let why = match scalar.style {
            Style::Block => "it is a block scalar (| or >)",
            _ if scalar.value.contains('\n') => "it spans several lines",
            _ => "it contains escape sequences",
        };
        return Err(EditError::NotEditable {
            at,
            what: what.to_string(),
            why,
        });
    }
    Ok(scalar)
}

/// Apply `replacements` to `src`. `Ok(None)` when every value is already in place (the file
/// must then not be rewritten at all).
pub fn apply(src: &str, replacements: &[Replacement]) -> Result<Option<String>, EditError> {
    apply_all(src, replacements, &[])
}

/// Apply `replacements` and `insertions` to `src`; `Ok(None)` when nothing is to change.
pub fn apply_all(
    src: &str,
    replacements: &[Replacement],
    insertions: &[Insertion],
) -> Result<Option<String>, EditError> {
    let mut todo: Vec<&Replacement> = replacements.iter().filter(|r| r.old != r.new).collect();
    if todo.is_empty() && insertions.is_empty() {
        return Ok(None);
    }
    todo.sort_by_key(|r| r.token.start);
    todo.dedup_by(|a, b| a.token == b.token && a.new == b.new);
    if todo.windows(2).any(|w| w[0].token.end > w[1].token.start) {
        return Err(EditError::Conflict {
            at: todo[0].position,
        });
    }
    let mut adds: Vec<&Insertion> = insertions.iter().collect();
    adds.sort_by_key(|i| i.at);
    if let Some(i) = adds.iter().find(|i| {
        i.at > src.len()
            || todo
                .iter()
                .any(|r| r.token.start < i.at && i.at < r.token.end)
    }) {
        return Err(EditError::Conflict { at: i.position });
    }
    let mut out = String::with_capacity(src.len() + 64);
    let mut inserted = Vec::new();
    let mut cursor = 0;
    let mut next_add = adds.iter().peekable();
    let mut insert_up_to = |out: &mut String, cursor: &mut usize, upto: usize| {
        while let Some(i) = next_add.next_if(|i| i.at <= upto) {
            out.push_str(&src[*cursor..i.at]);
            *cursor = i.at;
            let start = out.len();
            out.push_str(&i.text);
            inserted.push(start..out.len());
        }
    };
    for r in &todo {
        insert_up_to(&mut out, &mut cursor, r.token.start);
        if r.style == Style::Plain && !reads_as_string(&r.new) {
            // `1.10` written plain would be read back as the number 1.1: quote it.
            out.push_str(&src[cursor..r.token.start]);
            out.push('"');
            out.push_str(&r.new);
            out.push('"');
            cursor = r.token.end;
        } else {
            out.push_str(&src[cursor..r.content.start]);
            out.push_str(&r.new);
            cursor = r.content.end;
        }
    }
    insert_up_to(&mut out, &mut cursor, src.len());
    out.push_str(&src[cursor..]);
    verify(src, &out, &todo, &inserted)?;
    Ok(Some(out))
}

/// Parse `edited` and compare it with `original`: the same documents and shapes, the same
/// scalars, except that each replaced one now holds its new value.
fn verify(
    original: &str,
    edited: &str,
    done: &[&Replacement],
    inserted: &[Range<usize>],
) -> Result<(), EditError> {
    let at = done.first().map(|r| r.position).unwrap_or_default();
    let unsafe_edit = |why: String| EditError::Unsafe { at, why };
    let before = yaml::parse(original).map_err(|e| unsafe_edit(e.to_string()))?;
    let after =
        yaml::parse(edited).map_err(|e| unsafe_edit(format!("the result would not parse: {e}")))?;
    if before.len() != after.len() {
        return Err(unsafe_edit("the number of documents would change".into()));
    }
    let expected: HashMap<usize, &str> = done
        .iter()
        .map(|r| (r.token.start, r.new.as_str()))
        .collect();
    let mut seen = 0;
    let shape = Shape { expected, inserted };
    for (a, b) in before.iter().zip(&after) {
        shape
            .same(&a.root, &b.root, &mut seen)
            .map_err(unsafe_edit)?;
    }
    if seen != shape.expected.len() {
        return Err(unsafe_edit("a replaced value was not found again".into()));
    }
    Ok(())
}

/// What an edit may change: the replaced scalars (by their offset in the original, with
/// their new value), and the inserted text (offsets in the edited text), whose entries are
/// new and not compared.
struct Shape<'a> {
    expected: HashMap<usize, &'a str>,
    inserted: &'a [Range<usize>],
}

impl Shape<'_> {
    fn new_here(&self, node: &Node) -> bool {
        self.inserted.iter().any(|r| r.contains(&node.offset))
    }

    fn same(&self, a: &Node, b: &Node, seen: &mut usize) -> Result<(), String> {
        match (&a.kind, &b.kind) {
            (NodeKind::Scalar(x), NodeKind::Scalar(y)) => {
                let want = match self.expected.get(&x.token.start) {
                    Some(new) => {
                        *seen += 1;
                        *new
                    }
                    None => x.value.as_str(),
                };
                if y.value != want {
                    return Err(format!(
                        "the value at {} would read {:?} instead of {want:?}",
                        b.position, y.value
                    ));
                }
                Ok(())
            }
            (NodeKind::Sequence(xs), NodeKind::Sequence(ys)) => {
                let ys: Vec<&Node> = ys.iter().filter(|y| !self.new_here(y)).collect();
                if xs.len() != ys.len() {
                    return Err(format!("the list at {} would change", b.position));
                }
                xs.iter()
                    .zip(ys)
                    .try_for_each(|(x, y)| self.same(x, y, seen))
            }
            (NodeKind::Mapping(xs), NodeKind::Mapping(ys)) => {
                let ys: Vec<&(Node, Node)> = ys.iter().filter(|(k, _)| !self.new_here(k)).collect();
                if xs.len() != ys.len() {
                    return Err(format!("the mapping at {} would change", b.position));
                }
                xs.iter().zip(ys).try_for_each(|((kx, vx), (ky, vy))| {
                    self.same(kx, ky, seen)?;
                    self.same(vx, vy, seen)
                })
            }
            (NodeKind::Alias(x), NodeKind::Alias(y)) if x == y => Ok(()),
            _ => Err(format!("the structure at {} would change", b.position)),
        }
    }
}

/// Whether a plain scalar with this text is read as a string by YAML 1.1 and 1.2 readers
/// (Helm, kustomize, Argo CD): not a number, boolean or null.
pub fn reads_as_string(s: &str) -> bool {
    const WORDS: [&str; 17] = [
        "", "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n", ".inf", "-.inf",
        "+.inf", ".nan", "nan", "inf",
    ];
    if WORDS.contains(&s.to_ascii_lowercase().as_str()) {
        return false;
    }
    !looks_numeric(s)
}

fn looks_numeric(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    for (prefix, digits) in [
        ("0x", "0123456789abcdef_"),
        ("0o", "01234567_"),
        ("0b", "01_"),
    ] {
        if let Some(rest) = lower.strip_prefix(prefix) {
            return !rest.is_empty() && rest.chars().all(|c| digits.contains(c));
        }
    }
    // [digits][.digits][e[+-]digits], with YAML 1.1's underscores.
    let (mantissa, exponent) = match lower.split_once('e') {
        Some((m, e)) => (m, Some(e)),
        None => (lower.as_str(), None),
    };
    let digits = |t: &str| t.chars().all(|c| c.is_ascii_digit() || c == '_');
    let mantissa_ok = match mantissa.split_once('.') {
        Some((i, f)) => digits(i) && digits(f) && !(i.is_empty() && f.is_empty()),
        None => !mantissa.is_empty() && digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_booleans_are_not_strings() {
        for s in [
            "1.10", "1", "1e5", "0x1F", ".5", "1_000", "true", "No", "null", ".inf", "-1.5",
        ] {
            assert!(!reads_as_string(s), "{s}");
        }
        for s in [
            "1.2.3",
            "v1",
            "latest",
            "1.0.0-rc.1",
            "e5",
            "1e",
            "sha256-x",
            "main-1",
        ] {
            assert!(reads_as_string(s), "{s}");
        }
    }
}
