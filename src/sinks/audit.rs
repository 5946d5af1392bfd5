//! The audit trail: who did what, when, from where. One JSON line per event in
//! `data_dir/audit.log` (appended and flushed per event, so it survives a crash of the
//! gateway), and a point of measurement `audit` in the store. Events: the configuration in
//! force at start (with each file's SHA-256), every alarm acknowledgement, and bursts of
//! refused API requests.

use crate::model::{now_ms, rfc3339_ms};
use crate::sinks::record::{AuditEvent, Record};
use crate::sinks::store::StoreQueue;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Refusals from one (reason, peer address) are written once per this window, with their count.
const BURST_WINDOW_MS: i64 = 10_000;

/// (reason, peer address) → (window start, refusals held back).
type BurstKey = (&'static str, String);

pub struct AuditLog {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
    store: Mutex<Option<StoreQueue>>,
    bursts: Mutex<HashMap<BurstKey, (i64, u64)>>,
    /// A full disk fails every write: one line per 10 s, with the count in between.
    warn: crate::telemetry::RateLimitedLog,
}

impl AuditLog {
    pub fn open(data_dir: &Path) -> std::io::Result<AuditLog> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join("audit.log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        Ok(AuditLog {
            path,
            file: Mutex::new(Some(file)),
            store: Mutex::new(None),
            bursts: Mutex::default(),
            warn: crate::telemetry::RateLimitedLog::new(10_000),
        })
    }

    /// Also write events to the store, from now on.
    pub fn set_store(&self, q: Option<StoreQueue>) {
        *self.store.lock().unwrap_or_else(|p| p.into_inner()) = q;
    }

    pub fn record(
        &self,
        action: &'static str,
        who: &str,
        from: &str,
        count: u64,
        detail: serde_json::Value,
    ) {
        let at_ms = now_ms();
        let ev = AuditEvent {
            at: rfc3339_ms(at_ms),
            at_ms,
            action,
            who: who.to_string(),
            from: from.to_string(),
            count,
            detail,
        };
        let mut line = serde_json::to_vec(&ev).unwrap_or_default();
        line.push(b'\n');
        if let Some(f) = self.file.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            if let Err(e) = f.write_all(&line).and_then(|_| f.flush()) {
                if let Some(suppressed) = self.warn.allow("audit_write", at_ms) {
                    tracing::error!(path = %self.path.display(), error = %e, suppressed, "cannot write the audit log");
                }
            }
        }
        if let Some(q) = self
            .store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            q.push(Record::Audit(ev));
        }
    }

    /// A refused API request: the first of a (reason, peer) is written at once, the rest of
    /// its burst as one event with the count when the next one comes after the window.
    pub fn refused(&self, reason: &'static str, who: &str, from: &str) {
        self.refused_at("api_refused", reason, who, from, now_ms())
    }

    /// The same for the embedded broker's guard: a refused login, publish or subscribe.
    pub fn mqtt_refused(&self, reason: &'static str, who: &str, from: &str) {
        self.refused_at("mqtt_refused", reason, who, from, now_ms())
    }

    fn refused_at(
        &self,
        action: &'static str,
        reason: &'static str,
        who: &str,
        from: &str,
        now: i64,
    ) {
        // By address, not port: each request of a burst may come on a new connection.
        let host = from.rsplit_once(':').map_or(from, |(h, _)| h);
        let key = (reason, host.to_string());
        let emit = {
            let mut b = self.bursts.lock().unwrap_or_else(|p| p.into_inner());
            if b.len() > 10_000 {
                b.retain(|_, (start, _)| now - *start < BURST_WINDOW_MS);
            }
            match b.get_mut(&key) {
                Some((start, n)) if now - *start < BURST_WINDOW_MS => {
                    *n += 1;
                    None
                }
                Some((start, n)) => {
                    let held = *n;
                    *start = now;
                    *n = 0;
                    Some(held + 1)
                }
                None => {
                    b.insert(key, (now, 0));
                    Some(1)
                }
            }
        };
        if let Some(count) = emit {
            self.record(
                action,
                who,
                from,
                count,
                serde_json::json!({ "reason": reason }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_refusals_is_one_line_then_its_count() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        for i in 0..5 {
            log.refused_at(
                "api_refused",
                "invalid_token",
                "-",
                &format!("10.0.0.7:{}", 4000 + i),
                1_000 + i,
            );
        }
        log.refused_at("api_refused", "invalid_token", "-", "10.0.0.8:5000", 1_010);
        log.refused_at(
            "api_refused",
            "invalid_token",
            "-",
            "10.0.0.7:4999",
            1_000 + BURST_WINDOW_MS + 1,
        );
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(dir.path().join("audit.log"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let counts: Vec<(String, u64)> = lines
            .iter()
            .map(|l| {
                (
                    l["from"].as_str().unwrap().to_string(),
                    l["count"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            counts,
            vec![
                ("10.0.0.7:4000".to_string(), 1),
                ("10.0.0.8:5000".to_string(), 1),
                // The four held back, and this one.
                ("10.0.0.7:4999".to_string(), 5),
            ]
        );
    }
}
