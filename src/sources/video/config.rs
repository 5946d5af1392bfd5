//! `[video]`: the GB/T 28181 upper-platform endpoint that cameras, NVRs and lower video
//! platforms register with. A key left out takes its value from `Default` below, the one
//! place the defaults are written; the section left out runs no endpoint.

use super::session::Timing;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VideoSettings {
    /// The address the SIP endpoint listens on, UDP and TCP alike. Default "127.0.0.1:5060".
    pub listen: String,
    /// The gateway's own 20-digit GB/T 28181 ID, the one devices are configured with as
    /// their SIP server ID (digits 11–13 are 200 for a platform). Required.
    pub server_id: String,
    /// The SIP domain, also the realm of the digest challenge. Default none: the first 10
    /// digits of `server_id`, as GB/T 28181 forms it.
    pub domain: Option<String>,
    /// The environment variable that holds the digest password devices register with (a
    /// device may have its own, below). Required.
    pub password_env: Option<String>,
    /// Devices with a digest password of their own: GB/T 28181 ID → the environment
    /// variable that holds it. Default none (every device registers with `password_env`'s).
    pub device_password_env: std::collections::BTreeMap<String, String>,
    /// The keepalive interval configured on the devices. Default 60 s (the standard's).
    pub keepalive_s: u64,
    /// A device is offline after this many keepalive intervals without one. Default 3 (the
    /// standard's).
    pub keepalive_misses: u32,
    /// A longer registration a device asks for is granted only this long. Default 86400 s.
    pub max_expires_s: u64,
    /// How often a registered device's catalog is queried again. Default 3600 s.
    pub catalog_interval_s: u64,
    /// A catalog whose pages have not all arrived this long after its first one is given up
    /// (what arrived is not used; the next query starts anew). Default 30 s.
    pub catalog_timeout_s: u64,
    /// A catalog announcing more items than this (`SumNum`) is refused. Default 10000.
    pub max_catalog_items: usize,
    /// A larger SIP message (UDP datagram, or TCP message with its body) is refused.
    /// Default 65535 bytes.
    pub max_message_bytes: usize,
    /// More messages than this per second from one address are refused (a burst of one
    /// second's worth is let through). Default 200.
    pub address_rate_per_s: u32,
    /// The offset of the `Date` in a 200 to REGISTER, the devices' time sync (GB/T 28181
    /// writes local time with no zone). Default "+08:00" (China).
    pub utc_offset: String,
}

impl Default for VideoSettings {
    fn default() -> Self {
        VideoSettings {
            listen: "127.0.0.1:5060".into(),
            server_id: String::new(),
            domain: None,
            password_env: None,
            device_password_env: Default::default(),
            keepalive_s: 60,
            keepalive_misses: 3,
            max_expires_s: 86_400,
            catalog_interval_s: 3600,
            catalog_timeout_s: 30,
            max_catalog_items: 10_000,
            max_message_bytes: 65_535,
            address_rate_per_s: 200,
            utc_offset: "+08:00".into(),
        }
    }
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether `s` is a 20-digit GB/T 28181 ID.
pub fn is_gb_id(s: &str) -> bool {
    s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `+HH:MM` or `-HH:MM` in seconds east of UTC.
fn offset_seconds(s: &str) -> Option<i32> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

impl VideoSettings {
    /// The domain in force: `domain`, or the first 10 digits of `server_id`.
    pub fn domain(&self) -> String {
        match &self.domain {
            Some(d) => d.clone(),
            None => self.server_id.chars().take(10).collect(),
        }
    }

    /// The session's timing, in milliseconds (a valid section: see `problems`).
    pub fn timing(&self) -> Timing {
        Timing {
            keepalive_ms: self.keepalive_s.saturating_mul(1000),
            keepalive_misses: self.keepalive_misses,
            max_expires_s: self.max_expires_s,
            catalog_interval_ms: self.catalog_interval_s.saturating_mul(1000),
            catalog_timeout_ms: self.catalog_timeout_s.saturating_mul(1000),
            max_catalog_items: self.max_catalog_items,
            utc_offset_s: offset_seconds(&self.utc_offset).unwrap_or(8 * 3600),
            ..Timing::default()
        }
    }

    /// The section's own rules; `err(key, message)` collects a problem.
    pub fn problems(&self, err: &mut dyn FnMut(&str, String)) {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            err(
                "video.listen",
                format!(
                    "{:?} is not an IP address and port (e.g. \"0.0.0.0:5060\")",
                    self.listen
                ),
            );
        }
        if !is_gb_id(&self.server_id) {
            err(
                "video.server_id",
                format!(
                    "{:?} is not a 20-digit GB/T 28181 ID: give the ID the devices are configured \
                     with as their SIP server ID (e.g. \"34020000002000000001\")",
                    self.server_id
                ),
            );
        }
        if let Some(d) = &self.domain {
            if d.is_empty() || d.len() > 64 || d.contains(|c: char| c.is_whitespace() || c == '"') {
                err(
                    "video.domain",
                    format!(
                        "{d:?} is not a SIP domain: 1 to 64 characters, no space or quote (or leave \
                         it out for the first 10 digits of server_id)"
                    ),
                );
            }
        }
        match self.password_env.as_deref() {
            None | Some("") => err(
                "video.password_env",
                "is required: name the environment variable that holds the devices' digest \
                 password (e.g. \"SAFEGATE_VIDEO_PASSWORD\")"
                    .into(),
            ),
            Some(v) if !is_env_name(v) => err(
                "video.password_env",
                format!("{v:?} is not an environment variable name (letters, digits and _)"),
            ),
            Some(_) => {}
        }
        for (id, env) in &self.device_password_env {
            if !is_gb_id(id) {
                err(
                    "video.device_password_env",
                    format!("{id:?} is not a 20-digit GB/T 28181 ID"),
                );
            }
            if !is_env_name(env) {
                err(
                    "video.device_password_env",
                    format!(
                        "{id}: {env:?} is not an environment variable name (letters, digits and _)"
                    ),
                );
            }
        }
        if offset_seconds(&self.utc_offset).is_none() {
            err(
                "video.utc_offset",
                format!(
                    "{:?} is not an offset like \"+08:00\" or \"-05:00\"",
                    self.utc_offset
                ),
            );
        }
        for (key, v, lo, hi) in self.bounded() {
            if !(lo..=hi).contains(&v) {
                err(
                    &format!("video.{key}"),
                    format!("{v} is not between {lo} and {hi}"),
                );
            }
        }
    }

    /// The numeric settings with their bounds: (key, value, least, most).
    fn bounded(&self) -> [(&'static str, u64, u64, u64); 8] {
        [
            ("keepalive_s", self.keepalive_s, 5, 3600),
            ("keepalive_misses", self.keepalive_misses.into(), 1, 10),
            ("max_expires_s", self.max_expires_s, 60, 604_800),
            ("catalog_interval_s", self.catalog_interval_s, 60, 86_400),
            ("catalog_timeout_s", self.catalog_timeout_s, 1, 600),
            (
                "max_catalog_items",
                self.max_catalog_items as u64,
                1,
                1_000_000,
            ),
            (
                "max_message_bytes",
                self.max_message_bytes as u64,
                1024,
                1_048_576,
            ),
            (
                "address_rate_per_s",
                self.address_rate_per_s.into(),
                1,
                1_000_000,
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::VideoSettings;

    fn problems(s: &VideoSettings) -> Vec<String> {
        let mut out = Vec::new();
        s.problems(&mut |key, msg| out.push(format!("{key}: {msg}")));
        out
    }

    fn valid() -> VideoSettings {
        VideoSettings {
            server_id: "34020000002000000001".into(),
            password_env: Some("SAFEGATE_VIDEO_PASSWORD".into()),
            ..VideoSettings::default()
        }
    }

    #[test]
    fn a_section_with_its_required_keys_has_no_problem_and_derives_its_domain() {
        let s = valid();
        assert!(problems(&s).is_empty(), "{:?}", problems(&s));
        assert_eq!(s.domain(), "3402000000");
        let t = s.timing();
        assert_eq!((t.keepalive_ms, t.keepalive_misses), (60_000, 3));
        assert_eq!(t.utc_offset_s, 8 * 3600);
        let own = VideoSettings {
            domain: Some("example.org".into()),
            utc_offset: "-05:30".into(),
            ..valid()
        };
        assert_eq!(own.domain(), "example.org");
        assert_eq!(own.timing().utc_offset_s, -(5 * 3600 + 30 * 60));
    }

    #[test]
    fn the_defaults_alone_name_the_required_keys() {
        let p = problems(&VideoSettings::default());
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("video.server_id: \"\" is not a 20-digit"));
        assert!(p[1].starts_with("video.password_env: is required"));
    }

    #[test]
    fn each_bad_value_is_named_with_its_key() {
        let bad = VideoSettings {
            listen: "sip.example:5060".into(),
            server_id: "3402000000200000000X".into(),
            domain: Some("two words".into()),
            password_env: Some("NOT-A-NAME".into()),
            device_password_env: [("1234".to_string(), "OK_NAME".to_string())].into(),
            keepalive_s: 1,
            keepalive_misses: 0,
            max_expires_s: 10,
            catalog_interval_s: 0,
            catalog_timeout_s: 0,
            max_catalog_items: 0,
            max_message_bytes: 100,
            address_rate_per_s: 0,
            utc_offset: "UTC+8".into(),
        };
        let p = problems(&bad);
        for key in [
            "listen",
            "server_id",
            "domain",
            "password_env",
            "device_password_env",
            "keepalive_s",
            "keepalive_misses",
            "max_expires_s",
            "catalog_interval_s",
            "catalog_timeout_s",
            "max_catalog_items",
            "max_message_bytes",
            "address_rate_per_s",
            "utc_offset",
        ] {
            assert!(
                p.iter().any(|m| m.starts_with(&format!("video.{key}:"))),
                "{key} in {p:?}"
            );
        }
        assert_eq!(p.len(), 14, "{p:?}");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let e = toml::from_str::<VideoSettings>("server_id = \"1\"\nkeepalive = 60\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `keepalive`"), "{e}");
        let s: VideoSettings = toml::from_str("server_id = \"34020000002000000001\"\n").unwrap();
        assert_eq!(s.keepalive_s, 60);
    }
}
