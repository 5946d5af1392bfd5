//! What sources hand to the core: parsed readings, device state messages, and rejections
//! the source could already decide (bad JSON, bad topic, oversize).

pub use crate::model::Reason;
use serde::Serialize;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReadingStatus {
    #[default]
    Normal,
    Fault,
    Maintenance,
}

impl ReadingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadingStatus::Normal => "normal",
            ReadingStatus::Fault => "fault",
            ReadingStatus::Maintenance => "maintenance",
        }
    }
}

/// A channel's name: inline up to 24 bytes (all real ones), so a reading's channels cost no
/// allocation each on their way from the payload to the store.
pub type Channel = compact_str::CompactString;

/// A reading's values: channel name and number, in the order sent.
pub type Values = Vec<(Channel, f64)>;

/// A reading as a source parsed it, not yet checked against the inventory.
#[derive(Debug, Clone, PartialEq)]
pub struct RawReading {
    /// Ids are short: inline (no allocation per reading) up to 24 bytes.
    pub site: compact_str::CompactString,
    pub device: compact_str::CompactString,
    /// Device timestamp, epoch ms; `None` when the payload had none.
    pub ts_ms: Option<i64>,
    pub values: Values,
    pub status: ReadingStatus,
    /// What made a fault or maintenance status, when the source knows it (a mine's
    /// "substation …F003 通信中断", "传感器故障"): it names the condition in the history and the
    /// report's reasons.
    pub cause: Option<Arc<str>>,
}

/// Field names the store writes beside a reading's channels (`sinks::record`): a channel of
/// the same name would overwrite one of them or be overwritten.
pub const RESERVED_CHANNELS: [&str; 2] = ["status_code", "ts_from_gateway"];

/// Why a reading's channel names cannot be stored, if they cannot: an empty name, a control
/// character or a backslash (line protocol cannot carry them), a name the store uses for its
/// own fields, or a name given twice (one value would silently replace the other).
pub fn channel_names_problem(values: &[(Channel, f64)]) -> Option<String> {
    for (ch, _) in values {
        if ch.is_empty() {
            return Some("a channel name is empty".into());
        }
        if let Some(c) = ch.chars().find(|c| c.is_control() || *c == '\\') {
            return Some(format!(
                "channel {ch:?} contains {c:?}, which the store cannot take"
            ));
        }
        if RESERVED_CHANNELS.contains(&ch.as_str()) {
            return Some(format!(
                "channel {ch:?} is a field the gateway writes itself"
            ));
        }
    }
    let twice = if values.len() <= 8 {
        values
            .iter()
            .enumerate()
            .find(|(i, (ch, _))| values[..*i].iter().any(|(p, _)| p == ch))
            .map(|(_, (ch, _))| ch.as_str())
    } else {
        let mut names: Vec<&str> = values.iter().map(|(ch, _)| ch.as_str()).collect();
        names.sort_unstable();
        names.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
    };
    twice.map(|ch| format!("channel {ch:?} is given twice"))
}

/// The link name of the gateway's own MQTT connection: in cluster mode each instance's own,
/// so it stays out of the shared stream (a polled link is the deployment's).
pub const MQTT_LINK: &str = "mqtt";

/// Where an event came from, for rejection messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    pub topic: Arc<str>,
    /// Index inside a batch message.
    pub element: Option<u32>,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.element {
            Some(i) => write!(f, "{} [element {i}]", self.topic),
            None => f.write_str(&self.topic),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SourceEvent {
    Reading {
        reading: RawReading,
        origin: Origin,
        received_ms: i64,
    },
    /// A reading to store only: checked as any other, but it moves neither liveness, nor
    /// the last values, nor alarms (a mine's late file: its data is older than what was
    /// already applied, and must not rewind the device's state).
    Stored {
        reading: RawReading,
        origin: Origin,
        received_ms: i64,
    },
    DeviceState {
        site: String,
        device: String,
        online: bool,
        origin: Origin,
        received_ms: i64,
    },
    Rejected(Rejection),
    /// A park platform acknowledged an alarm on `{prefix}/{site}/alarms/{id}/ack` (or, in
    /// cluster mode, an operator over the API).
    Ack {
        site: String,
        /// As written in the topic; the core says whether it names an alarm.
        alarm: String,
        by: String,
        note: String,
        /// How it came: `mqtt`, or in cluster mode `http` / `http:<token>` for one made over
        /// the API (it travels the readings stream as the platforms' do).
        via: String,
        origin: Origin,
        received_ms: i64,
    },
    /// An alarm the sender recorded itself (a mine's YCBJ anomaly log), for one device.
    /// Boxed: rare beside readings.
    RecordedAlarm(Box<RecordedAlarm>),
    /// One poll of a polled source (a Modbus unit) succeeded or failed, on `link`.
    Poll {
        link: Arc<str>,
        ok: bool,
        at_ms: i64,
    },
    /// An upstream link (the MQTT connection, a Modbus endpoint) went up or down.
    Link {
        link: Arc<str>,
        up: bool,
        at_ms: i64,
    },
    /// Everything the source sent before this is one message; complete the receipt once it
    /// is durable (passed through to `Outputs::receipts`, in order).
    Checkpoint(crate::core::Receipt),
    /// One upstream request's events, applied together, for a source that must tell its
    /// sender which elements were refused (HTTP push). Boxed: rare beside readings.
    Message(Box<Message>),
    /// A source declares one site's devices (a mine's point-definition file): they join,
    /// change or leave the inventory at its `at_ms`, in order with the readings around it.
    Devices(Box<SiteDevices>),
    /// A whole file, checked at ingress, for the source that takes it to turn into its events
    /// where the readings stream is applied (cluster mode: every instance turns it, at the
    /// same point of the stream, with the same state). It never reaches the core itself.
    /// Boxed: rare beside readings.
    File(Box<FileIn>),
    /// Time has reached `at_ms` (cluster mode: a partition owner's tick in the readings
    /// stream, so every instance expires silent devices at the same point of the same
    /// order): devices silent past their deadline go offline.
    Tick {
        at_ms: i64,
    },
    /// Cluster mode: the follower has handed over every event of the readings stream up to
    /// `sequence` (the stream's time `now_ms`): the core task checkpoints there. It never
    /// reaches the core itself.
    Position {
        sequence: u64,
        now_ms: i64,
        /// The mines whose state files changed since the last position.
        saved: Vec<FileSave>,
    },
}

impl SourceEvent {
    /// A reading (or a store-only one) becomes its refusal, with the same origin and receive
    /// time (a check made after parsing: a signature, the site of a push, a value the cluster's
    /// stream cannot carry); other events are left as they are.
    pub fn refuse(&mut self, reason: Reason, detail: String) {
        if let SourceEvent::Reading {
            origin,
            received_ms,
            ..
        }
        | SourceEvent::Stored {
            origin,
            received_ms,
            ..
        } = self
        {
            *self = SourceEvent::Rejected(Rejection {
                reason,
                origin: origin.clone(),
                detail,
                received_ms: *received_ms,
            });
        }
    }
}

/// An alarm as its sender recorded it (see `AlarmBook::record`).
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub kind: crate::model::AlarmType,
    /// On the device's scheme (1 and 2 fit both); ignored when `priority` is given.
    pub level: u8,
    /// An urgency 1 (the most urgent) … 4 given instead of a level, as GB/T 28181 alarms
    /// carry it: the book maps it onto the device's scheme ([`crate::core::alarms::priority_level`]).
    pub priority: Option<u8>,
    pub raised_ms: i64,
    pub cleared_ms: Option<i64>,
    /// Who recorded the response, what it was, and when.
    pub ack: Option<RecordedAck>,
    /// The value the record gives (its maximum), if any.
    pub value: Option<f64>,
    /// How far apart a recorded start and the gateway's own raise may be and still be one
    /// alarm.
    pub match_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecordedAck {
    pub by: String,
    pub note: String,
    pub at_ms: i64,
}

/// See [`SourceEvent::File`]: a mine's networking file as its transport received it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileIn {
    /// The source that turns it into events, e.g. `mine_files`.
    pub source: Arc<str>,
    /// The site it is of (its partition's).
    pub site: String,
    /// The file's own name.
    pub name: String,
    /// Who the transport vouches for (the FTP login), if anyone.
    pub login: Option<String>,
    /// It came from the watched folder, not over FTP.
    pub from_folder: bool,
    pub bytes: Vec<u8>,
    pub received_ms: i64,
}

/// Cluster mode: how a source turns a [`FileIn`] from the stream into its events.
pub trait FileTaker: Send + Sync {
    /// The events the file makes, applied to the source's own state (a mine's points and
    /// alarms) as it would have applied them alone. The follower awaits them before the
    /// next envelope, so every instance applies them at the same point of the stream.
    fn apply(&self, file: Box<FileIn>) -> futures::future::BoxFuture<'static, Vec<SourceEvent>>;
    /// Its readings alone, from the source's state as it is, changing nothing: what a
    /// partition writer stores once the follower has applied the file.
    fn readings(&self, file: &FileIn) -> futures::future::BoxFuture<'static, Vec<SourceEvent>>;
    /// The state of each mine a file changed since the last call, for the checkpoint at
    /// the position applied (the follower calls it between files).
    fn saved(&self) -> futures::future::BoxFuture<'static, Vec<FileSave>>;
}

/// Cluster mode: one mine's state as a checkpoint keeps it ([`FileTaker::saved`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FileSave {
    /// The mine's code.
    pub key: String,
    /// What the source needs beside its definitions, in its own format.
    pub state: Vec<u8>,
    /// The definitions file (a CDDY) the mine's points now come from, when one was applied
    /// since the last checkpoint.
    pub definition: Option<Definition>,
    /// The files applied since the last checkpoint, (name, SHA-256 of the content), oldest
    /// first: what a second copy of one is known by. The newest [`SEEN_KEPT`] are kept.
    pub seen: Vec<(String, [u8; 32])>,
}

/// A mine's definitions file as it came.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    pub name: String,
    pub bytes: Vec<u8>,
    pub received_ms: i64,
}

/// The files a mine is known to have applied, per mine (a second copy is skipped).
pub const SEEN_KEPT: usize = 4096;

/// See [`FileTaker`].
pub type Files = Arc<dyn FileTaker>;

/// See [`SourceEvent::RecordedAlarm`].
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedAlarm {
    pub site: String,
    pub device: String,
    pub alarm: Recorded,
    pub origin: Origin,
    pub received_ms: i64,
}

/// See [`SourceEvent::Message`]. Sent as one event so that nothing from another source falls
/// between its parts: the core can then say which refusals are this message's.
#[derive(Debug, Clone)]
pub struct Message {
    pub events: Vec<SourceEvent>,
    /// The refusals among `events`, the source's own and the core's (unknown device, stale
    /// time...), in order; filled before `receipt` is passed on, so complete once it is.
    pub refused: Arc<std::sync::Mutex<Vec<Rejection>>>,
    pub receipt: crate::core::Receipt,
}

impl PartialEq for Message {
    fn eq(&self, other: &Message) -> bool {
        self.receipt == other.receipt && Arc::ptr_eq(&self.refused, &other.refused)
    }
}

/// At most `n` characters of `s`, marked when cut: hostile input is named in messages and
/// logs without being copied into them whole.
pub fn shorten(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    pub reason: Reason,
    #[serde(serialize_with = "ser_origin")]
    pub origin: Origin,
    /// What exactly was wrong, for the operator.
    pub detail: String,
    pub received_ms: i64,
}

fn ser_origin<S: serde::Serializer>(o: &Origin, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(o)
}

/// A reading that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub device: crate::core::inventory::DeviceIdx,
    /// Device timestamp, or the receive time when the payload had none.
    pub ts_ms: i64,
    pub ts_from_gateway: bool,
    pub received_ms: i64,
    pub values: Values,
    pub status: ReadingStatus,
    /// The reading's [`RawReading::cause`].
    pub cause: Option<Arc<str>>,
}

impl Accepted {
    /// Receive time − reading time; `None` when the gateway stamped it.
    pub fn latency_ms(&self) -> Option<i64> {
        (!self.ts_from_gateway).then_some(self.received_ms - self.ts_ms)
    }
}

/// What one source says about one site's devices: its devices of that site not listed leave
/// at `at_ms`, new ones join, changed ones change (kind, system, interval, status, alarm
/// rule). Devices name the site's configured systems, zones and enterprises by id.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteDevices {
    /// The source's name, e.g. `mine_files`: what `declared` shows.
    pub source: Arc<str>,
    pub site: String,
    pub devices: Vec<crate::core::config::inventory::DeviceConfig<serde::de::IgnoredAny>>,
    /// What the source found wrong in them (replaces its findings for the site).
    pub findings: Arc<[crate::core::inventory::Finding]>,
    pub at_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawReading {
        RawReading {
            site: "p1".into(),
            device: "d1".into(),
            ts_ms: Some(1),
            values: vec![("lel".into(), f64::NAN)],
            status: ReadingStatus::Normal,
            cause: None,
        }
    }

    #[test]
    fn a_reading_or_a_store_only_one_becomes_its_refusal_and_nothing_else_does() {
        let origin = Origin {
            topic: "t".into(),
            element: Some(2),
        };
        let refused = |mut e: SourceEvent| {
            e.refuse(Reason::InvalidValue, "why".into());
            e
        };
        let want = SourceEvent::Rejected(Rejection {
            reason: Reason::InvalidValue,
            origin: origin.clone(),
            detail: "why".into(),
            received_ms: 7,
        });
        let (o, r) = (origin.clone(), raw());
        let reading = SourceEvent::Reading {
            reading: r,
            origin: o,
            received_ms: 7,
        };
        assert_eq!(refused(reading), want);
        let (o, r) = (origin.clone(), raw());
        let stored = SourceEvent::Stored {
            reading: r,
            origin: o,
            received_ms: 7,
        };
        assert_eq!(refused(stored), want);
        let tick = SourceEvent::Tick { at_ms: 7 };
        assert_eq!(refused(tick.clone()), tick);
    }
}
