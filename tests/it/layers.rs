//! The crate's layers (docs/architecture.md): every `crate::`/`super::` path in `src/` (in `use` items and
//! inline, resolved through `pub use` re-exports, outside `#[cfg(test)]`) goes down or across the layer
//! table, never up; a gate file imports no other gate file; code outside `gates/` reaches the gates only
//! through the registry (`gates/mod.rs`); and the top-level modules form no import cycle. The table is
//! read from docs/architecture.md, so it lives in one place. The checker proves it can fail on a planted
//! tree (tests/fixtures/layers).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::spanned::Spanned;

use crate::util::{fixture, repo};

/// One `crate::` path as written in a file.
#[derive(Debug)]
struct Import {
    file: String,
    line: usize,
    /// The module the file is (`["gates", "leakage"]`).
    from: Vec<String>,
    /// The path as written, from `crate` or `super` (`crate::stats::close`).
    written: String,
    /// Resolved: `crate::`-relative segments with re-exports followed.
    to: Vec<String>,
}

struct Tree {
    /// Module path → its file (relative to the tree's root).
    modules: BTreeMap<Vec<String>, String>,
    /// (module, name) → the path a `pub use` makes it stand for.
    reexports: BTreeMap<(Vec<String>, String), Vec<String>>,
    imports: Vec<Import>,
}

fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<TokenStream>()
                .is_ok_and(|t| t.to_string() == "test" || t.to_string().starts_with("all (test"))
    })
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `super`/`self`/`crate` segments made absolute (crate-relative) from module `at`.
fn absolute(at: &[String], segs: &[String]) -> Option<Vec<String>> {
    let mut base: Vec<String> = match segs.first().map(String::as_str) {
        Some("crate") => Vec::new(),
        Some("super" | "self") => at.to_vec(),
        // `use child::x` (2018 paths): relative to the module; a path into another crate resolves
        // to no module of the tree beyond this one, so it adds no edge.
        Some(_) => at.to_vec(),
        None => return None,
    };
    let mut i = 0;
    if segs[0] == "crate" {
        i = 1;
    }
    while i < segs.len() && (segs[i] == "super" || segs[i] == "self") {
        if segs[i] == "super" {
            base.pop()?;
        }
        i += 1;
    }
    base.extend(segs[i..].iter().cloned());
    Some(base)
}

fn use_paths(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_paths(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let mut p = prefix.clone();
            p.push(n.ident.to_string());
            out.push((p, n.ident.to_string()));
        }
        syn::UseTree::Rename(r) => {
            let mut p = prefix.clone();
            p.push(r.ident.to_string());
            out.push((p, r.rename.to_string()));
        }
        syn::UseTree::Glob(_) => out.push((prefix.clone(), "*".into())),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                use_paths(t, prefix, out);
            }
        }
    }
}

/// Paths `crate::a::b` / `super::a` written inline (types, calls, `use` inside functions), and paths that
/// start with a name a `use` item of the module binds (`gates::leakage::run` after `use crate::gates;`).
fn inline_paths(ts: TokenStream, bound: &BTreeSet<String>, out: &mut Vec<(Vec<String>, usize)>) {
    let tokens: Vec<TokenTree> = ts.into_iter().collect();
    let mut i = 0;
    while i < tokens.len() {
        if let TokenTree::Group(g) = &tokens[i] {
            inline_paths(g.stream(), bound, out);
            i += 1;
            continue;
        }
        let starts = matches!(&tokens[i], TokenTree::Ident(id)
            if id == "crate" || id == "super" || bound.contains(&id.to_string()))
            && matches!(tokens.get(i + 1), Some(TokenTree::Punct(p)) if p.as_char() == ':')
            // `::crate` never occurs; `x::super` is not a start.
            && !(i >= 2 && matches!(&tokens[i - 1], TokenTree::Punct(p) if p.as_char() == ':'));
        if !starts {
            i += 1;
            continue;
        }
        let line = tokens[i].span().start().line;
        let mut segs = vec![tokens[i].to_string()];
        let mut j = i + 1;
        while j + 2 < tokens.len() + 1
            && matches!(tokens.get(j), Some(TokenTree::Punct(p)) if p.as_char() == ':')
            && matches!(tokens.get(j + 1), Some(TokenTree::Punct(p)) if p.as_char() == ':')
        {
            match tokens.get(j + 2) {
                Some(TokenTree::Ident(id)) => {
                    segs.push(id.to_string());
                    j += 3;
                }
                Some(TokenTree::Group(g)) => {
                    // `use crate::a::{b, c};` inside a function body.
                    if let Ok(tree) = syn::parse2::<syn::UseTree>(g.to_string().parse().unwrap()) {
                        let mut found = Vec::new();
                        use_paths(&tree, &mut Vec::new(), &mut found);
                        for (p, _) in found {
                            let mut full = segs.clone();
                            full.extend(p);
                            out.push((full, line));
                        }
                    }
                    j += 3;
                    segs.clear();
                    break;
                }
                _ => break,
            }
        }
        if segs.len() > 1 {
            out.push((segs, line));
        }
        i = j.max(i + 1);
    }
}

fn walk_items(
    items: &[syn::Item],
    module: &[String],
    reexports: &mut BTreeMap<(Vec<String>, String), Vec<String>>,
    raw: &mut Vec<(Vec<String>, String, usize, Vec<String>)>,
) {
    // The names this module's `use` items bind (private ones too), to what they stand for.
    let mut bindings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in items {
        if let syn::Item::Use(u) = item
            && !is_cfg_test(&u.attrs)
        {
            let mut found = Vec::new();
            use_paths(&u.tree, &mut Vec::new(), &mut found);
            for (mut segs, name) in found {
                if segs.last().is_some_and(|s| s == "self") {
                    segs.pop();
                }
                if name != "*"
                    && let Some(abs) = absolute(module, &segs)
                {
                    bindings.insert(name, abs);
                }
            }
        }
    }
    let bound: BTreeSet<String> = bindings.keys().cloned().collect();
    for item in items {
        let attrs: &[syn::Attribute] = match item {
            syn::Item::Use(u) => &u.attrs,
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Struct(s) => &s.attrs,
            syn::Item::Enum(e) => &e.attrs,
            syn::Item::Const(c) => &c.attrs,
            syn::Item::Static(s) => &s.attrs,
            syn::Item::Trait(t) => &t.attrs,
            syn::Item::Type(t) => &t.attrs,
            syn::Item::Macro(m) => &m.attrs,
            _ => &[],
        };
        if is_cfg_test(attrs) {
            continue;
        }
        match item {
            syn::Item::Use(u) => {
                let line = u.span().start().line;
                let mut found = Vec::new();
                use_paths(&u.tree, &mut Vec::new(), &mut found);
                for (mut segs, name) in found {
                    if segs.last().is_some_and(|s| s == "self") {
                        segs.pop();
                    }
                    let Some(abs) = absolute(module, &segs) else {
                        continue;
                    };
                    if !matches!(u.vis, syn::Visibility::Inherited) && name != "*" {
                        reexports.insert((module.to_vec(), name), abs.clone());
                    }
                    raw.push((module.to_vec(), segs.join("::"), line, abs));
                }
            }
            syn::Item::Mod(m) if m.content.is_some() => {
                let mut inner = module.to_vec();
                inner.push(m.ident.to_string());
                walk_items(&m.content.as_ref().unwrap().1, &inner, reexports, raw);
            }
            other => {
                let mut found = Vec::new();
                inline_paths(quote_tokens(other), &bound, &mut found);
                for (segs, line) in found {
                    let abs = match bindings.get(&segs[0]) {
                        Some(to) if segs[0] != "crate" && segs[0] != "super" => {
                            let mut p = to.clone();
                            p.extend(segs[1..].iter().cloned());
                            Some(p)
                        }
                        _ => absolute(module, &segs),
                    };
                    if let Some(abs) = abs {
                        raw.push((module.to_vec(), segs.join("::"), line, abs));
                    }
                }
            }
        }
    }
}

fn quote_tokens(item: &syn::Item) -> TokenStream {
    let mut ts = TokenStream::new();
    quote::ToTokens::to_tokens(item, &mut ts);
    ts
}

fn read_tree(src: &Path) -> Tree {
    let mut files = Vec::new();
    rs_files(src, &mut files);
    let mut modules = BTreeMap::new();
    let mut reexports = BTreeMap::new();
    let mut raw = Vec::new();
    let mut raw_files = Vec::new();
    for path in &files {
        let rel = path.strip_prefix(src).unwrap();
        let module = module_of(rel);
        let shown = format!("src/{}", rel.to_string_lossy().replace('\\', "/"));
        modules.insert(module.clone(), shown.clone());
        let text = std::fs::read_to_string(path).unwrap();
        let parsed = syn::parse_file(&text).unwrap_or_else(|e| panic!("{shown}: {e}"));
        let before = raw.len();
        walk_items(&parsed.items, &module, &mut reexports, &mut raw);
        raw_files.extend(std::iter::repeat_n(shown, raw.len() - before));
    }
    let resolve = |path: &[String]| -> Vec<String> {
        let mut p = path.to_vec();
        for _ in 0..8 {
            let mut changed = false;
            for i in (0..p.len()).rev() {
                if let Some(target) = reexports.get(&(p[..i].to_vec(), p[i].clone()))
                    && modules.contains_key(&p[..i])
                {
                    let mut next = target.clone();
                    next.extend(p[i + 1..].iter().cloned());
                    if next != p {
                        p = next;
                        changed = true;
                        break;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        p
    };
    let imports = raw
        .into_iter()
        .zip(raw_files)
        .map(|((from, written, line, abs), file)| Import {
            file,
            line,
            written,
            to: resolve(&abs),
            from,
        })
        .collect();
    Tree {
        modules,
        reexports,
        imports,
    }
}

/// The longest prefix of `path` that is a module of the tree.
fn target_module(tree: &Tree, path: &[String]) -> Vec<String> {
    (0..=path.len())
        .rev()
        .map(|i| path[..i].to_vec())
        .find(|p| tree.modules.contains_key(p))
        .unwrap_or_default()
}

/// The layer table between the `layers` markers of an architecture document: `| n | `a`, `b` | … |`.
fn layer_table(doc: &str) -> BTreeMap<String, u32> {
    let start = doc
        .find("<!-- layers:start -->")
        .expect("layers:start marker");
    let end = doc.find("<!-- layers:end -->").expect("layers:end marker");
    let mut table = BTreeMap::new();
    for line in doc[start..end].lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 3 {
            continue;
        }
        let Ok(layer) = cells[1].parse::<u32>() else {
            continue;
        };
        for m in cells[2].split(',') {
            let m = m.trim().trim_matches('`');
            if !m.is_empty() {
                assert!(
                    table.insert(m.to_owned(), layer).is_none(),
                    "`{m}` twice in the table"
                );
            }
        }
    }
    table
}

/// Every violation of the layering rules in the tree at `src`, as `file:line: message`.
fn violations(src: &Path, table: &BTreeMap<String, u32>) -> Vec<String> {
    let tree = read_tree(src);
    let mut out = Vec::new();
    for m in tree.modules.keys() {
        if let Some(top) = m.first()
            && m.len() == 1
            && !table.contains_key(top)
        {
            out.push(format!(
                "{}: module `{top}` is not in the layer table",
                tree.modules[m]
            ));
        }
    }
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for imp in &tree.imports {
        let to = target_module(&tree, &imp.to);
        let (Some(a), Some(b)) = (imp.from.first(), to.first()) else {
            continue;
        };
        let at = format!("{}:{}", imp.file, imp.line);
        if a != b {
            graph
                .entry(a.clone())
                .or_default()
                .entry(b.clone())
                .or_insert_with(|| format!("{at} `{}`", imp.written));
            if let (Some(la), Some(lb)) = (table.get(a), table.get(b))
                && lb > la
            {
                out.push(format!(
                    "{at}: `{}` goes up a layer: `{a}` (layer {la}) imports `{b}` (layer {lb})",
                    imp.written
                ));
            }
            if b == "gates" && to.len() > 1 {
                out.push(format!(
                    "{at}: `{}` reaches into the gate file `gates::{}`; outside gates/, only the registry (gates/mod.rs) is imported",
                    imp.written, to[1]
                ));
            }
        } else if a == "gates" && imp.from.len() > 1 && to.len() > 1 && to[1] != imp.from[1] {
            out.push(format!(
                "{at}: `{}`: the gate file `gates::{}` imports the gate file `gates::{}`",
                imp.written, imp.from[1], to[1]
            ));
        }
    }
    for cycle in cycles(&graph) {
        let edges: Vec<String> = cycle
            .iter()
            .flat_map(|a| {
                graph[a]
                    .iter()
                    .filter(|(b, _)| cycle.contains(*b))
                    .map(move |(b, at)| format!("  {a} → {b} ({at})"))
            })
            .collect();
        out.push(format!(
            "import cycle between {} modules: {}\n{}",
            cycle.len(),
            cycle.iter().cloned().collect::<Vec<_>>().join(", "),
            edges.join("\n")
        ));
    }
    out.sort();
    out.dedup();
    out
}

/// Strongly connected components of more than one module (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<BTreeSet<String>> {
    struct St<'a> {
        g: &'a BTreeMap<String, BTreeMap<String, String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(s: &mut St<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on.insert(v);
        if let Some(next) = s.g.get(v) {
            for w in next.keys() {
                if !s.index.contains_key(w.as_str()) {
                    visit(s, w);
                    let lw = s.low[w.as_str()];
                    let lv = s.low[v];
                    s.low.insert(v, lv.min(lw));
                } else if s.on.contains(w.as_str()) {
                    let iw = s.index[w.as_str()];
                    let lv = s.low[v];
                    s.low.insert(v, lv.min(iw));
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.insert(w.to_owned());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                s.out.push(comp);
            }
        }
    }
    let mut s = St {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn src_follows_the_layer_table() {
    let doc = std::fs::read_to_string(repo().join("docs/architecture.md")).unwrap();
    let table = layer_table(&doc);
    let found = violations(&repo().join("src"), &table);
    assert!(
        found.is_empty(),
        "{} layering violation(s) (docs/architecture.md):\n{}",
        found.len(),
        found.join("\n")
    );
}

#[test]
fn the_layer_table_names_only_modules_that_exist() {
    let doc = std::fs::read_to_string(repo().join("docs/architecture.md")).unwrap();
    let tree = read_tree(&repo().join("src"));
    for m in layer_table(&doc).keys() {
        assert!(
            tree.modules.contains_key(&vec![m.clone()]),
            "docs/architecture.md lists `{m}`, which is not a module of src/"
        );
    }
}

/// The checker fails on a planted tree, naming each file, line and path.
#[test]
fn the_checker_fails_on_planted_violations() {
    let root = fixture("layers");
    let doc = std::fs::read_to_string(root.join("architecture.md")).unwrap();
    let found = violations(&root.join("src"), &layer_table(&doc));
    let text = found.join("\n");
    for expected in [
        // Up a layer, written inline and in a renaming `use`.
        "src/low.rs:5: `crate::high::Top` goes up a layer: `low` (layer 0) imports `high` (layer 1)",
        "src/low.rs:2: `crate::high::Top` goes up a layer: `low` (layer 0) imports `high` (layer 1)",
        // A gate file importing another through `super::`.
        "src/gates/alpha.rs:1: `super::beta::helper`: the gate file `gates::alpha` imports the gate file `gates::beta`",
        // Outside gates/, a gate file's helper, through the registry's re-export.
        "src/high.rs:2: `crate::gates::helper` reaches into the gate file `gates::beta`",
        // ... and through a module the file imports (`use crate::gates;`, then `gates::beta::helper`).
        "src/high.rs:5: `gates::beta::helper` reaches into the gate file `gates::beta`",
        // A module missing from the table.
        "src/stray.rs: module `stray` is not in the layer table",
        // Two modules of one layer importing each other.
        "import cycle between 2 modules: left, right",
    ] {
        assert!(text.contains(expected), "expected `{expected}` in:\n{text}");
    }
    // `#[cfg(test)]` code is not checked.
    assert!(!text.contains("only_in_tests"), "{text}");
    assert_eq!(found.len(), 7, "{text}");
    let tree = read_tree(&root.join("src"));
    assert!(
        tree.reexports
            .contains_key(&(vec!["gates".to_owned()], "helper".to_owned())),
        "{:?}",
        tree.reexports
    );
}
