//! One device's catalog answers, put together: a catalog is answered in pages (MESSAGEs of a
//! few items each, GB/T 28181-2016 9.5.2), each with the query's `SN` and the total item
//! count `SumNum`. Pages may come out of order and, over UDP, twice. Items are gathered by
//! SN, keyed by their `DeviceID` (a page sent twice adds nothing), until there are `SumNum`
//! of them; pages still missing `timeout_ms` after a catalog's first page give it up.

use super::manscdp::{CatalogItem, CatalogPage};
use std::collections::{BTreeMap, VecDeque};

/// Catalogs of one device gathered at once; a further one drops the oldest.
const MAX_PENDING: usize = 4;
/// SNs of finished catalogs remembered, so that a late duplicate page starts nothing.
const RECENT: usize = 8;

/// What a page did.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// More pages are awaited: `have` distinct items of `of`.
    Partial { have: usize, of: u32 },
    /// The catalog is whole: its items, ordered by ID.
    Complete { sn: u32, items: Vec<CatalogItem> },
    /// A page of a catalog already finished or given up (a duplicate): nothing changes.
    Late,
}

/// Why a page was refused. `code()` is its metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("the catalog announces {sum_num} items, more than the {max} allowed (video.max_catalog_items)")]
    TooMany { sum_num: u32, max: usize },
    #[error("a page of catalog SN {sn} says SumNum {got}, its first page said {first}")]
    Inconsistent { sn: u32, first: u32, got: u32 },
}

impl CatalogError {
    pub fn code(&self) -> &'static str {
        match self {
            CatalogError::TooMany { .. } => "catalog_too_large",
            CatalogError::Inconsistent { .. } => "catalog_inconsistent",
        }
    }
}

/// A catalog given up: `have` of `of` items had arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    pub sn: u32,
    pub have: usize,
    pub of: u32,
}

#[derive(Debug)]
struct Pending {
    sn: u32,
    first_ms: i64,
    sum_num: u32,
    items: BTreeMap<String, CatalogItem>,
}

/// The catalogs of one device being gathered.
#[derive(Debug, Default)]
pub struct Accumulator {
    pending: Vec<Pending>,
    recent: VecDeque<u32>,
}

impl Accumulator {
    /// Takes one page (`<Response>`; change notifications are not gathered) received at `now`.
    pub fn page(
        &mut self,
        now: i64,
        page: CatalogPage,
        max_items: usize,
    ) -> Result<Progress, CatalogError> {
        if page.sum_num as usize > max_items {
            return Err(CatalogError::TooMany {
                sum_num: page.sum_num,
                max: max_items,
            });
        }
        if self.recent.contains(&page.sn) {
            return Ok(Progress::Late);
        }
        let at = match self.pending.iter().position(|p| p.sn == page.sn) {
            Some(at) => at,
            None => {
                if self.pending.len() >= MAX_PENDING {
                    let oldest = self.pending.remove(0);
                    self.remember(oldest.sn);
                }
                self.pending.push(Pending {
                    sn: page.sn,
                    first_ms: now,
                    sum_num: page.sum_num,
                    items: BTreeMap::new(),
                });
                self.pending.len() - 1
            }
        };
        let p = &mut self.pending[at];
        if p.sum_num != page.sum_num {
            let err = CatalogError::Inconsistent {
                sn: p.sn,
                first: p.sum_num,
                got: page.sum_num,
            };
            let sn = p.sn;
            self.pending.remove(at);
            self.remember(sn);
            return Err(err);
        }
        for item in page.items {
            if p.items.len() >= p.sum_num as usize && !p.items.contains_key(&item.device_id) {
                continue;
            }
            p.items.insert(item.device_id.clone(), item);
        }
        if p.items.len() < p.sum_num as usize {
            return Ok(Progress::Partial {
                have: p.items.len(),
                of: p.sum_num,
            });
        }
        let done = self.pending.remove(at);
        self.remember(done.sn);
        Ok(Progress::Complete {
            sn: done.sn,
            items: done.items.into_values().collect(),
        })
    }

    fn remember(&mut self, sn: u32) {
        if self.recent.len() >= RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(sn);
    }

    /// Gives up the catalogs whose first page came `timeout_ms` or more before `now`.
    pub fn expire(&mut self, now: i64, timeout_ms: u64) -> Vec<TimedOut> {
        let mut out = Vec::new();
        let mut kept = Vec::new();
        for p in self.pending.drain(..) {
            if now.saturating_sub(p.first_ms) >= timeout_ms as i64 {
                out.push(TimedOut {
                    sn: p.sn,
                    have: p.items.len(),
                    of: p.sum_num,
                });
            } else {
                kept.push(p);
            }
        }
        self.pending = kept;
        for t in &out {
            self.remember(t.sn);
        }
        out
    }

    /// When the oldest catalog being gathered is given up, if any is.
    pub fn deadline(&self, timeout_ms: u64) -> Option<i64> {
        self.pending
            .iter()
            .map(|p| p.first_ms.saturating_add(timeout_ms as i64))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::video::manscdp::ChannelStatus;

    fn item(n: u32) -> CatalogItem {
        CatalogItem {
            device_id: format!("340200000013100{n:05}"),
            name: format!("Cam {n}"),
            parent_id: None,
            status: ChannelStatus::Online,
            status_raw: "ON".into(),
            event: None,
        }
    }

    fn page(sn: u32, sum: u32, ns: &[u32]) -> CatalogPage {
        CatalogPage {
            sn,
            device_id: "34020000001180000001".into(),
            sum_num: sum,
            items: ns.iter().map(|&n| item(n)).collect(),
            is_notify: false,
        }
    }

    fn ids(p: &Progress) -> Vec<String> {
        match p {
            Progress::Complete { items, .. } => items.iter().map(|i| i.device_id.clone()).collect(),
            other => panic!("not complete: {other:?}"),
        }
    }

    #[test]
    fn pages_out_of_order_and_twice_make_one_catalog_of_sumnum_items() {
        let mut a = Accumulator::default();
        assert_eq!(
            a.page(0, page(7, 8, &[5, 6]), 100),
            Ok(Progress::Partial { have: 2, of: 8 })
        );
        // The same page again (a UDP retransmission): nothing added.
        assert_eq!(
            a.page(10, page(7, 8, &[5, 6]), 100),
            Ok(Progress::Partial { have: 2, of: 8 })
        );
        assert_eq!(
            a.page(20, page(7, 8, &[1, 2]), 100),
            Ok(Progress::Partial { have: 4, of: 8 })
        );
        // Another query's pages are gathered apart.
        assert_eq!(
            a.page(25, page(8, 2, &[1]), 100),
            Ok(Progress::Partial { have: 1, of: 2 })
        );
        assert_eq!(
            a.page(30, page(7, 8, &[7, 8]), 100),
            Ok(Progress::Partial { have: 6, of: 8 })
        );
        let done = a.page(40, page(7, 8, &[3, 4]), 100).unwrap();
        assert_eq!(
            ids(&done),
            (1..=8).map(|n| item(n).device_id).collect::<Vec<_>>()
        );
        // A late duplicate of a finished catalog starts nothing.
        assert_eq!(a.page(50, page(7, 8, &[3, 4]), 100), Ok(Progress::Late));
        assert_eq!(a.deadline(30_000), Some(25 + 30_000));
    }

    #[test]
    fn a_missing_page_gives_the_catalog_up_at_its_timeout_exactly() {
        let mut a = Accumulator::default();
        a.page(1_000, page(3, 4, &[1, 2]), 100).unwrap();
        a.page(1_500, page(3, 4, &[3]), 100).unwrap();
        assert_eq!(a.deadline(30_000), Some(31_000));
        assert!(a.expire(30_999, 30_000).is_empty());
        assert_eq!(
            a.expire(31_000, 30_000),
            vec![TimedOut {
                sn: 3,
                have: 3,
                of: 4
            }]
        );
        assert_eq!(a.deadline(30_000), None);
        // The missing page, arriving after: the catalog was given up.
        assert_eq!(a.page(31_001, page(3, 4, &[4]), 100), Ok(Progress::Late));
    }

    #[test]
    fn an_empty_catalog_completes_and_bad_sumnums_are_refused() {
        let mut a = Accumulator::default();
        assert_eq!(
            a.page(0, page(1, 0, &[]), 100),
            Ok(Progress::Complete {
                sn: 1,
                items: vec![]
            })
        );
        let e = a.page(0, page(2, 101, &[1]), 100).unwrap_err();
        assert_eq!(e.code(), "catalog_too_large");
        a.page(0, page(4, 3, &[1]), 100).unwrap();
        let e = a.page(0, page(4, 5, &[2]), 100).unwrap_err();
        assert_eq!(
            e,
            CatalogError::Inconsistent {
                sn: 4,
                first: 3,
                got: 5
            }
        );
        assert_eq!(e.code(), "catalog_inconsistent");
        // More distinct items than SumNum: the first SumNum complete it.
        let done = a.page(0, page(5, 2, &[9, 8, 7]), 100).unwrap();
        assert_eq!(ids(&done), vec![item(8).device_id, item(9).device_id]);
    }

    #[test]
    fn at_most_four_catalogs_are_gathered_at_once() {
        let mut a = Accumulator::default();
        for sn in 1..=5 {
            a.page(sn as i64, page(sn, 2, &[1]), 100).unwrap();
        }
        // SN 1 was dropped for SN 5: its next page is late.
        assert_eq!(a.page(10, page(1, 2, &[2]), 100), Ok(Progress::Late));
        assert!(matches!(
            a.page(10, page(2, 2, &[2]), 100),
            Ok(Progress::Complete { sn: 2, .. })
        ));
    }
}
