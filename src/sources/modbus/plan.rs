//! Request planning: a device's registers (and status word) read in as few requests as the
//! protocol allows. Ranges of one table are merged when the gap between them is at most
//! `max_gap` and the merged request stays within 125 registers or 2000 bits. Pure.

use super::config::{ModbusConfig, Table};

/// Protocol limits per request (Modbus application protocol, functions 01–04).
pub const MAX_WORDS: u16 = 125;
pub const MAX_BITS: u16 = 2000;

/// What a planned slot feeds: a register of the map, or the status word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Register(usize),
    Status,
}

/// One read request and where each target's words sit in its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub table: Table,
    pub start: u16,
    pub count: u16,
    /// (target, offset of its first word or bit in the answer, width).
    pub slots: Vec<(Target, u16, u16)>,
}

/// A span to read: (table, first address, width, target).
type Item = (Table, u16, u16, Target);

fn limit(t: Table) -> u16 {
    if t.is_bits() {
        MAX_BITS
    } else {
        MAX_WORDS
    }
}

/// Plan the requests for one device. The configuration is validated (addresses fit), but
/// anything past 65535 is skipped rather than trusted.
pub fn plan(m: &ModbusConfig) -> Vec<Request> {
    let mut items: Vec<Item> = Vec::new();
    for (i, r) in m.registers.iter().enumerate() {
        let w = if r.table.is_bits() {
            1
        } else {
            r.data_type.width()
        };
        if let Ok(a) = u16::try_from(r.address) {
            if a as u32 + w as u32 - 1 <= u16::MAX as u32 {
                items.push((r.table, a, w, Target::Register(i)));
            }
        }
    }
    if let Some(s) = &m.status {
        if let Ok(a) = u16::try_from(s.address) {
            items.push((s.table, a, 1, Target::Status));
        }
    }
    plan_items(items, m.max_gap)
}

fn plan_items(mut items: Vec<Item>, max_gap: u16) -> Vec<Request> {
    items.sort_by_key(|&(t, a, _, _)| (t as u8, a));
    let mut out: Vec<Request> = Vec::new();
    for (table, addr, width, target) in items {
        let end = addr as u32 + width as u32; // exclusive
        if let Some(cur) = out.last_mut() {
            let cur_end = cur.start as u32 + cur.count as u32;
            let gap = (addr as u32).saturating_sub(cur_end);
            let new_count = end.max(cur_end) - cur.start as u32;
            if cur.table == table && gap <= max_gap as u32 && new_count <= limit(table) as u32 {
                cur.count = new_count as u16;
                cur.slots.push((target, addr - cur.start, width));
                continue;
            }
        }
        out.push(Request {
            table,
            start: addr,
            count: width,
            slots: vec![(target, 0, width)],
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Table::*;
    use Target::Register as R;

    #[test]
    fn merges_near_ranges_and_splits_far_ones() {
        let items = vec![
            (Holding, 10, 2, R(0)),
            (Holding, 0, 1, R(1)),
            (Holding, 3, 1, R(2)),  // gap 2 after 0
            (Holding, 40, 1, R(3)), // gap 28: new request
            (Input, 0, 1, R(4)),
        ];
        let p = plan_items(items, 8);
        assert_eq!(p.len(), 3);
        assert_eq!((p[0].table, p[0].start, p[0].count), (Holding, 0, 12));
        assert_eq!(p[0].slots, vec![(R(1), 0, 1), (R(2), 3, 1), (R(0), 10, 2)]);
        assert_eq!((p[1].start, p[1].count), (40, 1));
        assert_eq!((p[2].table, p[2].start, p[2].count), (Input, 0, 1));
    }

    #[test]
    fn respects_the_protocol_limits() {
        // 200 contiguous u16 holding registers: 125 + 75.
        let items: Vec<Item> = (0..200).map(|i| (Holding, i, 1, R(i as usize))).collect();
        let p = plan_items(items, 8);
        assert_eq!(p.iter().map(|r| r.count).collect::<Vec<_>>(), vec![125, 75]);
        // A u32 never straddles two requests.
        let items: Vec<Item> = (0..63)
            .map(|i| (Holding, i * 2, 2, R(i as usize)))
            .collect();
        let p = plan_items(items, 0);
        assert_eq!(p.iter().map(|r| r.count).collect::<Vec<_>>(), vec![124, 2]);
        // 2500 coils: 2000 + 500.
        let items: Vec<Item> = (0..2500).map(|i| (Coil, i, 1, R(i as usize))).collect();
        let p = plan_items(items, 8);
        assert_eq!(
            p.iter().map(|r| r.count).collect::<Vec<_>>(),
            vec![2000, 500]
        );
    }

    #[test]
    fn gap_zero_reads_only_adjacent_ranges_together() {
        let items = vec![
            (Holding, 0, 1, R(0)),
            (Holding, 1, 1, R(1)),
            (Holding, 3, 1, R(2)),
        ];
        let p = plan_items(items, 0);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].start, p[0].count, p[1].start), (0, 2, 3));
    }

    #[test]
    fn the_top_of_the_address_space_is_planned() {
        let items = vec![
            (Holding, 65534, 2, R(0)),
            (Discrete, 65535, 1, Target::Status),
        ];
        let p = plan_items(items, 8);
        assert_eq!((p[0].start, p[0].count), (65534, 2));
        assert_eq!((p[1].table, p[1].start), (Discrete, 65535));
    }
}
