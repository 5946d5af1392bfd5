//! The layering, kept by a test in the spirit of ArchUnit: every `crate::` path in `src/` is
//! checked against the table below, and modules inside one layer must not import each other
//! in a cycle. The next contributor learns the rule from the failure message; the reasons
//! are in `docs/architecture.md` ("Layers").

/// Each layer and the layers it may import. Nothing imports `runtime`; `main.rs` (the
/// binary) and `lib.rs` are outside the table.
const ALLOWED: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("backoff", &[]),
    ("telemetry", &["model"]),
    ("core", &["model"]),
    ("state", &["model", "core", "telemetry"]),
    ("sources", &["model", "core", "telemetry", "backoff"]),
    ("sinks", &["model", "core", "state", "telemetry", "backoff"]),
    ("report", &["model", "core", "state"]),
    ("cluster", &["model", "core", "telemetry", "backoff"]),
    (
        "api",
        &[
            "model",
            "core",
            "state",
            "report",
            "telemetry",
            "sinks",
            "sources",
            "cluster",
        ],
    ),
    (
        "config",
        &["model", "core", "sources", "sinks", "api", "cluster"],
    ),
    (
        "simulators",
        &["model", "core", "config", "sources", "telemetry"],
    ),
    (
        "runtime",
        &[
            "model",
            "backoff",
            "telemetry",
            "core",
            "state",
            "sources",
            "sinks",
            "report",
            "api",
            "config",
            "simulators",
            "cluster",
        ],
    ),
];

/// One `crate::` (or `super::`) reference: where it is and what it names.
#[derive(Debug, Clone, PartialEq)]
struct Edge {
    file: String,
    line: usize,
    from: Vec<String>,
    to: Vec<String>,
}

/// The module path of a file under `src/` (`core/alarms/mod.rs` → `core::alarms`).
fn module_of(rel: &str) -> Vec<String> {
    let rel = rel.trim_end_matches(".rs");
    let mut parts: Vec<String> = rel.split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The code of a line without its `//` comment (a `//` inside a string, as in a URL, cuts
/// the line short there: nothing of interest follows it on such lines).
fn code(line: &str) -> &str {
    line.find("//").map_or(line, |i| &line[..i])
}

/// Path segments from the start of `s` (`a::b::{c, d}` gives `a`, `b` and stops at `{`).
fn segments(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        out.push(rest[..end].to_string());
        match rest[end..].strip_prefix("::") {
            Some(r) if r.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') => rest = r,
            _ => break,
        }
    }
    out
}

/// The first names of a `{a::b, c}` group at the start of `s`.
fn group_heads(s: &str) -> Vec<Vec<String>> {
    let Some(body) = s.strip_prefix('{') else {
        return Vec::new();
    };
    let mut depth = 0;
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                out.push(segments(body[start..i].trim()));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(segments(body[start..i].trim()));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// Every reference in one file's text. `super::` paths resolve against the file's module.
fn edges_in(rel: &str, text: &str) -> Vec<Edge> {
    let from = module_of(rel);
    let parent_of_file = from[..from.len().saturating_sub(1)].to_vec();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = code(line);
        for (prefix, base) in [("crate::", Vec::new()), ("super::", parent_of_file.clone())] {
            let mut at = 0;
            while let Some(i) = line[at..].find(prefix) {
                let start = at + i;
                at = start + prefix.len();
                let before = line[..start].chars().last();
                if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                let rest = &line[at..];
                let paths = if rest.starts_with('{') {
                    group_heads(rest)
                } else {
                    vec![segments(rest)]
                };
                for p in paths.into_iter().filter(|p| !p.is_empty()) {
                    let mut to = base.clone();
                    to.extend(p);
                    out.push(Edge {
                        file: format!("src/{rel}"),
                        line: n + 1,
                        from: from.clone(),
                        to,
                    });
                }
            }
        }
    }
    out
}

fn allowed(from: &str, to: &str) -> Option<bool> {
    ALLOWED
        .iter()
        .find(|(l, _)| *l == from)
        .map(|(_, deps)| deps.contains(&to))
}

/// Imports across layers that the table does not allow, as messages.
fn forbidden(edges: &[Edge]) -> Vec<String> {
    let mut out = Vec::new();
    for e in edges {
        let (from, to) = (&e.from[0], &e.to[0]);
        if from == to {
            continue;
        }
        let ok = match allowed(from, to) {
            Some(ok) => ok,
            // Not a layer: a name the table does not know (a new top-level module).
            None if ALLOWED.iter().all(|(l, _)| l != from) => {
                out.push(format!(
                    "{}:{}: `{from}` is not in the layering table (src/layering.rs): add it with the layers it may import",
                    e.file, e.line
                ));
                continue;
            }
            None => false,
        };
        if !ok && ALLOWED.iter().any(|(l, _)| l == to) {
            let deps = ALLOWED
                .iter()
                .find(|(l, _)| l == from)
                .map_or(&[][..], |d| d.1);
            out.push(format!(
                "{}:{}: `{from}` imports `{to}` (crate::{}), which the layering forbids.\n    `{from}` may import only: {}.\n    Move the item down to a layer both can import, or pass it in from `runtime`; see docs/architecture.md (\"Layers\").",
                e.file,
                e.line,
                e.to.join("::"),
                if deps.is_empty() { "nothing from the crate".to_string() } else { deps.join(", ") },
            ));
        }
    }
    out
}

/// Modules one level inside a layer (`core::alarms`, `state::journal`) that import each other
/// round a cycle, as messages naming the cycle.
fn cycles(edges: &[Edge]) -> Vec<String> {
    use std::collections::{BTreeMap, BTreeSet};
    let node = |p: &[String]| p[..p.len().min(2)].join("::");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut at: BTreeMap<(String, String), String> = BTreeMap::new();
    for e in edges {
        let (a, b) = (node(&e.from), node(&e.to));
        // A module may use its own parent (`super::`, the layer's re-exports).
        if a == b || a.starts_with(&format!("{b}::")) || e.from[0] != e.to[0] {
            continue;
        }
        graph.entry(a.clone()).or_default().insert(b.clone());
        at.entry((a, b)).or_insert(format!("{}:{}", e.file, e.line));
    }
    let mut out = Vec::new();
    let mut reported: BTreeSet<BTreeSet<String>> = BTreeSet::new();
    for start in graph.keys() {
        if let Some(path) = path_back(&graph, start) {
            let members: BTreeSet<String> = path.iter().cloned().collect();
            if reported.insert(members) {
                let steps: Vec<String> = path
                    .windows(2)
                    .map(|w| {
                        format!(
                            "{} → {} ({})",
                            w[0],
                            w[1],
                            at[&(w[0].clone(), w[1].clone())]
                        )
                    })
                    .collect();
                out.push(format!(
                    "modules import each other in a cycle: {}.\n    Break it by moving what both need into a module of its own that imports neither.",
                    steps.join(", ")
                ));
            }
        }
    }
    out
}

/// A path `start → … → start` in `graph`, if there is one (breadth first: the shortest).
fn path_back(
    graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
    start: &str,
) -> Option<Vec<String>> {
    let mut prev: std::collections::HashMap<String, String> = Default::default();
    let mut queue = std::collections::VecDeque::from([start.to_string()]);
    while let Some(n) = queue.pop_front() {
        for m in graph.get(&n).into_iter().flatten() {
            if m == start {
                let mut path = vec![start.to_string()];
                let mut cur = n.clone();
                while cur != start {
                    path.push(cur.clone());
                    cur = prev[&cur].clone();
                }
                path.push(start.to_string());
                let last = path.len() - 1;
                path[1..last].reverse();
                return Some(path);
            }
            if !prev.contains_key(m) && m != start {
                prev.insert(m.clone(), n.clone());
                queue.push_back(m.clone());
            }
        }
    }
    None
}

/// Longest function accepted in `src/` (lines from its `fn` to its closing brace).
const MAX_FN_LINES: usize = 150;

/// (lines, line number, name) of every function with a body in `text`. Braces are counted
/// outside strings, characters and comments: rough, but it measures code as it is laid out.
fn function_lengths(text: &str) -> Vec<(usize, usize, String)> {
    let lines: Vec<String> = text.lines().map(braces_only).collect();
    let raw: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let Some(name) = fn_name(raw[i]) else {
            i += 1;
            continue;
        };
        let (mut depth, mut opened, mut j) = (0i64, false, i);
        while j < lines.len() {
            for c in lines[j].chars() {
                depth += match c {
                    '{' => 1,
                    '}' => -1,
                    _ => 0,
                };
                opened |= c == '{';
            }
            if (opened && depth <= 0) || (!opened && raw[j].trim_end().ends_with(';')) {
                break;
            }
            j += 1;
        }
        if opened {
            out.push((j - i + 1, i + 1, name));
        }
        i += 1;
    }
    out
}

/// The name of the function a line declares, if it does.
fn fn_name(line: &str) -> Option<String> {
    let t = line.trim_start();
    let t = t
        .strip_prefix("pub ")
        .or_else(|| t.strip_prefix("pub(crate) "))
        .or_else(|| t.strip_prefix("pub(super) "))
        .unwrap_or(t);
    let t = t.strip_prefix("async ").unwrap_or(t);
    let t = t.strip_prefix("const ").unwrap_or(t);
    let rest = t.strip_prefix("fn ")?;
    let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
    Some(rest[..end].to_string())
}

/// The braces of a line, outside string and character literals and `//` comments.
fn braces_only(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_str => {
                chars.next();
            }
            '"' => in_str = !in_str,
            '/' if !in_str && chars.peek() == Some(&'/') => break,
            '\'' if !in_str => {
                // A character literal ('{', '\'') or a lifetime ('a): skip the former only.
                let ahead: String = chars.clone().take(3).collect();
                if ahead.starts_with('\\') {
                    let n = ahead.find('\'').map_or(0, |i| i + 1);
                    for _ in 0..n.max(2) {
                        chars.next();
                    }
                } else if ahead.chars().nth(1) == Some('\'') {
                    chars.next();
                    chars.next();
                }
            }
            '{' | '}' if !in_str => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn sources(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                sources(&p, root, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let rel = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                // The binary and the crate root wire everything; this file quotes forbidden paths.
                if !matches!(rel.as_str(), "main.rs" | "lib.rs" | "layering.rs") {
                    out.push((rel, std::fs::read_to_string(&p).unwrap()));
                }
            }
        }
    }

    fn crate_edges() -> Vec<Edge> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&root, &root, &mut files);
        // The simulators live outside src/ and are mounted as `crate::simulators`.
        let sims = Path::new(env!("CARGO_MANIFEST_DIR")).join("simulators");
        let mut sim_files = Vec::new();
        sources(&sims, &sims, &mut sim_files);
        for (rel, text) in sim_files
            .into_iter()
            .filter(|(r, _)| !r.starts_with("bin/"))
        {
            files.push((format!("simulators/{rel}"), text));
        }
        assert!(files.len() > 50, "read the crate's sources");
        files
            .iter()
            .flat_map(|(rel, text)| edges_in(rel, text))
            .collect()
    }

    #[test]
    fn no_function_in_src_is_over_150_lines() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&root, &root, &mut files);
        let mut all: Vec<(usize, String)> = files
            .iter()
            .flat_map(|(rel, text)| {
                function_lengths(text)
                    .into_iter()
                    .map(move |(n, line, name)| (n, format!("src/{rel}:{line} {name}")))
            })
            .collect();
        all.sort_by_key(|a| std::cmp::Reverse(a.0));
        let long: Vec<String> = all
            .iter()
            .take_while(|(n, _)| *n > MAX_FN_LINES)
            .map(|(n, at)| format!("{n} lines: {at}"))
            .collect();
        assert!(
            long.is_empty(),
            "functions over {MAX_FN_LINES} lines (split them: one function per step or per case):\n{}",
            long.join("\n")
        );
        assert!(all.len() > 500, "measured the crate's functions");
        // The five longest, for the record (`cargo test --lib layering -- --nocapture`).
        for (n, at) in all.iter().take(5) {
            println!("{n:4} {at}");
        }
    }

    #[test]
    fn function_lengths_count_from_fn_to_its_closing_brace() {
        let text = "fn a() {\n    let s = \"}\";\n    let c = '{';\n}\n\npub async fn b<'x>(v: &'x str) -> &'x str {\n    // }\n    v\n}\nfn c();\n";
        assert_eq!(
            function_lengths(text),
            vec![(4, 1, "a".to_string()), (4, 6, "b".to_string())]
        );
    }

    #[test]
    fn every_import_follows_the_layering() {
        let problems = forbidden(&crate_edges());
        assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
    }

    #[test]
    fn no_modules_import_each_other_in_a_cycle() {
        let problems = cycles(&crate_edges());
        assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
    }

    #[test]
    fn a_forbidden_import_is_named_with_its_file_line_and_the_rule() {
        let e = edges_in(
            "core/ingest.rs",
            "use crate::model::Reason;\nuse crate::{config::Config, core::Receipt};\n",
        );
        let p = forbidden(&e);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with(
                "src/core/ingest.rs:2: `core` imports `config` (crate::config::Config)"
            ),
            "{}",
            p[0]
        );
        assert!(p[0].contains("`core` may import only: model."), "{}", p[0]);
    }

    #[test]
    fn nothing_may_import_the_runtime_and_unknown_layers_are_named() {
        let e = edges_in("api/routes.rs", "    let x = crate::runtime::app::start;\n");
        assert_eq!(forbidden(&e).len(), 1);
        let e = edges_in("newthing/mod.rs", "use crate::core::Core;\n");
        assert!(forbidden(&e)[0].contains("`newthing` is not in the layering table"));
        // Comments do not count; a string naming a path does (serde attributes do that).
        let e = edges_in(
            "core/a.rs",
            "// crate::config::Config\nx = \"crate::api::y\"\n",
        );
        assert_eq!(forbidden(&e).len(), 1);
    }

    #[test]
    fn a_cycle_inside_a_layer_is_found_and_spelled_out() {
        let mut e = edges_in("state/journal.rs", "use super::alarms::AlarmRow;\n");
        e.extend(edges_in(
            "state/alarms.rs",
            "use crate::state::journal::Journal;\n",
        ));
        let c = cycles(&e);
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(
            c[0].contains("state::alarms → state::journal (src/state/alarms.rs:1), state::journal → state::alarms (src/state/journal.rs:1)"),
            "{}",
            c[0]
        );
        // A child using its parent's re-exports is not a cycle.
        let e = edges_in("core/alarms/book.rs", "use crate::core::alarms::AlarmId;\n");
        assert!(cycles(&e).is_empty());
    }
}
