//! The symbolic pickle value as plumbline's metadata tree: JSON, with tensors as
//! `{"$tensor": {"dtype", "shape"}}` nodes listed by their dotted path. Shared by every reader that
//! unpickles (torch archives, legacy torch.save files, plain pickles).
//!
//! Dict keys keep their Python meaning: a string key is itself, any other key is its Python text
//! (`1`, `0.5`, `None`, `(1, 'a')`; `true`/`false` for the two bools, as plumbline always wrote
//! them). Two keys Python tells apart that read the same (`1` and `'1'`), or one key set twice,
//! make the file ambiguous.

use std::collections::HashMap;
use std::rc::Rc;

use super::Tree;
use super::pickle::{Object, TensorRef, Value};
use crate::error::CheckpointError;

/// Tensors by dotted path, in the order the tree lists them.
pub type Tensors = Vec<(String, Rc<TensorRef>)>;

/// The tree of `root` and the tensors in it.
pub fn build(root: &Value) -> Result<(Tree, Tensors), CheckpointError> {
    let mut tensors = Vec::new();
    let tree = to_tree(root, &mut Vec::new(), &mut tensors, &mut Budget::new())?;
    Ok((tree, tensors))
}

/// Limits on the JSON tree built from a pickle. Shared references let a small pickle describe a huge
/// tree (a list holding itself twice, twenty levels deep); these stop that before memory does.
struct Budget {
    nodes: u64,
    bytes: u64,
}

impl Budget {
    fn new() -> Self {
        Budget {
            nodes: 1_000_000,
            bytes: 256 << 20,
        }
    }

    fn charge(&mut self, nodes: u64, bytes: u64) -> Result<(), CheckpointError> {
        let limit = |what: &str| {
            Err(CheckpointError::Unsupported(format!(
                "the pickle's object tree expands to more than {what}"
            )))
        };
        if nodes > self.nodes {
            return limit("1,000,000 nodes");
        }
        if bytes > self.bytes {
            return limit("256 MiB of text");
        }
        self.nodes -= nodes;
        self.bytes -= bytes;
        Ok(())
    }
}

const MAX_DEPTH: usize = 128;

/// Convert the symbolic pickle value into a JSON tree. Tensors become `{"$tensor": {dtype, shape}}` nodes
/// and are listed with their dotted path.
fn to_tree(
    v: &Value,
    path: &mut Vec<String>,
    tensors: &mut Tensors,
    budget: &mut Budget,
) -> Result<Tree, CheckpointError> {
    budget.charge(1, 0)?;
    if path.len() > MAX_DEPTH {
        return Err(CheckpointError::Unsupported(format!(
            "the pickle's object tree is nested deeper than {MAX_DEPTH} levels"
        )));
    }
    Ok(match v {
        Value::None => Tree::Null,
        Value::Bool(b) => Tree::Bool(*b),
        Value::Int(i) => Tree::from(*i),
        Value::BigInt(s) | Value::Str(s) => {
            budget.charge(0, s.len() as u64)?;
            Tree::String(s.to_string())
        }
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Tree::Number)
            .unwrap_or_else(|| Tree::String(f.to_string())),
        Value::Bytes(b) => Tree::String(format!("<{} bytes>", b.len())),
        Value::List(l) => seq(&l.borrow(), path, tensors, budget)?,
        Value::Tuple(t) => seq(t, path, tensors, budget)?,
        Value::Set(s) => set_tree(&s.borrow(), path, tensors, budget)?,
        Value::Dict(d) => dict_tree(&d.borrow(), path, tensors, budget)?,
        Value::Tensor(t) => tensor_tree(t, path, tensors, budget)?,
        Value::Global(g) => Tree::String(format!("<{}.{}>", g.0, g.1)),
        Value::Object(o) => object_tree(o, path, tensors, budget)?,
        Value::Storage(_) => Tree::String("<storage>".into()),
        Value::Opaque(name) => Tree::String(format!("<{name}(...)>")),
        Value::Mark => {
            return Err(CheckpointError::malformed(
                "pickle",
                "a MARK was left in the object tree",
            ));
        }
    })
}

/// The tree of a set's elements, the first of equal ones kept (Python's `{1, True}` is `{1}`).
fn set_tree(
    items: &[Value],
    path: &mut Vec<String>,
    tensors: &mut Tensors,
    budget: &mut Budget,
) -> Result<Tree, CheckpointError> {
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    let mut distinct = Vec::with_capacity(items.len());
    for v in items {
        let key = Key::of(v).map_err(|why| {
            CheckpointError::Unsupported(format!(
                "{} in the set at `{}`",
                why.replacen("a key", "an element", 1),
                path.join(".")
            ))
        })?;
        if seen.insert(key) {
            distinct.push(v.clone());
        }
    }
    seq(&distinct, path, tensors, budget)
}

/// The tree of a dict's entries, each under its key's text (see [`key_texts`]).
fn dict_tree(
    entries: &[(Value, Value)],
    path: &mut Vec<String>,
    tensors: &mut Tensors,
    budget: &mut Budget,
) -> Result<Tree, CheckpointError> {
    let texts = key_texts(entries, path, budget)?;
    let mut map = serde_json::Map::new();
    for ((_, v), text) in entries.iter().zip(texts) {
        path.push(text.clone());
        let child = to_tree(v, path, tensors, budget)?;
        path.pop();
        map.insert(text, child);
    }
    Ok(Tree::Object(map))
}

/// A tensor's `{"$tensor": {dtype, shape[, attributes]}}` node; the tensor is listed at `path`.
fn tensor_tree(
    t: &Rc<TensorRef>,
    path: &mut Vec<String>,
    tensors: &mut Tensors,
    budget: &mut Budget,
) -> Result<Tree, CheckpointError> {
    let name = path.join(".");
    // Each reference writes the shape again: charge it, or a memoized tensor with a huge
    // shape referenced many times would expand without bound.
    budget.charge(t.shape.len() as u64, name.len() as u64)?;
    tensors.push((name, t.clone()));
    let mut node = serde_json::json!({"dtype": t.dtype, "shape": t.shape});
    if !t.attributes.is_empty() {
        let mut attributes = serde_json::Map::new();
        for (k, v) in &t.attributes {
            path.push(k.clone());
            let child = to_tree(v, path, tensors, budget)?;
            path.pop();
            attributes.insert(k.clone(), child);
        }
        node["attributes"] = Tree::Object(attributes);
    }
    Ok(serde_json::json!({ "$tensor": node }))
}

/// A declared global's object as `{"$object": class[, args][, state]}`.
fn object_tree(
    o: &Object,
    path: &mut Vec<String>,
    tensors: &mut Tensors,
    budget: &mut Budget,
) -> Result<Tree, CheckpointError> {
    let mut node = serde_json::Map::new();
    let class = format!("{}.{}", o.class.0, o.class.1);
    budget.charge(0, class.len() as u64)?;
    node.insert("$object".into(), Tree::String(class));
    let args = o.args.borrow();
    if !args.is_empty() {
        path.push("args".into());
        node.insert("args".into(), seq(&args, path, tensors, budget)?);
        path.pop();
    }
    if let Some(state) = &*o.state.borrow() {
        path.push("state".into());
        node.insert("state".into(), to_tree(state, path, tensors, budget)?);
        path.pop();
    }
    Ok(Tree::Object(node))
}

/// The text each key of a dict is stored under. A key set twice (as Python compares keys) is
/// ambiguous. When a string key and another key read the same (`'1'` and `1`), the string keeps the
/// text, so a key path reaches it, and the other is stored as `<int 1>` (its Python type and repr).
fn key_texts(
    entries: &[(Value, Value)],
    path: &[String],
    budget: &mut Budget,
) -> Result<Vec<String>, CheckpointError> {
    let mut identities: HashMap<Key, usize> = HashMap::with_capacity(entries.len());
    let mut texts = Vec::with_capacity(entries.len());
    let mut strings: HashMap<String, usize> = HashMap::new();
    for (i, (k, _)) in entries.iter().enumerate() {
        let key = Key::of(k).map_err(|why| {
            CheckpointError::Unsupported(format!("{why} in the dict at `{}`", path.join(".")))
        })?;
        if let Some(&first) = identities.get(&key) {
            let (seen, repr) = (key_repr(&entries[first].0), key_repr(k));
            let same = if seen == repr {
                String::new()
            } else {
                format!(" ({seen} and {repr} are one key to Python)")
            };
            return Err(CheckpointError::Ambiguous(format!(
                "the key `{}` is set twice in the dict at `{}`{same}",
                key_text(&entries[first].0),
                path.join(".")
            )));
        }
        identities.insert(key, i);
        let text = key_text(k);
        budget.charge(0, text.len() as u64)?;
        if matches!(k, Value::Str(_)) {
            strings.insert(text.clone(), i);
        }
        texts.push(text);
    }
    let mut used: HashMap<&str, usize> = HashMap::with_capacity(texts.len());
    let mut renamed = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let k = &entries[i].0;
        if !matches!(k, Value::Str(_)) && strings.contains_key(text) {
            renamed.push((i, format!("<{} {}>", python_type(k), key_repr(k))));
        } else {
            used.insert(text, i);
        }
    }
    for (i, text) in &renamed {
        if used.contains_key(text.as_str()) {
            return Err(CheckpointError::Ambiguous(format!(
                "the dict at `{}` has keys that read `{text}` however they are written",
                path.join(".")
            )));
        }
        used.insert(text, *i);
    }
    drop(used);
    for (i, text) in renamed {
        budget.charge(0, text.len() as u64)?;
        texts[i] = text;
    }
    Ok(texts)
}

/// Python's `type(key).__name__` for the keys plumbline describes.
fn python_type(v: &Value) -> &'static str {
    match v {
        Value::Int(_) | Value::BigInt(_) => "int",
        Value::Bool(_) => "bool",
        Value::Float(_) => "float",
        Value::None => "NoneType",
        Value::Str(_) => "str",
        Value::Bytes(_) => "bytes",
        Value::Tuple(_) => "tuple",
        Value::Global(_) => "type",
        _ => "object",
    }
}

fn seq(
    items: &[Value],
    path: &mut Vec<String>,
    tensors: &mut Tensors,
    budget: &mut Budget,
) -> Result<Tree, CheckpointError> {
    let mut out = Vec::with_capacity(items.len());
    for (i, v) in items.iter().enumerate() {
        path.push(i.to_string());
        out.push(to_tree(v, path, tensors, budget)?);
        path.pop();
    }
    Ok(Tree::Array(out))
}

/// A dict key as Python compares it: `True == 1 == 1.0`, a tuple by its items. Values whose
/// equality plumbline cannot know (an opaque call's result) are their own identity by position.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Int(String),
    Float(u64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    None,
    Global(String, String),
    Tuple(Vec<Key>),
    Unknown(usize),
}

/// Tuples nested in a key deeper than this are refused (Python has no such limit; nothing real
/// comes near it, and the key's comparison and text would otherwise recurse without bound).
const MAX_KEY_DEPTH: usize = 16;

impl Key {
    /// The key's identity, or why plumbline cannot compare it as Python does.
    fn of(v: &Value) -> Result<Key, &'static str> {
        Key::at_depth(v, 0)
    }

    fn at_depth(v: &Value, depth: usize) -> Result<Key, &'static str> {
        Ok(match v {
            Value::Bool(b) => Key::Int(i64::from(*b).to_string()),
            Value::Int(i) => Key::Int(i.to_string()),
            Value::BigInt(s) => Key::Int(s.to_string()),
            // An integral float is equal to the int of its exact value (1e16 == 10**16).
            Value::Float(f) if f.is_finite() && f.fract() == 0.0 => {
                Key::Int(format!("{:.0}", f).replace("-0", "0"))
            }
            Value::Float(f) => Key::Float(f.to_bits()),
            Value::Str(s) => Key::Str(s.clone()),
            Value::Bytes(b) => Key::Bytes(b.clone()),
            Value::None => Key::None,
            Value::Global(g) => Key::Global(g.0.clone(), g.1.clone()),
            Value::Tuple(_) if depth >= MAX_KEY_DEPTH => {
                return Err("a tuple key nested deeper than 16 levels");
            }
            Value::Tuple(t) => Key::Tuple(
                t.iter()
                    .map(|x| Key::at_depth(x, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            // Tensors and storages hash by identity, as torch's do.
            Value::Tensor(t) => Key::Unknown(Rc::as_ptr(t) as usize),
            Value::Storage(s) => Key::Unknown(Rc::as_ptr(s) as usize),
            // complex(1, 0) == 1, torch.Size([1]) == (1,), a declared class may define __eq__:
            // equality plumbline cannot decide.
            Value::Opaque(_) | Value::Object(_) => {
                return Err("a key that is an object plumbline cannot compare as Python does");
            }
            Value::List(_) | Value::Dict(_) | Value::Set(_) | Value::Mark => {
                return Err("a key of a kind Python cannot hash (a list, dict or set)");
            }
        })
    }
}

/// The text a key is stored under in the tree: a string as itself, anything else as Python
/// writes it (bools as `true`/`false`).
pub fn key_text(k: &Value) -> String {
    match k {
        Value::Str(s) => s.to_string(),
        Value::Bool(b) => b.to_string(),
        other => key_repr(other),
    }
}

/// Python's `repr` of a hashable value, as far as plumbline describes it.
fn key_repr(v: &Value) -> String {
    match v {
        Value::None => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Int(i) => i.to_string(),
        Value::BigInt(s) => s.to_string(),
        Value::Float(f) => float_repr(*f),
        Value::Str(s) => str_repr(s),
        Value::Bytes(b) => {
            let text: String = b
                .iter()
                .map(|&c| match c {
                    b'\\' => "\\\\".into(),
                    b'\'' => "\\'".into(),
                    b'\n' => "\\n".into(),
                    b'\r' => "\\r".into(),
                    b'\t' => "\\t".into(),
                    0x20..=0x7e => char::from(c).to_string(),
                    _ => format!("\\x{c:02x}"),
                })
                .collect();
            format!("b'{text}'")
        }
        Value::Tuple(t) if t.len() == 1 => format!("({},)", key_repr(&t[0])),
        Value::Tuple(t) => format!(
            "({})",
            t.iter().map(key_repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Global(g) => format!("<{}.{}>", g.0, g.1),
        Value::Opaque(name) => format!("<{name}(...)>"),
        Value::Object(o) => format!("<{}.{}(...)>", o.class.0, o.class.1),
        Value::Tensor(_) => "<tensor>".into(),
        Value::Storage(_) => "<storage>".into(),
        Value::List(_) | Value::Dict(_) | Value::Set(_) | Value::Mark => "<unhashable>".into(),
    }
}

/// Python's `repr` of a str: single quotes unless the text has one and no double quote.
fn str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `repr` of a float: the shortest digits that read back, in positional notation when
/// the decimal point falls within 16 digits of them, else `1e-05` / `1.5e+16`.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    // Rust's `{:e}` gives the same shortest round-trip digits: `-1.5e16`, `1e-5`, `0e0`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` has an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` exponent is an int");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let decpt = exp + 1;
    if !(-4 < decpt && decpt <= 16) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{dot}e{esign}{:02}", exp.abs());
    }
    let n = digits.len() as i32;
    let body = if decpt <= 0 {
        format!("0.{}{digits}", "0".repeat((-decpt) as usize))
    } else if decpt >= n {
        format!("{digits}{}.0", "0".repeat((decpt - n) as usize))
    } else {
        let (a, b) = digits.split_at(decpt as usize);
        format!("{a}.{b}")
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_read_as_python_writes_them() {
        for (f, py) in [
            (0.5, "0.5"),
            (1.0, "1.0"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1.5e16, "1.5e+16"),
            (123.456, "123.456"),
            (0.1 + 0.2, "0.30000000000000004"),
            (-2.5e-7, "-2.5e-07"),
            (f64::INFINITY, "inf"),
            (f64::NAN, "nan"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ] {
            assert_eq!(float_repr(f), py, "{f}");
        }
    }

    #[test]
    fn keys_as_python_writes_them() {
        let s = |t: &str| Value::Str(t.into());
        let tuple = |v: Vec<Value>| Value::Tuple(Rc::new(v));
        assert_eq!(key_text(&s("a.b")), "a.b");
        assert_eq!(key_text(&Value::None), "None");
        assert_eq!(key_text(&Value::Float(0.5)), "0.5");
        assert_eq!(key_text(&tuple(vec![Value::Int(1), s("a")])), "(1, 'a')");
        assert_eq!(key_text(&tuple(vec![Value::Bool(true)])), "(True,)");
        assert_eq!(key_text(&s("it's")), "it's");
        assert_eq!(key_repr(&s("it's")), "\"it's\"");
        assert_eq!(Key::of(&Value::Float(1.0)), Key::of(&Value::Bool(true)));
        assert_ne!(Key::of(&Value::Float(1.5)), Key::of(&Value::Int(1)));
        assert_eq!(
            Key::of(&Value::Float(1e16)),
            Key::of(&Value::BigInt("10000000000000000".into()))
        );
        assert_eq!(Key::of(&Value::Float(-0.0)), Key::of(&Value::Int(0)));
        let mut deep = Value::Int(1);
        for _ in 0..1000 {
            deep = tuple(vec![deep]);
        }
        assert!(Key::of(&deep).is_err());
    }
}
