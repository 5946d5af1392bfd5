//! The configuration loader on any text, and what the gateway builds from a configuration
//! that loads. Texts that could name an include are skipped: the loader would glob the
//! filesystem for them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.contains("include") || text.contains("\\u") || text.contains("\\U") {
        return;
    }
    match safegate::config::load_str(Path::new("t.toml"), text, Path::new(".")) {
        Ok(l) => {
            let inv = safegate::core::Inventory::from_config(&l.config);
            let rules = safegate::core::alarms::rules::AlarmRules::from_config(&l.config, &inv);
            let _ = safegate::config::summary(&l.config);
            let mut core =
                safegate::core::Core::new(inv, 300_000, l.config.gateway.recent_rejections);
            core.set_alarm_rules(rules);
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in &errors {
                assert!(!e.message.trim().is_empty(), "{e:?}");
            }
        }
    }
});
