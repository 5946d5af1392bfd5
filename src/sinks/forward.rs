//! What the outbox forwarder does with the store's answer to a batch (groundwork for the
//! durability issue, not yet wired). Pure: the answer in, the next step out.
//!
//! - 2xx: the batch is stored; delete it.
//! - 429, 5xx, no answer: retry the same batch later (`Retry-After` when the store gives one,
//!   else the capped back-off), never skip it: order per device is kept.
//! - 413: the batch is too large; split it in halves, in place.
//! - 400, 422 (and other 4xx): some line is refused for good. Bisect the batch until the
//!   refused line stands alone, then dead-letter it with the store's message, so the good
//!   lines around it are written and the queue never blocks on it.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Accepted,
    /// Try again; with the store's `Retry-After`, when it gave one.
    Retry(Option<Duration>),
    TooLarge,
    Refused {
        status: u16,
        message: String,
    },
}

/// The store's answer: an HTTP status (none when the request failed) and its headers/body.
pub fn classify(status: Option<u16>, retry_after: Option<&str>, body: &str) -> Answer {
    match status {
        Some(s) if (200..300).contains(&s) => Answer::Accepted,
        Some(413) => Answer::TooLarge,
        Some(s) if s == 429 || s >= 500 => Answer::Retry(
            retry_after
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| Duration::from_secs(s.min(3600))),
        ),
        Some(s) if (400..500).contains(&s) => Answer::Refused {
            status: s,
            message: body.chars().take(2000).collect(),
        },
        // 1xx/3xx or nothing at all: the request did not go through.
        _ => Answer::Retry(None),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Delete,
    /// Wait this long, then send the same batch again.
    RetryIn(Duration),
    /// Replace the batch by these parts (lines, points), in order.
    Split(Vec<(Vec<u8>, u32)>),
    /// The batch is one line the store will never take: keep it aside with the answer.
    DeadLetter {
        status: u16,
        message: String,
    },
}

/// Split line protocol into two halves at a line boundary (`None` for a single line).
pub fn halves(lines: &[u8]) -> Option<[(Vec<u8>, u32); 2]> {
    let all: Vec<&[u8]> = lines
        .split_inclusive(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .collect();
    if all.len() < 2 {
        return None;
    }
    let (a, b) = all.split_at(all.len() / 2);
    Some([(a.concat(), a.len() as u32), (b.concat(), b.len() as u32)])
}

/// The next step for a batch given the store's answer; `backoff` gives the delay when the
/// store did not say how long to wait.
pub fn next_step(lines: &[u8], answer: Answer, backoff: &mut crate::backoff::Backoff) -> Step {
    match answer {
        Answer::Accepted => {
            backoff.reset();
            Step::Delete
        }
        Answer::Retry(after) => Step::RetryIn(after.unwrap_or_else(|| backoff.next_delay())),
        Answer::TooLarge => match halves(lines) {
            Some(h) => Step::Split(h.to_vec()),
            None => Step::DeadLetter {
                status: 413,
                message: "a single line is larger than the store accepts".into(),
            },
        },
        Answer::Refused { status, message } => match halves(lines) {
            Some(h) => Step::Split(h.to_vec()),
            None => Step::DeadLetter { status, message },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::Backoff;

    #[test]
    fn answers_by_status() {
        assert_eq!(classify(Some(204), None, ""), Answer::Accepted);
        assert_eq!(
            classify(Some(429), Some("7"), ""),
            Answer::Retry(Some(Duration::from_secs(7)))
        );
        assert_eq!(classify(Some(503), None, ""), Answer::Retry(None));
        assert_eq!(classify(None, None, ""), Answer::Retry(None));
        assert_eq!(classify(Some(413), None, ""), Answer::TooLarge);
        assert_eq!(
            classify(Some(400), None, "unable to parse"),
            Answer::Refused {
                status: 400,
                message: "unable to parse".into()
            }
        );
    }

    #[test]
    fn a_refused_line_is_isolated_and_the_rest_goes_through() {
        // The store refuses any batch holding the line "bad"; bisecting must end with exactly
        // that line dead-lettered and every other line accepted, in order.
        let store = |lines: &[u8]| {
            if lines.split(|b| *b == b'\n').any(|l| l == b"bad") {
                Answer::Refused {
                    status: 400,
                    message: "unable to parse 'bad'".into(),
                }
            } else {
                Answer::Accepted
            }
        };
        let mut queue: std::collections::VecDeque<Vec<u8>> =
            [b"a\nb\nbad\nc\nd\ne\n".to_vec()].into();
        let (mut stored, mut dead) = (Vec::new(), Vec::new());
        let mut backoff = Backoff::new(100, 1000);
        let mut rounds = 0;
        while let Some(batch) = queue.pop_front() {
            rounds += 1;
            assert!(rounds < 50, "bounded");
            match next_step(&batch, store(&batch), &mut backoff) {
                Step::Delete => stored.extend_from_slice(&batch),
                Step::Split(parts) => {
                    for p in parts.into_iter().rev() {
                        queue.push_front(p.0);
                    }
                }
                Step::DeadLetter { status, message } => dead.push((batch, status, message)),
                Step::RetryIn(_) => unreachable!("the store answered"),
            }
        }
        assert_eq!(stored, b"a\nb\nc\nd\ne\n".to_vec(), "in order, none lost");
        assert_eq!(
            dead,
            vec![(b"bad\n".to_vec(), 400, "unable to parse 'bad'".to_string())]
        );
    }

    #[test]
    fn too_large_splits_until_one_line_then_dead_letters_it() {
        let mut b = Backoff::new(100, 1000);
        assert_eq!(
            next_step(b"a\nb\nc\n", Answer::TooLarge, &mut b),
            Step::Split(vec![(b"a\n".to_vec(), 1), (b"b\nc\n".to_vec(), 2)])
        );
        assert!(matches!(
            next_step(b"a\n", Answer::TooLarge, &mut b),
            Step::DeadLetter { status: 413, .. }
        ));
        // A retry without Retry-After waits the back-off, within its bounds.
        match next_step(b"a\n", Answer::Retry(None), &mut b) {
            Step::RetryIn(d) => {
                assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(1000))
            }
            s => panic!("{s:?}"),
        }
    }
}
