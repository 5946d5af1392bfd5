//! Compaction: transitions appended since the last run are folded into one packed blob per
//! device (`timeline`), so reading a year of history costs one row per device.

use super::journal::{Journal, StateError};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;

/// A transition as 8 bytes: time in ms shifted left, the online bit below it.
pub(super) fn pack(at_ms: i64, online: bool) -> [u8; 8] {
    ((at_ms << 1) | online as i64).to_le_bytes()
}

pub(super) fn unpack(b: &[u8]) -> (i64, bool) {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    let v = i64::from_le_bytes(a);
    (v >> 1, v & 1 == 1)
}

impl Journal {
    /// The id of the last transition folded into the timeline (0: none yet).
    pub(super) fn watermark(&self) -> Result<i64, StateError> {
        watermark(&self.conn).map_err(|e| self.err(e))
    }

    /// Fold transitions appended since the last compaction into one packed blob per device
    /// (`timeline`), so reading a year of history costs one row per device instead of one
    /// per transition. The `transitions` table stays as the audit log; the blob is a copy.
    /// Returns how many transitions were folded.
    pub fn compact(&mut self) -> Result<usize, StateError> {
        self.in_transaction(|tx, _| fold(tx))
    }
}

fn watermark(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT value FROM meta WHERE key = 'compacted_id'",
        [],
        |r| r.get(0),
    )
    .optional()
    .map(|w| w.unwrap_or(0))
}

/// The compaction itself, inside the caller's transaction.
fn fold(tx: &Connection) -> rusqlite::Result<usize> {
    let w = watermark(tx)?;
    let mut per_unit: HashMap<i64, Vec<u8>> = HashMap::new();
    let (mut max_id, mut n) = (w, 0usize);
    {
        let mut st = tx
            .prepare("SELECT id, unit, at_ms, online FROM transitions WHERE id > ?1 ORDER BY id")?;
        let mut rows = st.query(params![w])?;
        while let Some(r) = rows.next()? {
            let (id, unit, at, on): (i64, i64, i64, i64) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            per_unit
                .entry(unit)
                .or_default()
                .extend_from_slice(&pack(at, on != 0));
            max_id = id;
            n += 1;
        }
    }
    // SQL's || would turn blobs into text: append in Rust.
    let mut read = tx.prepare_cached("SELECT data FROM timeline WHERE unit = ?1")?;
    let mut write =
        tx.prepare_cached("INSERT OR REPLACE INTO timeline(unit, data) VALUES (?1, ?2)")?;
    for (unit, data) in per_unit {
        let mut blob: Vec<u8> = read
            .query_row(params![unit], |r| r.get(0))
            .optional()?
            .unwrap_or_default();
        blob.extend_from_slice(&data);
        write.execute(params![unit, blob])?;
    }
    tx.execute(
        "INSERT INTO meta(key, value) VALUES ('compacted_id', ?1)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![max_id],
    )?;
    Ok(n)
}
