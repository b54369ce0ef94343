//! Rust `const`/`static` items, read with `syn`: the same literal subset as Python constants (strings,
//! integers, floats, bools, arrays/slices/tuples of these, negative numbers, a path to another constant of
//! the same file).

use std::collections::HashSet;

use serde_json::Value;
use syn::spanned::Spanned;

use super::Fact;
use crate::error::{Error, Result};
use crate::finding::Location;

pub struct RustFile {
    display: String,
    file: syn::File,
}

impl RustFile {
    pub fn parse(display: &str, text: &str) -> Result<RustFile> {
        let file = syn::parse_file(text).map_err(|e| {
            let start = e.span().start();
            Error::at(
                Location {
                    path: display.to_owned(),
                    line: Some(start.line as u32),
                    column: Some(start.column as u32 + 1),
                    label: None,
                },
                format!("Rust syntax error: {e}"),
            )
        })?;
        Ok(RustFile {
            display: display.to_owned(),
            file,
        })
    }

    fn item(&self, name: &str) -> Option<(&syn::Ident, &syn::Expr)> {
        self.file.items.iter().find_map(|item| match item {
            syn::Item::Const(c) if c.ident == name => Some((&c.ident, c.expr.as_ref())),
            syn::Item::Static(s) if s.ident == name => Some((&s.ident, s.expr.as_ref())),
            _ => None,
        })
    }

    fn error(&self, span: proc_macro2::Span, message: String) -> Error {
        let s = span.start();
        Error::at(
            Location {
                path: self.display.clone(),
                line: Some(s.line as u32),
                column: Some(s.column as u32 + 1),
                label: None,
            },
            message,
        )
    }

    pub fn constant(&self, name: &str) -> Result<Fact> {
        self.constant_guarded(name, &mut HashSet::new())
    }

    fn constant_guarded(&self, name: &str, seen: &mut HashSet<String>) -> Result<Fact> {
        if !seen.insert(name.to_owned()) {
            return Err(Error::at(
                Location::file(&self.display),
                format!("`{name}` is defined in terms of itself"),
            ));
        }
        let (ident, expr) = self.item(name).ok_or_else(|| {
            Error::at(
                Location::file(&self.display),
                format!("no top-level `const {name}` or `static {name}`"),
            )
        })?;
        let value = self.eval(expr, seen)?;
        seen.remove(name);
        let mut fact = Fact::new(
            value,
            Location {
                path: self.display.clone(),
                line: Some(ident.span().start().line as u32),
                column: Some(ident.span().start().column as u32 + 1),
                label: Some(name.to_owned()),
            },
        );
        if let Some(items) = array_items(expr) {
            fact.items = items
                .iter()
                .map(|e| {
                    (
                        e.span().start().line as u32,
                        e.span().start().column as u32 + 1,
                    )
                })
                .collect();
        }
        Ok(fact)
    }

    fn eval(&self, expr: &syn::Expr, seen: &mut HashSet<String>) -> Result<Value> {
        let unsupported = |what: &str| {
            self.error(
                expr.span(),
                format!("unsupported expression `{}` ({what}); a contract fact must be a literal or another constant of this file", text(expr)),
            )
        };
        match expr {
            syn::Expr::Lit(l) => match &l.lit {
                syn::Lit::Str(s) => Ok(Value::String(s.value())),
                syn::Lit::Int(i) => i
                    .base10_parse::<i64>()
                    .map(Value::from)
                    .map_err(|_| unsupported("integer out of range")),
                syn::Lit::Float(f) => {
                    let v: f64 = f.base10_parse().map_err(|_| unsupported("float"))?;
                    serde_json::Number::from_f64(v)
                        .map(Value::Number)
                        .ok_or_else(|| unsupported("non-finite float"))
                }
                syn::Lit::Bool(b) => Ok(Value::Bool(b.value)),
                _ => Err(unsupported("literal kind")),
            },
            syn::Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)) => {
                match self.eval(&u.expr, seen)? {
                    Value::Number(n) => Ok(n
                        .as_i64()
                        .map(|i| Value::from(-i))
                        .unwrap_or_else(|| Value::from(-n.as_f64().unwrap_or(0.0)))),
                    _ => Err(unsupported("negation of a non-number")),
                }
            }
            syn::Expr::Reference(r) => self.eval(&r.expr, seen),
            syn::Expr::Paren(p) => self.eval(&p.expr, seen),
            syn::Expr::Group(g) => self.eval(&g.expr, seen),
            syn::Expr::Array(a) => a
                .elems
                .iter()
                .map(|e| self.eval(e, seen))
                .collect::<Result<Vec<_>>>()
                .map(Value::Array),
            syn::Expr::Tuple(t) => t
                .elems
                .iter()
                .map(|e| self.eval(e, seen))
                .collect::<Result<Vec<_>>>()
                .map(Value::Array),
            syn::Expr::Path(p) if p.path.get_ident().is_some() => {
                let name = p
                    .path
                    .get_ident()
                    .map(|i| i.to_string())
                    .unwrap_or_default();
                if name == "None" {
                    return Ok(Value::Null);
                }
                Ok(self.constant_guarded(&name, seen)?.value)
            }
            _ => Err(unsupported("not a literal")),
        }
    }
}

fn array_items(expr: &syn::Expr) -> Option<Vec<&syn::Expr>> {
    match expr {
        syn::Expr::Reference(r) => array_items(&r.expr),
        syn::Expr::Array(a) => Some(a.elems.iter().collect()),
        _ => None,
    }
}

/// Source text of an expression for messages (proc-macro2 keeps it with `span-locations`).
fn text(expr: &syn::Expr) -> String {
    let s = expr
        .span()
        .source_text()
        .unwrap_or_else(|| "expression".into());
    let first = s.lines().next().unwrap_or("");
    if first.len() < s.len() || first.chars().count() > 60 {
        format!("{}…", first.chars().take(60).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_consts_statics_and_references() {
        let f = RustFile::parse(
            "lib.rs",
            "pub const COLS: &[&str] = &[\n    \"a\",\n    \"b\",\n];\nstatic H: i64 = -5;\nconst X: f64 = 1.5e-3;\nconst Y: &[i64] = Z;\nconst Z: &[i64] = &[1, 2];\n",
        )
        .unwrap();
        let c = f.constant("COLS").unwrap();
        assert_eq!(c.value, serde_json::json!(["a", "b"]));
        assert_eq!(c.origin.line, Some(1));
        assert_eq!(c.items, vec![(2, 5), (3, 5)]);
        assert_eq!(f.constant("H").unwrap().value, Value::from(-5));
        assert_eq!(f.constant("X").unwrap().value, Value::from(0.0015));
        assert_eq!(f.constant("Y").unwrap().value, serde_json::json!([1, 2]));
    }

    #[test]
    fn calls_are_unsupported_with_line() {
        let f = RustFile::parse(
            "lib.rs",
            "const A: usize = 1;\nconst B: usize = compute(A);\n",
        )
        .unwrap();
        let err = f.constant("B").unwrap_err().to_string();
        assert!(
            err.starts_with("lib.rs:2:18: unsupported expression `compute(A)`"),
            "{err}"
        );
    }
}
