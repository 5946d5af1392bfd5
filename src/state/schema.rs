//! The one definition of `state.db`'s tables, and its versions.
//!
//! `PRAGMA user_version` says which version of this schema a file holds. Files written before
//! versioning say 0 and already hold version 1's tables, so their migration only records the
//! version. A later change adds a step to `MIGRATIONS`; a file from a newer safegate is
//! refused rather than misread.

use super::rows::StateError;
use rusqlite::Connection;
use std::path::Path;

/// The version this build writes.
pub const VERSION: i64 = 3;

/// Version 1: the journal (units, transitions, registry, last-seen times, links, the
/// compacted timeline, poll and latency counts) and the alarms with their events.
const V1: &str = "
    CREATE TABLE IF NOT EXISTS units (
        key INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        site TEXT NOT NULL,
        id TEXT NOT NULL,
        UNIQUE (kind, site, id));
    CREATE TABLE IF NOT EXISTS transitions (
        id INTEGER PRIMARY KEY,
        unit INTEGER NOT NULL,
        at_ms INTEGER NOT NULL,
        online INTEGER NOT NULL,
        cause TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS transitions_by_unit ON transitions(unit, at_ms);
    CREATE TABLE IF NOT EXISTS registry (
        id INTEGER PRIMARY KEY,
        unit INTEGER NOT NULL,
        at_ms INTEGER NOT NULL,
        status TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS last_seen (
        unit INTEGER PRIMARY KEY,
        last_seen_ms INTEGER NOT NULL,
        fault INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE IF NOT EXISTS links (
        id INTEGER PRIMARY KEY,
        link TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        up INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS timeline (
        unit INTEGER PRIMARY KEY,
        data BLOB NOT NULL);
    CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS polls (
        link TEXT NOT NULL,
        minute_ms INTEGER NOT NULL,
        ok INTEGER NOT NULL,
        failed INTEGER NOT NULL,
        PRIMARY KEY (link, minute_ms)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS latency (
        site TEXT NOT NULL,
        minute_ms INTEGER NOT NULL,
        bucket INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (site, minute_ms, bucket)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS alarms (
        id INTEGER PRIMARY KEY,
        site TEXT NOT NULL,
        device TEXT NOT NULL,
        kind TEXT NOT NULL,
        type TEXT NOT NULL,
        channel TEXT,
        scheme TEXT NOT NULL,
        level INTEGER NOT NULL,
        raised_ms INTEGER NOT NULL,
        deadline_ms INTEGER NOT NULL,
        value REAL,
        peak REAL,
        ack_ms INTEGER,
        ack_by TEXT,
        ack_note TEXT,
        ack_via TEXT,
        cleared_ms INTEGER);
    CREATE INDEX IF NOT EXISTS alarms_by_raise ON alarms(raised_ms);
    CREATE INDEX IF NOT EXISTS alarms_open ON alarms(id) WHERE ack_ms IS NULL OR cleared_ms IS NULL;
    CREATE TABLE IF NOT EXISTS alarm_events (
        alarm INTEGER NOT NULL,
        at_ms INTEGER NOT NULL,
        event TEXT NOT NULL,
        level INTEGER NOT NULL,
        value REAL,
        by TEXT,
        note TEXT,
        via TEXT);
    CREATE INDEX IF NOT EXISTS alarm_events_by_alarm ON alarm_events(alarm);";

/// Version 2: devices' conditions (normal, fault, maintenance) with their causes, as they
/// change: what takes maintenance out of the counted time and names faults in the reasons.
const V2: &str = "
    CREATE TABLE IF NOT EXISTS conditions (
        id INTEGER PRIMARY KEY,
        unit INTEGER NOT NULL,
        at_ms INTEGER NOT NULL,
        condition TEXT NOT NULL,
        cause TEXT);
    CREATE INDEX IF NOT EXISTS conditions_by_unit ON conditions(unit, at_ms);";

/// Version 3: cluster mode's checkpoint, the stream position this journal holds exactly
/// (docs/scaling.md, "Checkpoints"): one row, written in the transaction it ends, with the
/// mines' state at that position (their last CDDY, the rest, the files they applied).
const V3: &str = "
    CREATE TABLE IF NOT EXISTS cluster_checkpoint (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        sequence INTEGER NOT NULL,
        stream_ms INTEGER NOT NULL,
        stream_created_ns INTEGER NOT NULL,
        state BLOB NOT NULL,
        written_ms INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS cluster_devices (
        site TEXT NOT NULL,
        device TEXT NOT NULL,
        entry BLOB NOT NULL,
        PRIMARY KEY (site, device));
    CREATE TABLE IF NOT EXISTS cluster_mines (
        mine TEXT PRIMARY KEY,
        state BLOB NOT NULL,
        cddy_name TEXT,
        cddy BLOB,
        cddy_ms INTEGER);
    CREATE TABLE IF NOT EXISTS cluster_seen (
        id INTEGER PRIMARY KEY,
        mine TEXT NOT NULL,
        name TEXT NOT NULL,
        digest BLOB NOT NULL);
    CREATE INDEX IF NOT EXISTS cluster_seen_by_mine ON cluster_seen(mine, id);";
/// Steps from version `i` to `i + 1`; `IF NOT EXISTS` everywhere, so a step is safe on a
/// file that already holds some of it.
const MIGRATIONS: [&str; 3] = [V1, V2, V3];

/// The version `conn` holds.
pub fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Bring the file to `VERSION`, each step in its own transaction with its version.
pub fn migrate(conn: &Connection, path: &Path) -> Result<(), StateError> {
    let db = |e| StateError::Db(path.to_path_buf(), e);
    let found = version(conn).map_err(db)?;
    check_not_newer(found, path)?;
    for (from, step) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        let tx = conn.unchecked_transaction().map_err(db)?;
        tx.execute_batch(step).map_err(db)?;
        tx.execute_batch(&format!("PRAGMA user_version = {};", from + 1))
            .map_err(db)?;
        tx.commit().map_err(db)?;
    }
    Ok(())
}

/// A reader can read any version up to this build's, but never a newer one.
pub fn check_not_newer(found: i64, path: &Path) -> Result<(), StateError> {
    if found > VERSION {
        return Err(StateError::Newer {
            path: path.to_path_buf(),
            found,
            supported: VERSION,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{AlarmFilter, Journal};

    /// `tests/data/state-v0.db` was written by the release before versioning, by
    /// `scripts/make-state-fixture.sh` (not by hand): g1 raised an alarm that was
    /// acknowledged, o1 went offline at its deadline.
    fn release_file() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/state-v0.db");
        std::fs::copy(fixture, dir.path().join("state.db")).unwrap();
        dir
    }

    #[test]
    fn a_state_db_of_the_release_before_versioning_is_migrated_and_reads_the_same() {
        let dir = release_file();
        let before = Journal::open_read(dir.path()).unwrap();
        assert_eq!(version(&before.conn).unwrap(), 0);
        let latest = before.load_latest().unwrap();
        drop(before);
        let j = Journal::open(dir.path()).unwrap();
        assert_eq!(version(&j.conn).unwrap(), VERSION);
        assert_eq!(
            j.load_latest().unwrap(),
            latest,
            "the same state after migration"
        );
        let state = |d: &str| {
            latest
                .iter()
                .find(|s| s.device == d)
                .unwrap()
                .last_transition
        };
        assert!(matches!(state("g1"), Some((true, _))), "{latest:?}");
        assert!(matches!(state("o1"), Some((false, _))), "{latest:?}");
        let f = AlarmFilter {
            limit: 10,
            ..Default::default()
        };
        let alarms = j.alarms(&f, 0).unwrap();
        let g1 = alarms.iter().find(|a| a.device == "g1").unwrap();
        assert_eq!(g1.acknowledged_by.as_deref(), Some("fixture"));
        assert!(alarms.iter().any(|a| a.device == "o1"), "{alarms:?}");
        drop(j);
        // Opening again changes nothing.
        let j = Journal::open(dir.path()).unwrap();
        assert_eq!(version(&j.conn).unwrap(), VERSION);
        assert_eq!(j.load_latest().unwrap(), latest);
    }

    #[test]
    fn a_new_file_starts_at_the_current_version() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        assert_eq!(version(&j.conn).unwrap(), VERSION);
    }

    #[test]
    fn a_file_from_a_newer_safegate_is_refused_not_misread() {
        let dir = release_file();
        let c = Connection::open(dir.path().join("state.db")).unwrap();
        c.execute_batch("PRAGMA user_version = 99;").unwrap();
        drop(c);
        for e in [
            Journal::open(dir.path()).err().unwrap(),
            Journal::open_read(dir.path()).err().unwrap(),
        ] {
            let msg = e.to_string();
            assert!(msg.contains("version 99") && msg.contains("newer"), "{msg}");
        }
    }
}
