//! The rules over the imports a crate makes: none reaches a layer above its own, and no
//! sibling modules import each other in a circle (found by Tarjan's algorithm, and shown as
//! one closed walk with the imports that make each step).

use super::source::{imports_of, module_of, root_aliases, Import, ModPath};
use std::collections::{BTreeMap, BTreeSet};

/// The problems in a crate: upward imports (when `layers` is given, top first) and circles.
pub fn check(files: &BTreeMap<String, String>, layers: Option<&[&str]>) -> Vec<String> {
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
