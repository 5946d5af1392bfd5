//! What loading produces: the configuration with where each entry came from, and the
//! problems found, each located by file and key.

use super::Config;
use std::fmt;
use std::path::PathBuf;

/// One problem in the configuration, located by file and key so a field engineer can fix it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// `devices[3] (id "gas-7").site`, or a line/column for a syntax error.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.key, self.message)
        }
    }
}

/// Where an inventory entry came from: its file and its index in that file's array.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    pub sites: Vec<(usize, usize)>,
    pub enterprises: Vec<(usize, usize)>,
    pub zones: Vec<(usize, usize)>,
    pub systems: Vec<(usize, usize)>,
    pub devices: Vec<(usize, usize)>,
}

/// A configuration that parsed and validated.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    /// The main file first, then every included file, in merge order.
    pub files: Vec<PathBuf>,
    pub origins: Origins,
}

impl LoadedConfig {
    /// `file: devices[3] (id "x")`, for messages about one entry.
    pub fn locate(&self, array: &str, origin: (usize, usize), id: &str) -> (PathBuf, String) {
        (
            self.files[origin.0].clone(),
            format!("{array}[{}] (id {id:?})", origin.1),
        )
    }
}
