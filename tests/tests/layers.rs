//! The house rules of ARCHITECTURE.md that a reviewer cannot keep by eye:
//! no import circle between the files of a crate, and no lower layer that
//! imports a higher one (`common` never imports `veild`; the ledger
//! imports neither the config nor a store; the config imports no store).
//! Read from the sources (test code left out), as
//! `../shared/tools/rs_cycles.py` does, so a circle fails the quick tier.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`, relative to the repository.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn is_test_file(rel: &str) -> bool {
    rel.ends_with("tests.rs") || rel.contains("/tests/") || rel.contains("/bin/")
}

/// The code of a file without its tests and line comments.
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_len(s: &str) -> usize {
    s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len())
}

/// The paths a text names after `head` (`crate`, `super`, `self`), with
/// one level of `{a, b::c}` groups expanded: `crate::x::{y, z}` gives
/// `[x, y]` and `[x, z]`.
fn paths_after(text: &str, head: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let needle = format!("{head}::");
    let mut at = 0;
    while let Some(found) = text[at..].find(&needle) {
        let start = at + found;
        at = start + needle.len();
        let before = text[..start].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let mut rest = &text[at..];
        let mut prefix = Vec::new();
        loop {
            let n = ident_len(rest);
            if n == 0 {
                break;
            }
            prefix.push(rest[..n].to_owned());
            rest = &rest[n..];
            match rest.strip_prefix("::") {
                Some(r) => rest = r,
                None => break,
            }
        }
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for item in inner.split(',') {
                let mut path = prefix.clone();
                path.extend(
                    item.trim()
                        .split("::")
                        .map(|p| p[..ident_len(p)].to_owned())
                        .filter(|p| !p.is_empty() && p != "self"),
                );
                out.push(path);
            }
        }
        out.push(prefix);
    }
    out
}

/// One crate: its module files by module path.
struct Crate {
    modules: BTreeMap<Module, String>,
}

/// The crates of the workspace: every `src/` folder, and every folder
/// under one with a `main.rs` (a binary whose `crate::` is that folder).
fn crates() -> Vec<Crate> {
    let root = repo();
    let mut files = Vec::new();
    for dir in ["daemon/src", "shared/src", "pam_module/src", "tests/src"] {
        sources(&root.join(dir), &mut files);
    }
    let rel: Vec<String> = files
        .iter()
        .map(|f| {
            f.strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let mut roots: Vec<String> = rel
        .iter()
        .map(|f| f[..f.find("src/").unwrap() + 4].to_owned())
        .chain(
            rel.iter()
                .filter(|f| f.ends_with("/main.rs"))
                .map(|f| format!("{}/", Path::new(f).parent().unwrap().display())),
        )
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    roots.sort_by_key(|r| std::cmp::Reverse(r.len()));
    let mut by_root: BTreeMap<String, Crate> = BTreeMap::new();
    for f in rel.iter().filter(|f| !is_test_file(f)) {
        let r = roots.iter().find(|r| f.starts_with(r.as_str())).unwrap();
        let mut parts: Module = f[r.len()..f.len() - 3]
            .split('/')
            .map(str::to_owned)
            .collect();
        if ["mod", "lib", "main"].contains(&parts.last().unwrap().as_str()) {
            parts.pop();
        }
        by_root
            .entry(r.clone())
            .or_insert_with(|| Crate {
                modules: BTreeMap::new(),
            })
            .modules
            .insert(parts, f.clone());
    }
    by_root.into_values().collect()
}

impl Crate {
    /// The longest prefix of `path` that is a module file.
    fn resolve(&self, path: &[String]) -> Option<Module> {
        (1..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|m| self.modules.contains_key(m))
    }

    /// Module -> the modules its code names (not itself, not an ancestor).
    fn edges(&self) -> BTreeMap<Module, BTreeSet<Module>> {
        let mut graph = BTreeMap::new();
        for (module, file) in &self.modules {
            let code = code_of(&repo().join(file));
            let mut named = paths_after(&code, "crate");
            for p in paths_after(&code, "super") {
                // `super::super::x` comes out as ["super", "x"] after the first.
                let ups = 1 + p.iter().take_while(|s| *s == "super").count();
                let base = module[..module.len().saturating_sub(ups)].to_vec();
                named.push(
                    base.into_iter()
                        .chain(p.into_iter().skip(ups - 1))
                        .collect(),
                );
            }
            for p in paths_after(&code, "self") {
                named.push(module.iter().cloned().chain(p).collect());
            }
            let targets = named
                .iter()
                .filter_map(|p| self.resolve(p))
                .filter(|t| t != module && !module.starts_with(t))
                .collect();
            graph.insert(module.clone(), targets);
        }
        graph
    }
}

/// A circle in `graph`, as the files on it, if there is one.
fn circle(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    fn visit(
        v: &Module,
        graph: &BTreeMap<Module, BTreeSet<Module>>,
        done: &mut BTreeSet<Module>,
        path: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        if let Some(i) = path.iter().position(|p| p == v) {
            return Some(path[i..].to_vec());
        }
        if done.contains(v) {
            return None;
        }
        path.push(v.clone());
        for w in &graph[v] {
            if let Some(c) = visit(w, graph, done, path) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(v.clone());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|v| visit(v, graph, &mut done, &mut Vec::new()))
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let crates = crates();
    assert!(crates.len() >= 5, "found only {} crates", crates.len());
    for c in &crates {
        if let Some(found) = circle(&c.edges()) {
            let files: Vec<&str> = found.iter().map(|m| c.modules[m].as_str()).collect();
            panic!("an import circle: {}", files.join(" -> "));
        }
    }
}

#[test]
fn no_lower_layer_imports_a_higher_one() {
    // (files under this folder, may not name this module path)
    let rules: [(&str, &[&str]); 4] = [
        ("daemon/src/common/", &["veild"]),
        ("daemon/src/common/ledger", &["common", "config"]),
        ("daemon/src/common/ledger", &["common", "store"]),
        ("daemon/src/common/config", &["common", "store"]),
    ];
    let daemon = crates()
        .into_iter()
        .find(|c| c.modules.values().any(|f| f == "daemon/src/lib.rs"))
        .expect("the daemon library");
    let graph = daemon.edges();
    let mut broken = Vec::new();
    for (module, targets) in &graph {
        let file = &daemon.modules[module];
        for (under, banned) in rules {
            let banned: Module = banned.iter().map(|s| s.to_string()).collect();
            if file.starts_with(under) && targets.iter().any(|t| t.starts_with(&banned)) {
                broken.push(format!("{file} imports {}", banned.join("::")));
            }
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
}

#[test]
fn the_reader_finds_a_circle_and_a_group() {
    let named = paths_after("use crate::common::{config, ledger::Key};", "crate");
    assert!(
        named.contains(&vec!["common".into(), "config".into()]),
        "{named:?}"
    );
    assert!(
        named.contains(&vec!["common".into(), "ledger".into(), "Key".into()]),
        "{named:?}"
    );
    let m = |s: &str| -> Module { s.split('/').map(str::to_owned).collect() };
    let mut graph = BTreeMap::new();
    graph.insert(m("a"), BTreeSet::from([m("b")]));
    graph.insert(m("b"), BTreeSet::from([m("a")]));
    assert_eq!(circle(&graph), Some(vec![m("a"), m("b")]));
    graph.insert(m("b"), BTreeSet::new());
    assert_eq!(circle(&graph), None);
}
