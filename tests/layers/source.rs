//! Reading a crate's sources: every file by its module path, and in each file the imports it
//! makes, resolved to the module (file) that holds what they name. Comments and literals are
//! dropped first, inline `mod x { … }` blocks are followed, `use` trees are expanded.

use std::collections::BTreeMap;
use std::path::Path;

/// Every `.rs` file under `src`, by its path relative to `src` (with `/` separators).
pub fn read_crate(src: &Path) -> BTreeMap<String, String> {
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

pub type ModPath = Vec<String>;
pub type Aliases = BTreeMap<String, ModPath>;

/// One import found in a file: where, as written, and the module path it resolves to.
pub struct Import {
    pub file: String,
    pub line: usize,
    pub text: String,
    pub target: ModPath,
}

/// What the crate root re-exports from its own modules (`pub use server::Config;` makes
/// `crate::Config` name `crate::server::Config`), by the name it is reached at.
pub fn root_aliases(
    files: &BTreeMap<String, String>,
    modules: &BTreeMap<ModPath, String>,
) -> Aliases {
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
pub fn module_of(file: &str) -> ModPath {
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
pub fn imports_of(
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
