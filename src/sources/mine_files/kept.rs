//! Each mine's last point definitions (CDDY), kept under `data_dir/mine_files/<mine code>/`.
//! The points a CDDY declares live in the inventory only while the gateway runs; a mine
//! uploads its CDDY at start and when it changes, not with every CDSS. Without the kept copy,
//! a restarted gateway would refuse every CDSS as `unknown_device` until the mine's next
//! CDDY; with it, the points are declared again at start, before any new file is taken.

use std::path::{Path, PathBuf};

/// Where the kept files are; `None` keeps nothing (tests of the intake alone).
#[derive(Debug, Clone, Default)]
pub struct Kept {
    dir: Option<PathBuf>,
}

impl Kept {
    pub fn at(dir: PathBuf) -> Kept {
        Kept { dir: Some(dir) }
    }

    fn mine_dir(&self, code: &str) -> Option<PathBuf> {
        Some(self.dir.as_ref()?.join(code))
    }

    /// Keep `bytes` as the mine's last CDDY `name`, replacing the one before: written aside
    /// and renamed into place, so a crash leaves the old copy or the new, never half of one.
    pub fn keep(&self, code: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let Some(dir) = self.mine_dir(code) else {
            return Ok(());
        };
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(".CDDY.tmp");
        std::fs::write(&tmp, bytes)?;
        let path = dir.join(name);
        std::fs::rename(&tmp, &path)?;
        for old in txt_files(&dir)?.into_iter().filter(|p| *p != path) {
            std::fs::remove_file(old)?;
        }
        Ok(())
    }

    /// The mine's kept CDDY, (name, bytes), if there is one.
    pub fn last(&self, code: &str) -> Option<(String, Vec<u8>)> {
        let dir = self.mine_dir(code)?;
        let path = txt_files(&dir).ok()?.into_iter().max()?;
        let name = path.file_name()?.to_str()?.to_string();
        Some((name, std::fs::read(&path).ok()?))
    }
}

impl Kept {
    /// Note a file applied (its name and SHA-256), so that taken again after a restart it is
    /// known as a duplicate; the ledger keeps the last `keep` entries.
    pub fn applied(
        &self,
        code: &str,
        name: &str,
        hash: &[u8; 32],
        keep: usize,
    ) -> std::io::Result<()> {
        use std::io::Write;
        let Some(dir) = self.mine_dir(code) else {
            return Ok(());
        };
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("applied.log");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        writeln!(f, "{} {name}", hex::encode(hash))?;
        let len = f.metadata()?.len();
        // About 100 bytes a line: past twice the bound, keep the newest `keep`.
        if len > (keep as u64) * 200 {
            let lines = self.ledger(code);
            let tail = &lines[lines.len().saturating_sub(keep)..];
            let text: String = tail
                .iter()
                .map(|(n, h)| format!("{} {n}\n", hex::encode(h)))
                .collect();
            let tmp = dir.join(".applied.tmp");
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, &path)?;
        }
        Ok(())
    }

    /// The files noted as applied, oldest first; lines it cannot read are skipped.
    pub fn ledger(&self, code: &str) -> Vec<(String, [u8; 32])> {
        let Some(dir) = self.mine_dir(code) else {
            return Vec::new();
        };
        let text = std::fs::read_to_string(dir.join("applied.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let (h, n) = l.split_once(' ')?;
                let h: [u8; 32] = hex::decode(h).ok()?.try_into().ok()?;
                Some((n.to_string(), h))
            })
            .collect()
    }
}

fn txt_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "txt") {
            out.push(p);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_cddy_replaces_the_one_before() {
        let d = tempfile::tempdir().unwrap();
        let k = Kept::at(d.path().to_path_buf());
        assert_eq!(k.last("m"), None);
        k.keep("m", "m_CDDY_20260301080000.txt", b"one").unwrap();
        k.keep("m", "m_CDDY_20260301090000.txt", b"two").unwrap();
        assert_eq!(
            k.last("m"),
            Some(("m_CDDY_20260301090000.txt".to_string(), b"two".to_vec()))
        );
        assert_eq!(txt_files(&d.path().join("m")).unwrap().len(), 1);
        assert!(
            Kept::default().keep("m", "x.txt", b"").is_ok(),
            "keeps nothing"
        );
    }
}
