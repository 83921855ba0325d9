//! YAML text → `serde_json::Value` plus the line and column of every node, so that schema and
//! semantic errors found on the JSON value can point back at the YAML source.
//!
//! Scalars are resolved with the YAML 1.2 core schema (`yes` is a string, `true` a boolean);
//! quoted scalars are always strings. Anchors and aliases are supported; merge keys (`<<`) are
//! not, and show up as unknown fields.
//!
//! # Bounds
//! A commit is untrusted input, and dockhand runs unattended as root: a document may not make
//! it allocate without bound. Each document is held to [`Limits`]: nodes built (aliases count
//! the size of what they copy, checked *before* copying, so a nested-alias "billion laughs"
//! stops at the limit instead of exhausting memory), nodes copied through aliases, nesting
//! depth and bytes of the position index. The first limit crossed ends the build with an error
//! naming it; the parser's remaining events are skipped cheaply.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        Pos {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

/// Where each node of a document is, keyed by JSON pointer (`/services/web/image`).
#[derive(Debug, Default, Clone)]
pub struct PosIndex {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

impl PosIndex {
    /// Position of the value at `pointer`, or of its nearest ancestor that has one.
    pub fn value(&self, pointer: &str) -> Pos {
        let mut p = pointer;
        loop {
            if let Some(pos) = self.values.get(p) {
                return *pos;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return Pos { line: 1, col: 1 },
            }
        }
    }

    /// Position of the mapping key whose value is at `pointer` (falls back to the value).
    pub fn key(&self, pointer: &str) -> Pos {
        self.keys
            .get(pointer)
            .copied()
            .unwrap_or_else(|| self.value(pointer))
    }
}

/// A YAML syntax error with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
    /// The limit crossed, when that is what ended the parse.
    pub limit: Option<Limit>,
}

/// One of the bounds of [`Limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Nodes,
    AliasNodes,
    Depth,
    IndexBytes,
}

impl Limit {
    /// How messages name the limit.
    pub fn name(self) -> &'static str {
        match self {
            Limit::Nodes => "yaml.max_nodes",
            Limit::AliasNodes => "yaml.max_alias_nodes",
            Limit::Depth => "yaml.max_depth",
            Limit::IndexBytes => "yaml.max_index_bytes",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Limit::Nodes => "nodes in the document",
            Limit::AliasNodes => "nodes copied through aliases",
            Limit::Depth => "nesting of lists and maps",
            Limit::IndexBytes => "bytes of the position index",
        }
    }
}

pub fn escape_pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Bounds on what one document may make the loader build. The defaults are far above any
/// real desired state (the largest example has a few hundred nodes; 50 services of 100 fields
/// are 5,000) and far below what hurts a host: at the limits a document costs a few MB
/// (about 90 bytes a node with its position).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Nodes (scalars, lists, maps) in the built value, aliases counted at their full size.
    pub max_nodes: usize,
    /// Nodes copied through aliases, all aliases of the document together.
    pub max_alias_nodes: usize,
    /// Lists and maps nested in each other.
    pub max_depth: usize,
    /// Bytes of JSON pointers kept for positions (long keys nested deep make long pointers).
    pub max_index_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_nodes: 20_000,
            max_alias_nodes: 10_000,
            max_depth: 64,
            max_index_bytes: 16 << 20,
        }
    }
}

enum Frame {
    Seq(Vec<Value>, String, usize),
    Map(Map<String, Value>, String, usize, Option<(String, Pos)>),
}

struct Builder {
    stack: Vec<Frame>,
    root: Option<Value>,
    index: PosIndex,
    /// Each anchored value with its size in nodes.
    anchors: HashMap<usize, (Value, usize)>,
    documents: usize,
    error: Option<YamlError>,
    limits: Limits,
    nodes: usize,
    alias_nodes: usize,
    index_bytes: usize,
    /// Set once a limit is crossed: every later event is ignored.
    over: bool,
    /// Size in nodes of each open list or map (parallel to `stack`).
    sizes: Vec<usize>,
}

impl Builder {
    /// Pointer for the next child of the innermost container.
    fn child_pointer(&self) -> String {
        match self.stack.last() {
            None => String::new(),
            Some(Frame::Seq(items, ptr, _)) => format!("{ptr}/{}", items.len()),
            Some(Frame::Map(_, ptr, _, Some((key, _)))) => {
                format!("{ptr}/{}", escape_pointer_token(key))
            }
            Some(Frame::Map(_, ptr, _, None)) => ptr.clone(),
        }
    }

    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map(_, _, _, None)))
    }

    /// Ends the build: `which` was crossed at `pos`. What was built so far is dropped at once.
    fn over_limit(&mut self, pos: Pos, which: Limit) {
        let value = match which {
            Limit::Nodes => self.limits.max_nodes,
            Limit::AliasNodes => self.limits.max_alias_nodes,
            Limit::Depth => self.limits.max_depth,
            Limit::IndexBytes => self.limits.max_index_bytes,
        };
        self.over = true;
        self.stack.clear();
        self.sizes.clear();
        self.anchors.clear();
        self.error = Some(YamlError {
            pos,
            message: format!(
                "document too large: {} exceeds the limit of {value} (limit `{}`)",
                which.what(),
                which.name()
            ),
            limit: Some(which),
        });
    }

    /// Counts `n` more nodes; false (and the build ended) when that crosses the limit.
    fn count(&mut self, n: usize, pos: Pos) -> bool {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > self.limits.max_nodes {
            self.over_limit(pos, Limit::Nodes);
            return false;
        }
        true
    }

    fn index_value(&mut self, ptr: String, pos: Pos) -> bool {
        self.index_bytes = self.index_bytes.saturating_add(ptr.len());
        if self.index_bytes > self.limits.max_index_bytes {
            self.over_limit(pos, Limit::IndexBytes);
            return false;
        }
        self.index.values.insert(ptr, pos);
        true
    }

    /// Adds a finished node of `size` nodes to its parent.
    fn push_value(&mut self, value: Value, anchor: usize, size: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, (value.clone(), size));
        }
        if let Some(parent) = self.sizes.last_mut() {
            *parent = parent.saturating_add(size);
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(value);
                }
            }
            Some(Frame::Seq(items, _, _)) => items.push(value),
            Some(Frame::Map(map, ptr, _, pending)) => {
                if let Some((key, key_pos)) = pending.take() {
                    if map.contains_key(&key) && self.error.is_none() {
                        self.error = Some(YamlError {
                            pos: key_pos,
                            message: format!(
                                "duplicate key `{key}` in mapping at {}",
                                if ptr.is_empty() { "/" } else { ptr }
                            ),
                            limit: None,
                        });
                    }
                    map.insert(key, value);
                }
            }
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.over {
            return;
        }
        let pos = Pos::from(mark);
        match ev {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 && self.error.is_none() {
                    self.error = Some(YamlError {
                        pos,
                        message: "more than one YAML document in this file".into(),
                        limit: None,
                    });
                }
            }
            Event::Scalar(text, style, anchor, _tag) => {
                if self.expecting_key() {
                    let ptr = self.child_pointer();
                    let key_ptr = format!("{ptr}/{}", escape_pointer_token(&text));
                    self.index_bytes = self.index_bytes.saturating_add(key_ptr.len());
                    if self.index_bytes > self.limits.max_index_bytes {
                        self.over_limit(pos, Limit::IndexBytes);
                        return;
                    }
                    if let Some(Frame::Map(_, _, _, pending)) = self.stack.last_mut() {
                        self.index.keys.insert(key_ptr, pos);
                        *pending = Some((text, pos));
                    }
                    return;
                }
                if !self.count(1, pos) {
                    return;
                }
                let ptr = self.child_pointer();
                if !self.index_value(ptr, pos) {
                    return;
                }
                let value = resolve_scalar(&text, style);
                self.push_value(value, anchor, 1);
            }
            Event::Alias(id) => {
                if self.expecting_key() {
                    if self.error.is_none() {
                        self.error = Some(YamlError {
                            pos,
                            message: "an alias cannot be used as a mapping key".into(),
                            limit: None,
                        });
                    }
                    return;
                }
                // Sized before it is copied: the copy is what a nested-alias bomb multiplies.
                let size = self.anchors.get(&id).map_or(1, |(_, n)| *n);
                self.alias_nodes = self.alias_nodes.saturating_add(size);
                if self.alias_nodes > self.limits.max_alias_nodes {
                    self.over_limit(pos, Limit::AliasNodes);
                    return;
                }
                if !self.count(size, pos) {
                    return;
                }
                let ptr = self.child_pointer();
                if !self.index_value(ptr, pos) {
                    return;
                }
                let value = self
                    .anchors
                    .get(&id)
                    .map_or(Value::Null, |(v, _)| v.clone());
                self.push_value(value, 0, size);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if self.expecting_key() {
                    if self.error.is_none() {
                        self.error = Some(YamlError {
                            pos,
                            message: "a mapping key must be a plain value, not a list or map"
                                .into(),
                            limit: None,
                        });
                    }
                    // Keep the structure balanced: treat it as a key named after its position.
                    if let Some(Frame::Map(_, _, _, pending)) = self.stack.last_mut() {
                        *pending = Some((format!("<complex key at {}>", pos.line), pos));
                    }
                }
                if !self.count(1, pos) {
                    return;
                }
                if self.stack.len() >= self.limits.max_depth {
                    self.over_limit(pos, Limit::Depth);
                    return;
                }
                let ptr = self.child_pointer();
                if !self.index_value(ptr.clone(), pos) {
                    return;
                }
                self.sizes.push(1);
                if matches!(ev, Event::SequenceStart(..)) {
                    self.stack.push(Frame::Seq(Vec::new(), ptr, anchor));
                } else {
                    self.stack.push(Frame::Map(Map::new(), ptr, anchor, None));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor) = match self.stack.pop() {
                    Some(Frame::Seq(items, _, anchor)) => (Value::Array(items), anchor),
                    Some(Frame::Map(map, _, anchor, _)) => (Value::Object(map), anchor),
                    None => return,
                };
                let size = self.sizes.pop().unwrap_or(1);
                self.push_value(value, anchor, size);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

fn resolve_scalar(text: &str, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::String(text.to_string());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let looks_numeric = text
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit() || b == b'-' || b == b'+' || b == b'.');
    if looks_numeric {
        if let Ok(i) = text.parse::<i64>() {
            return Value::Number(i.into());
        }
        if let Some(hex) = text.strip_prefix("0x") {
            if let Ok(i) = i64::from_str_radix(hex, 16) {
                return Value::Number(i.into());
            }
        }
        if let Some(oct) = text.strip_prefix("0o") {
            if let Ok(i) = i64::from_str_radix(oct, 8) {
                return Value::Number(i.into());
            }
        }
        let float_like = text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
        if float_like {
            if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
                return Value::Number(n);
            }
        }
    }
    Value::String(text.to_string())
}

/// Parses one YAML document within the default [`Limits`]. An empty file is `null`.
///
/// # Errors
/// A syntax error, a second document, a duplicate or complex key, or a crossed limit (the
/// message names it), with the position where it was found.
pub fn parse(text: &str) -> Result<(Value, PosIndex), YamlError> {
    parse_with(text, Limits::default())
}

/// [`parse`] with explicit limits.
pub fn parse_with(text: &str, limits: Limits) -> Result<(Value, PosIndex), YamlError> {
    parse_counted(text, limits).map(|(v, i, _)| (v, i))
}

/// [`parse_with`], also giving the number of nodes built (what a repository-wide budget
/// counts).
pub fn parse_counted(text: &str, limits: Limits) -> Result<(Value, PosIndex, usize), YamlError> {
    let mut builder = Builder {
        stack: Vec::new(),
        root: None,
        index: PosIndex::default(),
        anchors: HashMap::new(),
        documents: 0,
        error: None,
        limits,
        nodes: 0,
        alias_nodes: 0,
        index_bytes: 0,
        over: false,
        sizes: Vec::new(),
    };
    let mut parser = Parser::new_from_str(text);
    // Events are pulled one by one rather than through `Parser::load`, which recurses once per
    // nesting level (a line of 100k `- ` would overflow the stack) and cannot be stopped: here
    // the first crossed limit ends the parse at once.
    loop {
        let (ev, mark) = parser.next_token().map_err(|e| YamlError {
            pos: Pos::from(*e.marker()),
            message: e.info().to_string(),
            limit: None,
        })?;
        let end = ev == Event::StreamEnd;
        builder.on_event(ev, mark);
        if builder.over || end {
            break;
        }
    }
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok((
        builder.root.unwrap_or(Value::Null),
        builder.index,
        builder.nodes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resolves_core_schema_scalars() {
        let (v, _) = parse("a: yes\nb: true\nc: 8080\nd: '8080'\ne: 1.5\nf: ~\ng: 0x1f\n").unwrap();
        assert_eq!(
            v,
            json!({"a": "yes", "b": true, "c": 8080, "d": "8080", "e": 1.5, "f": null, "g": 31})
        );
    }

    #[test]
    fn records_positions_of_values_and_keys() {
        let src = "stack: demo\nservices:\n  web:\n    image: x\n    ports: [\"1:2\"]\n";
        let (_, idx) = parse(src).unwrap();
        assert_eq!(idx.value("/services/web/image"), Pos { line: 4, col: 12 });
        assert_eq!(idx.key("/services/web/image"), Pos { line: 4, col: 5 });
        assert_eq!(idx.value("/services/web/ports/0"), Pos { line: 5, col: 13 });
        // Unknown pointers fall back to the nearest ancestor.
        assert_eq!(idx.value("/services/web/nope"), idx.value("/services/web"));
    }

    #[test]
    fn expands_aliases() {
        let (v, _) = parse("base: &b {x: 1}\nother: *b\n").unwrap();
        assert_eq!(v["other"], json!({"x": 1}));
    }

    #[test]
    fn each_limit_is_named_and_hit_where_it_is_crossed() {
        let small = Limits {
            max_nodes: 20,
            max_alias_nodes: 5,
            max_depth: 3,
            max_index_bytes: 60,
        };
        let err = parse_with("a: &a [1, 2, 3]\nb: *a\nc: *a\n", small).unwrap_err();
        assert_eq!(err.limit, Some(Limit::AliasNodes), "{err:?}");
        assert_eq!(err.pos.line, 3);
        assert!(err.message.contains("yaml.max_alias_nodes"));
        let err = parse_with("[[[[1]]]]", small).unwrap_err();
        assert_eq!(err.limit, Some(Limit::Depth), "{err:?}");
        let err = parse_with(&format!("[{}]", vec!["1"; 30].join(",")), small).unwrap_err();
        assert_eq!(err.limit, Some(Limit::Nodes), "{err:?}");
        let long = "k".repeat(70);
        let err = parse_with(&format!("{long}: 1\n"), small).unwrap_err();
        assert_eq!(err.limit, Some(Limit::IndexBytes), "{err:?}");
        // Within the limits, aliases still expand.
        let (v, _) = parse_with("a: &a [1]\nb: *a\n", small).unwrap();
        assert_eq!(v["b"], json!([1]));
    }

    #[test]
    fn reports_syntax_errors_with_position() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 1, "{err:?}");
        let err = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(err.pos, Pos { line: 2, col: 1 });
        assert!(err.message.contains("duplicate key `a`"));
    }
}
