//! `[api]` (where and how the HTTP API listens) and `[[tokens]]` (who may call it). A key left
//! out takes its value from `Default`, the one place the defaults are written.

use crate::model::Role;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Larger request bodies are refused with 413. Default 65536.
    pub max_body_bytes: usize,
    /// Requests per second each token may make, on average (429 beyond). Default 50.
    pub rate_limit_per_s: u32,
    /// Requests a token may make at once before the average applies. Default 200.
    pub rate_limit_burst: u32,
    /// Web origins allowed to call the API from a browser (`https://ops.example`); none by
    /// default, so a page elsewhere cannot use an operator's browser against the API.
    pub cors_origins: Vec<String>,
    /// Serve HTTPS with this certificate chain (PEM); needs `tls_key_file`.
    pub tls_cert_file: Option<PathBuf>,
    /// The certificate's private key (PEM).
    pub tls_key_file: Option<PathBuf>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 64 * 1024,
            rate_limit_per_s: 50,
            rate_limit_burst: 200,
            cors_origins: Vec::new(),
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

impl ApiSettings {
    /// The section's own rules; `err(key, message)` collects a problem.
    pub fn problems(&self, err_main: &mut dyn FnMut(&str, String)) {
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            err_main(
                "api.tls_cert_file",
                "give both tls_cert_file and tls_key_file, or neither".into(),
            );
        }
        for o in &self.cors_origins {
            let ok = url::Url::parse(o).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https") && u.path() == "/" && !o.ends_with('/')
            });
            if !ok || o.parse::<axum::http::HeaderValue>().is_err() {
                err_main(
                    "api.cors_origins",
                    format!("{o:?} is not an origin like \"https://ops.example.org\" (scheme, host, optional port; no path)"),
                );
            }
        }
        if self.max_body_bytes == 0 || self.rate_limit_per_s == 0 || self.rate_limit_burst == 0 {
            err_main(
                "api.max_body_bytes",
                "max_body_bytes, rate_limit_per_s and rate_limit_burst must be positive".into(),
            );
        }
    }
}

/// `[[tokens]]`: an API bearer token, stored only as its SHA-256.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it (shown in acknowledgements and the log).
    pub name: String,
    pub role: Role,
    /// Hex SHA-256 of the token (`printf %s "$TOKEN" | sha256sum`); never the token itself.
    pub sha256: String,
}

/// `[[tokens]]`: names and hashes well formed and unique.
pub fn token_problems(tokens: &[TokenConfig], err_main: &mut dyn FnMut(&str, String)) {
    let mut token_names = HashSet::new();
    let mut token_hashes = HashSet::new();
    for (i, t) in tokens.iter().enumerate() {
        let key = format!("tokens[{i}] ({:?})", t.name);
        if t.name.trim().is_empty() || t.name.len() > 64 {
            err_main(&format!("{key}.name"), "must be 1 to 64 bytes".into());
        } else if !token_names.insert(t.name.clone()) {
            err_main(
                &format!("{key}.name"),
                format!("duplicate token name {:?}", t.name),
            );
        }
        if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            err_main(
                &format!("{key}.sha256"),
                "must be the 64 hex digits of the token's SHA-256 (printf %s \"$TOKEN\" | sha256sum), never the token itself".into(),
            );
        } else if !token_hashes.insert(t.sha256.to_ascii_lowercase()) {
            err_main(
                &format!("{key}.sha256"),
                "the same token is configured twice".into(),
            );
        }
    }
}
