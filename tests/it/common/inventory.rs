//! Test inventories, built instead of copied as TOML:
//! `Inventory::park("p1").detector("a", 60.0).with("offline_after_s = 1").to_toml()`.

/// The `[[sites]]` and `[[devices]]` of a test configuration, in the order they were added.
/// Devices belong to the site added last.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    toml: String,
    site: String,
}

impl Inventory {
    /// Site `id`, named "Park", of kind park.
    pub fn park(id: &str) -> Inventory {
        Inventory::default().site(id, "Park", "park")
    }

    /// Another site; the devices added next belong to it.
    pub fn site(mut self, id: &str, name: &str, kind: &str) -> Inventory {
        self.toml.push_str(&format!(
            "[[sites]]\nid = \"{id}\"\nname = \"{name}\"\nkind = \"{kind}\"\n\n"
        ));
        self.site = id.to_string();
        self
    }

    /// An enterprise of the current site.
    pub fn enterprise(self, id: &str, name: &str) -> Inventory {
        self.part_of("enterprises", id, name)
    }

    /// A zone of the current site.
    pub fn zone(self, id: &str, name: &str) -> Inventory {
        self.part_of("zones", id, name)
    }

    fn part_of(mut self, table: &str, id: &str, name: &str) -> Inventory {
        self.toml.push_str(&format!(
            "[[{table}]]\nid = \"{id}\"\nsite = \"{}\"\nname = \"{name}\"\n\n",
            self.site
        ));
        self
    }

    /// An MQTT device of the current site.
    pub fn device(mut self, id: &str, kind: &str, interval_s: f64) -> Inventory {
        self.toml.push_str(&format!(
            "[[devices]]\nid = \"{id}\"\nsite = \"{}\"\nkind = \"{kind}\"\nprotocol = \"mqtt\"\ninterval_s = {interval_s}\n\n",
            self.site
        ));
        self
    }

    /// An MQTT combustible-gas detector of the current site.
    pub fn detector(self, id: &str, interval_s: f64) -> Inventory {
        self.device(id, "gas_combustible", interval_s)
    }

    /// A detector for each of `ids`.
    pub fn detectors(self, ids: &[&str], interval_s: f64) -> Inventory {
        ids.iter()
            .fold(self, |inv, id| inv.detector(id, interval_s))
    }

    /// One more `key = value` line for the site or device added last.
    pub fn with(mut self, line: &str) -> Inventory {
        self.toml.pop(); // the blank line that closed the entry
        self.toml.push_str(line);
        self.toml.push_str("\n\n");
        self
    }

    /// TOML added as it is: `[[zones]]`, `[[targets]]`, `[alarms]` …
    pub fn raw(mut self, toml: &str) -> Inventory {
        self.toml.push_str(toml);
        self.toml.push('\n');
        self
    }

    pub fn to_toml(&self) -> String {
        self.toml.clone()
    }
}
