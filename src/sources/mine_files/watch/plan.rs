//! The watched folder's decisions, without the filesystem or a clock: which names are files
//! to take, when a file is complete, in what order a mine's files go, what to do with the
//! taker's answer, and which `done/` folders have expired. Time is an input (epoch ms).

use crate::sources::mine_files::{TakeError, Taken};
use std::collections::HashMap;
use std::time::SystemTime;

/// The first wait after a `Retry` (or a failed move); it doubles per attempt up to
/// [`RETRY_MAX_MS`]. Never shorter than the scan interval.
pub(crate) const RETRY_MIN_MS: u64 = 1_000;
/// The longest wait between attempts at a mine whose files are not taken.
pub(crate) const RETRY_MAX_MS: u64 = 60_000;
/// A file the taker calls incomplete is quarantined as truncated once it has not changed for
/// this many times `settle_ms` since that answer.
pub(crate) const INCOMPLETE_SETTLES: u64 = 10;

/// Is a file of this name one to take? Dot-files, Office's `~$` lock files and every name
/// not ending `.txt` (case-insensitive: `.tmp`, `.part`, `.filepart`, ...) are not.
pub(crate) fn is_candidate(name: &str) -> bool {
    if name.starts_with('.') || name.starts_with("~$") {
        return false;
    }
    let b = name.as_bytes();
    b.len() > 4 && b[b.len() - 4..].eq_ignore_ascii_case(b".txt")
}

/// Is a folder of this name skipped? Dot-folders anywhere; `done/` and `quarantine/` at the
/// top of the watched folder (the watch's own).
pub(crate) fn is_skipped_dir(name: &str, top: bool) -> bool {
    name.starts_with('.') || (top && (name == "done" || name == "quarantine"))
}

/// What the watch reads from a file's name (`<mine code>_<TYPE>_<yyyyMMddHHmmss>.txt`, split
/// from the right: a mine code may itself hold `_`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NameParts {
    pub code: String,
    pub kind: String,
    /// The 14 digits of the data time, as written (they sort as times).
    pub stamp: String,
}

impl NameParts {
    /// The stamp's date, `yyyy-mm-dd`: the `done/<code>/<date>/` folder.
    pub fn date(&self) -> String {
        let s = &self.stamp;
        format!("{}-{}-{}", &s[0..4], &s[4..6], &s[6..8])
    }
}

/// The parts of a name, or `None` when it does not follow the pattern (no code, no type, a
/// stamp that is not 14 digits of a real date and time).
pub(crate) fn parse_name(name: &str) -> Option<NameParts> {
    let stem = name.get(..name.len().checked_sub(4)?)?;
    if !name[stem.len()..].eq_ignore_ascii_case(".txt") {
        return None;
    }
    let (rest, stamp) = stem.rsplit_once('_')?;
    let (code, kind) = rest.rsplit_once('_')?;
    let ok_code = !code.is_empty() && !code.starts_with('.') && !code.contains(['/', '\\']);
    let ok_kind = !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_alphanumeric());
    if !ok_code || !ok_kind || !valid_stamp(stamp) {
        return None;
    }
    Some(NameParts {
        code: code.to_string(),
        kind: kind.to_string(),
        stamp: stamp.to_string(),
    })
}

fn valid_stamp(s: &str) -> bool {
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let n = |a: usize, b: usize| s[a..b].parse::<u32>().unwrap_or(u32::MAX);
    // Two digits each: the casts cannot wrap.
    let Ok(month) = time::Month::try_from(n(4, 6) as u8) else {
        return false;
    };
    time::Date::from_calendar_date(n(0, 4) as i32, month, n(6, 8) as u8).is_ok()
        && n(8, 10) < 24
        && n(10, 12) < 60
        && n(12, 14) < 60
}

/// One file as a scan found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    /// Its path under the watched folder, `/`-separated: its key between scans.
    pub rel: String,
    /// Its own name (the last part of `rel`).
    pub name: String,
    pub size: u64,
    pub mtime: Option<SystemTime>,
}

/// What to do with a file that is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Read it and hand it to the taker.
    Take,
    /// Move it to `quarantine/` without reading it.
    Quarantine {
        reason: &'static str,
        detail: String,
    },
}

/// A ready file and its step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Work {
    pub rel: String,
    pub name: String,
    /// `None` for a name that does not parse (it is quarantined, never taken).
    pub parts: Option<NameParts>,
    pub size: u64,
    pub step: Step,
}

/// One mine's ready files, in the order they are to go, one at a time; the first that does
/// not [`Outcome::continues`] stops the rest until a later scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MineWork {
    /// The mine code; empty for the names that do not parse (each of those stands alone).
    pub code: String,
    pub files: Vec<Work>,
}

/// What became of one [`Work`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Taken (applied or a duplicate) and moved to `done/`.
    Done(Taken),
    /// Moved to `quarantine/` for this reason.
    Quarantined(&'static str),
    /// The taker said to send it again later: left in place.
    Retry,
    /// The taker said it does not end yet: left in place to wait for the rest.
    Incomplete,
    /// It was not as the scan saw it (another size when read): it is being written again.
    Changed,
    /// It was gone when read or moved (someone else took it).
    Vanished,
    /// Reading or moving it failed (the reason is logged and counted): try again later.
    Failed,
}

impl Outcome {
    /// Do the mine's later files go on in this scan?
    pub fn continues(&self) -> bool {
        matches!(
            self,
            Outcome::Done(_) | Outcome::Quarantined(_) | Outcome::Vanished
        )
    }

    /// The `outcome` label of `safegate_mine_files_watch_files`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Done(Taken::Applied { .. }) => "applied",
            Outcome::Done(Taken::Duplicate) => "duplicate",
            Outcome::Quarantined(_) => "quarantined",
            Outcome::Retry => "retry",
            Outcome::Incomplete => "incomplete",
            Outcome::Changed => "changed",
            Outcome::Vanished => "vanished",
            Outcome::Failed => "failed",
        }
    }
}

/// What the taker's answer means for the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Committed (or committed before): move it to `done/`.
    ToDone(Taken),
    /// Refused for good: move it to `quarantine/` with the reason beside it.
    ToQuarantine {
        reason: &'static str,
        detail: String,
    },
    /// Leave it; try again after a back-off.
    Retry(String),
    /// Leave it; wait for it to grow (or for the bound, then quarantine it).
    Wait,
}

pub(crate) fn disposition(answer: Result<Taken, TakeError>) -> Disposition {
    match answer {
        Ok(t) => Disposition::ToDone(t),
        Err(TakeError::Refused { reason, detail }) => Disposition::ToQuarantine { reason, detail },
        Err(TakeError::Retry(why)) => Disposition::Retry(why),
        Err(TakeError::Incomplete) => Disposition::Wait,
    }
}

#[derive(Debug, Clone)]
struct Seen {
    size: u64,
    mtime: Option<SystemTime>,
    /// When the scans first saw it at this size and mtime.
    since_ms: i64,
    /// When the taker last called it incomplete (at this size and mtime).
    incomplete_at: Option<i64>,
}

#[derive(Debug, Clone, Default)]
struct Backoff {
    attempts: u32,
    next_ms: i64,
}

/// What the scans remember between them: each file's last size and mtime and since when,
/// and each mine's back-off. Files and mines no longer found are forgotten.
#[derive(Debug)]
pub(crate) struct Tracker {
    settle_ms: i64,
    incomplete_ms: i64,
    retry_min_ms: u64,
    max_file_bytes: u64,
    files: HashMap<String, Seen>,
    mines: HashMap<String, Backoff>,
}

impl Tracker {
    pub fn new(settle_ms: u64, scan_ms: u64, max_file_bytes: u64) -> Tracker {
        Tracker {
            settle_ms: settle_ms as i64,
            incomplete_ms: settle_ms.saturating_mul(INCOMPLETE_SETTLES).max(1) as i64,
            retry_min_ms: scan_ms.clamp(RETRY_MIN_MS, RETRY_MAX_MS),
            max_file_bytes,
            files: HashMap::new(),
            mines: HashMap::new(),
        }
    }

    /// Take in one scan's listing at `now_ms`; the mines' ready files, in order.
    pub fn plan(&mut self, listing: Vec<Listed>, now_ms: i64) -> Vec<MineWork> {
        let mut keep: HashMap<String, Seen> = HashMap::with_capacity(listing.len());
        let mut by_mine: HashMap<String, Vec<(Listed, NameParts)>> = HashMap::new();
        let mut bad = Vec::new();
        for l in listing {
            let seen = match self.files.remove(&l.rel) {
                Some(s) if s.size == l.size && s.mtime == l.mtime => s,
                _ => Seen {
                    size: l.size,
                    mtime: l.mtime,
                    since_ms: now_ms,
                    incomplete_at: None,
                },
            };
            let settled = now_ms - seen.since_ms >= self.settle_ms;
            keep.insert(l.rel.clone(), seen);
            match parse_name(&l.name) {
                Some(p) => by_mine.entry(p.code.clone()).or_default().push((l, p)),
                None if settled => bad.push(MineWork {
                    code: String::new(),
                    files: vec![Work {
                        step: Step::Quarantine {
                            reason: "bad_name",
                            detail: format!(
                                "`{}` is not <mine code>_<TYPE>_<yyyyMMddHHmmss>.txt",
                                l.name
                            ),
                        },
                        rel: l.rel,
                        name: l.name,
                        parts: None,
                        size: l.size,
                    }],
                }),
                None => {}
            }
        }
        self.files = keep;
        self.mines.retain(|code, _| by_mine.contains_key(code));
        let mut out: Vec<MineWork> = Vec::new();
        for (code, mut files) in by_mine {
            if self.mines.get(&code).is_some_and(|b| now_ms < b.next_ms) {
                continue;
            }
            files.sort_by(|a, b| (&a.1.stamp, &a.0.name).cmp(&(&b.1.stamp, &b.0.name)));
            let ready = self.ready_in_order(files, now_ms);
            if !ready.is_empty() {
                out.push(MineWork { code, files: ready });
            }
        }
        out.sort_by(|a, b| a.code.cmp(&b.code));
        out.extend(bad);
        out
    }

    /// A mine's files from the oldest while they are ready: one still settling or waiting
    /// for its rest holds the later ones (their data must not overtake it).
    fn ready_in_order(&self, files: Vec<(Listed, NameParts)>, now_ms: i64) -> Vec<Work> {
        let mut ready = Vec::new();
        for (l, parts) in files {
            let seen = &self.files[&l.rel];
            if now_ms - seen.since_ms < self.settle_ms {
                break;
            }
            let step = if let Some(at) = seen.incomplete_at {
                if now_ms - at < self.incomplete_ms {
                    break;
                }
                Step::Quarantine {
                    reason: "truncated",
                    detail: format!(
                        "it does not end with `||` and has not changed for {} ms",
                        now_ms - at
                    ),
                }
            } else if l.size > self.max_file_bytes {
                Step::Quarantine {
                    reason: "too_large",
                    detail: format!(
                        "{} bytes, over max_file_bytes ({})",
                        l.size, self.max_file_bytes
                    ),
                }
            } else {
                Step::Take
            };
            ready.push(Work {
                rel: l.rel,
                name: l.name,
                parts: Some(parts),
                size: l.size,
                step,
            });
        }
        ready
    }

    /// What became of a file of mine `code` (empty: a name that does not parse) at `now_ms`.
    pub fn record(&mut self, code: &str, rel: &str, outcome: &Outcome, now_ms: i64) {
        match outcome {
            Outcome::Done(_) | Outcome::Quarantined(_) | Outcome::Vanished => {
                self.files.remove(rel);
                if matches!(outcome, Outcome::Done(_)) {
                    self.mines.remove(code);
                }
            }
            Outcome::Incomplete => {
                if let Some(s) = self.files.get_mut(rel) {
                    s.incomplete_at.get_or_insert(now_ms);
                }
            }
            Outcome::Changed => {
                if let Some(s) = self.files.get_mut(rel) {
                    s.since_ms = now_ms;
                    s.incomplete_at = None;
                }
            }
            Outcome::Retry | Outcome::Failed => {
                let b = self.mines.entry(code.to_string()).or_default();
                let wait = self
                    .retry_min_ms
                    .saturating_mul(1u64 << b.attempts.min(16))
                    .min(RETRY_MAX_MS);
                b.attempts = b.attempts.saturating_add(1);
                b.next_ms = now_ms.saturating_add(wait as i64);
            }
        }
    }

    /// When mine `code` may be tried again, if it is backing off.
    #[cfg(test)]
    pub fn retry_at(&self, code: &str) -> Option<i64> {
        self.mines.get(code).map(|b| b.next_ms)
    }
}

/// China Standard Time, the mines' clock: "today" for the `done/` sweep, as the stamps'
/// dates are the mines' own.
pub(crate) const MINE_UTC_OFFSET_S: i32 = 8 * 3600;

/// The date (in the mines' time) of epoch ms `now_ms`.
pub(crate) fn mine_date(now_ms: i64) -> time::Date {
    let offset =
        time::UtcOffset::from_whole_seconds(MINE_UTC_OFFSET_S).unwrap_or(time::UtcOffset::UTC);
    time::OffsetDateTime::from_unix_timestamp_nanos(now_ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(offset)
        .date()
}

/// Is a `done/<code>/<folder>` past `keep_days` on `today`? Only folders named as dates
/// (`yyyy-mm-dd`) ever are; a date `keep_days` or fewer days before today is kept.
pub(crate) fn expired(folder: &str, today: time::Date, keep_days: u32) -> bool {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    match time::Date::parse(folder, &fmt) {
        Ok(d) => (today - d).whole_days() > i64::from(keep_days),
        Err(_) => false,
    }
}

/// A name free in a folder: `name` itself, else `<stem>.1.txt`, `<stem>.2.txt`, ...
/// (`taken` says whether a name is in use).
pub(crate) fn free_name(name: &str, mut taken: impl FnMut(&str) -> bool) -> Option<String> {
    if !taken(name) {
        return Some(name.to_string());
    }
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => name.split_at(i),
        _ => (name, ""),
    };
    (1..10_000)
        .map(|n| format!("{stem}.{n}{ext}"))
        .find(|c| !taken(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn listed(rel: &str, size: u64, mtime_s: u64) -> Listed {
        Listed {
            rel: rel.to_string(),
            name: rel.rsplit('/').next().unwrap().to_string(),
            size,
            mtime: Some(UNIX_EPOCH + Duration::from_secs(mtime_s)),
        }
    }

    fn names(plan: &[MineWork]) -> Vec<Vec<&str>> {
        plan.iter()
            .map(|m| m.files.iter().map(|w| w.name.as_str()).collect())
            .collect()
    }

    #[test]
    fn candidates_are_txt_files_that_are_not_hidden_or_temporary() {
        for ok in ["150621_CDSS_20260101120000.txt", "a.TXT", "x.Txt"] {
            assert!(is_candidate(ok), "{ok}");
        }
        for no in [
            ".150621_CDSS_20260101120000.txt",
            "~$150621_CDSS_20260101120000.txt",
            "150621_CDSS_20260101120000.txt.tmp",
            "150621_CDSS_20260101120000.txt.part",
            "150621_CDSS_20260101120000.TMP",
            "150621_CDSS_20260101120000",
            ".txt",
        ] {
            assert!(!is_candidate(no), "{no}");
        }
        assert!(is_skipped_dir("done", true) && is_skipped_dir("quarantine", true));
        assert!(!is_skipped_dir("done", false) && !is_skipped_dir("150621", true));
        assert!(is_skipped_dir(".cache", false));
    }

    #[test]
    fn names_split_from_the_right() {
        let p = parse_name("150621_A_01_CDSS_20260101120000.TXT").unwrap();
        assert_eq!(
            (p.code.as_str(), p.kind.as_str(), p.stamp.as_str()),
            ("150621_A_01", "CDSS", "20260101120000")
        );
        assert_eq!(p.date(), "2026-01-01");
        for bad in [
            "CDSS_20260101120000.txt",
            "_CDSS_20260101120000.txt",
            "150621__20260101120000.txt",
            "150621_CDSS_2026010112000.txt",
            "150621_CDSS_2026010112000x.txt",
            "150621_CDSS_20261301120000.txt",
            "150621_CDSS_20260230120000.txt",
            "150621_CDSS_20260101240000.txt",
            "150621_CDSS_20260101120060.txt",
            "150621_CDSS_20260101120000.dat",
            "readme.txt",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_file_is_ready_once_unchanged_for_settle_ms() {
        let mut t = Tracker::new(2_000, 1_000, 1_000);
        let f = "150621_CDSS_20260101120000.txt";
        assert!(t.plan(vec![listed(f, 10, 1)], 0).is_empty());
        assert!(t.plan(vec![listed(f, 10, 1)], 1_999).is_empty());
        // It grows: the settle starts again.
        assert!(t.plan(vec![listed(f, 20, 2)], 1_999).is_empty());
        assert!(t.plan(vec![listed(f, 20, 2)], 3_998).is_empty());
        // Same size, new mtime (rewritten in place): still changing.
        assert!(t.plan(vec![listed(f, 20, 3)], 3_999).is_empty());
        let p = t.plan(vec![listed(f, 20, 3)], 5_999);
        assert_eq!(names(&p), vec![vec![f]]);
        assert_eq!(p[0].code, "150621");
        assert_eq!(p[0].files[0].step, Step::Take);
    }

    #[test]
    fn one_mines_files_go_in_stamp_order_then_name_and_mines_apart() {
        let mut t = Tracker::new(100, 100, 1_000);
        let l = vec![
            listed("m1/150621_CDSS_20260101120010.txt", 1, 1),
            listed("150621_CDDY_20260101120010.txt", 1, 1),
            listed("150621_CDSS_20260101120000.txt", 1, 1),
            listed("150999_CDSS_20260101115900.txt", 1, 1),
        ];
        t.plan(l.clone(), 0);
        let p = t.plan(l, 100);
        assert_eq!(
            names(&p),
            vec![
                vec![
                    "150621_CDSS_20260101120000.txt",
                    "150621_CDDY_20260101120010.txt",
                    "150621_CDSS_20260101120010.txt",
                ],
                vec!["150999_CDSS_20260101115900.txt"],
            ]
        );
    }

    #[test]
    fn an_older_file_still_changing_holds_the_mines_later_files() {
        let mut t = Tracker::new(100, 100, 1_000);
        let old = "150621_CDSS_20260101120000.txt";
        let new = "150621_CDSS_20260101120010.txt";
        t.plan(vec![listed(new, 5, 1)], 0);
        t.plan(vec![listed(old, 5, 1), listed(new, 5, 1)], 50);
        assert!(t
            .plan(vec![listed(old, 5, 1), listed(new, 5, 1)], 100)
            .is_empty());
        let p = t.plan(vec![listed(old, 5, 1), listed(new, 5, 1)], 150);
        assert_eq!(names(&p), vec![vec![old, new]]);
    }

    #[test]
    fn retry_backs_the_mine_off_doubling_to_a_cap_and_success_resets_it() {
        let mut t = Tracker::new(100, 500, 1_000);
        let f = "150621_CDSS_20260101120000.txt";
        t.plan(vec![listed(f, 5, 1)], 0);
        assert_eq!(t.plan(vec![listed(f, 5, 1)], 100).len(), 1);
        t.record("150621", f, &Outcome::Retry, 100);
        assert_eq!(t.retry_at("150621"), Some(100 + RETRY_MIN_MS as i64));
        assert!(t.plan(vec![listed(f, 5, 1)], 1_099).is_empty());
        assert_eq!(t.plan(vec![listed(f, 5, 1)], 1_100).len(), 1);
        t.record("150621", f, &Outcome::Failed, 1_100);
        assert_eq!(t.retry_at("150621"), Some(1_100 + 2 * RETRY_MIN_MS as i64));
        for _ in 0..20 {
            t.record("150621", f, &Outcome::Retry, 5_000);
        }
        assert_eq!(t.retry_at("150621"), Some(5_000 + RETRY_MAX_MS as i64));
        t.record("150621", f, &Outcome::Done(Taken::Duplicate), 6_000);
        assert_eq!(t.retry_at("150621"), None);
    }

    #[test]
    fn incomplete_waits_for_a_change_then_is_quarantined_after_the_bound() {
        let mut t = Tracker::new(100, 100, 1_000);
        let f = "150621_CDSS_20260101120000.txt";
        let later = "150621_CDSS_20260101120010.txt";
        let both = |s: u64| vec![listed(f, s, s), listed(later, 1, 1)];
        t.plan(both(5), 0);
        assert_eq!(t.plan(both(5), 100)[0].files.len(), 2);
        t.record("150621", f, &Outcome::Incomplete, 100);
        // Not taken again while unchanged, and the later file waits behind it.
        assert!(t.plan(both(5), 200).is_empty());
        // It grows: taken again once settled.
        t.plan(both(6), 300);
        let p = t.plan(both(6), 400);
        assert_eq!(p[0].files[0].step, Step::Take);
        t.record("150621", f, &Outcome::Incomplete, 400);
        assert!(t.plan(both(6), 400 + 999).is_empty());
        let p = t.plan(both(6), 400 + 1_000);
        assert!(matches!(
            &p[0].files[0].step,
            Step::Quarantine {
                reason: "truncated",
                ..
            }
        ));
        assert_eq!(p[0].files[1].step, Step::Take);
    }

    #[test]
    fn oversize_and_bad_names_are_quarantined_once_settled() {
        let mut t = Tracker::new(100, 100, 10);
        let l = vec![
            listed("150621_CDSS_20260101120000.txt", 11, 1),
            listed("notes.txt", 1, 1),
        ];
        assert!(t.plan(l.clone(), 0).is_empty());
        let p = t.plan(l, 100);
        assert!(matches!(
            &p[0].files[0].step,
            Step::Quarantine {
                reason: "too_large",
                ..
            }
        ));
        assert_eq!(p[1].code, "");
        assert!(matches!(
            &p[1].files[0].step,
            Step::Quarantine {
                reason: "bad_name",
                ..
            }
        ));
    }

    #[test]
    fn vanished_files_and_their_mines_are_forgotten() {
        let mut t = Tracker::new(100, 100, 10);
        let f = "150621_CDSS_20260101120000.txt";
        t.plan(vec![listed(f, 1, 1)], 0);
        t.record("150621", f, &Outcome::Retry, 100);
        t.plan(vec![], 200);
        assert!(t.files.is_empty() && t.retry_at("150621").is_none());
        // Seen again: a new file, settling from now.
        assert!(t.plan(vec![listed(f, 1, 1)], 300).is_empty());
    }

    #[test]
    fn what_the_takers_answers_mean() {
        assert_eq!(
            disposition(Ok(Taken::Duplicate)),
            Disposition::ToDone(Taken::Duplicate)
        );
        assert_eq!(
            disposition(Err(TakeError::Refused {
                reason: "unknown_mine",
                detail: "x".into()
            })),
            Disposition::ToQuarantine {
                reason: "unknown_mine",
                detail: "x".into()
            }
        );
        assert_eq!(
            disposition(Err(TakeError::Retry("holding".into()))),
            Disposition::Retry("holding".into())
        );
        assert_eq!(disposition(Err(TakeError::Incomplete)), Disposition::Wait);
        assert!(Outcome::Done(Taken::Duplicate).continues());
        assert!(Outcome::Quarantined("x").continues());
        assert!(!Outcome::Retry.continues() && !Outcome::Incomplete.continues());
        assert!(!Outcome::Changed.continues() && !Outcome::Failed.continues());
    }

    #[test]
    fn done_folders_expire_by_their_date_name_in_the_mines_time() {
        // 2026-12-01 16:30 UTC is 2026-12-02 00:30 in China.
        let today = mine_date(1_796_142_600_000);
        assert_eq!(today.to_string(), "2026-12-02");
        assert!(!expired("2026-12-02", today, 7));
        assert!(!expired("2026-11-25", today, 7));
        assert!(expired("2026-11-24", today, 7));
        assert!(!expired("misc", today, 7));
        assert!(!expired("2026-11-24x", today, 7));
    }

    #[test]
    fn a_free_name_gets_a_numbered_suffix() {
        let used = ["a.txt", "a.1.txt"];
        assert_eq!(free_name("b.txt", |n| used.contains(&n)).unwrap(), "b.txt");
        assert_eq!(
            free_name("a.txt", |n| used.contains(&n)).unwrap(),
            "a.2.txt"
        );
        assert_eq!(free_name("x", |n| n == "x").unwrap(), "x.1");
    }
}
