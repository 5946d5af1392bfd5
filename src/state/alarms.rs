//! Alarms in the state database: one row per alarm (its latest state) and one row per event
//! (raise, escalation, acknowledgement, clear), written in the same transaction. Open alarms
//! are restored from here after a restart, with their raise times and deadlines unchanged.

use super::journal::Journal;
use super::rows::StateError;
use crate::core::alarms::book::{AlarmEvent, AlarmRecord, AlarmType, EventKind};
use crate::core::alarms::lifecycle::{Ack, Alarm};
use crate::core::alarms::view::{outcome_of, outcome_str, state_of, AlarmView, EventView};
use crate::core::indicators::history::AlarmFact;
use crate::core::inventory::Inventory;
use crate::model::rfc3339_ms;
use crate::model::Scheme;
use rusqlite::{params, OptionalExtension};

pub use super::rows::AlarmRow;

/// Filters of `GET /api/v1/alarms`.
#[derive(Debug, Clone, Default)]
pub struct AlarmFilter {
    pub site: Option<String>,
    pub device: Option<String>,
    /// active_unacked, active_acked, cleared_unacked, cleared_acked, or `open` (not final).
    pub state: Option<String>,
    pub alarm_type: Option<String>,
    /// Raised in [from, to).
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub limit: usize,
}

const COLUMNS: &str =
    "id, site, device, kind, type, channel, scheme, level, raised_ms, deadline_ms,
    value, peak, ack_ms, ack_by, ack_note, ack_via, cleared_ms";

fn view_of(r: &rusqlite::Row<'_>, now: i64) -> rusqlite::Result<AlarmView> {
    let scheme: String = r.get(6)?;
    let level: u8 = r.get(7)?;
    let raised_ms: i64 = r.get(8)?;
    let deadline_ms: i64 = r.get(9)?;
    let ack_ms: Option<i64> = r.get(12)?;
    let cleared_ms: Option<i64> = r.get(16)?;
    Ok(AlarmView {
        id: r.get::<_, i64>(0)? as u64,
        site: r.get(1)?,
        device: r.get(2)?,
        kind: r.get(3)?,
        alarm_type: r.get(4)?,
        channel: r.get(5)?,
        level_name: Scheme::parse(&scheme)
            .unwrap_or_default()
            .level_name(level)
            .into(),
        scheme,
        level,
        state: state_of(ack_ms.is_some(), cleared_ms.is_some()).into(),
        raised_ms,
        raised_at: rfc3339_ms(raised_ms),
        deadline_ms,
        deadline_at: rfc3339_ms(deadline_ms),
        value: r.get(10)?,
        peak: r.get(11)?,
        acknowledged_ms: ack_ms,
        acknowledged_at: ack_ms.map(rfc3339_ms),
        acknowledged_by: r.get(13)?,
        note: r.get(14)?,
        acknowledged_via: r.get(15)?,
        cleared_ms,
        cleared_at: cleared_ms.map(rfc3339_ms),
        response_s: ack_ms.map(|a| (a - raised_ms) as f64 / 1000.0),
        outcome: outcome_str(outcome_of(deadline_ms, ack_ms, now)).into(),
        events: Vec::new(),
    })
}

fn event_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventView> {
    let at_ms: i64 = r.get(0)?;
    Ok(EventView {
        at_ms,
        at: rfc3339_ms(at_ms),
        event: r.get(1)?,
        level: r.get(2)?,
        value: r.get(3)?,
        by: r.get(4)?,
        note: r.get(5)?,
        via: r.get(6)?,
    })
}

impl Journal {
    /// Persist alarm changes in one transaction.
    pub fn save_alarms(&mut self, rows: &[AlarmRow]) -> Result<(), StateError> {
        let path = self.path.clone();
        // A savepoint: in cluster mode it joins the transaction a checkpoint commits.
        let tx = self
            .conn
            .savepoint()
            .map_err(|e| StateError::Db(path.clone(), e))?;
        {
            let mut up = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO alarms (id, site, device, kind, type, channel, scheme,
                     level, raised_ms, deadline_ms, value, peak, ack_ms, ack_by, ack_note, ack_via,
                     cleared_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,
                     ?14, ?15, ?16, ?17)",
                )
                .map_err(|e| StateError::Db(path.clone(), e))?;
            let mut ev = tx
                .prepare_cached(
                    "INSERT INTO alarm_events (alarm, at_ms, event, level, value, by, note, via)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(|e| StateError::Db(path.clone(), e))?;
            for (a, e) in rows {
                up.execute(params![
                    a.id as i64,
                    a.site,
                    a.device,
                    a.kind,
                    a.alarm_type,
                    a.channel,
                    a.scheme,
                    a.level,
                    a.raised_ms,
                    a.deadline_ms,
                    a.value,
                    a.peak,
                    a.acknowledged_ms,
                    a.acknowledged_by,
                    a.note,
                    a.acknowledged_via,
                    a.cleared_ms
                ])
                .map_err(|e| StateError::Db(path.clone(), e))?;
                ev.execute(params![
                    a.id as i64,
                    e.at_ms,
                    e.event,
                    e.level,
                    e.value,
                    e.by,
                    e.note,
                    e.via
                ])
                .map_err(|e| StateError::Db(path.clone(), e))?;
            }
        }
        tx.commit().map_err(|e| StateError::Db(path.clone(), e))
    }

    /// The id after the highest ever given.
    pub fn next_alarm_id(&self) -> Result<u64, StateError> {
        let max: Option<i64> = self
            .conn
            .query_row("SELECT max(id) FROM alarms", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(max.map_or(1, |m| m as u64 + 1))
    }

    fn events_of(&self, id: u64) -> Result<Vec<EventView>, StateError> {
        self.rows(
            "SELECT at_ms, event, level, value, by, note, via FROM alarm_events
             WHERE alarm = ?1 ORDER BY rowid",
            params![id as i64],
            event_of,
        )
    }

    /// One alarm with its full history.
    pub fn alarm(&self, id: u64, now: i64) -> Result<Option<AlarmView>, StateError> {
        let sql = format!("SELECT {COLUMNS} FROM alarms WHERE id = ?1");
        let v = self
            .conn
            .query_row(&sql, params![id as i64], |r| view_of(r, now))
            .optional()
            .map_err(|e| self.err(e))?;
        match v {
            Some(mut v) => {
                v.events = self.events_of(id)?;
                Ok(Some(v))
            }
            None => Ok(None),
        }
    }

    /// Alarms matching `f`, newest first.
    pub fn alarms(&self, f: &AlarmFilter, now: i64) -> Result<Vec<AlarmView>, StateError> {
        let state_sql = match f.state.as_deref() {
            Some("active_unacked") => "cleared_ms IS NULL AND ack_ms IS NULL",
            Some("active_acked") => "cleared_ms IS NULL AND ack_ms IS NOT NULL",
            Some("cleared_unacked") => "cleared_ms IS NOT NULL AND ack_ms IS NULL",
            Some("cleared_acked") => "cleared_ms IS NOT NULL AND ack_ms IS NOT NULL",
            Some("open") => "(cleared_ms IS NULL OR ack_ms IS NULL)",
            Some("active") => "cleared_ms IS NULL",
            _ => "1",
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM alarms WHERE {state_sql}
             AND (?1 IS NULL OR site = ?1) AND (?2 IS NULL OR device = ?2)
             AND (?3 IS NULL OR type = ?3) AND raised_ms >= ?4 AND raised_ms < ?5
             ORDER BY id DESC LIMIT ?6"
        );
        self.rows(
            &sql,
            params![
                f.site,
                f.device,
                f.alarm_type,
                f.from.unwrap_or(i64::MIN),
                f.to.unwrap_or(i64::MAX),
                f.limit as i64
            ],
            |r| view_of(r, now),
        )
    }

    /// Alarms not yet final, as the core holds them, mapped onto the current inventory
    /// (alarms of devices no longer in it are left out).
    pub fn load_open_alarms(&self, inv: &Inventory) -> Result<Vec<AlarmRecord>, StateError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM alarms WHERE ack_ms IS NULL OR cleared_ms IS NULL ORDER BY id"
        );
        let views = self.rows(&sql, [], |r| view_of(r, 0))?;
        let mut out = Vec::with_capacity(views.len());
        for v in views {
            let Ok(device) = inv.lookup(&v.site, &v.device) else {
                continue;
            };
            let Some(kind) = AlarmType::parse(&v.alarm_type) else {
                continue;
            };
            let events: Vec<AlarmEvent> = self
                .events_of(v.id)?
                .into_iter()
                .filter_map(|e| {
                    Some(AlarmEvent {
                        at_ms: e.at_ms,
                        kind: EventKind::parse(&e.event)?,
                        level: e.level,
                        value: e.value,
                        by: e.by,
                        note: e.note,
                        via: e.via,
                    })
                })
                .collect();
            let mut levels: Vec<(i64, u8)> = events
                .iter()
                .filter(|e| matches!(e.kind, EventKind::Raised | EventKind::Escalated))
                .map(|e| (e.at_ms, e.level))
                .collect();
            if levels.is_empty() {
                levels.push((v.raised_ms, v.level));
            }
            out.push(AlarmRecord {
                id: v.id,
                device,
                site: inv.devices[device as usize].site,
                kind,
                channel: v.channel.map(Into::into),
                scheme: Scheme::parse(&v.scheme).unwrap_or_default(),
                alarm: Alarm {
                    raised_ms: v.raised_ms,
                    levels,
                    ack: v.acknowledged_ms.map(|at_ms| Ack {
                        by: v.acknowledged_by.clone().unwrap_or_default(),
                        note: v.note.clone().unwrap_or_default(),
                        at_ms,
                        via: v.acknowledged_via.clone().unwrap_or_default(),
                    }),
                    cleared_ms: v.cleared_ms,
                },
                deadline_ms: v.deadline_ms,
                value: v.value,
                peak: v.peak,
                events,
            });
        }
        Ok(out)
    }

    /// Alarms closed (cleared and acknowledged) at or after `since`: (site, id, closed at).
    pub fn closed_alarms_since(&self, since: i64) -> Result<Vec<(String, u64, i64)>, StateError> {
        self.rows(
            "SELECT site, id, max(ack_ms, cleared_ms) AS closed FROM alarms
             WHERE ack_ms IS NOT NULL AND cleared_ms IS NOT NULL AND closed >= ?1 ORDER BY closed",
            params![since],
            |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?)),
        )
    }

    /// What the indicator engine needs of the alarms raised in [from, to), by device index.
    pub(super) fn alarm_facts(
        &self,
        inv: &Inventory,
        from: i64,
        to: i64,
    ) -> Result<Vec<AlarmFact>, StateError> {
        let rows = self.rows(
            "SELECT id, site, device, type, level, raised_ms, deadline_ms, ack_ms FROM alarms
             WHERE raised_ms >= ?1 AND raised_ms < ?2 ORDER BY id",
            params![from, to],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, u8>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, Option<i64>>(7)?,
                ))
            },
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, site, device, t, level, raised, deadline, ack)| {
                Some(AlarmFact {
                    id: id as u64,
                    device: inv.lookup(&site, &device).ok()?,
                    alarm_type: AlarmType::parse(&t)?,
                    level,
                    raised_ms: raised,
                    deadline_ms: deadline,
                    ack_ms: ack,
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use crate::core::alarms::tests::{core, feed, kinds, T0};
    use crate::core::alarms::EventKind;
    use crate::core::Outputs;
    use crate::state::Journal;

    #[test]
    fn open_alarms_survive_a_restart_through_the_journal() {
        use crate::core::alarms::view::{AlarmView, EventView};
        let dir = tempfile::tempdir().unwrap();
        let mut c = core();
        let ch = feed(&mut c, "p1", "lel", &[(0, 30.0), (1, 60.0)]);
        let closed = feed(
            &mut c,
            "p1",
            "slow",
            &[(0, 30.0), (1, 30.0), (2, 1.0), (3, 1.0)],
        );
        let mut out = Outputs::default();
        c.acknowledge(2, None, "op", "", "http", T0 + 5_000, &mut out)
            .unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        let rows: Vec<_> = ch
            .iter()
            .chain(&closed)
            .chain(&out.alarms)
            .map(|a| {
                (
                    AlarmView::of(&a.record, &c.inventory, T0, false),
                    EventView::of(&a.event),
                )
            })
            .collect();
        j.save_alarms(&rows).unwrap();

        let mut fresh = core();
        let open = j.load_open_alarms(&fresh.inventory).unwrap();
        assert_eq!(open.len(), 1, "alarm 2 is closed");
        assert_eq!(open[0], c.alarms.get(1).unwrap().clone());
        fresh.alarms.restore(j.next_alarm_id().unwrap(), open);
        // The active level-2 alarm continues: no new raise, and it clears as before.
        let ch = feed(&mut fresh, "p1", "lel", &[(10, 55.0), (11, 10.0)]);
        assert_eq!(kinds(&ch), vec![(1, EventKind::Cleared, 2)]);
        assert_eq!(ch[0].record.alarm.raised_ms, T0);
        // Ids continue after the highest.
        let ch = feed(&mut fresh, "p1", "lel", &[(12, 30.0)]);
        assert_eq!(ch[0].record.id, 3);
    }
}
