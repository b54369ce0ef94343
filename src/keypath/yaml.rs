//! YAML as Python pipelines read it: saphyr's YAML 1.2 event parser, with the document built here so
//! that every key and list item keeps its line, aliases are expanded, merge keys (`<<`) are resolved,
//! and plain scalars are typed the way PyYAML's `safe_load` types them (YAML 1.1: `yes` is true, `1e-5`
//! without a dot is a string). docs/decisions.md#yaml says why.

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};
use serde_json::{Map, Number, Value};

use crate::error::{Error, Result};
use crate::finding::Location;

/// Nodes an alias may expand a document to before it is refused (an alias bomb).
const MAX_NODES: usize = 1_000_000;

/// A YAML node with the line and column (1-based, in characters) where it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub line: u32,
    pub column: u32,
    pub kind: Kind,
    /// For a node an alias (`*name`) stands for: the alias's line. The node keeps the anchor's lines,
    /// where the value is written and must be edited.
    pub alias_line: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Scalar(Value),
    Seq(Vec<Node>),
    /// Keys in document order (merged keys after the map's own), each with the node of the key.
    Map(Vec<(String, Node, Node)>),
}

impl Node {
    /// The node as JSON (maps keep their keys' order: `serde_json` sorts them).
    pub fn value(&self) -> Value {
        match &self.kind {
            Kind::Scalar(v) => v.clone(),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::value).collect()),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, _, v)| (k.clone(), v.value()))
                    .collect::<Map<_, _>>(),
            ),
        }
    }
}

/// Parse a YAML text of one document (an empty text is `null`). A syntax error, a second document, a
/// duplicate key, an unknown tag or an alias bomb is an error at its line.
pub fn parse(display: &str, text: &str) -> Result<Node> {
    let mut b = Builder {
        display,
        parser: Parser::new_from_str(text),
        anchors: std::collections::HashMap::new(),
        nodes: 0,
    };
    let mut root = None;
    loop {
        let (ev, span) = b.next()?;
        match ev {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::DocumentStart(_) if root.is_some() => {
                return Err(b.error(
                    span,
                    "a second YAML document: plumbline reads files of one document (as `yaml.safe_load` does)",
                ));
            }
            Event::DocumentStart(_) => root = Some(b.node()?),
            Event::StreamEnd => break,
            _ => return Err(b.error(span, "unexpected YAML event outside a document")),
        }
    }
    Ok(root.unwrap_or(Node {
        line: 1,
        column: 1,
        kind: Kind::Scalar(Value::Null),
        alias_line: None,
    }))
}

struct Builder<'a> {
    display: &'a str,
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: std::collections::HashMap<usize, Node>,
    nodes: usize,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span)> {
        match self.parser.next_event() {
            Some(Ok(e)) => Ok(e),
            Some(Err(e)) => Err(self.scan_error(&e)),
            None => Err(Error::at(
                Location::file(self.display),
                "YAML ended early".to_owned(),
            )),
        }
    }

    fn scan_error(&self, e: &ScanError) -> Error {
        let m = e.marker();
        Error::at(
            at(self.display, m.line(), m.col()),
            format!("YAML syntax error: {}", e.info()),
        )
    }

    fn error(&self, span: Span, message: &str) -> Error {
        Error::at(
            at(self.display, span.start.line(), span.start.col()),
            message.to_owned(),
        )
    }

    fn count(&mut self, n: usize, span: Span) -> Result<()> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(self.error(
                span,
                &format!("the YAML expands to more than {MAX_NODES} nodes through its aliases (an alias bomb?)"),
            ));
        }
        Ok(())
    }

    /// The next node (the document's root, a list item, a map value).
    fn node(&mut self) -> Result<Node> {
        let (ev, span) = self.next()?;
        self.node_from(ev, span)
    }

    fn node_from(&mut self, ev: Event<'a>, span: Span) -> Result<Node> {
        let (line, column) = (span.start.line() as u32, span.start.col() as u32 + 1);
        let (anchor, node) = match ev {
            Event::Alias(id) => {
                let mut node = self.anchors.get(&id).cloned().ok_or_else(|| {
                    self.error(span, "an alias to an anchor that is not defined before it")
                })?;
                self.count(size(&node), span)?;
                node.alias_line = Some(line);
                return Ok(node);
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1, span)?;
                let value =
                    scalar(&text, style, tag.as_deref()).map_err(|m| self.error(span, &m))?;
                (anchor, Kind::Scalar(value))
            }
            Event::SequenceStart(anchor, tag) => {
                self.core_tag(tag.as_deref(), "seq", span)?;
                self.count(1, span)?;
                (anchor, Kind::Seq(self.items()?))
            }
            Event::MappingStart(anchor, tag) => {
                self.core_tag(tag.as_deref(), "map", span)?;
                self.count(1, span)?;
                (anchor, Kind::Map(self.entries()?))
            }
            _ => return Err(self.error(span, "unexpected YAML event where a value belongs")),
        };
        let node = Node {
            line,
            column,
            kind: node,
            alias_line: None,
        };
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }

    fn core_tag(&self, tag: Option<&Tag>, want: &str, span: Span) -> Result<()> {
        match tag {
            None => Ok(()),
            Some(t) if t.is_yaml_core_schema() && t.suffix == want => Ok(()),
            Some(t) => Err(self.error(span, &format!("the tag `{t}` is not a core YAML type plumbline reads (as `yaml.safe_load` refuses it)"))),
        }
    }

    fn items(&mut self) -> Result<Vec<Node>> {
        let mut items = Vec::new();
        loop {
            let (ev, span) = self.next()?;
            if ev == Event::SequenceEnd {
                return Ok(items);
            }
            items.push(self.node_from(ev, span)?);
        }
    }

    /// A map's entries: its own keys (a duplicate is an error naming both lines), then the keys merged
    /// in by `<<` that it does not define itself (from the first merged map that has them).
    fn entries(&mut self) -> Result<Vec<(String, Node, Node)>> {
        let mut own: Vec<(String, Node, Node)> = Vec::new();
        let mut merged: Vec<Node> = Vec::new();
        loop {
            let (ev, span) = self.next()?;
            if ev == Event::MappingEnd {
                break;
            }
            let key_node = self.node_from(ev, span)?;
            let Kind::Scalar(k) = &key_node.kind else {
                return Err(self.error(span, "a YAML key that is a list or a map: plumbline reads string, number and bool keys"));
            };
            let value = self.node()?;
            if matches!(k, Value::String(s) if s == "<<") {
                match &value.kind {
                    Kind::Map(_) => merged.push(value),
                    Kind::Seq(maps) if maps.iter().all(|m| matches!(m.kind, Kind::Map(_))) => {
                        merged.extend(maps.iter().cloned());
                    }
                    _ => {
                        return Err(
                            self.error(span, "a merge key (`<<`) takes a map or a list of maps")
                        );
                    }
                }
                continue;
            }
            let key = match k {
                Value::String(s) => s.clone(),
                Value::Null => "null".to_owned(),
                other => other.to_string(),
            };
            if let Some((_, first, _)) = own.iter().find(|(k, _, _)| *k == key) {
                return Err(self.error(
                    span,
                    &format!("the key `{key}` is written twice (first on line {}): a fact needs one definition", first.line),
                ));
            }
            own.push((key, key_node, value));
        }
        for m in merged {
            let Kind::Map(entries) = m.kind else { continue };
            for (k, kn, v) in entries {
                if !own.iter().any(|(o, _, _)| *o == k) {
                    own.push((k, kn, v));
                }
            }
        }
        Ok(own)
    }
}

fn at(display: &str, line: usize, col: usize) -> Location {
    Location {
        path: display.to_owned(),
        line: Some(line as u32),
        column: Some(col as u32 + 1),
        label: None,
    }
}

fn size(n: &Node) -> usize {
    1 + match &n.kind {
        Kind::Scalar(_) => 0,
        Kind::Seq(items) => items.iter().map(size).sum(),
        Kind::Map(entries) => entries.iter().map(|(_, k, v)| size(k) + size(v)).sum(),
    }
}

/// A scalar's value: quoted and block scalars are strings; a plain one is resolved like PyYAML's
/// `SafeLoader` (YAML 1.1); an explicit core tag (`!!str`, `!!int`, …) decides.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> std::result::Result<Value, String> {
    if let Some(t) = tag {
        if !t.is_yaml_core_schema() {
            return Err(format!(
                "the tag `{t}` is not a core YAML type plumbline reads (as `yaml.safe_load` refuses it)"
            ));
        }
        return match t.suffix.as_str() {
            "str" => Ok(Value::String(text.to_owned())),
            "null" => Ok(Value::Null),
            "bool" => resolve_plain(text)
                .filter(Value::is_boolean)
                .ok_or_else(|| format!("`{text}` is not a `!!bool`")),
            "int" => resolve_plain(text)
                .filter(|v| v.is_i64() || v.is_u64())
                .ok_or_else(|| format!("`{text}` is not an `!!int`")),
            "float" => resolve_plain(text)
                .and_then(|v| v.as_f64())
                .and_then(Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("`{text}` is not a `!!float` plumbline can hold")),
            _ => Err(format!(
                "the tag `{t}` is not a core YAML type plumbline reads (as `yaml.safe_load` refuses it)"
            )),
        };
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::String(text.to_owned()));
    }
    Ok(resolve_plain(text).unwrap_or_else(|| Value::String(text.to_owned())))
}

/// PyYAML's implicit resolvers for a plain scalar: null, bool, int, float; `None` for a string. A float
/// JSON cannot hold (`.inf`, `.nan`) stays a string: facts are JSON values.
fn resolve_plain(s: &str) -> Option<Value> {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Value::Null),
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Some(Value::Bool(true));
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Some(Value::Bool(false));
        }
        _ => {}
    }
    int(s).or_else(|| float(s))
}

fn int(s: &str) -> Option<Value> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let digits: String = body.chars().filter(|c| *c != '_').collect();
    let (radix, digits) = if let Some(b) = body.strip_prefix("0b") {
        (2, b.replace('_', ""))
    } else if let Some(x) = body.strip_prefix("0x") {
        (16, x.replace('_', ""))
    } else if body.len() > 1 && body.starts_with('0') {
        (8, digits[1..].to_owned())
    } else {
        // Decimal: `0`, or a first digit 1-9 then digits and underscores (PyYAML's rule).
        if !(body == "0" || body.starts_with(|c: char| ('1'..='9').contains(&c))) {
            return None;
        }
        (10, digits)
    };
    let body_ok = match radix {
        2 => body[2..].chars().all(|c| matches!(c, '0' | '1' | '_')),
        16 => body[2..].chars().all(|c| c.is_ascii_hexdigit() || c == '_'),
        8 => body[1..].chars().all(|c| matches!(c, '0'..='7' | '_')),
        _ => body.chars().all(|c| c.is_ascii_digit() || c == '_'),
    };
    if digits.is_empty() || !body_ok {
        return None;
    }
    let n = i128::from_str_radix(&digits, radix).ok()?;
    let n = if neg { -n } else { n };
    i64::try_from(n)
        .map(Value::from)
        .or_else(|_| u64::try_from(n).map(Value::from))
        .ok()
}

/// PyYAML's float: digits, a dot, optional digits and an exponent with its sign (`1.5`, `-0.5e-3`,
/// `1.`), or a leading dot (`.5`); `1e-5` (no dot) is a string there, and here.
fn float(s: &str) -> Option<Value> {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int_part, frac) = mantissa.split_once('.')?;
    let digits_ok = |p: &str| p.chars().all(|c| c.is_ascii_digit() || c == '_');
    let int_ok = if int_part.is_empty() {
        frac.starts_with(|c: char| c.is_ascii_digit())
    } else {
        int_part.starts_with(|c: char| c.is_ascii_digit()) && digits_ok(int_part)
    };
    let exp_ok = exp.is_none_or(|e| {
        e.len() > 1 && e.starts_with(['-', '+']) && e[1..].chars().all(|c| c.is_ascii_digit())
    });
    if !(int_ok && digits_ok(frac) && exp_ok) {
        return None;
    }
    let f: f64 = s.replace('_', "").parse().ok()?;
    Number::from_f64(f).map(Value::Number)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn value(text: &str) -> Value {
        parse("c.yaml", text).unwrap().value()
    }

    fn err(text: &str) -> String {
        parse("c.yaml", text).unwrap_err().to_string()
    }

    #[test]
    fn plain_scalars_resolve_as_pyyaml_safe_load_does() {
        // Each expectation is what `yaml.safe_load` (PyYAML 6.0) returns for the same text (checked),
        // except `p`, a date there and its text here, and `q`, inf there: a JSON fact holds no infinity.
        let v = value(
            "a: yes\nb: No\nc: on\nd: ~\ne: 0x1f\nf: 017\ng: 1_000\nh: 1.5\ni: -0.5e-3\nj: 1e-5\nk: .5\nl: '3'\nm: 1.\nn: 0b101\no: +7\np: 2020-01-01\nq: .inf\nr: 09\n",
        );
        assert_eq!(
            v,
            json!({"a": true, "b": false, "c": true, "d": null, "e": 31, "f": 15, "g": 1000,
                   "h": 1.5, "i": -0.0005, "j": "1e-5", "k": 0.5, "l": "3", "m": 1.0, "n": 5,
                   "o": 7, "p": "2020-01-01", "q": ".inf", "r": "09"})
        );
    }

    #[test]
    fn anchors_aliases_and_merge_keys_resolve() {
        let text = "base: &b\n  lr: 0.1\n  cols: &c [x, y]\nrun:\n  <<: *b\n  lr: 0.2\nother: *c\nmany:\n  <<: [{p: 1}, {p: 2, q: 3}]\n";
        assert_eq!(
            value(text),
            json!({"base": {"lr": 0.1, "cols": ["x", "y"]}, "run": {"lr": 0.2, "cols": ["x", "y"]},
                   "other": ["x", "y"], "many": {"p": 1, "q": 3}})
        );
        // A merged key keeps the line where it is written (in the anchored map).
        let root = parse("c.yaml", text).unwrap();
        let Kind::Map(top) = &root.kind else { panic!() };
        let Kind::Map(run) = &top[1].2.kind else {
            panic!()
        };
        let cols = run.iter().find(|(k, _, _)| k == "cols").unwrap();
        assert_eq!((cols.1.line, cols.2.line), (3, 3));
        assert_eq!(
            run[0].1.line, 6,
            "the map's own `lr` comes first, from line 6"
        );
    }

    #[test]
    fn refusals_name_the_line() {
        assert_eq!(
            err("a: 1\nb: 2\na: 3\n"),
            "c.yaml:3:1: the key `a` is written twice (first on line 1): a fact needs one definition"
        );
        assert!(err("a: 1\n---\nb: 2\n").starts_with("c.yaml:2:1: a second YAML document"));
        assert!(
            err("a: !!python/object:os.system x\n").contains("is not a core YAML type"),
            "{}",
            err("a: !!python/object:os.system x\n")
        );
        let e = err("a: *nope\n");
        assert!(e.starts_with("c.yaml:1:"), "{e}");
        assert!(
            err("a: [1, 2\n").starts_with("c.yaml:"),
            "{}",
            err("a: [1, 2\n")
        );
        // The billion laughs: nine levels of ten aliases each.
        let mut bomb = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            bomb.push_str(&format!(
                "l{i}: &l{i} [*l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}]\n"
            ));
        }
        assert!(err(&bomb).contains("alias bomb"), "{}", err(&bomb));
    }

    #[test]
    fn tags_of_the_core_schema_decide_the_type() {
        assert_eq!(
            value("a: !!str 3\nb: !!float '2'\nc: !!int '7'\n"),
            json!({"a": "3", "b": 2.0, "c": 7})
        );
        assert_eq!(value(""), Value::Null);
    }
}
