//! Positioned YAML: text in, documents of nodes that know their exact place in the text.
//!
//! Owns parsing (on `saphyr-parser`'s event stream), byte spans of scalar tokens, anchors and
//! aliases, and the limits that make untrusted input safe to read (size, nesting depth).
//! Both the rules loader (which needs `file:line:column` for every problem) and the manifest
//! editor (which needs the bytes of one scalar) stand on it.
//!
//! It must not interpret values for a schema, edit text, or do I/O. Aliases are never
//! expanded here: a node that is an alias stays an [`NodeKind::Alias`], and whoever follows
//! it pays for it (see [`Budget`]), so a "billion laughs" document costs nothing to parse.

use std::collections::HashMap;
use std::ops::Range;

use saphyr_parser::{Event, Parser, ScalarStyle};

/// The largest input accepted, in bytes. GitOps files and rules are small; a huge file is a
/// mistake or an attack.
pub const MAX_INPUT_BYTES: usize = 8 * 1024 * 1024;
/// The deepest nesting of collections accepted.
pub const MAX_DEPTH: usize = 128;

/// A 1-based line and column (columns count characters, as editors do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// How a scalar was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `value`
    Plain,
    /// `'value'`
    SingleQuoted,
    /// `"value"`
    DoubleQuoted,
    /// `|` or `>` block scalars.
    Block,
}

/// A scalar and where its text is.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    /// The value after YAML's unquoting and folding.
    pub value: String,
    /// How it was written.
    pub style: Style,
    /// Byte range of the whole token, quotes included (anchor and tag excluded).
    pub token: Range<usize>,
    /// Byte range of the text between the quotes (the token itself when plain).
    pub content: Range<usize>,
    /// Whether `content` spells `value` byte for byte (single line, no escapes, no folding),
    /// which is what makes an in-place rewrite exact.
    pub verbatim: bool,
}

/// What a node is.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A scalar (strings, numbers, booleans and nulls alike: no schema here).
    Scalar(Scalar),
    /// A sequence.
    Sequence(Vec<Node>),
    /// A mapping, in document order (duplicate keys kept, for the caller to judge).
    Mapping(Vec<(Node, Node)>),
    /// An alias to the anchor with this id (see [`Document::anchored`]).
    Alias(usize),
}

/// One node of a document.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What it is.
    pub kind: NodeKind,
    /// The id of the anchor this node defines (`&name`), if any.
    pub anchor: Option<usize>,
    /// Where the node starts.
    pub position: Position,
    /// Byte offset where the node starts.
    pub offset: usize,
}

impl Node {
    /// The scalar, when this node is one.
    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            NodeKind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The value of the mapping entry whose key is the plain text `key`.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Mapping(entries) => entries
                .iter()
                .find(|(k, _)| k.as_scalar().is_some_and(|s| s.value == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// A short word for what the node is, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar(s) if is_null(s) => "null",
            NodeKind::Scalar(_) => "a scalar",
            NodeKind::Sequence(_) => "a list",
            NodeKind::Mapping(_) => "a mapping",
            NodeKind::Alias(_) => "an alias",
        }
    }
}

/// Whether a scalar is YAML's null (`~`, `null`, or nothing at all), as a plain scalar.
pub fn is_null(s: &Scalar) -> bool {
    s.style == Style::Plain && matches!(s.value.as_str(), "" | "~" | "null" | "Null" | "NULL")
}

/// One YAML document of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The root node (a null scalar for an empty document).
    pub root: Node,
    anchors: HashMap<usize, Node>,
}

impl Document {
    /// The node an anchor id names.
    pub fn anchored(&self, id: usize) -> Option<&Node> {
        self.anchors.get(&id)
    }
}

/// A document that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{position}: {message}")]
pub struct SyntaxError {
    /// Where.
    pub position: Position,
    /// What the parser said.
    pub message: String,
}

/// A budget for following aliases, so that expanding a hostile document fails fast.
#[derive(Debug, Clone)]
pub struct Budget {
    left: usize,
}

impl Budget {
    /// A budget of `nodes` visits.
    pub fn new(nodes: usize) -> Self {
        Self { left: nodes }
    }

    /// Spend one visit; false when the budget is exhausted.
    pub fn spend(&mut self) -> bool {
        if self.left == 0 {
            return false;
        }
        self.left -= 1;
        true
    }
}

/// Parse every document of `src`.
pub fn parse(src: &str) -> Result<Vec<Document>, SyntaxError> {
    if src.len() > MAX_INPUT_BYTES {
        return Err(SyntaxError {
            position: Position { line: 1, column: 1 },
            message: format!(
                "file is {} bytes, more than the {} bytes accepted",
                src.len(),
                MAX_INPUT_BYTES
            ),
        });
    }
    Builder::new(src).run()
}

/// Converts saphyr's character indices into byte offsets.
struct Offsets {
    /// Byte offset of each character, when the text is not ASCII.
    table: Option<Vec<usize>>,
    len: usize,
}

impl Offsets {
    fn new(src: &str) -> Self {
        let table = (!src.is_ascii()).then(|| src.char_indices().map(|(b, _)| b).collect());
        Self {
            table,
            len: src.len(),
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        match &self.table {
            None => char_index.min(self.len),
            Some(t) => t.get(char_index).copied().unwrap_or(self.len),
        }
    }
}

enum Open {
    Sequence(Node, Vec<Node>),
    Mapping(Node, Vec<(Node, Node)>, Option<Node>),
}

struct Builder<'a> {
    src: &'a str,
    offsets: Offsets,
    stack: Vec<Open>,
    anchors: HashMap<usize, Node>,
    docs: Vec<Document>,
    root: Option<Node>,
}

impl<'a> Builder<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            src,
            offsets: Offsets::new(src),
            stack: Vec::new(),
            anchors: HashMap::new(),
            docs: Vec::new(),
            root: None,
        }
    }

    fn run(mut self) -> Result<Vec<Document>, SyntaxError> {
        for item in Parser::new_from_str(self.src) {
            let (event, span) = item.map_err(|e| SyntaxError {
                position: Position {
                    line: e.marker().line(),
                    column: e.marker().col() + 1,
                },
                message: e.info().to_string(),
            })?;
            let offset = self.offsets.byte(span.start.index());
            let position = Position {
                line: span.start.line(),
                column: span.start.col() + 1,
            };
            let at = |kind, anchor| Node {
                kind,
                anchor,
                position,
                offset,
            };
            match event {
                Event::DocumentStart(_) => {
                    self.root = None;
                    self.anchors.clear();
                }
                Event::DocumentEnd => {
                    let root = self.root.take().unwrap_or_else(|| {
                        at(
                            NodeKind::Scalar(Scalar {
                                value: String::new(),
                                style: Style::Plain,
                                token: offset..offset,
                                content: offset..offset,
                                verbatim: true,
                            }),
                            None,
                        )
                    });
                    self.docs.push(Document {
                        root,
                        anchors: std::mem::take(&mut self.anchors),
                    });
                }
                Event::SequenceStart(anchor, _) => {
                    self.open(Open::Sequence(
                        at(NodeKind::Sequence(Vec::new()), anchor_id(anchor)),
                        Vec::new(),
                    ))?;
                }
                Event::MappingStart(anchor, _) => {
                    self.open(Open::Mapping(
                        at(NodeKind::Mapping(Vec::new()), anchor_id(anchor)),
                        Vec::new(),
                        None,
                    ))?;
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    let node = match self.stack.pop() {
                        Some(Open::Sequence(mut node, items)) => {
                            node.kind = NodeKind::Sequence(items);
                            node
                        }
                        Some(Open::Mapping(mut node, entries, _)) => {
                            node.kind = NodeKind::Mapping(entries);
                            node
                        }
                        None => continue,
                    };
                    self.complete(node);
                }
                Event::Scalar(value, style, anchor, _tag) => {
                    let scalar = self.locate_scalar(offset, value.into_owned(), style);
                    let mut node = at(NodeKind::Scalar(scalar), anchor_id(anchor));
                    if let NodeKind::Scalar(s) = &node.kind {
                        node.offset = s.token.start;
                    }
                    self.complete(node);
                }
                Event::Alias(id) => self.complete(at(NodeKind::Alias(id), None)),
                _ => {}
            }
        }
        Ok(self.docs)
    }

    fn open(&mut self, open: Open) -> Result<(), SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            let node = match &open {
                Open::Sequence(n, _) | Open::Mapping(n, _, _) => n,
            };
            return Err(SyntaxError {
                position: node.position,
                message: format!("nested more than {MAX_DEPTH} levels deep"),
            });
        }
        self.stack.push(open);
        Ok(())
    }

    fn complete(&mut self, node: Node) {
        if let Some(id) = node.anchor {
            self.anchors.insert(id, node.clone());
        }
        match self.stack.last_mut() {
            Some(Open::Sequence(_, items)) => items.push(node),
            Some(Open::Mapping(_, entries, key)) => match key.take() {
                Some(k) => entries.push((k, node)),
                None => *key = Some(node),
            },
            None => self.root = Some(node),
        }
    }

    /// Find the exact bytes of a scalar token starting near `start` (saphyr's span starts at
    /// the node's properties, so anchors and tags are skipped here).
    fn locate_scalar(&self, start: usize, value: String, style: ScalarStyle) -> Scalar {
        let src = self.src;
        let bytes = src.as_bytes();
        let mut i = skip_properties(bytes, start);
        let style = match style {
            ScalarStyle::Plain => Style::Plain,
            ScalarStyle::SingleQuoted => Style::SingleQuoted,
            ScalarStyle::DoubleQuoted => Style::DoubleQuoted,
            _ => Style::Block,
        };
        let (token, content) = match style {
            Style::Plain => {
                // A plain scalar's text is its value when it is on one line.
                let end = (i + value.len()).min(bytes.len());
                if value.is_empty() {
                    i = start;
                }
                (i..end, i..end)
            }
            Style::SingleQuoted => {
                let close = find_single_quote_end(bytes, i + 1);
                (i..close + 1, i + 1..close)
            }
            Style::DoubleQuoted => {
                let close = find_double_quote_end(bytes, i + 1);
                (i..close + 1, i + 1..close)
            }
            Style::Block => (i..i, i..i),
        };
        let verbatim = style != Style::Block
            && content.end <= bytes.len()
            && src.get(content.clone()) == Some(value.as_str())
            && !value.contains(['\n', '\r']);
        Scalar {
            value,
            style,
            token,
            content,
            verbatim,
        }
    }
}

fn anchor_id(id: usize) -> Option<usize> {
    (id != 0).then_some(id)
}

/// Skip `&anchor` and `!tag` properties and the blanks after them.
fn skip_properties(bytes: &[u8], mut i: usize) -> usize {
    loop {
        match bytes.get(i) {
            Some(b'&') | Some(b'!') => {
                while i < bytes.len() && !matches!(bytes[i], b' ' | b'\t' | b'\r' | b'\n') {
                    i += 1;
                }
                while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\r' | b'\n') {
                    i += 1;
                }
            }
            _ => return i,
        }
    }
}

fn find_single_quote_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        if bytes[i] == b'\'' {
            if bytes.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return i;
        }
        i += 1;
    }
    bytes.len().saturating_sub(1)
}

fn find_double_quote_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i,
            _ => i += 1,
        }
    }
    bytes.len().saturating_sub(1)
}

/// The byte range of the line that contains `offset`, without its line break.
pub fn line_around(src: &str, offset: usize) -> Range<usize> {
    let start = src[..offset.min(src.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let end = src[offset.min(src.len())..]
        .find('\n')
        .map_or(src.len(), |i| offset + i);
    let end = if src[..end].ends_with('\r') {
        end - 1
    } else {
        end
    };
    start..end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar_at<'d>(doc: &'d Document, key: &str) -> &'d Scalar {
        doc.root
            .get(key)
            .and_then(Node::as_scalar)
            .unwrap_or_else(|| panic!("no scalar at {key}"))
    }

    #[test]
    fn spans_cover_exactly_the_scalar_text() {
        let src = "a: &x plain # c\nb: \"dq\" \nc: 'it''s'\r\nd: {t: 1.2.3}\ne: *x\nf: multi\n  line\ng: é'q'\n";
        let docs = parse(src).unwrap();
        let doc = &docs[0];
        let a = scalar_at(doc, "a");
        assert_eq!(&src[a.content.clone()], "plain");
        assert!(a.verbatim);
        let b = scalar_at(doc, "b");
        assert_eq!(&src[b.token.clone()], "\"dq\"");
        assert_eq!(&src[b.content.clone()], "dq");
        let c = scalar_at(doc, "c");
        assert_eq!(&src[c.token.clone()], "'it''s'");
        assert!(!c.verbatim, "an escaped quote is not verbatim");
        let t = doc.root.get("d").and_then(|d| d.get("t")).unwrap();
        assert_eq!(&src[t.as_scalar().unwrap().content.clone()], "1.2.3");
        assert!(matches!(
            doc.root.get("e").unwrap().kind,
            NodeKind::Alias(_)
        ));
        assert!(!scalar_at(doc, "f").verbatim);
        let g = scalar_at(doc, "g");
        assert_eq!(&src[g.content.clone()], "é'q'");
        assert_eq!(
            doc.root.get("g").unwrap().position,
            Position { line: 8, column: 4 }
        );
    }

    #[test]
    fn several_documents_and_empty_ones() {
        let docs = parse("a: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 3);
        assert!(docs[1].root.as_scalar().is_some_and(is_null));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.position.line >= 1, "{err}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let src = "[".repeat(MAX_DEPTH + 5) + &"]".repeat(MAX_DEPTH + 5);
        let err = parse(&src).unwrap_err();
        assert!(err.message.contains("nested"), "{err}");
    }

    #[test]
    fn billion_laughs_parses_without_expanding() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            src.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let docs = parse(&src).unwrap();
        assert_eq!(docs.len(), 1);
    }

    #[test]
    fn line_around_strips_crlf() {
        let src = "a: 1\r\nb: 2\r\n";
        assert_eq!(&src[line_around(src, 7)], "b: 2");
    }
}
