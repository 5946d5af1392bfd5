//! SIPp (Debian `sip-tester`) as a GB/T 28181 device: one run of a hand-written scenario from
//! `tests/it/sipp/` against `127.0.0.1:port`, asserted to succeed (every message it expected
//! came), with its error log in the failure message.

use std::path::Path;

/// Run `scenario` once over `transport` (`u1` UDP, `t1` one TCP connection) as `user` with
/// `password`; `keys` are the scenario's `[key]` values.
pub async fn run(
    port: u16,
    transport: &str,
    scenario: &str,
    keys: &[(&str, &str)],
    (user, password): (&str, &str),
) {
    let dir = tempfile::tempdir().unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/sipp")
        .join(scenario);
    let errors = dir.path().join("errors.log");
    let mut cmd = std::process::Command::new(super::which("sipp"));
    cmd.arg(format!("127.0.0.1:{port}"))
        .arg("-sf")
        .arg(&file)
        .args(["-t", transport, "-m", "1", "-i", "127.0.0.1", "-p"])
        .arg(super::free_port().to_string());
    for (k, v) in keys {
        cmd.args(["-key", k, v]);
    }
    cmd.args(["-au", user, "-ap", password])
        .args([
            "-nostdin",
            "-timeout",
            "30s",
            "-timeout_error",
            "-trace_err",
        ])
        .arg("-error_file")
        .arg(&errors)
        .current_dir(dir.path());
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("sipp runs"))
        .await
        .unwrap();
    let log = std::fs::read_to_string(&errors).unwrap_or_default();
    assert!(
        out.status.success(),
        "sipp {scenario} failed ({}):\n{log}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
