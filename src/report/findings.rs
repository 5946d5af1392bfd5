//! The report's compliance findings: what the sources found wrong in what they declared (a
//! mine's CDDY thresholds looser than 煤矿安全规程), as of the inventory the report was
//! computed on. They change no indicator; they are listed for the auditor.

use crate::core::inventory::Inventory;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingRow {
    pub site: String,
    /// The source that declared the unit, e.g. `mine_files`.
    pub source: String,
    pub unit: String,
    pub check: &'static str,
    pub declared: Option<f64>,
    pub limit: String,
    pub basis: &'static str,
    pub text: String,
}

/// Every finding of the sites in the inventory, by site, unit and check.
pub fn rows(inv: &Inventory) -> Vec<FindingRow> {
    let mut out: Vec<FindingRow> = inv
        .findings
        .iter()
        .filter(|((site, _), _)| !inv.sites[*site as usize].removed)
        .flat_map(|((site, source), list)| {
            list.iter().map(move |f| FindingRow {
                site: inv.sites[*site as usize].id.to_string(),
                source: source.to_string(),
                unit: f.unit.clone(),
                check: f.check,
                declared: f.declared,
                limit: f.limit.clone(),
                basis: f.basis,
                text: f.text.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.site, &a.unit, a.check).cmp(&(&b.site, &b.unit, b.check)));
    out
}
