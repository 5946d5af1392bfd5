//! Reading the main file and its includes, then validating the merged whole.

use super::loaded::{ConfigError, LoadedConfig, Origins};
use super::pieces::{self, PIECE_BYTES};
use super::{Config, InventoryConfig};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Load `path` and its includes; every problem found is returned, not just the first.
pub fn load(path: &Path) -> Result<LoadedConfig, Vec<ConfigError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            file: path.to_path_buf(),
            key: String::new(),
            message: format!("cannot read the configuration file: {e}"),
        }]
    })?;
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    load_inner(path, &text, &base)
}

/// Load from a string (tests, embedded demo); includes resolve against `base`.
pub fn load_str(name: &Path, text: &str, base: &Path) -> Result<LoadedConfig, Vec<ConfigError>> {
    load_inner(name, text, base)
}

fn syntax_error(file: &Path, e: toml::de::Error) -> ConfigError {
    // toml's message already carries line, column and the offending key.
    ConfigError {
        file: file.to_path_buf(),
        key: String::new(),
        message: e.to_string().trim_end().replace('\n', "\n    "),
    }
}

/// A file as `T` and the entries after its own sections: in pieces when it is large (the
/// document tree of a whole large inventory was the start-up peak), whole otherwise and
/// whenever the pieces do not add up, so errors are always the whole file's.
fn parse<T: DeserializeOwned>(text: &str) -> Result<(T, InventoryConfig), toml::de::Error> {
    match pieces::parse(text, PIECE_BYTES) {
        Some(parsed) => Ok(parsed),
        None => toml::from_str(text).map(|t| (t, InventoryConfig::default())),
    }
}

fn load_inner(path: &Path, text: &str, base: &Path) -> Result<LoadedConfig, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let (main, entries) =
        parse::<super::MainFile>(text).map_err(|e| vec![syntax_error(path, e)])?;
    let mut config: Config = main.into();
    pieces::append(&mut config.inventory, entries);
    let mut files = vec![path.to_path_buf()];
    let mut origins = Origins::default();
    push_origins(&mut origins, &config.inventory, 0);

    for pattern in config.include.clone() {
        let full = base.join(&pattern);
        let full_str = full.to_string_lossy().to_string();
        let paths = match glob::glob(&full_str) {
            Ok(p) => p,
            Err(e) => {
                errors.push(ConfigError {
                    file: path.to_path_buf(),
                    key: "include".into(),
                    message: format!("bad pattern {pattern:?}: {e}"),
                });
                continue;
            }
        };
        let mut matched: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
        matched.sort();
        if matched.is_empty() {
            errors.push(ConfigError {
                file: path.to_path_buf(),
                key: "include".into(),
                message: format!(
                    "pattern {pattern:?} matches no file (looked in {})",
                    base.display()
                ),
            });
        }
        for file in matched {
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(ConfigError {
                        file: file.clone(),
                        key: String::new(),
                        message: format!("cannot read included file: {e}"),
                    });
                    continue;
                }
            };
            match parse::<InventoryConfig>(&text) {
                Ok((mut inv, entries)) => {
                    pieces::append(&mut inv, entries);
                    let idx = files.len();
                    files.push(file);
                    push_origins(&mut origins, &inv, idx);
                    pieces::append(&mut config.inventory, inv);
                }
                Err(e) => errors.push(syntax_error(&file, e)),
            }
        }
    }

    video_timing(&mut config);
    let loaded = LoadedConfig {
        config,
        files,
        origins,
    };
    errors.extend(super::validate::validate(&loaded));
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(errors)
    }
}

/// A `protocol = "gb28181"` device's liveness is its signalling's: its `interval_s` is
/// `[video] keepalive_s` and its `offline_after_s` is `keepalive_s × keepalive_misses`,
/// whatever the file says (docs/video.md), so the core turns it offline exactly when the
/// video registry does.
fn video_timing(config: &mut Config) {
    let Some(v) = &config.video else { return };
    let interval = v.keepalive_s as f64;
    let after = interval * f64::from(v.keepalive_misses);
    for d in &mut config.inventory.devices {
        if d.protocol == crate::model::Protocol::Gb28181 {
            d.interval_s = interval;
            d.offline_after_s = Some(after);
        }
    }
}

fn push_origins(o: &mut Origins, inv: &InventoryConfig, file: usize) {
    o.sites.extend((0..inv.sites.len()).map(|i| (file, i)));
    o.enterprises
        .extend((0..inv.enterprises.len()).map(|i| (file, i)));
    o.zones.extend((0..inv.zones.len()).map(|i| (file, i)));
    o.systems.extend((0..inv.systems.len()).map(|i| (file, i)));
    o.devices.extend((0..inv.devices.len()).map(|i| (file, i)));
}
