//! Holds the direction of imports: reads a crate's sources and fails, naming the file and the
//! import, when a control-plane module imports from a layer above its own, or when modules of
//! a crate import each other in a circle.
//!
//! Plain Rust on purpose (no parser crate): it strips comments and literals, follows inline
//! `mod x { … }` blocks, expands `use` trees, and resolves `crate::`, `super::` and `self::`
//! paths (in `use` items and in code) to the file that defines the module they name.
//!
//! A circle is looked for among siblings: an import from `a/x.rs` of `crate::b::y` is an edge
//! `a → b` under the crate root; one from `a/x.rs` of `super::z` is an edge `x → z` under `a`.
//! Imports between a module and its own ancestors (`use super::*`, a parent's `pub use child::T`)
//! are composition, not a circle, and are not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The control plane's layers, top to bottom, as `lib.rs` lists them. A module may import from
/// its own layer and the ones below it; `berth_core` (its own crate) sits below all of them.
const CONTROL_PLANE_LAYERS: &[&str] = &[
    "server",
    "transport",
    "control",
    "live",
    "model",
    "state",
    "store",
    "foreground",
];

#[test]
fn control_plane_imports_go_only_downward_and_in_no_circle() {
    let files = read_crate(&repo().join("control-plane/src"));
    let problems = check(&files, Some(CONTROL_PLANE_LAYERS));
    assert!(
        problems.is_empty(),
        "control-plane/src:\n{}",
        problems.join("\n")
    );
}

#[test]
fn core_has_no_import_circle() {
    let files = read_crate(&repo().join("core/src"));
    let problems = check(&files, None);
    assert!(problems.is_empty(), "core/src:\n{}", problems.join("\n"));
}

// The proxy's and the CLI's circles are being removed in their own change; these two hold the
// result once it lands.
#[test]
fn proxy_has_no_import_circle() {
    let files = read_crate(&repo().join("proxy/src"));
    let problems = check(&files, None);
    assert!(problems.is_empty(), "proxy/src:\n{}", problems.join("\n"));
}

#[test]
fn cli_has_no_import_circle() {
    let files = read_crate(&repo().join("cli/src"));
    let problems = check(&files, None);
    assert!(problems.is_empty(), "cli/src:\n{}", problems.join("\n"));
}

// ---- the checker's own tests: each proves a rule can fail ----

fn fixture(files: &[(&str, &str)]) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(p, s)| (p.to_string(), s.to_string()))
        .collect()
}

#[test]
fn an_upward_import_is_named_with_its_file() {
    let files = fixture(&[
        ("lib.rs", "pub mod live;\npub mod model;\n"),
        ("live/mod.rs", "pub mod rooms;\n"),
        ("live/rooms.rs", "pub struct Rooms;\n"),
        ("model/mod.rs", "pub mod tasks;\n"),
        (
            "model/tasks.rs",
            "// use crate::live::x; in a comment is not an import\nuse crate::live::rooms::Rooms;\n",
        ),
    ]);
    let problems = check(&files, Some(&["live", "model"]));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("model/tasks.rs:2"), "{problems:?}");
    assert!(
        problems[0].contains("crate::live::rooms::Rooms"),
        "{problems:?}"
    );
    assert!(check(&files, Some(&["model", "live"])).is_empty());
}

#[test]
fn a_root_re_export_is_followed_to_its_layer() {
    let files = fixture(&[
        (
            "lib.rs",
            "pub mod server;\npub mod model;\npub use server::{Config, spawn};\n",
        ),
        ("server.rs", "pub struct Config;\n"),
        ("model.rs", "fn f(c: &crate::Config) {}\n"),
    ]);
    let problems = check(&files, Some(&["server", "model"]));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("model.rs:1 imports crate::Config from layer `server`"),
        "{problems:?}"
    );
}

#[test]
fn a_circle_through_use_trees_and_paths_in_code_is_reported() {
    let files = fixture(&[
        ("lib.rs", "mod a;\nmod b;\nmod c;\n"),
        ("a.rs", "use crate::{b::{self, B}, c as see};\n"),
        ("b.rs", "pub struct B;\nfn f() { crate::c::g(); }\n"),
        ("c.rs", "pub fn g() {}\nfn h() -> super::a::A { todo!() }\n"),
    ]);
    let problems = check(&files, None);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("circle a → c → a (one of 3 modules in a knot: a, b, c)"),
        "{problems:?}"
    );
    assert!(problems[0].contains("c.rs:2 super::a::A"), "{problems:?}");
}

#[test]
fn parents_children_and_inline_test_modules_are_no_circle() {
    let files = fixture(&[
        ("lib.rs", "pub mod a;\n"),
        ("a/mod.rs", "mod x;\nmod y;\npub use x::X;\npub struct Shared;\n"),
        ("a/x.rs", "use super::Shared;\npub struct X;\n"),
        (
            "a/y.rs",
            "use super::x::X;\n#[cfg(test)]\nmod tests {\n    use super::*;\n    use super::super::Shared;\n}\n",
        ),
    ]);
    assert!(check(&files, None).is_empty(), "{:?}", check(&files, None));
    let mut circle = files.clone();
    circle.insert(
        "a/x.rs".into(),
        "use super::y;\nconst S: &str = \"crate::a::y\";\n".into(),
    );
    let problems = check(&circle, None);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("under crate::a: circle"),
        "{problems:?}"
    );
}

// ---- the checker ----

fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `src`, by its path relative to `src` (with `/` separators).
fn read_crate(src: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).expect("under root");
                let rel = rel.to_string_lossy().replace('\\', "/");
                let text = std::fs::read_to_string(&path).expect("readable source");
                out.insert(rel, text);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, src, &mut out);
    assert!(!out.is_empty(), "no sources under {}", src.display());
    out
}

type ModPath = Vec<String>;
type Aliases = BTreeMap<String, ModPath>;

/// One import found in a file: where, as written, and the module path it resolves to.
struct Import {
    file: String,
    line: usize,
    text: String,
    target: ModPath,
}

/// The problems in a crate: upward imports (when `layers` is given, top first) and circles.
fn check(files: &BTreeMap<String, String>, layers: Option<&[&str]>) -> Vec<String> {
    let modules: BTreeMap<ModPath, String> =
        files.keys().map(|f| (module_of(f), f.clone())).collect();
    let aliases = root_aliases(files, &modules);
    let mut imports = Vec::new();
    for (file, text) in files {
        imports.extend(imports_of(file, text, &modules, &aliases));
    }
    let mut problems = Vec::new();
    if let Some(layers) = layers {
        problems.extend(upward(&modules, &imports, layers));
    }
    problems.extend(circles(&imports));
    problems
}

/// What the crate root re-exports from its own modules (`pub use server::Config;` makes
/// `crate::Config` name `crate::server::Config`), by the name it is reached at.
fn root_aliases(files: &BTreeMap<String, String>, modules: &BTreeMap<ModPath, String>) -> Aliases {
    let mut out = Aliases::new();
    for root in ["lib.rs", "main.rs"] {
        let Some(text) = files.get(root) else {
            continue;
        };
        let toks = tokens(text);
        let mut i = 0;
        while i < toks.len() {
            if ident(toks.get(i)) == Some("use") {
                let mut paths = Vec::new();
                i = use_tree(&toks, i + 1, Vec::new(), &mut paths);
                for mut p in paths {
                    if p.first().map(String::as_str) == Some("crate") {
                        p.remove(0);
                    }
                    let from_module = p
                        .first()
                        .is_some_and(|m| modules.contains_key(&vec![m.clone()]));
                    if from_module && p.len() > 1 {
                        out.insert(p.last().expect("non-empty").clone(), p);
                    }
                }
            } else {
                i += 1;
            }
        }
    }
    out
}

/// `a/b.rs` and `a/b/mod.rs` are module `a::b`; `lib.rs` and `main.rs` are the root.
fn module_of(file: &str) -> ModPath {
    let stem = file.trim_end_matches(".rs");
    let mut parts: ModPath = stem.split('/').map(str::to_string).collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn upward(modules: &BTreeMap<ModPath, String>, imports: &[Import], layers: &[&str]) -> Vec<String> {
    let rank = |m: &ModPath| {
        m.first()
            .and_then(|top| layers.iter().position(|l| l == top))
    };
    let mut problems = Vec::new();
    for module in modules.keys().filter(|m| !m.is_empty()) {
        if rank(module).is_none() {
            let file = &modules[module];
            problems.push(format!(
                "{file}: module crate::{} is in no layer",
                module.join("::")
            ));
        }
    }
    for imp in imports {
        let from = module_of(&imp.file);
        if let (Some(own), Some(theirs)) = (rank(&from), rank(&imp.target)) {
            if theirs < own {
                problems.push(format!(
                    "{}:{} imports {} from layer `{}`, above its own layer `{}`",
                    imp.file, imp.line, imp.text, layers[theirs], layers[own]
                ));
            }
        }
    }
    problems
}

/// Circles among the children of each module, with the imports that make each edge.
fn circles(imports: &[Import]) -> Vec<String> {
    // parent → (child → (child → witnesses))
    type Edges = BTreeMap<String, BTreeMap<String, Vec<String>>>;
    let mut by_parent: BTreeMap<ModPath, Edges> = BTreeMap::new();
    for imp in imports {
        let from = module_of(&imp.file);
        let to = &imp.target;
        let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
        if common == from.len() || common == to.len() {
            continue; // a module and its ancestor: composition, not a circle
        }
        let witness = format!("{}:{} {}", imp.file, imp.line, imp.text);
        by_parent
            .entry(from[..common].to_vec())
            .or_default()
            .entry(from[common].clone())
            .or_default()
            .entry(to[common].clone())
            .or_default()
            .push(witness);
    }
    let mut problems = Vec::new();
    for (parent, edges) in &by_parent {
        for (cycle, members) in cycles_in(edges) {
            let under = if parent.is_empty() {
                "crate".to_string()
            } else {
                format!("crate::{}", parent.join("::"))
            };
            let mut msg = format!("under {under}: circle {}", cycle.join(" → "));
            if members.len() + 1 > cycle.len() {
                msg.push_str(&format!(
                    " (one of {} modules in a knot: {})",
                    members.len(),
                    members.join(", ")
                ));
            }
            for pair in cycle.windows(2) {
                let w = &edges[&pair[0]][&pair[1]];
                let more = if w.len() > 3 {
                    format!(" and {} more", w.len() - 3)
                } else {
                    String::new()
                };
                msg.push_str(&format!(
                    "\n    {} → {}: {}{more}",
                    pair[0],
                    pair[1],
                    w[..w.len().min(3)].join(", ")
                ));
            }
            problems.push(msg);
        }
    }
    problems
}

/// One closed walk (first node repeated at the end) per strongly connected component of more
/// than one node, found by Tarjan's algorithm and then a breadth-first search inside it.
fn cycles_in(
    edges: &BTreeMap<String, BTreeMap<String, Vec<String>>>,
) -> Vec<(Vec<String>, Vec<String>)> {
    let mut nodes: BTreeSet<&String> = edges.keys().collect();
    nodes.extend(edges.values().flat_map(|m| m.keys()));
    let nodes: Vec<&String> = nodes.into_iter().collect();
    let idx = |n: &String| nodes.iter().position(|m| *m == n).expect("known node");
    let succ: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| {
            edges
                .get(*n)
                .map(|m| m.keys().map(idx).collect())
                .unwrap_or_default()
        })
        .collect();
    let comps = tarjan(&succ);
    let mut out = Vec::new();
    for comp in comps.into_iter().filter(|c| c.len() > 1) {
        let start = *comp.iter().min().expect("non-empty");
        let inside: BTreeSet<usize> = comp.into_iter().collect();
        // Breadth-first from start back to start, staying inside the component.
        let mut prev: BTreeMap<usize, usize> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut last = None;
        'search: while let Some(n) = queue.pop_front() {
            for &s in &succ[n] {
                if s == start {
                    last = Some(n);
                    break 'search;
                }
                if inside.contains(&s) && !prev.contains_key(&s) {
                    prev.insert(s, n);
                    queue.push_back(s);
                }
            }
        }
        let mut back = Vec::new();
        let mut at = last.expect("a component has a cycle through every node");
        while at != start {
            back.push(at);
            at = prev[&at];
        }
        let mut walk = vec![start];
        walk.extend(back.into_iter().rev());
        walk.push(start);
        let members = inside.iter().map(|&i| nodes[i].clone()).collect();
        out.push((walk.iter().map(|&i| nodes[i].clone()).collect(), members));
    }
    out
}

fn tarjan(succ: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct T<'a> {
        succ: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(t: &mut T, v: usize) {
        t.index[v] = Some(t.next);
        t.low[v] = t.next;
        t.next += 1;
        t.stack.push(v);
        t.on[v] = true;
        for &w in &t.succ[v] {
            match t.index[w] {
                None => {
                    visit(t, w);
                    t.low[v] = t.low[v].min(t.low[w]);
                }
                Some(i) if t.on[w] => t.low[v] = t.low[v].min(i),
                Some(_) => {}
            }
        }
        if Some(t.low[v]) == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            t.out.push(comp);
        }
    }
    let n = succ.len();
    let mut t = T {
        succ,
        index: vec![None; n],
        low: vec![0; n],
        on: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if t.index[v].is_none() {
            visit(&mut t, v);
        }
    }
    t.out
}

// ---- reading one file ----

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Punct(char),
    PathSep,
}

/// Identifiers and punctuation with their line, after comments and literals are dropped.
fn tokens(text: &str) -> Vec<(usize, Tok)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(chars[i] == '\n');
                    i += 1;
                }
            }
        } else if c == 'r'
            && (at(i + 1) == '"' || (at(i + 1) == '#' && matches!(at(i + 2), '"' | '#')))
        {
            // raw string r"…", r#"…"#
            let mut j = i + 1;
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|h| at(j + 1 + h) == '#') {
                    j += 1 + hashes;
                    break;
                }
                line += usize::from(chars[j] == '\n');
                j += 1;
            }
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                line += usize::from(at(i) == '\n');
                i += 1;
            }
            i += 1;
        } else if c == '\'' {
            // a char literal ('a', '\n', '\u{..}') or a lifetime ('a)
            if at(i + 1) == '\\' {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // b"…" and br"…" are byte strings: skip the prefix, the literal follows.
            if (word == "b" || word == "br") && matches!(at(i), '"' | '#') {
                if word == "br" {
                    i -= 1; // let the raw-string branch see the `r`
                }
                continue;
            }
            out.push((line, Tok::Ident(word)));
        } else if c == ':' && at(i + 1) == ':' {
            out.push((line, Tok::PathSep));
            i += 2;
        } else {
            if !c.is_whitespace() {
                out.push((line, Tok::Punct(c)));
            }
            i += 1;
        }
    }
    out
}

fn ident(t: Option<&(usize, Tok)>) -> Option<&str> {
    match t {
        Some((_, Tok::Ident(s))) => Some(s),
        _ => None,
    }
}

/// Every import in one file, resolved to the module (file) that holds what it names.
fn imports_of(
    file: &str,
    text: &str,
    modules: &BTreeMap<ModPath, String>,
    aliases: &Aliases,
) -> Vec<Import> {
    let toks = tokens(text);
    let file_mod = module_of(file);
    let mut out = Vec::new();
    // inline modules: (name, brace depth at which its block closes)
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < toks.len() {
        let here: ModPath = file_mod
            .iter()
            .cloned()
            .chain(inline.iter().map(|(n, _)| n.clone()))
            .collect();
        match &toks[i].1 {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth -= 1;
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            Tok::Ident(w) if w == "mod" => {
                if let (Some(name), Some((_, Tok::Punct('{')))) =
                    (ident(toks.get(i + 1)), toks.get(i + 2))
                {
                    inline.push((name.to_string(), depth));
                    depth += 1;
                    i += 3;
                    continue;
                }
            }
            Tok::Ident(w) if w == "use" => {
                let line = toks[i].0;
                let mut paths = Vec::new();
                let end = use_tree(&toks, i + 1, Vec::new(), &mut paths);
                for p in paths {
                    if let Some(abs) = resolve(&here, &p, modules, aliases, true) {
                        out.push(Import {
                            file: file.to_string(),
                            line,
                            text: p.join("::"),
                            target: abs,
                        });
                    }
                }
                i = end;
                continue;
            }
            Tok::Ident(w) if matches!(w.as_str(), "crate" | "super" | "self") => {
                let after_dollar = i > 0 && toks[i - 1].1 == Tok::Punct('$');
                let after_sep = i > 0 && toks[i - 1].1 == Tok::PathSep;
                if !after_dollar
                    && !after_sep
                    && toks.get(i + 1).map(|t| &t.1) == Some(&Tok::PathSep)
                {
                    let line = toks[i].0;
                    let mut p = vec![w.clone()];
                    let mut j = i + 1;
                    while toks.get(j).map(|t| &t.1) == Some(&Tok::PathSep) {
                        match ident(toks.get(j + 1)) {
                            Some(s) => p.push(s.to_string()),
                            None => break,
                        }
                        j += 2;
                    }
                    if let Some(abs) = resolve(&here, &p, modules, aliases, false) {
                        out.push(Import {
                            file: file.to_string(),
                            line,
                            text: p.join("::"),
                            target: abs,
                        });
                    }
                    i = j;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Expands the use tree starting at `i` into full paths; returns the index after it.
fn use_tree(
    toks: &[(usize, Tok)],
    mut i: usize,
    mut prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    loop {
        match toks.get(i).map(|t| &t.1) {
            Some(Tok::Ident(s)) if s == "as" => {
                out.push(prefix);
                return skip_to_end(toks, i + 2);
            }
            Some(Tok::Ident(s)) => {
                if s != "self" || prefix.is_empty() {
                    prefix.push(s.clone());
                }
                i += 1;
            }
            Some(Tok::PathSep) => i += 1,
            Some(Tok::Punct('*')) => {
                out.push(prefix);
                return skip_to_end(toks, i + 1);
            }
            Some(Tok::Punct('{')) => {
                i += 1;
                loop {
                    match toks.get(i).map(|t| &t.1) {
                        Some(Tok::Punct('}')) => return skip_to_end(toks, i + 1),
                        Some(Tok::Punct(',')) => i += 1,
                        None => return i,
                        _ => i = use_tree(toks, i, prefix.clone(), out),
                    }
                }
            }
            _ => {
                out.push(prefix);
                return skip_to_end(toks, i);
            }
        }
    }
}

/// Past the end of one use tree: just before the `,` or `}` that follows it, or after the `;`.
fn skip_to_end(toks: &[(usize, Tok)], i: usize) -> usize {
    match toks.get(i).map(|t| &t.1) {
        Some(Tok::Punct(';')) => i + 1,
        _ => i,
    }
}

/// The module (a file) that a path written in module `here` names, if it is in this crate and
/// not `here`'s own file.
fn resolve(
    here: &ModPath,
    path: &[String],
    modules: &BTreeMap<ModPath, String>,
    aliases: &Aliases,
    in_use: bool,
) -> Option<ModPath> {
    let mut abs: ModPath = match path.first().map(String::as_str) {
        Some("crate") => Vec::new(),
        Some("super") | Some("self") => here.clone(),
        // 2018 paths: a `use` may start with a child module's name
        Some(first) if in_use => {
            let mut child = here.clone();
            child.push(first.to_string());
            if !modules.contains_key(&child) {
                return None;
            }
            here.clone()
        }
        _ => return None,
    };
    let mut rest = path;
    if path[0] == "crate" || path[0] == "self" {
        rest = &path[1..];
    }
    while rest.first().map(String::as_str) == Some("super") {
        abs.pop()?;
        rest = &rest[1..];
    }
    abs.extend(rest.iter().cloned());
    // `crate::Name` re-exported by the root names where it comes from
    if let Some(target) = abs
        .first()
        .filter(|n| !modules.contains_key(&vec![(*n).clone()]))
        .and_then(|n| aliases.get(n))
    {
        abs.splice(..1, target.iter().cloned());
    }
    // the longest prefix that is a file
    while !abs.is_empty() && !modules.contains_key(&abs) {
        abs.pop();
    }
    Some(abs)
}
