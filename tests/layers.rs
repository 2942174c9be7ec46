//! The architecture, checked: the modules of `src/` form layers with no import cycle (each file
//! is a node; `crate::a::b` and `super::x` paths, `use` groups included, are its edges), no
//! engine reaches the command line (`crate::cli` is for `cmd` and `main` only), and `unsafe`
//! lives in `src/sys.rs` alone, each block with a `// SAFETY:` line. A failure names the
//! cycle or the file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/relay/mod.rs` -> `relay`, `src/relay/wire.rs` -> `relay::wire`.
fn module_name(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The code of a file without comments, string literals and its `#[cfg(test)] mod tests`
/// (a unit test may reach anything).
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal ('x', '\n'), not a lifetime.
            let end = text[i + 1..].find('\'').map_or(b.len(), |e| i + 2 + e);
            i = end;
            out.push_str("' '");
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Reads a path after `crate` or `super` at `s`: `::a::b`, `::{a, b::c}`, nested groups.
/// Returns every full path it names.
fn paths_at(s: &str, prefix: &[String]) -> Vec<Vec<String>> {
    fn walk(s: &str, at: &mut usize, base: Vec<String>, out: &mut Vec<Vec<String>>) {
        let b = s.as_bytes();
        let mut path = base;
        loop {
            if !s[*at..].starts_with("::") {
                break;
            }
            *at += 2;
            while *at < b.len() && b[*at] == b' ' {
                *at += 1;
            }
            if *at < b.len() && b[*at] == b'{' {
                *at += 1;
                loop {
                    while *at < b.len() && (b[*at] as char).is_whitespace() {
                        *at += 1;
                    }
                    if *at >= b.len() || b[*at] == b'}' {
                        *at += 1;
                        break;
                    }
                    let start = *at;
                    while *at < b.len() && is_ident(b[*at] as char) {
                        *at += 1;
                    }
                    let item = &s[start..*at];
                    let mut p = path.clone();
                    if !item.is_empty() && item != "self" {
                        p.push(item.to_string());
                    }
                    walk(s, at, p, out);
                    while *at < b.len() && b[*at] != b',' && b[*at] != b'}' {
                        *at += 1;
                    }
                    if *at < b.len() && b[*at] == b',' {
                        *at += 1;
                    }
                }
                return;
            }
            let start = *at;
            while *at < b.len() && is_ident(b[*at] as char) {
                *at += 1;
            }
            if start == *at {
                break;
            }
            path.push(s[start..*at].to_string());
        }
        out.push(path);
    }
    let mut out = Vec::new();
    let mut at = 0;
    walk(s, &mut at, prefix.to_vec(), &mut out);
    out
}

struct Graph {
    files: BTreeMap<String, PathBuf>,
    edges: BTreeMap<String, BTreeSet<String>>,
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut by_name = BTreeMap::new();
    for f in &files {
        let name = module_name(&src, f);
        if name == "main" || name == "lib" {
            continue;
        }
        by_name.insert(name, f.clone());
    }
    let resolve = |path: &[String]| -> Option<String> {
        (1..=path.len())
            .rev()
            .map(|k| path[..k].join("::"))
            .find(|c| by_name.contains_key(c))
    };
    let mut edges = BTreeMap::new();
    for (name, file) in &by_name {
        let code = code_of(&fs::read_to_string(file).unwrap());
        let me: Vec<String> = name.split("::").map(String::from).collect();
        let parent: Vec<String> = me[..me.len() - 1].to_vec();
        let mut out = BTreeSet::new();
        let mut found = |path: Vec<String>| {
            if let Some(t) = resolve(&path)
                && &t != name
            {
                out.insert(t);
            }
        };
        for (i, _) in code.match_indices("crate::") {
            if i > 0 && is_ident(code[..i].chars().last().unwrap()) {
                continue;
            }
            for p in paths_at(&code[i + 5..], &[]) {
                found(p);
            }
        }
        for (i, _) in code.match_indices("super::") {
            if i > 0 && is_ident(code[..i].chars().last().unwrap()) {
                continue;
            }
            for p in paths_at(&code[i + 5..], &parent) {
                found(p);
            }
        }
        // A parent reaching its child by the child's bare name (`zerocopy::Sink`, `use
        // zerocopy::X`): an edge too, or a mod.rs and its children could cycle unseen.
        for line in code.lines() {
            let l = line.trim();
            let decl = l
                .strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("pub(crate) mod "))
                .or_else(|| l.strip_prefix("mod "));
            if let Some(child) = decl.and_then(|d| d.strip_suffix(';')) {
                let mut p = me.clone();
                p.push(child.to_string());
                let full = p.join("::");
                let used = code.match_indices(&format!("{child}::")).any(|(i, _)| {
                    i == 0
                        || !is_ident(code[..i].chars().last().unwrap())
                            && !code[..i].ends_with("::")
                });
                if used && by_name.contains_key(&full) {
                    out.insert(full);
                }
            }
        }
        edges.insert(name.clone(), out);
    }
    Graph {
        files: by_name,
        edges,
    }
}

/// The strongly connected components of more than one module (Tarjan).
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a Graph,
        index: BTreeMap<String, usize>,
        low: BTreeMap<String, usize>,
        stack: Vec<String>,
        on: BTreeSet<String>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit(t: &mut T, v: &str) {
        t.index.insert(v.to_string(), t.next);
        t.low.insert(v.to_string(), t.next);
        t.next += 1;
        t.stack.push(v.to_string());
        t.on.insert(v.to_string());
        for w in t.g.edges[v].clone() {
            if !t.index.contains_key(&w) {
                visit(t, &w);
                let lw = t.low[&w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(&w) {
                let iw = t.index[&w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(&w);
                let done = w == v;
                comp.push(w);
                if done {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in g.files.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn no_module_imports_in_a_cycle() {
    let g = graph();
    let found = cycles(&g);
    let text: Vec<String> = found
        .iter()
        .map(|c| {
            let lines: Vec<String> = c
                .iter()
                .map(|m| {
                    let to: Vec<&String> = g.edges[m].iter().filter(|e| c.contains(e)).collect();
                    format!("  {m} -> {to:?}")
                })
                .collect();
            format!("cycle {c:?}:\n{}", lines.join("\n"))
        })
        .collect();
    assert!(found.is_empty(), "{}", text.join("\n"));
}

#[test]
fn the_checker_sees_a_cycle_through_a_use_group() {
    // The checker itself: `use crate::{a, b::c}` and `super::` both count.
    let paths = paths_at("::{relay::{self, wire::Dump}, socket};", &[]);
    assert_eq!(
        paths,
        vec![
            vec!["relay".to_string()],
            vec!["relay".to_string(), "wire".to_string(), "Dump".to_string()],
            vec!["socket".to_string()],
        ]
    );
    let up = paths_at("::Activity", &["relay".to_string()]);
    assert_eq!(up, vec![vec!["relay".to_string(), "Activity".to_string()]]);
    assert_eq!(code_of("a // crate::x\n\"crate::y\" b"), "a \n\"\" b");
}

#[test]
fn only_cmd_and_main_reach_the_command_line() {
    let g = graph();
    let offenders: Vec<&String> = g
        .edges
        .iter()
        .filter(|(m, to)| to.contains("cli") && !(m.as_str() == "cmd" || m.starts_with("cmd::")))
        .map(|(m, _)| m)
        .collect();
    assert!(
        offenders.is_empty(),
        "engines take their own options, filled in by cmd; these import crate::cli: {offenders:?}"
    );
}

#[test]
fn unsafe_lives_in_sys_alone_and_says_why() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for f in files {
        let text = fs::read_to_string(&f).unwrap();
        let code = code_of(&text);
        let uses = code.matches("unsafe ").count() + code.matches("unsafe{").count();
        if f.ends_with("sys.rs") {
            // Every `unsafe {` block and `unsafe impl` has a SAFETY line just above it.
            let lines: Vec<&str> = text.lines().collect();
            for (n, l) in lines.iter().enumerate() {
                if (l.contains("unsafe {") || l.trim_start().starts_with("unsafe impl"))
                    && !l.trim_start().starts_with("//")
                {
                    let above = lines[..n]
                        .iter()
                        .rev()
                        .take(3)
                        .any(|p| p.contains("SAFETY:"));
                    assert!(
                        above,
                        "{}:{}: unsafe without a SAFETY line",
                        f.display(),
                        n + 1
                    );
                }
            }
        } else {
            assert_eq!(uses, 0, "{}: unsafe belongs in src/sys.rs", f.display());
        }
    }
}

#[test]
fn no_cycle_runs_through_the_relay_or_cmd() {
    let g = graph();
    let ours = |m: &String| {
        m == "relay" || m.starts_with("relay::") || m == "cmd" || m.starts_with("cmd::")
    };
    let found: Vec<Vec<String>> = cycles(&g)
        .into_iter()
        .filter(|c| c.iter().any(ours))
        .collect();
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn the_relay_is_an_engine_below_cli_cmd_and_server() {
    // relay/ may use sys, narrate, error, value, addr, sockopt, socket: never what sits above
    // it or beside it.
    let g = graph();
    for (m, to) in &g.edges {
        if m == "relay" || m.starts_with("relay::") {
            let bad: Vec<&String> = to
                .iter()
                .filter(|t| {
                    ["cli", "cmd", "server", "service", "scan"]
                        .iter()
                        .any(|top| *t == top || t.starts_with(&format!("{top}::")))
                })
                .collect();
            assert!(bad.is_empty(), "{m} imports {bad:?}");
        }
    }
}

#[test]
fn the_engines_sit_side_by_side_and_below_cmd() {
    // relay, scan, server and service take their options from cmd and never reach the command
    // line; none of them reaches into another, with two named exceptions: a service implements
    // the server's trait, and the hex view (`relay::wire`'s Dump) is shown by the servers too.
    let g = graph();
    let top = |t: &str| t.split("::").next().unwrap_or("").to_string();
    for (m, to) in &g.edges {
        let me = top(m);
        if !["relay", "scan", "server", "service"].contains(&me.as_str()) {
            continue;
        }
        for t in to {
            let other = top(t);
            if other == me {
                continue;
            }
            let allowed = match other.as_str() {
                "cli" | "cmd" => false,
                "relay" => t == "relay::wire" && (me == "server" || me == "service"),
                "server" => me == "service",
                "scan" | "service" => false,
                _ => true,
            };
            assert!(
                allowed,
                "{m} imports {t}: engines sit side by side below cmd"
            );
        }
    }
}
