//! Read connections to `state.db` kept open for the API and reports.
//!
//! Opening one costs a file open, a schema check and loading the units table (one row per
//! site, system and device: 100,000 rows at a large deployment), which every query used to
//! pay. A few read-only connections are kept instead; a connection that failed is dropped,
//! and the next query opens a fresh one.

use super::{Journal, StateError};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Idle connections kept at most; more concurrent queries open (and then close) their own.
const KEEP_IDLE: usize = 4;

pub struct ReadPool {
    data_dir: PathBuf,
    idle: Mutex<Vec<Journal>>,
    /// The unit keys every connection shares, with their largest key.
    keys: Mutex<SharedKeys>,
}

type SharedKeys = Option<super::journal::Keys>;

impl ReadPool {
    pub fn new(data_dir: &Path) -> ReadPool {
        ReadPool {
            data_dir: data_dir.to_path_buf(),
            idle: Mutex::new(Vec::new()),
            keys: Mutex::new(None),
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Run `f` on a read connection. Blocking (SQLite): call from `spawn_blocking`.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&Journal) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        let kept = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut j = match kept {
            Some(j) => j,
            None => Journal::open_read(&self.data_dir)?,
        };
        // The writer adds units as the inventory grows; a kept connection catches up first.
        let newest = j.newest_key()?;
        {
            let mut shared = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            match shared.as_ref() {
                Some(keys) if keys.max_key() == newest => j.share_keys(keys.clone()),
                _ => *shared = Some(j.reload_keys_if_grown(newest)?),
            }
        }
        let out = f(&j)?;
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < KEEP_IDLE {
            idle.push(j);
        }
        Ok(out)
    }
}

impl std::fmt::Debug for ReadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadPool")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::inventory::test_file;
    use crate::core::Inventory;

    fn inventory(devices: &[&str]) -> Inventory {
        let mut t = String::from("[[sites]]\nid = \"s\"\nname = \"S\"\nkind = \"park\"\n");
        for d in devices {
            t.push_str(&format!(
                "[[devices]]\nid = \"{d}\"\nsite = \"s\"\nkind = \"temperature\"\nprotocol = \"mqtt\"\ninterval_s = 1\n"
            ));
        }
        Inventory::from_config(&test_file(&t).inventory)
    }

    #[test]
    fn a_kept_connection_sees_units_the_writer_added_after_it_opened() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Journal::open(dir.path()).unwrap();
        w.sync_registry(&inventory(&["a"]), 100).unwrap();
        let pool = ReadPool::new(dir.path());
        let count = |p: &ReadPool| p.with(|j| Ok(j.keys.len())).unwrap();
        let before = count(&pool);
        assert_eq!(pool.idle.lock().unwrap().len(), 1, "the connection is kept");
        w.sync_registry(&inventory(&["a", "b"]), 200).unwrap();
        assert_eq!(count(&pool), before + 1, "device b's key is seen");
        assert_eq!(
            pool.idle.lock().unwrap().len(),
            1,
            "and the same one reused"
        );
    }

    #[test]
    fn a_missing_state_file_is_an_error_and_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let pool = ReadPool::new(dir.path());
        assert!(matches!(pool.with(|_| Ok(())), Err(StateError::Missing(_))));
        assert!(pool.idle.lock().unwrap().is_empty());
    }
}
