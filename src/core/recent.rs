//! The last few readings of each device — the first channel's value and its time — for the
//! console's chart of a device (`GET /api/v1/devices/{site}/{id}/history`). The store holds
//! the full series; this is what an operator sees at a glance without one.
//!
//! Memory is the constraint (100,000 devices): a ring grows with the readings a device
//! sends, up to `cap` entries of 8 bytes (milliseconds after the ring's base time as `u32`,
//! the value as `f32`), so a device that never reports costs a `Vec` header. The channel's
//! name is kept once for every device that reports it (a park has a handful: `lel`, `ppm`),
//! not once per device.

/// Readings kept a device unless `gateway.recent_values` says otherwise.
pub const DEFAULT_CAP: u16 = 30;

/// Distinct channel names kept; a reading on a further one is not kept (its device's chart
/// stays as it was). Bounds what names arriving from the network can cost.
const MAX_CHANNELS: usize = 1024;

/// One device's ring (40 bytes).
#[derive(Debug, Clone, Default)]
struct Ring {
    base_ms: i64,
    /// Oldest first once full: `head` is the next slot to overwrite.
    buf: Vec<(u32, f32)>,
    /// The channel kept, the first of the reading that started the ring: 1 + its index in
    /// `Recent::channels`, 0 for none yet.
    channel: u16,
    head: u16,
}

/// The last `cap` readings of every device, by device index.
#[derive(Debug, Clone, Default)]
pub struct Recent {
    cap: u16,
    rings: Vec<Ring>,
    channels: Vec<Box<str>>,
}

impl Recent {
    /// `cap` readings a device (0: none are kept).
    pub fn new(cap: u16, devices: usize) -> Recent {
        Recent {
            cap,
            rings: vec![Ring::default(); devices],
            channels: Vec::new(),
        }
    }

    pub fn cap(&self) -> u16 {
        self.cap
    }

    /// Follow the inventory's size (new slots start empty).
    pub fn resize(&mut self, devices: usize) {
        self.rings.resize(devices, Ring::default());
    }

    /// Forget device `d`'s readings (it left, or joined again).
    pub fn clear(&mut self, d: usize) {
        if let Some(r) = self.rings.get_mut(d) {
            *r = Ring::default();
        }
    }

    /// 1 + the index of `channel` among the names kept, added if new; `None` when the table
    /// is full.
    fn channel_id(&mut self, channel: &str) -> Option<u16> {
        if let Some(i) = self.channels.iter().position(|c| &**c == channel) {
            return Some(i as u16 + 1);
        }
        if self.channels.len() >= MAX_CHANNELS {
            return None;
        }
        self.channels.push(channel.into());
        Some(self.channels.len() as u16)
    }

    /// Keep a reading of device `d`: `channel`'s `value` at `ts_ms`.
    pub fn push(&mut self, d: usize, ts_ms: i64, channel: &str, value: f64) {
        let cap = self.cap as usize;
        if cap == 0 || d >= self.rings.len() {
            return;
        }
        // Nearly always the ring's own channel: no search then.
        let own = self.rings[d].channel;
        let same = (own.checked_sub(1)).and_then(|i| self.channels.get(i as usize));
        let id = match same {
            Some(c) if &**c == channel => own,
            _ => match self.channel_id(channel) {
                Some(id) => id,
                None => return,
            },
        };
        let r = &mut self.rings[d];
        let delta = ts_ms - r.base_ms;
        if r.channel != id || !(0..=i64::from(u32::MAX)).contains(&delta) {
            // A first reading, another channel, earlier than the ring's base or 49 days
            // after it (a clock step, a device silent for weeks): start again from here.
            *r = Ring {
                channel: id,
                base_ms: ts_ms,
                ..Ring::default()
            };
        }
        let entry = ((ts_ms - r.base_ms) as u32, value as f32);
        if r.buf.len() < cap {
            r.buf.push(entry);
        } else {
            r.buf[r.head as usize] = entry;
            r.head = ((r.head as usize + 1) % cap) as u16;
        }
    }

    /// Device `d`'s kept readings, oldest first as they arrived: the channel and (time ms,
    /// value) pairs.
    pub fn of(&self, d: usize) -> (Option<&str>, Vec<(i64, f64)>) {
        let Some(r) = self.rings.get(d) else {
            return (None, Vec::new());
        };
        let (newer, older) = r.buf.split_at(r.head as usize);
        let values = older
            .iter()
            .chain(newer)
            .map(|&(t, v)| (r.base_ms + i64::from(t), widen(v)))
            .collect();
        let channel = (r.channel.checked_sub(1)).and_then(|i| self.channels.get(i as usize));
        (channel.map(|c| &**c), values)
    }
}

/// A kept `f32` as the `f64` its shortest decimal names: 1.47 stays 1.47, not the
/// 1.4700000286102295 that widening the bits gives.
fn widen(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_cap_readings_oldest_first() {
        let mut r = Recent::new(3, 2);
        assert_eq!(r.of(0), (None, vec![]));
        for i in 0..5 {
            r.push(0, 1_000 + i * 10, "lel", i as f64);
        }
        let kept = vec![(1_020, 2.0), (1_030, 3.0), (1_040, 4.0)];
        assert_eq!(r.of(0), (Some("lel"), kept));
        assert_eq!(r.of(1), (None, vec![]), "the other device is untouched");
        r.clear(0);
        assert_eq!(r.of(0), (None, vec![]));
        assert_eq!(r.of(7), (None, vec![]), "past the end: empty, not a panic");
    }

    #[test]
    fn a_reading_before_the_base_or_far_after_starts_again() {
        let mut r = Recent::new(4, 1);
        r.push(0, 10_000, "lel", 1.0);
        r.push(0, 5_000, "lel", 2.0);
        assert_eq!(r.of(0).1, vec![(5_000, 2.0)]);
        let far = 5_000 + i64::from(u32::MAX) + 1;
        r.push(0, far, "lel", 3.0);
        assert_eq!(r.of(0).1, vec![(far, 3.0)]);
        r.push(0, far + 1, "ppm", 4.0);
        assert_eq!(
            r.of(0),
            (Some("ppm"), vec![(far + 1, 4.0)]),
            "another channel"
        );
    }

    #[test]
    fn channel_names_are_kept_once_and_bounded() {
        let mut r = Recent::new(2, 3);
        r.push(0, 1, "lel", 1.0);
        r.push(1, 1, "lel", 2.0);
        assert_eq!(r.channels.len(), 1);
        for i in 0..MAX_CHANNELS + 5 {
            r.push(2, 1, &format!("c{i}"), 3.0);
        }
        assert_eq!(r.channels.len(), MAX_CHANNELS);
        let last = format!("c{}", MAX_CHANNELS - 2);
        assert_eq!(
            r.of(2),
            (Some(last.as_str()), vec![(1, 3.0)]),
            "the last name that fit"
        );
        assert_eq!(r.of(0).0, Some("lel"));
        assert_eq!(std::mem::size_of::<Ring>(), 40);
    }

    #[test]
    fn zero_keeps_nothing_and_resize_adds_empty_rings() {
        let mut r = Recent::new(0, 1);
        r.push(0, 1, "lel", 1.0);
        assert_eq!(r.of(0), (None, vec![]));
        let mut r = Recent::new(2, 1);
        r.resize(3);
        r.push(2, 7, "lel", 0.5);
        assert_eq!(r.of(2).1, vec![(7, 0.5)]);
        r.push(2, 8, "lel", 1.47);
        assert_eq!(r.of(2).1[1], (8, 1.47), "the value as sent, not f32's bits");
    }
}
