//! `safegate check-config`: every invalid-inventory case is named, with file and key; a good
//! configuration prints its summary.

use std::path::Path;
use std::process::Command;

fn check(dir: &Path, main: &str, files: &[(&str, &str)]) -> (i32, String) {
    std::fs::create_dir_all(dir.join("inventory")).unwrap();
    let path = dir.join("safegate.toml");
    std::fs::write(&path, main).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_safegate"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

const SITES: &str = r#"
[[sites]]
id = "p1"
name = "Park"
kind = "park"

[[sites]]
id = "m1"
name = "Mine"
kind = "mine"

[[enterprises]]
id = "e1"
site = "p1"
name = "E"

[[zones]]
id = "z1"
site = "p1"
name = "Z"

[[systems]]
id = "s1"
site = "m1"
kind = "slope_monitoring"
"#;

fn dev(id: &str, site: &str, extra: &str) -> String {
    format!("\n[[devices]]\nid = \"{id}\"\nsite = \"{site}\"\nkind = \"gas_combustible\"\nprotocol = \"mqtt\"\ninterval_s = 10\n{extra}\n")
}

/// One bad case per row: (inventory snippet, text the error must contain).
#[test]
fn each_invalid_case_is_reported_by_name() {
    let cases: Vec<(String, &str)> = vec![
        (
            dev("d1", "p1", "colour = \"red\""),
            "unknown field `colour`",
        ),
        (
            format!("{}{}", dev("d1", "p1", ""), dev("d1", "p1", "")),
            "duplicate device id \"d1\" in site \"p1\"",
        ),
        (
            dev("d1", "nowhere", ""),
            "devices[0] (id \"d1\").site: unknown site \"nowhere\"",
        ),
        (
            dev("d1", "p1", "enterprise = \"e9\""),
            "unknown enterprise \"e9\" in site \"p1\"",
        ),
        (dev("d1", "p1", "zone = \"z9\""), "unknown zone \"z9\""),
        (dev("d1", "m1", "system = \"s9\""), "unknown system \"s9\""),
        // An enterprise of another site does not resolve either.
        (
            dev("d1", "m1", "enterprise = \"e1\""),
            "unknown enterprise \"e1\" in site \"m1\"",
        ),
        (
            dev("d1", "p1", "").replace("interval_s = 10", "interval_s = 0"),
            "interval_s: must be a positive number",
        ),
        (
            dev("d1", "p1", "").replace("interval_s = 10", "interval_s = -5"),
            "interval_s: must be a positive number",
        ),
        (
            dev("d1", "p1", "offline_after_s = 5"),
            "shorter than interval_s",
        ),
        (
            dev("d1", "p1", "").replace("gas_combustible", "gas_toxic"),
            "must name its gas",
        ),
        (
            dev("d1", "p1", "").replace("gas_combustible", "plasma"),
            "unknown variant `plasma`",
        ),
        (dev("d/1", "p1", ""), "contains '/'"),
        (
            "\n[[sites]]\nid = \"p1\"\nname = \"again\"\nkind = \"park\"\n".into(),
            "duplicate site id \"p1\"",
        ),
        (
            "\n[[zones]]\nid = \"z2\"\nsite = \"m1\"\nname = \"x\"\n".into(),
            "belong to a Park",
        ),
    ];
    for (snippet, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (code, out) = check(dir.path(), &format!("{SITES}{snippet}"), &[]);
        assert_eq!(code, 2, "exit code for {want:?}:\n{out}");
        assert!(out.contains(want), "expected {want:?} in:\n{out}");
        assert!(out.contains("safegate.toml"), "the file is named:\n{out}");
        if want.contains("unknown") && want.contains('`') {
            assert!(
                out.contains("line "),
                "a syntax-level error names its line:\n{out}"
            );
        }
    }
}

#[test]
fn all_errors_are_listed_at_once_with_the_included_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let main =
        format!("include = [\"inventory/*.toml\"]\n\n[mqtt]\nurl = \"http://x\"\nqos = 2\n{SITES}");
    let inv = format!(
        "{}{}",
        dev("a", "p9", ""),
        dev("b", "p1", "zone = \"nope\"")
    );
    let (code, out) = check(dir.path(), &main, &[("inventory/devices.toml", &inv)]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("4 error(s)"), "{out}");
    assert!(out.contains("mqtt.url"), "{out}");
    assert!(out.contains("mqtt.qos"), "{out}");
    assert!(
        out.contains("inventory/devices.toml: devices[0] (id \"a\").site: unknown site \"p9\""),
        "{out}"
    );
    assert!(
        out.contains("inventory/devices.toml: devices[1] (id \"b\").zone"),
        "{out}"
    );
}

#[test]
fn a_syntax_error_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = check(dir.path(), "[[sites]]\nid = \"p1\"\nname = \n", &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("safegate.toml") && out.contains("line 3"),
        "{out}"
    );
}

#[test]
fn a_missing_include_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = check(dir.path(), "include = [\"inventory/none-*.toml\"]\n", &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("matches no file"), "{out}");
}

#[test]
fn a_good_configuration_prints_its_summary() {
    let dir = tempfile::tempdir().unwrap();
    let main = format!("include = [\"inventory/*.toml\"]\n{SITES}");
    let inv = format!(
        "{}{}{}",
        dev("a", "p1", "enterprise = \"e1\""),
        dev("b", "p1", "zone = \"z1\"\nstatus = \"planned\""),
        dev("c", "m1", "system = \"s1\"").replace("gas_combustible", "slope_displacement")
    );
    let (code, out) = check(dir.path(), &main, &[("inventory/devices.toml", &inv)]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("sites: 2 (1 park, 1 mine; 0 suspended)"),
        "{out}"
    );
    assert!(out.contains("devices: 3"), "{out}");
    assert!(
        out.contains("by kind: gas_combustible 2, slope_displacement 1"),
        "{out}"
    );
    assert!(out.contains("by protocol: mqtt 3"), "{out}");
    assert!(out.contains("by status: built 2, planned 1"), "{out}");
}

#[test]
fn the_shipped_configurations_are_valid() {
    for f in ["config/demo/safegate.toml", "config/example/safegate.toml"] {
        let out = Command::new(env!("CARGO_BIN_EXE_safegate"))
            .arg("check-config")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(f))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
