//! Which points a write holds, so that two writes in flight at once never hold the same one.
//!
//! A point is a series (measurement and tag set) at a time. The store keeps the last value
//! written for a point (InfluxDB 2 overwrites a point's fields), so two writes holding the same
//! point must reach it in the order they were committed; writes with no point in common can
//! land in any order and leave the store as if written one after the other. A write's points
//! are hashed once, when more than one write may be in flight (`store.writes_in_flight`).

use super::outbox::Batch;
use foldhash::HashSet;
use std::hash::{BuildHasher, Hasher};

/// The hashed points of one write. A hash collision only makes two writes wait for each
/// other: it can cost a little speed, never the order.
#[derive(Debug, Default)]
pub struct Points(HashSet<u64>);

impl Points {
    pub fn of(head: &[Batch]) -> Points {
        let seed = foldhash::fast::FixedState::with_seed(0x5afe_9a7e);
        let lines: usize = head.iter().map(|b| b.points as usize).sum();
        let mut set = HashSet::with_capacity_and_hasher(lines, Default::default());
        for b in head {
            for line in b.lines.split(|c| *c == b'\n') {
                if let Some((series, time)) = point_of(line) {
                    let mut h = seed.build_hasher();
                    h.write(series);
                    h.write_u8(b' ');
                    h.write(time);
                    set.insert(h.finish());
                }
            }
        }
        Points(set)
    }

    /// Whether the two writes hold a point in common.
    pub fn meets(&self, other: &Points) -> bool {
        let (small, large) = if self.0.len() <= other.0.len() {
            (&self.0, &other.0)
        } else {
            (&other.0, &self.0)
        };
        small.iter().any(|k| large.contains(k))
    }
}

/// A line's series (everything before the first unescaped space) and time (after the last
/// space); `None` for a blank line. A line without a time (the store stamps it on arrival)
/// gives an empty time: such lines of one series are taken as the same point, the safe side.
fn point_of(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let line = line.trim_ascii();
    if line.is_empty() {
        return None;
    }
    let end = first_unescaped_space(line).unwrap_or(line.len());
    let series = &line[..end];
    let rest = &line[end..];
    let time = match rest.iter().rposition(|c| *c == b' ') {
        Some(at) if rest[at + 1..].iter().all(u8::is_ascii_digit) => &rest[at + 1..],
        _ => &[][..],
    };
    Some((series, time))
}

/// Line protocol escapes a space in a measurement or tag with a backslash; an even run of
/// backslashes before a space escapes only themselves.
fn first_unescaped_space(line: &[u8]) -> Option<usize> {
    let mut backslashes = 0;
    for (i, c) in line.iter().enumerate() {
        match c {
            b'\\' => backslashes += 1,
            b' ' if backslashes % 2 == 0 => return Some(i),
            _ => backslashes = 0,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(lines: &str) -> Points {
        Points::of(&[Batch {
            id: 1,
            lines: lines.as_bytes().to_vec().into(),
            points: lines.lines().count() as u32,
            created_ms: 0,
        }])
    }

    #[test]
    fn writes_meet_on_the_same_series_at_the_same_time_only() {
        let a = write("reading,site=s,device=d1 v=1 1000\nreading,site=s,device=d2 v=2 1000\n");
        // Same series, another time; another series, the same time: no point in common.
        assert!(!a.meets(&write("reading,site=s,device=d1 v=3 2000\n")));
        assert!(!a.meets(&write("reading,site=s,device=d3 v=3 1000\n")));
        // The same point with other fields or values: it must wait.
        assert!(a.meets(&write("reading,site=s,device=d2 status_code=0i 1000\n")));
        assert!(a.meets(&write("x,a=b v=0 5\nreading,site=s,device=d1 v=9 1000\n")));
    }

    #[test]
    fn escaped_spaces_belong_to_the_series_and_strings_do_not_hide_the_time() {
        let (series, time) = point_of(br#"m,zone=east\ gate f="a b c" 42"#).unwrap();
        assert_eq!(series, br"m,zone=east\ gate");
        assert_eq!(time, b"42");
        // An escaped backslash before a space leaves the space a separator.
        assert_eq!(point_of(br"m,p=c:\\ v=1 7").unwrap().0, br"m,p=c:\\");
        // No time: the empty time, one point per series.
        assert_eq!(point_of(b"m,a=b v=1").unwrap(), (&b"m,a=b"[..], &b""[..]));
        assert_eq!(point_of(b"  \r"), None);
    }
}
