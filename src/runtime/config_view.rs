//! `GET /api/v1/config`'s answer: which files are in force (with their hashes) and the
//! settings that matter for trusting the figures, built once at start. Its shape is
//! `api::schemas::ConfigView`; the test below keeps them the same.

use crate::config::Config;

/// Which configuration is in force, with hashes, so an auditor can tie every figure to it.
pub(super) fn config_files(files: &[std::path::PathBuf]) -> Vec<serde_json::Value> {
    files
        .iter()
        .map(|f| {
            use sha2::Digest;
            let sha = std::fs::read(f)
                .map(|b| hex::encode(sha2::Sha256::digest(&b)))
                .unwrap_or_else(|e| format!("unreadable: {e}"));
            serde_json::json!({"file": f.display().to_string(), "sha256": sha})
        })
        .collect()
}

/// What `GET /api/v1/config` shows: the files and their hashes, the inventory summary and the
/// settings that matter for trusting the figures. No passwords, keys or token hashes.
pub(super) fn config_view(
    cfg: &Config,
    files: &[serde_json::Value],
    summary: &str,
) -> serde_json::Value {
    serde_json::json!({
        "files": files,
        "summary": summary,
        "mqtt": {
            "url": cfg.mqtt.url,
            "client_id": cfg.mqtt.client_id,
            "username": cfg.mqtt.username,
            "topic_prefix": cfg.mqtt.topic_prefix,
            "qos": cfg.mqtt.qos,
            "ack": cfg.mqtt.ack,
            "embedded": cfg.mqtt.embedded,
            "tls_ca_file": cfg.mqtt.ca_file,
            "client_certificate": cfg.mqtt.client_cert_file.is_some(),
            "max_payload_bytes": cfg.mqtt.max_payload_bytes,
            "max_batch_len": cfg.mqtt.max_batch_len,
            "max_channels": cfg.mqtt.max_channels,
        },
        "store": cfg.store.as_ref().map(|s| serde_json::json!({
            "url": s.url, "org": s.org, "bucket": s.bucket,
        })),
        "outbox": {
            "max_bytes": cfg.outbox.max_bytes,
            "commit_interval_ms": cfg.outbox.commit_interval_ms,
            "on_damaged_file": cfg.gateway.on_damaged_file,
        },
        "api": {
            "listen": cfg.api.listen,
            "tls": cfg.api.tls_cert_file.is_some(),
            "cors_origins": cfg.api.cors_origins,
            "max_body_bytes": cfg.api.max_body_bytes,
            "rate_limit_per_s": cfg.api.rate_limit_per_s,
            "rate_limit_burst": cfg.api.rate_limit_burst,
        },
        "tokens": cfg.tokens.iter().map(|t| serde_json::json!({"name": t.name, "role": t.role})).collect::<Vec<_>>(),
        "indicators": cfg.indicators.policy(),
        "alarms": {
            "enabled": cfg.alarms.enabled,
            "scheme": cfg.alarms.scheme,
            "response_deadline_s": cfg.alarms.response_deadline_s.0,
        },
        "signed_sites": cfg.inventory.sites.iter().filter(|s| s.signing_key_env.is_some()).map(|s| serde_json::json!({"site": s.id, "required": s.require_signature})).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use std::path::Path;

    /// Every section filled (a store, tokens, a signed site, a login, TLS to the broker) and
    /// every section at its defaults: both read into the documented shape, nothing unknown.
    #[test]
    fn the_config_answer_is_its_documented_shape() {
        let full =
            "[mqtt]\nurl = \"mqtts://broker.example:8883\"\nusername = \"gw\"\npassword_env = \"MQTT_PASSWORD\"\nca_file = \"ca.pem\"\n\n\
            [store]\nurl = \"http://127.0.0.1:8086\"\norg = \"o\"\nbucket = \"b\"\n\n\
            [api]\ncors_origins = [\"https://ops.example\"]\n\n\
            [alarms]\nscheme = \"four_colour\"\n\n\
            [[tokens]]\nname = \"admin-desk\"\nrole = \"admin\"\nsha256 = \""
                .to_string()
                + &"ab".repeat(32)
                + "\"\n\n[[sites]]\nid = \"p1\"\nname = \"P1\"\nkind = \"park\"\n\
            signing_key_env = \"P1_KEY\"\nrequire_signature = true\n";
        for text in [full.as_str(), ""] {
            let loaded = load_str(Path::new("t.toml"), text, Path::new("."))
                .unwrap_or_else(|e| panic!("{e:?}"));
            let cfg = &loaded.config;
            let files = config_files(&loaded.files);
            let view = config_view(cfg, &files, &crate::config::summary(cfg));
            if let Err(e) = serde_json::from_value::<crate::api::schemas::ConfigView>(view.clone())
            {
                panic!("{view} does not fit the documented shape: {e}");
            }
            if !text.is_empty() {
                assert_eq!(view["store"]["bucket"], "b", "{view}");
                assert_eq!(view["signed_sites"][0]["required"], true, "{view}");
                assert_eq!(view["tokens"][0]["role"], "admin", "{view}");
                assert_eq!(view["alarms"]["scheme"], "four_colour", "{view}");
                assert_eq!(view["mqtt"]["username"], "gw", "{view}");
            }
        }
    }
}
