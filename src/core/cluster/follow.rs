//! Following the readings stream: every instance applies every partition's envelopes in the
//! stream's one order, so every instance holds the same state. Time is the stream's: an
//! envelope's ingress time, never less than what came before it (two ingress instances'
//! clocks and their publishes' order differ by a few milliseconds; liveness must not run
//! backwards), and nothing else moves it.

use super::envelope::{Envelope, EnvelopeError};
use crate::core::event::SourceEvent;

/// The stream's time as applied so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamClock {
    /// The latest time applied (epoch ms; 0 before the first envelope).
    pub now_ms: i64,
    /// The stream sequence of the last envelope applied.
    pub sequence: u64,
}

impl StreamClock {
    /// The event envelope `env` (at stream sequence `seq`) carries, at its time in the
    /// stream: its ingress time, or the stream's time when that is later.
    pub fn admit(&mut self, seq: u64, mut env: Envelope) -> Result<SourceEvent, EnvelopeError> {
        self.sequence = self.sequence.max(seq);
        env.received_ms = env.received_ms.max(self.now_ms);
        let ev = env.event()?;
        self.now_ms = match &ev {
            SourceEvent::Tick { at_ms } => *at_ms,
            _ => ev_time(&ev).unwrap_or(self.now_ms),
        };
        Ok(ev)
    }
}

fn ev_time(ev: &SourceEvent) -> Option<i64> {
    match ev {
        SourceEvent::Reading { received_ms, .. }
        | SourceEvent::Stored { received_ms, .. }
        | SourceEvent::DeviceState { received_ms, .. }
        | SourceEvent::Ack { received_ms, .. } => Some(*received_ms),
        SourceEvent::Poll { at_ms, .. } | SourceEvent::Link { at_ms, .. } => Some(*at_ms),
        SourceEvent::File(f) => Some(f.received_ms),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_never_runs_back_and_ticks_move_it() {
        let mut c = StreamClock::default();
        let tick = |at| Envelope::tick("gw-1", at);
        assert_eq!(
            c.admit(1, tick(1_000)).unwrap(),
            SourceEvent::Tick { at_ms: 1_000 }
        );
        // A tick from an instance whose clock is behind: time stays.
        assert_eq!(
            c.admit(2, tick(990)).unwrap(),
            SourceEvent::Tick { at_ms: 1_000 }
        );
        let mut state = Envelope::tick("x", 995);
        state.kind = super::super::envelope::Kind::State;
        (state.site, state.device, state.online) = ("p1".into(), "d1".into(), Some(true));
        match c.admit(3, state).unwrap() {
            SourceEvent::DeviceState { received_ms, .. } => assert_eq!(received_ms, 1_000),
            e => panic!("{e:?}"),
        }
        c.admit(4, tick(2_500)).unwrap();
        assert_eq!(
            c,
            StreamClock {
                now_ms: 2_500,
                sequence: 4
            }
        );
        let mut bad = tick(3_000);
        bad.v = 7;
        assert!(c.admit(5, bad).is_err());
        assert_eq!((c.now_ms, c.sequence), (2_500, 5), "counted, time unmoved");
    }
}
