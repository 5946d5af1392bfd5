//! An alarm's lifecycle and its response outcome (pure; groundwork for the alarms issue).
//!
//! States: `active_unacked` → `active_acked` → `cleared_acked`, or `cleared_unacked` when the
//! value recovers first. Each level has a response deadline; after an escalation the deadline
//! is the earlier of the two (a more urgent level can only shorten it). An alarm is
//! *responded* when acknowledged by its deadline; before the deadline with no
//! acknowledgement it is *pending* and not counted either way.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmState {
    ActiveUnacked,
    ActiveAcked,
    ClearedUnacked,
    ClearedAcked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ack {
    pub by: String,
    pub note: String,
    pub at_ms: i64,
    /// `http` or `mqtt`.
    pub via: String,
}

/// Response deadlines in milliseconds, by level (level 1 first); levels past the end use
/// the last entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadlines(pub Vec<i64>);

impl Deadlines {
    pub fn of(&self, level: u8) -> i64 {
        let i = (level.max(1) as usize - 1).min(self.0.len().saturating_sub(1));
        self.0.get(i).copied().unwrap_or(i64::MAX / 4)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Responded,
    Late,
    Missed,
    Pending,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckResult {
    Acknowledged,
    /// The first acknowledgement stands.
    AlreadyAcknowledged(Ack),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alarm {
    pub raised_ms: i64,
    /// (time, level) of the raise and every escalation.
    pub levels: Vec<(i64, u8)>,
    pub ack: Option<Ack>,
    pub cleared_ms: Option<i64>,
}

impl Alarm {
    pub fn raise(at_ms: i64, level: u8) -> Alarm {
        Alarm {
            raised_ms: at_ms,
            levels: vec![(at_ms, level)],
            ack: None,
            cleared_ms: None,
        }
    }

    pub fn level(&self) -> u8 {
        self.levels.last().map_or(0, |l| l.1)
    }

    pub fn escalate(&mut self, at_ms: i64, level: u8) {
        if level > self.level() && self.cleared_ms.is_none() {
            self.levels.push((at_ms, level));
        }
    }

    pub fn clear(&mut self, at_ms: i64) {
        self.cleared_ms.get_or_insert(at_ms);
    }

    pub fn acknowledge(&mut self, by: &str, note: &str, at_ms: i64, via: &str) -> AckResult {
        match &self.ack {
            Some(a) => AckResult::AlreadyAcknowledged(a.clone()),
            None => {
                self.ack = Some(Ack {
                    by: by.to_string(),
                    note: note.to_string(),
                    at_ms,
                    via: via.to_string(),
                });
                AckResult::Acknowledged
            }
        }
    }

    pub fn state(&self) -> AlarmState {
        match (self.cleared_ms.is_some(), self.ack.is_some()) {
            (false, false) => AlarmState::ActiveUnacked,
            (false, true) => AlarmState::ActiveAcked,
            (true, false) => AlarmState::ClearedUnacked,
            (true, true) => AlarmState::ClearedAcked,
        }
    }

    /// The response deadline: the earliest of (time a level was reached + its deadline).
    pub fn deadline_ms(&self, d: &Deadlines) -> i64 {
        self.levels
            .iter()
            .map(|&(t, l)| t.saturating_add(d.of(l)))
            .min()
            .unwrap_or(i64::MAX)
    }

    /// Outcome as known at `now`.
    pub fn outcome(&self, d: &Deadlines, now: i64) -> Outcome {
        self.outcome_by(self.deadline_ms(d), now)
    }

    /// Outcome as known at `now`, against a deadline already worked out.
    pub fn outcome_by(&self, deadline: i64, now: i64) -> Outcome {
        match &self.ack {
            Some(a) if a.at_ms <= deadline => Outcome::Responded,
            Some(_) => Outcome::Late,
            None if now > deadline => Outcome::Missed,
            None => Outcome::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Deadlines {
        Deadlines(vec![900_000, 300_000])
    }

    #[test]
    fn states_follow_ack_and_clear() {
        let mut a = Alarm::raise(0, 1);
        assert_eq!(a.state(), AlarmState::ActiveUnacked);
        a.clear(10);
        assert_eq!(a.state(), AlarmState::ClearedUnacked);
        assert_eq!(
            a.acknowledge("op", "checked", 20, "http"),
            AckResult::Acknowledged
        );
        assert_eq!(a.state(), AlarmState::ClearedAcked);
        let mut b = Alarm::raise(0, 1);
        b.acknowledge("op", "", 5, "http");
        assert_eq!(b.state(), AlarmState::ActiveAcked);
    }

    #[test]
    fn a_second_ack_changes_nothing() {
        let mut a = Alarm::raise(0, 1);
        a.acknowledge("first", "n1", 100, "http");
        let second = a.acknowledge("second", "n2", 200, "http");
        assert!(
            matches!(second, AckResult::AlreadyAcknowledged(ref k) if k.by == "first" && k.at_ms == 100)
        );
        assert_eq!(a.ack.as_ref().unwrap().by, "first");
    }

    #[test]
    fn outcomes_by_deadline() {
        let mut on_time = Alarm::raise(0, 1);
        on_time.acknowledge("op", "", 900_000, "http");
        assert_eq!(on_time.outcome(&d(), 2_000_000), Outcome::Responded);
        let mut late = Alarm::raise(0, 1);
        late.acknowledge("op", "", 900_001, "http");
        assert_eq!(late.outcome(&d(), 2_000_000), Outcome::Late);
        let never = Alarm::raise(0, 1);
        assert_eq!(never.outcome(&d(), 899_999), Outcome::Pending);
        assert_eq!(never.outcome(&d(), 900_001), Outcome::Missed);
    }

    #[test]
    fn escalation_can_only_shorten_the_deadline() {
        let mut a = Alarm::raise(0, 1);
        a.escalate(100_000, 2);
        assert_eq!(a.level(), 2);
        assert_eq!(a.deadline_ms(&d()), 400_000);
        let mut b = Alarm::raise(0, 1);
        b.escalate(800_000, 2);
        assert_eq!(
            b.deadline_ms(&d()),
            900_000,
            "the level-1 deadline comes first"
        );
        // No escalation after clearing, none downwards.
        b.clear(850_000);
        b.escalate(860_000, 3);
        b.escalate(870_000, 1);
        assert_eq!(b.levels.len(), 2);
    }

    #[test]
    fn one_deadline_for_every_level() {
        let one = Deadlines(vec![600_000]);
        assert_eq!(one.of(1), 600_000);
        assert_eq!(one.of(4), 600_000);
    }
}
