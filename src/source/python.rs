//! Python module constants, read with tree-sitter-python. The module is parsed, never imported: only
//! literals (str, int, float, bool, None, negative numbers, list/tuple/dict of these) and names bound to
//! other constants of the same module are accepted. Anything else is an error naming the expression and
//! its line.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use serde_json::Value;
use tree_sitter::{Node, Parser, Tree};

use super::Fact;
use crate::error::{Error, Result};
use crate::finding::Location;

pub struct PythonModule {
    display: String,
    text: String,
    tree: Tree,
    /// Constants already evaluated (names referring to names are common: `THRESHOLDS = {"long": LONG}`),
    /// with their size in values.
    cache: RefCell<HashMap<String, (Value, usize)>>,
    /// Values produced for the fact being read; names repeating names can expand exponentially.
    produced: std::cell::Cell<usize>,
}

/// One place a name is bound or changed.
struct Binding<'t> {
    node: Node<'t>,
    kind: &'static str,
}

/// The one binding a contract fact may have.
const ASSIGNMENT: &str = "an assignment";

/// Largest number of values one fact may expand to.
const MAX_VALUES: usize = 1_000_000;

/// Methods that change a list, dict or set in place.
const MUTATORS: &[&str] = &[
    "append",
    "extend",
    "insert",
    "remove",
    "pop",
    "clear",
    "sort",
    "reverse",
    "update",
    "setdefault",
    "popitem",
    "add",
    "discard",
];

/// A Python source file's text (PEP 263): UTF-8, unless a `coding:` declaration on its first or
/// second line names latin-1 or ASCII. Any other declared encoding is an error at its line; bytes that
/// are not valid in the encoding are an error naming their offset.
pub fn decode(path: &std::path::Path, bytes: Vec<u8>) -> Result<String> {
    let Some((line, name)) = declared_encoding(&bytes) else {
        return crate::snapshot::utf8(path, bytes);
    };
    // CPython's get_normal_name: `utf-8` and `latin-1` spellings, with any `-suffix` (`utf-8-unix`).
    let normal = name.to_ascii_lowercase().replace('_', "-");
    let is = |n: &str| normal == n || normal.starts_with(&format!("{n}-"));
    match normal.as_str() {
        _ if is("utf-8") || normal == "utf8" => crate::snapshot::utf8(path, bytes),
        _ if ["latin-1", "iso-8859-1", "iso-latin-1"].into_iter().any(is)
            || ["latin1", "iso8859-1", "l1", "cp819"].contains(&normal.as_str()) =>
        {
            Ok(bytes.iter().map(|&b| char::from(b)).collect())
        }
        // Any encoding reads ASCII bytes as ASCII (cp1252, shift_jis, …): nothing to decode.
        _ if bytes.is_ascii() => crate::snapshot::utf8(path, bytes),
        "ascii" | "us-ascii" => match bytes.iter().position(|b| !b.is_ascii()) {
            None => crate::snapshot::utf8(path, bytes),
            Some(at) => Err(Error::at(
                Location::at(
                    crate::paths::display_path(path),
                    crate::snapshot::line_of(&bytes, at),
                ),
                format!(
                    "byte 0x{:02X} at byte offset {at} is not ASCII, the encoding the file declares",
                    bytes[at]
                ),
            )),
        },
        _ => Err(Error::at(
            Location::at(crate::paths::display_path(path), line),
            format!(
                "declares `coding: {name}` (PEP 263); plumbline reads Python sources in UTF-8, latin-1 or ASCII: save it as UTF-8"
            ),
        )),
    }
}

/// The encoding a PEP 263 comment declares on line 1, or on line 2 after a comment or blank line 1:
/// `^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)`, as CPython's tokenizer reads it.
fn declared_encoding(bytes: &[u8]) -> Option<(u32, String)> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut lines = bytes.split(|&b| b == b'\n');
    for n in 1..=2u32 {
        let line = lines.next()?;
        let trimmed = line.trim_ascii_start();
        if !trimmed.starts_with(b"#") {
            if n == 1 && trimmed.trim_ascii().is_empty() {
                continue;
            }
            return None;
        }
        if let Some(name) = coding_in(trimmed) {
            return Some((n, name));
        }
    }
    None
}

/// The name after the first `coding:` or `coding=` in a comment line.
fn coding_in(comment: &[u8]) -> Option<String> {
    let i = comment
        .windows(7)
        .position(|w| w == b"coding:" || w == b"coding=")?;
    let rest = comment[i + 7..].trim_ascii_start();
    let name: Vec<u8> = rest
        .iter()
        .copied()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        .collect();
    (!name.is_empty()).then(|| String::from_utf8_lossy(&name).into_owned())
}

impl PythonModule {
    pub fn parse(display: &str, text: String) -> Result<PythonModule> {
        let mut parser = Parser::new();
        parser
            .set_language(&tree_sitter_python::LANGUAGE.into())
            .map_err(|e| Error::msg(format!("tree-sitter-python: {e}")))?;
        let tree = parser
            .parse(&text, None)
            .ok_or_else(|| Error::msg(format!("{display}: the Python parser gave up")))?;
        let module = PythonModule {
            display: display.to_owned(),
            text,
            tree,
            cache: RefCell::new(HashMap::new()),
            produced: std::cell::Cell::new(0),
        };
        if let Some(err) = first_error(module.tree.root_node()) {
            let message = format!(
                "syntax error near `{}`\n{}",
                module.snippet(err),
                module.source_line(err)
            );
            return Err(module.error(err, message));
        }
        Ok(module)
    }

    fn error(&self, node: Node, message: String) -> Error {
        let p = node.start_position();
        Error::at(
            Location {
                path: self.display.clone(),
                line: Some(p.row as u32 + 1),
                column: Some(p.column as u32 + 1),
                label: None,
            },
            message,
        )
    }

    /// The line `node` starts on, numbered, with a caret under its column (rustc's layout).
    fn source_line(&self, node: Node) -> String {
        let p = node.start_position();
        let line = self.text.lines().nth(p.row).unwrap_or("");
        let n = (p.row + 1).to_string();
        let pad = " ".repeat(n.len());
        let col = line.get(..p.column).map_or(p.column, |s| s.chars().count());
        format!("{pad} |\n{n} | {line}\n{pad} | {}^", " ".repeat(col))
    }

    fn text_of(&self, node: Node) -> &str {
        &self.text[node.byte_range()]
    }

    fn snippet(&self, node: Node) -> String {
        let t = self.text_of(node);
        let one_line = t.lines().next().unwrap_or("");
        if one_line.len() < t.len() || one_line.chars().count() > 60 {
            format!("{}…", one_line.chars().take(60).collect::<String>())
        } else {
            one_line.to_owned()
        }
    }

    /// Every place the module binds, rebinds or mutates `name` outside function and class bodies.
    fn bindings(&self, name: &str) -> Vec<Binding<'_>> {
        let mut out = Vec::new();
        self.scan(self.tree.root_node(), name, &mut out);
        out.sort_by_key(|b| b.node.start_byte());
        out
    }

    fn is(&self, node: Node, name: &str) -> bool {
        node.kind() == "identifier" && self.text_of(node) == name
    }

    /// Identifiers bound by an assignment target (`A`, `A, B`, `[A, *B]`), not those inside
    /// subscripts or attributes.
    fn target_binds(&self, target: Node, name: &str) -> bool {
        match target.kind() {
            "identifier" => self.text_of(target) == name,
            "pattern_list"
            | "tuple_pattern"
            | "list_pattern"
            | "list_splat_pattern"
            | "parenthesized_expression"
            | "expression_list"
            | "tuple"
            | "list" => {
                let mut c = target.walk();
                target
                    .named_children(&mut c)
                    .any(|n| self.target_binds(n, name))
            }
            _ => false,
        }
    }

    /// `A[0] = ...`, `A.x = ...`: the object of a subscript or attribute target.
    fn target_mutates(&self, target: Node, name: &str) -> bool {
        match target.kind() {
            "subscript" | "attribute" => target
                .child_by_field_name(if target.kind() == "subscript" {
                    "value"
                } else {
                    "object"
                })
                .is_some_and(|o| self.is(o, name) || self.target_mutates(o, name)),
            _ => false,
        }
    }

    fn scan<'t>(&'t self, node: Node<'t>, name: &str, out: &mut Vec<Binding<'t>>) {
        if let Some(kind) = self.binding_kind(node, name) {
            out.push(Binding { node, kind });
        }
        if matches!(
            node.kind(),
            "function_definition" | "class_definition" | "lambda"
        ) {
            return; // bodies are other scopes
        }
        let mut c = node.walk();
        let children: Vec<Node<'t>> = node.named_children(&mut c).collect();
        for child in children {
            self.scan(child, name, out);
        }
    }

    /// How `node` itself binds or changes `name`, if it does.
    fn binding_kind(&self, node: Node, name: &str) -> Option<&'static str> {
        let field = |f: &str| node.child_by_field_name(f);
        match node.kind() {
            "function_definition" => field("name")
                .filter(|n| self.is(*n, name))
                .map(|_| "a function definition"),
            "class_definition" => field("name")
                .filter(|n| self.is(*n, name))
                .map(|_| "a class definition"),
            "assignment" => self.assignment_kind(node, field("left")?, name),
            "augmented_assignment" => {
                let left = field("left")?;
                if self.is(left, name) {
                    Some("an augmented assignment")
                } else {
                    self.target_mutates(left, name)
                        .then_some("an item or attribute assignment")
                }
            }
            "call" => self.mutating_call_kind(field("function")?, name),
            "for_statement" | "for_in_clause" => field("left")
                .filter(|l| self.target_binds(*l, name))
                .map(|_| "a for-loop target"),
            "as_pattern" | "aliased_import" => field("alias")
                .filter(|a| {
                    self.target_binds(*a, name)
                        || (a.kind() == "as_pattern_target" && self.text_of(*a) == name)
                })
                .map(|_| "an `as` binding"),
            "import_statement" | "import_from_statement" => {
                self.imports(node, name).then_some("an import")
            }
            "delete_statement" => {
                let mut c = node.walk();
                let targets: Vec<Node> = node.named_children(&mut c).collect();
                targets
                    .iter()
                    .any(|n| self.target_binds(*n, name))
                    .then_some("a `del`")
            }
            "named_expression" => field("name")
                .filter(|n| self.is(*n, name))
                .map(|_| "an assignment expression (`:=`)"),
            _ => None,
        }
    }

    /// How the assignment `node` to `left` binds or changes `name`, if it does.
    fn assignment_kind(&self, node: Node, left: Node, name: &str) -> Option<&'static str> {
        let top = node.parent().is_some_and(|p| {
            p.kind() == "expression_statement" && p.parent().is_some_and(|m| m.kind() == "module")
        });
        if self.is(left, name) {
            Some(if top {
                ASSIGNMENT
            } else {
                "an assignment inside a block"
            })
        } else if self.target_binds(left, name) {
            Some("an unpacking assignment")
        } else {
            self.target_mutates(left, name)
                .then_some("an item or attribute assignment")
        }
    }

    /// A mutating method call on `name` (`name.append(…)`), when calling `function` is one.
    fn mutating_call_kind(&self, function: Node, name: &str) -> Option<&'static str> {
        if function.kind() != "attribute" {
            return None;
        }
        let on_name = function
            .child_by_field_name("object")
            .is_some_and(|o| self.is(o, name));
        let mutator = function
            .child_by_field_name("attribute")
            .is_some_and(|a| MUTATORS.contains(&self.text_of(a)));
        (on_name && mutator).then_some("a mutating method call")
    }

    /// Whether the import statement `node` binds `name` (`import name.x`, `from m import name`).
    fn imports(&self, node: Node, name: &str) -> bool {
        let mut c = node.walk();
        let direct = node.kind() == "import_statement";
        let names: Vec<Node> = node.children_by_field_name("name", &mut c).collect();
        names.iter().any(|n| {
            n.kind() == "dotted_name"
                && if direct {
                    n.named_child(0).is_some_and(|i| self.is(i, name))
                } else {
                    self.text_of(*n) == name
                }
        })
    }

    /// The names bound by a plain top-level `NAME = …` (or `NAME: T = …`), in source order: the
    /// constants [`PythonModule::constant`] may read (`plumbline init` looks through them).
    pub fn assigned_names(&self) -> Vec<String> {
        let root = self.tree.root_node();
        let mut c = root.walk();
        let mut out: Vec<String> = Vec::new();
        for stmt in root.named_children(&mut c) {
            if stmt.kind() != "expression_statement" {
                continue;
            }
            let Some(assign) = stmt.named_child(0).filter(|n| n.kind() == "assignment") else {
                continue;
            };
            if let Some(left) = assign
                .child_by_field_name("left")
                .filter(|l| l.kind() == "identifier")
            {
                let name = self.text_of(left).to_owned();
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        }
        out
    }

    /// The value of a module constant, with the line of its name and, for a list or tuple, each item's line.
    pub fn constant(&self, name: &str) -> Result<Fact> {
        self.produced.set(0);
        self.constant_guarded(name, &mut HashSet::new())
    }

    /// Count `n` more values towards the fact being read.
    fn charge(&self, node: Node, n: usize) -> Result<()> {
        let total = self.produced.get().saturating_add(n);
        self.produced.set(total);
        if total > MAX_VALUES {
            return Err(self.error(
                node,
                format!("the value expands to more than {MAX_VALUES} values"),
            ));
        }
        Ok(())
    }

    fn constant_guarded(&self, name: &str, seen: &mut HashSet<String>) -> Result<Fact> {
        if !seen.insert(name.to_owned()) {
            return Err(Error::at(
                Location::file(&self.display),
                format!("`{name}` is defined in terms of itself"),
            ));
        }
        let bindings = self.bindings(name);
        let assign = match bindings.as_slice() {
            [one] if one.kind == ASSIGNMENT => one.node,
            [] => {
                return Err(Error::at(
                    Location::file(&self.display),
                    format!(
                        "no module-level assignment to `{name}` (plumbline reads top-level `{name} = <literal>` only)"
                    ),
                ));
            }
            [one] => {
                return Err(self.error(
                    one.node,
                    format!("`{name}` is bound by {} here, not by a top-level `{name} = <literal>`; a contract fact needs one plain definition", one.kind),
                ));
            }
            [first, ..] => {
                let places: Vec<String> = bindings
                    .iter()
                    .map(|b| format!("{} at line {}", b.kind, b.node.start_position().row + 1))
                    .collect();
                return Err(self.error(
                    first.node,
                    format!("`{name}` is bound or changed more than once at module level ({}); a contract fact needs one definition", places.join(", ")),
                ));
            }
        };
        let right = assign
            .child_by_field_name("right")
            .ok_or_else(|| self.error(assign, format!("`{name}` is declared without a value")))?;
        let value = self.eval(right, seen)?;
        let left = assign.child_by_field_name("left").unwrap_or(assign);
        let mut fact = Fact::new(
            value,
            Location {
                path: self.display.clone(),
                line: Some(left.start_position().row as u32 + 1),
                column: Some(left.start_position().column as u32 + 1),
                label: Some(name.to_owned()),
            },
        );
        let inner = unparen(right);
        if matches!(inner.kind(), "list" | "tuple" | "expression_list") {
            let mut c = inner.walk();
            fact.items = inner
                .named_children(&mut c)
                .filter(|n| n.kind() != "comment")
                .map(|n| {
                    (
                        n.start_position().row as u32 + 1,
                        n.start_position().column as u32 + 1,
                    )
                })
                .collect();
        }
        Ok(fact)
    }

    fn eval(&self, node: Node, seen: &mut HashSet<String>) -> Result<Value> {
        if node.kind() != "identifier" {
            self.charge(node, 1)?;
        }
        let unsupported = |what: &str| self.unsupported(node, what);
        match node.kind() {
            "string" => Ok(Value::String(self.string(node)?)),
            "concatenated_string" => self.concatenated(node).map(Value::String),
            "integer" => self.integer(node).map(Value::from),
            "float" => self.float_literal(node),
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            "none" => Ok(Value::Null),
            "unary_operator" => self.unary(node, seen),
            "parenthesized_expression" => {
                let inner = node
                    .named_child(0)
                    .ok_or_else(|| unsupported("empty parentheses"))?;
                self.eval(inner, seen)
            }
            "list" | "tuple" | "expression_list" => self.sequence(node, seen),
            "dictionary" => self.dictionary(node, seen),
            "identifier" => self.named(node, seen),
            "call" => Err(unsupported(
                "a call; plumbline never runs pipeline code to read a fact",
            )),
            "list_comprehension"
            | "dictionary_comprehension"
            | "generator_expression"
            | "set_comprehension" => Err(unsupported("a comprehension")),
            "binary_operator" => Err(unsupported("arithmetic or concatenation")),
            "set" => Err(unsupported("a set has no order; use a list or tuple")),
            other => Err(unsupported(other)),
        }
    }

    /// The error for an expression `node` a contract fact cannot be, saying `what` it is.
    fn unsupported(&self, node: Node, what: &str) -> Error {
        self.error(
            node,
            format!(
                "unsupported expression `{}` ({what}); a contract fact must be a literal (str, int, float, bool, None, list/tuple/dict of these) or the name of another constant in this module",
                self.snippet(node)
            ),
        )
    }

    /// Adjacent string literals (`'a' 'b'`), joined.
    fn concatenated(&self, node: Node) -> Result<String> {
        let mut s = String::new();
        let mut c = node.walk();
        for part in node
            .named_children(&mut c)
            .filter(|p| p.kind() != "comment")
        {
            s.push_str(&self.string(part)?);
        }
        Ok(s)
    }

    /// A float literal; complex and non-finite numbers are refused.
    fn float_literal(&self, node: Node) -> Result<Value> {
        let t = self.text_of(node).replace('_', "");
        if t.ends_with(['j', 'J']) {
            return Err(self.unsupported(node, "complex number"));
        }
        let f: f64 = t
            .parse()
            .map_err(|_| self.unsupported(node, "float literal plumbline cannot read"))?;
        float(f).ok_or_else(|| self.unsupported(node, "non-finite float"))
    }

    /// `+x` or `-x` of a number.
    fn unary(&self, node: Node, seen: &mut HashSet<String>) -> Result<Value> {
        let op = node
            .child_by_field_name("operator")
            .map(|o| self.text_of(o))
            .unwrap_or("");
        let arg = node
            .child_by_field_name("argument")
            .ok_or_else(|| self.unsupported(node, "unary operator"))?;
        let v = self.eval(arg, seen)?;
        match (op, &v) {
            ("+", Value::Number(_)) => Ok(v),
            ("-", Value::Number(n)) => {
                if let Some(i) = n.as_i64() {
                    Ok(Value::from(-i))
                } else {
                    float(-n.as_f64().unwrap_or(f64::NAN))
                        .ok_or_else(|| self.unsupported(node, "number"))
                }
            }
            _ => Err(self.unsupported(node, "operator on a non-number")),
        }
    }

    /// A list or tuple, as an array; unpacking (`*A`) is refused.
    fn sequence(&self, node: Node, seen: &mut HashSet<String>) -> Result<Value> {
        let mut out = Vec::new();
        let mut c = node.walk();
        for item in node.named_children(&mut c) {
            if item.kind() == "comment" {
                continue;
            }
            if item.kind() == "list_splat" {
                return Err(self.error(
                    item,
                    format!(
                        "unsupported expression `{}` (unpacking)",
                        self.snippet(item)
                    ),
                ));
            }
            out.push(self.eval(item, seen)?);
        }
        Ok(Value::Array(out))
    }

    /// A dict literal, as an object; a key seen twice is an error.
    fn dictionary(&self, node: Node, seen: &mut HashSet<String>) -> Result<Value> {
        let mut map = serde_json::Map::new();
        let mut c = node.walk();
        for pair in node.named_children(&mut c) {
            match pair.kind() {
                "comment" => continue,
                "pair" => {}
                _ => {
                    return Err(self.error(
                        pair,
                        format!("unsupported expression `{}` in a dict", self.snippet(pair)),
                    ));
                }
            }
            let k = pair
                .child_by_field_name("key")
                .ok_or_else(|| self.unsupported(node, "dict entry"))?;
            let v = pair
                .child_by_field_name("value")
                .ok_or_else(|| self.unsupported(node, "dict entry"))?;
            let key = self.dict_key(k, seen)?;
            if map.contains_key(&key) {
                return Err(self.error(k, format!("duplicate dict key `{key}`")));
            }
            map.insert(key, self.eval(v, seen)?);
        }
        Ok(Value::Object(map))
    }

    /// A dict key as JSON text: a string, a number, or `True`/`False`.
    fn dict_key(&self, k: Node, seen: &mut HashSet<String>) -> Result<String> {
        match self.eval(k, seen)? {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(if b { "True".into() } else { "False".into() }),
            _ => Err(self.error(k, format!("unsupported dict key `{}`", self.snippet(k)))),
        }
    }

    /// The value of the constant the identifier `node` names, evaluated once and then cached.
    fn named(&self, node: Node, seen: &mut HashSet<String>) -> Result<Value> {
        let name = self.text_of(node).to_owned();
        if let Some((v, size)) = self.cache.borrow().get(&name) {
            self.charge(node, *size)?;
            return Ok(v.clone());
        }
        let before = self.produced.get();
        let v = self.constant_guarded(&name, seen).map_err(|e| match e {
            Error::At { location, message } if location.line.is_none() => self.error(
                node,
                format!("`{name}` is not a constant of this module: {message}"),
            ),
            other => other,
        })?;
        seen.remove(&name);
        let size = self.produced.get() - before;
        self.cache
            .borrow_mut()
            .insert(name, (v.value.clone(), size));
        Ok(v.value)
    }

    fn integer(&self, node: Node) -> Result<i64> {
        let t = self.text_of(node).replace('_', "").to_ascii_lowercase();
        if t.ends_with('j') {
            return Err(self.error(
                node,
                format!(
                    "unsupported expression `{}` (complex number)",
                    self.text_of(node)
                ),
            ));
        }
        let parsed = if let Some(h) = t.strip_prefix("0x") {
            i64::from_str_radix(h, 16)
        } else if let Some(o) = t.strip_prefix("0o") {
            i64::from_str_radix(o, 8)
        } else if let Some(b) = t.strip_prefix("0b") {
            i64::from_str_radix(b, 2)
        } else {
            t.parse()
        };
        parsed.map_err(|_| {
            self.error(
                node,
                format!("integer `{}` does not fit in 64 bits", self.text_of(node)),
            )
        })
    }

    fn string(&self, node: Node) -> Result<String> {
        if node.kind() != "string" {
            return Err(self.error(
                node,
                format!("unsupported expression `{}`", self.snippet(node)),
            ));
        }
        let mut out = String::new();
        let mut raw = false;
        let mut c = node.walk();
        for part in node.children(&mut c) {
            match part.kind() {
                "string_start" => {
                    let prefix = self
                        .text_of(part)
                        .trim_end_matches(['"', '\''])
                        .to_ascii_lowercase();
                    if prefix.contains('f') || prefix.contains('t') {
                        return Err(self.error(
                            node,
                            format!(
                                "unsupported expression `{}` (an f-string is computed at run time)",
                                self.snippet(node)
                            ),
                        ));
                    }
                    if prefix.contains('b') {
                        return Err(self.error(
                            node,
                            format!(
                                "unsupported expression `{}` (bytes, not text)",
                                self.snippet(node)
                            ),
                        ));
                    }
                    raw = prefix.contains('r');
                }
                "string_content" => {
                    // tree-sitter-python nests escape_sequence nodes inside string_content.
                    let start = part.start_byte();
                    let mut pos = start;
                    let mut c2 = part.walk();
                    for esc in part.named_children(&mut c2) {
                        out.push_str(&self.text[pos..esc.start_byte()]);
                        let e = self.text_of(esc);
                        if raw {
                            out.push_str(e);
                        } else {
                            out.push_str(&self.unescape(esc, e)?);
                        }
                        pos = esc.end_byte();
                    }
                    out.push_str(&self.text[pos..part.end_byte()]);
                }
                "escape_sequence" => {
                    let e = self.text_of(part);
                    if raw {
                        out.push_str(e)
                    } else {
                        out.push_str(&self.unescape(part, e)?)
                    }
                }
                "interpolation" => {
                    return Err(self.error(
                        part,
                        "unsupported expression (f-string interpolation)".into(),
                    ));
                }
                _ => {}
            }
        }
        Ok(out)
    }

    fn unescape(&self, node: Node, e: &str) -> Result<String> {
        let body = &e[1..];
        let simple = match body {
            "n" => Some('\n'),
            "t" => Some('\t'),
            "r" => Some('\r'),
            "\\" => Some('\\'),
            "'" => Some('\''),
            "\"" => Some('"'),
            "0" => Some('\0'),
            "a" => Some('\x07'),
            "b" => Some('\x08'),
            "f" => Some('\x0c'),
            "v" => Some('\x0b'),
            "\n" => return Ok(String::new()),
            _ => None,
        };
        if let Some(c) = simple {
            return Ok(c.to_string());
        }
        let hex = body
            .strip_prefix('x')
            .or_else(|| body.strip_prefix('u'))
            .or_else(|| body.strip_prefix('U'));
        if let Some(c) = hex
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(char::from_u32)
        {
            return Ok(c.to_string());
        }
        Err(self.error(node, format!("unsupported escape `{e}` in a string")))
    }
}

fn unparen(mut node: Node) -> Node {
    while node.kind() == "parenthesized_expression" {
        match node.named_child(0) {
            Some(n) => node = n,
            None => break,
        }
    }
    node
}

fn float(f: f64) -> Option<Value> {
    serde_json::Number::from_f64(f).map(Value::Number)
}

fn first_error(node: Node) -> Option<Node> {
    if node.is_error() || node.is_missing() {
        return Some(node);
    }
    if !node.has_error() {
        return None;
    }
    let mut c = node.walk();
    let children: Vec<Node> = node.children(&mut c).collect();
    children.into_iter().find_map(first_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(src: &str) -> PythonModule {
        PythonModule::parse("m.py", src.to_owned()).unwrap()
    }

    /// PEP 263: a latin-1 declaration is honoured, an unknown one and a stray byte are errors that
    /// name the line (and the byte offset).
    #[test]
    fn source_encodings_follow_pep_263() {
        let p = std::path::Path::new("m.py");
        let latin = b"# -*- coding: latin-1 -*-\n# caf\xe9\nA = 1\n".to_vec();
        assert_eq!(
            decode(p, latin).unwrap(),
            "# -*- coding: latin-1 -*-\n# caf\u{e9}\nA = 1\n"
        );
        // Line 2 counts after a comment on line 1, not after code.
        assert!(
            decode(
                p,
                b"#!/usr/bin/env python3\n# vim: set fileencoding=latin1 :\n# \xe9\n".to_vec()
            )
            .is_ok()
        );
        assert!(decode(p, b"A = 1\n# coding: latin-1\n# \xe9\n".to_vec()).is_err());
        let e = decode(p, b"A = 1\n# caf\xe9\n".to_vec())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("m.py:2") && e.contains("0xE9 at byte offset 11"),
            "{e}"
        );
        let e = decode(p, b"# coding: cp1252\nA = '\x80'\n".to_vec())
            .unwrap_err()
            .to_string();
        assert!(e.contains("m.py:1") && e.contains("coding: cp1252"), "{e}");
        assert!(
            decode(p, b"# coding: cp1252\nA = 1\n".to_vec()).is_ok(),
            "ASCII in any encoding"
        );
        assert!(decode(p, b"# coding: latin-1-unix\n# \xe9\n".to_vec()).is_ok());
        assert!(decode(p, b"# coding: utf-8-unix\n# \xc3\xa9\n".to_vec()).is_ok());
        let e = decode(p, b"# coding: ascii\n# \xe9\n".to_vec())
            .unwrap_err()
            .to_string();
        assert!(e.contains("m.py:2") && e.contains("offset 18"), "{e}");
    }

    #[test]
    fn a_syntax_error_shows_its_line() {
        let Err(e) = PythonModule::parse("m.py", "A = 1\nB = 5 +\n".to_owned()) else {
            panic!("parsed")
        };
        let e = e.to_string();
        assert!(
            e.contains("m.py:2:") && e.contains("2 | B = 5 +") && e.contains("^"),
            "{e}"
        );
    }

    #[test]
    fn literals_of_every_kind() {
        let m = module(
            "import os\nA = 'x'\nB: int = -3\nC = 1_000\nD = 2.5e-3\nE = (True, False, None)\nF = {\"k\": [1, -2.0], 'j': 'a' 'b'}\nG = A\nH = 0x1F\nI = r'\\d'\nJ = 'tab\\there'\n",
        );
        assert_eq!(m.constant("A").unwrap().value, Value::from("x"));
        assert_eq!(m.constant("B").unwrap().value, Value::from(-3));
        assert_eq!(m.constant("B").unwrap().origin.line, Some(3));
        assert_eq!(m.constant("C").unwrap().value, Value::from(1000));
        assert_eq!(m.constant("D").unwrap().value, Value::from(0.0025));
        assert_eq!(
            m.constant("E").unwrap().value,
            serde_json::json!([true, false, null])
        );
        assert_eq!(
            m.constant("F").unwrap().value,
            serde_json::json!({"k": [1, -2.0], "j": "ab"})
        );
        assert_eq!(m.constant("G").unwrap().value, Value::from("x"));
        assert_eq!(m.constant("H").unwrap().value, Value::from(31));
        assert_eq!(m.constant("I").unwrap().value, Value::from("\\d"));
        assert_eq!(m.constant("J").unwrap().value, Value::from("tab\there"));
    }

    #[test]
    fn list_items_carry_their_lines() {
        let m = module("COLS = [\n    \"a\",  # first\n    \"b\",\n]\n");
        let f = m.constant("COLS").unwrap();
        assert_eq!(f.value, serde_json::json!(["a", "b"]));
        assert_eq!(f.items, vec![(2, 5), (3, 5)]);
    }

    #[test]
    fn computed_values_are_errors_naming_expression_and_line() {
        let m = module(
            "import x\nA = 1\nB = x.load()\nC = [c for c in 'ab']\nD = A + 1\nE = f'{A}'\nF = UNKNOWN\n",
        );
        let err = m.constant("B").unwrap_err().to_string();
        assert!(
            err.starts_with("m.py:3:5: unsupported expression `x.load()`"),
            "{err}"
        );
        assert!(
            m.constant("C")
                .unwrap_err()
                .to_string()
                .contains("comprehension")
        );
        assert!(m.constant("D").unwrap_err().to_string().contains("`A + 1`"));
        assert!(
            m.constant("E")
                .unwrap_err()
                .to_string()
                .contains("f-string")
        );
        let err = m.constant("F").unwrap_err().to_string();
        assert!(
            err.starts_with("m.py:7:5: `UNKNOWN` is not a constant"),
            "{err}"
        );
        assert!(
            m.constant("Z")
                .unwrap_err()
                .to_string()
                .contains("no module-level assignment to `Z`")
        );
    }

    #[test]
    fn rebinding_and_cycles_are_errors() {
        let m = module("A = [1]\nA += [2]\nB = C\nC = B\n");
        let err = m.constant("A").unwrap_err().to_string();
        assert!(
            err.contains("an assignment at line 1, an augmented assignment at line 2"),
            "{err}"
        );
        assert!(
            m.constant("B")
                .unwrap_err()
                .to_string()
                .contains("in terms of itself")
        );
    }

    #[test]
    fn every_other_way_to_bind_or_change_a_name_is_refused() {
        let cases = [
            (
                "A = [1]\nif X:\n    A = [2]\n",
                "an assignment inside a block at line 3",
            ),
            ("A = [1]\nA.append(2)\n", "a mutating method call at line 2"),
            (
                "A = [1]\nA[0] = 2\n",
                "an item or attribute assignment at line 2",
            ),
            ("A = [1]\ndel A\n", "a `del` at line 2"),
            (
                "A = [1]\nfrom x import y as A\n",
                "an `as` binding at line 2",
            ),
            ("A = [1]\nimport A\n", "an import at line 2"),
            (
                "A = [1]\ndef A():\n    pass\n",
                "a function definition at line 2",
            ),
            (
                "A = [1]\nfor A in []:\n    pass\n",
                "a for-loop target at line 2",
            ),
            (
                "A = [1]\nB, A = 1, 2\n",
                "an unpacking assignment at line 2",
            ),
            (
                "A = [1]\nwith f() as A:\n    pass\n",
                "an `as` binding at line 2",
            ),
            (
                "A = [1]\ntry:\n    A = [3]\nexcept E:\n    pass\n",
                "an assignment inside a block at line 3",
            ),
        ];
        for (src, expected) in cases {
            let err = module(src).constant("A").unwrap_err().to_string();
            assert!(err.contains(expected), "{src:?}: {err}");
        }
        let err = module("A += [1]\n").constant("A").unwrap_err().to_string();
        assert!(
            err.contains("bound by an augmented assignment here"),
            "{err}"
        );
        // Function bodies are other scopes; reading the name is not changing it.
        let m = module("A = [1]\ndef f():\n    A = 2\n    A.append(3)\nB = len(A)\nprint(A)\n");
        assert_eq!(m.constant("A").unwrap().value, serde_json::json!([1]));
    }

    #[test]
    fn tuples_without_parentheses_comments_and_complex() {
        let m = module("A = 1, -2\nB = ('a'  # first half\n     'b')\nC = 5j\n");
        assert_eq!(m.constant("A").unwrap().value, serde_json::json!([1, -2]));
        assert_eq!(m.constant("B").unwrap().value, Value::from("ab"));
        assert!(
            m.constant("C")
                .unwrap_err()
                .to_string()
                .contains("complex number")
        );
    }

    #[test]
    fn shared_names_are_evaluated_once() {
        let mut src = String::from("A0 = [1]\n");
        for i in 1..=12 {
            src.push_str(&format!("A{i} = [A{p}, A{p}]\n", p = i - 1));
        }
        let m = module(&src);
        let v = m.constant("A12").unwrap().value;
        assert_eq!(
            v[0][0][0][0][0][0][0][0][0][0],
            v[1][1][1][1][1][1][1][1][1][1]
        );
        // A value that expands past the budget is an error, not an out-of-memory kill.
        let mut src = String::from("A0 = [1]\n");
        for i in 1..=40 {
            src.push_str(&format!("A{i} = [A{p}, A{p}]\n", p = i - 1));
        }
        let err = module(&src).constant("A40").unwrap_err().to_string();
        assert!(err.contains("expands to more than 1000000 values"), "{err}");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = PythonModule::parse("m.py", "A = [1,\nB = 2\n".into())
            .err()
            .unwrap()
            .to_string();
        assert!(err.starts_with("m.py:"), "{err}");
        assert!(err.contains("syntax error"), "{err}");
    }
}
