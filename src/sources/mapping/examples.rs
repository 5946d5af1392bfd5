//! The worked examples of `docs/mappings.md`, run: each mapping (`tests/data/mappings/*.toml`)
//! applied to its message (`*.json`) must give the lines in `*.out`, and the doc must quote
//! all three files as they are, so the doc cannot drift from what the code does.

use super::sample::describe;
use super::*;

#[derive(serde::Deserialize)]
struct File {
    mappings: Vec<MappingConfig>,
}

fn data(name: &str) -> String {
    let path = format!("{}/tests/data/mappings/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn example(name: &str, topic: Option<&str>, site: Option<&str>) {
    let (toml_text, json, want) = (
        data(&format!("{name}.toml")),
        data(&format!("{name}.json")),
        data(&format!("{name}.out")),
    );
    let file: File = toml::from_str(&toml_text).unwrap_or_else(|e| panic!("{name}.toml: {e}"));
    let mappings = Mappings::compile(&file.mappings).unwrap_or_else(|e| panic!("{e:?}"));
    let m = mappings.iter().next().expect("one mapping");
    if let Some(t) = topic {
        assert_eq!(mappings.for_topic(t).map(Mapping::name), Some(m.name()));
    }
    let input = Input {
        payload: json.as_bytes(),
        topic,
        site,
        origin: Arc::from(topic.unwrap_or("POST /api/v1/ingest/p1/ministry")),
        received_ms: 1_700_000_100_000,
    };
    let mut out = Vec::new();
    m.apply(&input, &Limits::DEFAULT, &mut out);
    let got: Vec<String> = out.iter().filter_map(describe).collect();
    let want: Vec<&str> = want.lines().collect();
    assert_eq!(got, want, "{name}");

    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/mappings.md"))
        .expect("docs/mappings.md");
    for (ext, text) in [
        ("toml", &toml_text),
        ("json", &json),
        ("out", &want.join("\n")),
    ] {
        assert!(
            doc.contains(text.trim_end()),
            "docs/mappings.md does not quote tests/data/mappings/{name}.{ext} as it is"
        );
    }
}

#[test]
fn the_ministry_envelope_example() {
    example("ministry", None, Some("p1"));
}

#[test]
fn the_vendor_array_example() {
    example("vendor_array", Some("acme/park-7/readings"), None);
}

#[test]
fn the_per_device_object_example() {
    example(
        "per_device",
        Some("minewatch/mine-2/face-3-ws1/telemetry"),
        None,
    );
}
