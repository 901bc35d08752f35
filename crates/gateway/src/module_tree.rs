//! Checks the module tree described in the crate docs: no import cycle between the top-level
//! modules, and the layers import downwards only (shard → http → session → local). Reads the
//! sources as text: an edge is any `crate::<module>` path in a module's files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Top-level module → the top-level modules its files name through `crate::`.
fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut g = Graph::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(&src).expect("under src");
            let first = rel.components().next().expect("a component");
            let name = first
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            if path.extension().is_none_or(|e| e != "rs") || name == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read module");
            let edges = g.entry(name.clone()).or_default();
            for (i, _) in text.match_indices("crate::") {
                let target: String = text[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if !target.is_empty() && target != name {
                    edges.insert(target);
                }
            }
        }
    }
    g
}

/// The first cycle found, as a path that ends where it starts.
fn cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(
        g: &Graph,
        n: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == n) {
            let mut c = path[at..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if !done.insert(n.to_string()) {
            return None;
        }
        path.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            if g.contains_key(m) {
                if let Some(c) = visit(g, m, path, done) {
                    return Some(c);
                }
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(g, n, &mut Vec::new(), &mut done))
}

#[test]
fn the_modules_form_a_tree_without_cycles() {
    let g = graph();
    assert!(
        g.contains_key("session") && g.contains_key("shard"),
        "{g:?}"
    );
    assert_eq!(
        cycle(&g),
        None,
        "import cycle in crates/gateway/src: {g:#?}"
    );
}

#[test]
fn layers_import_downwards_only() {
    let g = graph();
    let forbidden = [
        ("local", ["shard", "http", "session", "gateway"].as_slice()),
        ("session", &["shard", "http", "gateway"]),
        ("net", &["shard", "http", "session", "local", "gateway"]),
        ("http", &["shard", "gateway"]),
        ("shard", &["gateway"]),
    ];
    for (module, above) in forbidden {
        let edges = &g[module];
        for a in above {
            assert!(
                !edges.contains(*a),
                "{module} imports {a}, a layer above it"
            );
        }
    }
}

#[test]
fn a_cycle_is_found() {
    let g: Graph = [("a", "b"), ("b", "c"), ("c", "a")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), BTreeSet::from([v.to_string()])))
        .collect();
    assert_eq!(cycle(&g).map(|c| c.len()), Some(4));
}
