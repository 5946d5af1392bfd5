//! Optional message signing per site, for platforms the broker's ACL alone cannot be trusted
//! with. A signed message is the envelope `{"payload": <the message>, "signature": "<hex>"}`
//! where the signature is HMAC-SHA256, with the site's key, over the exact bytes of
//! `payload` as they appear in the envelope. A site with `require_signature = true` refuses
//! unsigned messages; any site with a key refuses a wrong signature.

use crate::core::inventory::SiteConfig;
use crate::model::Reason;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;

type HmacSha256 = Hmac<Sha256>;
use sha2::Sha256;

#[derive(Debug, Clone)]
struct SiteKey {
    key: Vec<u8>,
    required: bool,
}

/// Signing keys by site; empty when no site signs (then checking costs nothing).
#[derive(Debug, Clone, Default)]
pub struct SigningKeys {
    sites: HashMap<String, SiteKey>,
}

#[derive(Debug, thiserror::Error)]
#[error("site {site:?}: signing_key_env names {var:?}, which is not set in the environment")]
pub struct MissingKey {
    pub site: String,
    pub var: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    payload: &'a RawValue,
    signature: &'a str,
}

/// The hex HMAC-SHA256 of `payload` under `key` (what a platform sends as `signature`).
pub fn sign(key: &[u8], payload: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(payload);
    hex::encode(mac.finalize().into_bytes())
}

impl SigningKeys {
    /// Keys from the environment variables the sites name.
    pub fn from_config(declared: &[SiteConfig]) -> Result<SigningKeys, MissingKey> {
        let mut sites = HashMap::new();
        for s in declared {
            let Some(var) = &s.signing_key_env else {
                continue;
            };
            let key = std::env::var(var).map_err(|_| MissingKey {
                site: s.id.clone(),
                var: var.clone(),
            })?;
            sites.insert(
                s.id.clone(),
                SiteKey {
                    key: key.into_bytes(),
                    required: s.require_signature,
                },
            );
        }
        Ok(SigningKeys { sites })
    }

    /// Keys given directly (tests, simulators).
    pub fn with(sites: &[(&str, &[u8], bool)]) -> SigningKeys {
        SigningKeys {
            sites: sites
                .iter()
                .map(|(s, k, r)| {
                    (
                        s.to_string(),
                        SiteKey {
                            key: k.to_vec(),
                            required: *r,
                        },
                    )
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }

    /// The message to parse for `site`: the payload itself, or the inside of a verified
    /// envelope; or why it is refused.
    pub fn check<'a>(
        &self,
        site: &str,
        payload: &'a [u8],
    ) -> Result<Cow<'a, [u8]>, (Reason, String)> {
        let (inner, signature) = self.open(payload);
        self.verdict(site, &inner, signature.as_deref())?;
        Ok(inner)
    }

    /// For a message whose sites are known only once it is mapped: the bytes to map (the
    /// inside of an envelope, if it is one) and the envelope's signature.
    pub fn open<'a>(&self, payload: &'a [u8]) -> (Cow<'a, [u8]>, Option<String>) {
        match serde_json::from_slice::<Envelope>(payload) {
            Ok(e) => (
                Cow::Owned(e.payload.get().as_bytes().to_vec()),
                Some(e.signature.to_string()),
            ),
            Err(_) => (Cow::Borrowed(payload), None),
        }
    }

    /// The readings among `events` (mapped from `inner`, signed with `signature` if it
    /// came in an envelope), each checked as [`SigningKeys::check`] checks a message for
    /// its site: a reading that fails becomes its refusal.
    pub fn check_readings(
        &self,
        inner: &[u8],
        signature: Option<&str>,
        events: &mut [crate::core::SourceEvent],
    ) {
        use crate::core::SourceEvent;
        if self.is_empty() && signature.is_none() {
            return;
        }
        let mut verdicts: HashMap<compact_str::CompactString, Result<(), (Reason, String)>> =
            HashMap::new();
        for ev in events.iter_mut() {
            let SourceEvent::Reading { reading, .. } = ev else {
                continue;
            };
            let verdict = verdicts
                .entry(reading.site.clone())
                .or_insert_with(|| self.verdict(&reading.site, inner, signature));
            if let Err((reason, detail)) = verdict.clone() {
                ev.refuse(reason, detail);
            }
        }
    }

    /// Whether `inner`, signed with `signature` (or not), may be taken for `site`.
    fn verdict(
        &self,
        site: &str,
        inner: &[u8],
        signature: Option<&str>,
    ) -> Result<(), (Reason, String)> {
        let key = self.sites.get(site);
        match (signature, key) {
            (None, Some(k)) if k.required => Err((
                Reason::MissingSignature,
                format!(
                    "site {site:?} requires signed messages: {{\"payload\": …, \"signature\": \"<hex HMAC-SHA256>\"}}"
                ),
            )),
            (None, _) => Ok(()),
            (Some(_), None) => Err((
                Reason::BadSignature,
                format!("the message is signed but site {site:?} has no signing key configured"),
            )),
            (Some(sig), Some(k)) => {
                let mut mac =
                    HmacSha256::new_from_slice(&k.key).expect("HMAC takes keys of any length");
                mac.update(inner);
                let given = hex::decode(sig.trim()).unwrap_or_default();
                mac.verify_slice(&given).map_err(|_| {
                    (
                        Reason::BadSignature,
                        format!("the signature does not match the payload under site {site:?}'s key"),
                    )
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_missing_and_forged() {
        let keys = SigningKeys::with(&[("a", b"key-a", true), ("b", b"key-b", false)]);
        let inner = br#"{"values":{"lel":1.5}}"#;
        let env = |key: &[u8]| {
            format!(
                r#"{{"payload": {}, "signature": "{}"}}"#,
                std::str::from_utf8(inner).unwrap(),
                sign(key, inner)
            )
        };
        assert_eq!(
            keys.check("a", env(b"key-a").as_bytes()).unwrap().as_ref(),
            inner
        );
        assert_eq!(
            keys.check("a", inner).unwrap_err().0,
            Reason::MissingSignature
        );
        assert_eq!(
            keys.check("a", env(b"key-b").as_bytes()).unwrap_err().0,
            Reason::BadSignature,
            "another site's key is a forgery here"
        );
        // Not required: unsigned passes, a wrong signature still does not.
        assert_eq!(keys.check("b", inner).unwrap().as_ref(), inner);
        assert_eq!(
            keys.check("b", env(b"key-a").as_bytes()).unwrap_err().0,
            Reason::BadSignature
        );
        // A site without a key cannot verify a signature.
        assert_eq!(
            keys.check("c", env(b"key-a").as_bytes()).unwrap_err().0,
            Reason::BadSignature
        );
        assert_eq!(keys.check("c", inner).unwrap().as_ref(), inner);
        // One changed byte inside the payload breaks it.
        let tampered = env(b"key-a").replace("1.5", "0.5");
        assert_eq!(
            keys.check("a", tampered.as_bytes()).unwrap_err().0,
            Reason::BadSignature
        );
    }
    #[test]
    fn mapped_readings_are_checked_for_the_site_each_names() {
        use crate::core::{Origin, RawReading, ReadingStatus, SourceEvent};
        let keys = SigningKeys::with(&[("a", b"key-a", true), ("b", b"key-b", false)]);
        let reading = |site: &str| SourceEvent::Reading {
            reading: RawReading {
                site: site.into(),
                device: "d".into(),
                ts_ms: None,
                values: vec![("v".into(), 1.0)],
                status: ReadingStatus::Normal,
                cause: None,
            },
            origin: Origin {
                topic: "vendor/x".into(),
                element: Some(0),
            },
            received_ms: 0,
        };
        let reasons = |evs: &[SourceEvent]| -> Vec<Option<Reason>> {
            evs.iter()
                .map(|e| match e {
                    SourceEvent::Rejected(r) => Some(r.reason),
                    _ => None,
                })
                .collect()
        };
        let inner = br#"[{"site":"a"},{"site":"b"},{"site":"c"}]"#;
        let envelope = format!(
            r#"{{"payload": {}, "signature": "{}"}}"#,
            std::str::from_utf8(inner).unwrap(),
            sign(b"key-a", inner)
        );
        let (opened, sig) = keys.open(envelope.as_bytes());
        assert_eq!(opened.as_ref(), inner);
        let mut evs = vec![reading("a"), reading("b"), reading("c")];
        keys.check_readings(&opened, sig.as_deref(), &mut evs);
        // Signed with a's key: good for a, a forgery for b, unverifiable for c.
        assert_eq!(
            reasons(&evs),
            vec![None, Some(Reason::BadSignature), Some(Reason::BadSignature)]
        );
        let mut evs = vec![reading("a"), reading("b"), reading("c")];
        keys.check_readings(inner, None, &mut evs);
        assert_eq!(
            reasons(&evs),
            vec![Some(Reason::MissingSignature), None, None]
        );
    }
}
