//! `docs/configuration.md` checked against the configuration types: every key of every
//! section with defaults is listed in its section's table with the default the code uses,
//! and no key is listed that the section does not have. The reference is what a field
//! engineer reads; a default changed in code and not there fails this test.

use serde_json::Value;

/// The sections whose defaults come from one `Default` impl, by their heading in the doc.
fn sections() -> Vec<(&'static str, Value)> {
    use crate::config::*;
    let v = |x: serde_json::Result<Value>| x.expect("a section serializes");
    vec![
        (
            "[gateway]",
            v(serde_json::to_value(GatewaySettings::default())),
        ),
        ("[mqtt]", v(serde_json::to_value(MqttSettings::default()))),
        ("[store]", v(serde_json::to_value(StoreSettings::default()))),
        (
            "[outbox]",
            v(serde_json::to_value(OutboxSettings::default())),
        ),
        ("[api]", v(serde_json::to_value(ApiSettings::default()))),
        (
            "[ingest]",
            v(serde_json::to_value(IngestSettings::default())),
        ),
        (
            "[mine_files]",
            v(serde_json::to_value(
                crate::sources::mine_files::config::MineFilesSettings::default(),
            )),
        ),
        (
            "[video]",
            v(serde_json::to_value(
                crate::sources::video::config::VideoSettings::default(),
            )),
        ),
        (
            "[cluster]",
            v(serde_json::to_value(
                crate::cluster::ClusterSettings::default(),
            )),
        ),
        (
            "[indicators]",
            v(serde_json::to_value(IndicatorSettings::default())),
        ),
        (
            "[alarms]",
            v(serde_json::to_value(alarms::AlarmSettings::default())),
        ),
        (
            "[[mappings]]",
            v(serde_json::to_value(MappingConfig::default())),
        ),
    ]
}

/// The rows of the table under `## \`{section}\``: (keys, default cell).
fn table(doc: &str, section: &str) -> Option<Vec<(Vec<String>, String)>> {
    let heading = format!("## `{section}`");
    let start = doc.lines().position(|l| l.starts_with(&heading))?;
    let rows = doc
        .lines()
        .skip(start + 1)
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| l.starts_with("| `") || l.starts_with("| [`"))
        .map(|l| {
            let cells: Vec<&str> = l.split(" | ").collect();
            let keys = ticked(cells[0])
                .into_iter()
                .map(|k| key_of(section, &k))
                .collect();
            (keys, cells.get(1).copied().unwrap_or("").to_string())
        })
        .collect();
    Some(rows)
}

/// The `backticked` words of a cell.
fn ticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// `[alarms.kinds.<kind>]` names the key `kinds`.
fn key_of(section: &str, k: &str) -> String {
    let inner = section.trim_matches(['[', ']']);
    match k.strip_prefix(&format!("[{inner}.")) {
        Some(rest) => rest.split('.').next().unwrap_or(rest).to_string(),
        None => k.to_string(),
    }
}

/// How a default value must appear in its cell.
fn mentioned(cell: &str, v: &Value) -> bool {
    let lower = cell.to_lowercase();
    match v {
        Value::Null => ["none", "unset", "required"]
            .iter()
            .any(|w| lower.contains(w)),
        Value::String(s) if s.is_empty() => lower.contains("required"),
        Value::String(s) => lower.contains(&s.to_lowercase()),
        Value::Bool(b) => cell.contains(&b.to_string()),
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            let text = if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{}", f as i64)
            } else {
                n.to_string()
            };
            cell.split(|c: char| !(c.is_ascii_digit() || c == '.'))
                .any(|w| w == text)
        }
        // A list the section cannot do without (`[cluster] nats_urls`) defaults to empty.
        Value::Array(a) if a.is_empty() => cell.contains("[]") || lower.contains("required"),
        Value::Array(a) => a.iter().all(|x| mentioned(cell, x)),
        Value::Object(o) if o.is_empty() => cell.contains("{}") || lower.contains("built-in"),
        Value::Object(o) => o
            .iter()
            .all(|(k, x)| cell.contains(k.as_str()) && mentioned(cell, x)),
    }
}

/// Every disagreement between the doc and the types, as messages.
fn problems(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (section, defaults) in sections() {
        let Some(rows) = table(doc, section) else {
            out.push(format!(
                "docs/configuration.md has no `## `{section}`` table"
            ));
            continue;
        };
        let fields = defaults.as_object().expect("a section is a table");
        for (key, value) in fields {
            match rows.iter().find(|(keys, _)| keys.contains(key)) {
                None => out.push(format!("{section} {key}: not in docs/configuration.md")),
                Some((_, cell)) if !mentioned(cell, value) => out.push(format!(
                    "{section} {key}: the code's default is {value}, the doc says {}",
                    cell.trim()
                )),
                _ => {}
            }
        }
        for (keys, _) in &rows {
            for k in keys.iter().filter(|k| !fields.contains_key(k.as_str())) {
                out.push(format!(
                    "{section} {k}: listed in docs/configuration.md but not a key of the section"
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_reference_lists_every_key_with_the_codes_default() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");
        let doc = std::fs::read_to_string(path).expect("docs/configuration.md");
        let p = problems(&doc);
        assert!(p.is_empty(), "\n{}\n", p.join("\n"));
    }

    #[test]
    fn a_wrong_default_a_missing_key_and_an_invented_one_are_each_named() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let doc = doc
            .replace("| `qos` | `1` |", "| `qos` | `2` |")
            .replace("| `keep_alive_s` | `30` |", "| `keep_alive_secs` | `30` |");
        let p = problems(&doc);
        assert!(
            p.iter()
                .any(|m| m.starts_with("[mqtt] qos: the code's default is 1")),
            "{p:?}"
        );
        assert!(
            p.contains(&"[mqtt] keep_alive_s: not in docs/configuration.md".to_string()),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|m| m.starts_with("[mqtt] keep_alive_secs: listed")),
            "{p:?}"
        );
        assert_eq!(p.len(), 3, "{p:?}");
    }
}
