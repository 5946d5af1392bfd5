//! What an ingress instance hands to a partition's owner through JetStream: a reading, a
//! device's state message or an alarm acknowledgement, checked and normalised as the single
//! gateway does, with the time it was accepted at ingress (liveness runs on that time, not
//! on the owner's clock, so a handover moves no transition). JSON, versioned (`v`).

use crate::core::event::{FileIn, Origin, RawReading, ReadingStatus, SourceEvent};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The wire format's version; an owner refuses others (an upgrade runs old and new side by
/// side only if the new one reads the old).
pub const VERSION: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A reading that moves liveness, alarms and the last values.
    Reading,
    /// A reading to store only (a late one).
    Stored,
    /// The device's `state` topic: online or offline.
    State,
    /// A platform acknowledged an alarm.
    Ack,
    /// A partition owner's clock reached `received_ms` (`device` names the instance): every
    /// instance expires silent devices at this point of the stream.
    Tick,
    /// One poll of a polled link (a Modbus endpoint, `device` names it) by the owner of its
    /// sites: `online` says whether it succeeded.
    Poll,
    /// A polled link went up or down (`online`), as its owner saw it.
    Link,
    /// A whole file (`file`), checked at ingress; every instance turns it into its events.
    File,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub v: u8,
    pub kind: Kind,
    pub site: String,
    /// The device (for `ack`: empty).
    pub device: String,
    /// When it was accepted at ingress, epoch ms.
    pub received_ms: i64,
    pub topic: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub element: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: crate::core::event::Values,
    #[serde(default)]
    pub status: ReadingStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// For `state`: online; for `link`: up; for `poll`: succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    /// For `ack`: the alarm as written in the topic, who and the note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<(String, String, String)>,
    /// For `ack`: how it came when not over MQTT (`http:<token>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// For `file`: the file (its name is `topic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileBody>,
}

/// A file in an envelope: who sent it, how, and its bytes (base64: mine files are GB 18030
/// as often as UTF-8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBody {
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    #[serde(default)]
    pub from_folder: bool,
    pub base64: String,
}

/// Why an event does not go through JetStream.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvelopeError {
    /// Only what arrives from the field is shared, and the polls and links of what the
    /// owners poll; files, declarations and local refusals stay where they were made.
    #[error("not an ingress event")]
    NotIngress,
    /// JSON has no NaN or infinity: the reading is refused at ingress, as the store would.
    #[error("channel {0:?} is not a finite number")]
    NotFinite(String),
    #[error("envelope version {0}, this gateway reads {VERSION}")]
    Version(u8),
    #[error("envelope is not valid: {0}")]
    Invalid(String),
}

fn base(kind: Kind, site: &str, device: &str, origin: &Origin, received_ms: i64) -> Envelope {
    Envelope {
        v: VERSION,
        kind,
        site: site.into(),
        device: device.into(),
        received_ms,
        topic: origin.topic.to_string(),
        element: origin.element,
        ts_ms: None,
        values: Vec::new(),
        status: ReadingStatus::Normal,
        cause: None,
        online: None,
        ack: None,
        via: None,
        file: None,
    }
}

fn of_reading(kind: Kind, r: &RawReading, o: &Origin, at: i64) -> Result<Envelope, EnvelopeError> {
    if let Some((ch, _)) = r.values.iter().find(|(_, v)| !v.is_finite()) {
        return Err(EnvelopeError::NotFinite(ch.to_string()));
    }
    Ok(Envelope {
        ts_ms: r.ts_ms,
        values: r.values.clone(),
        status: r.status,
        cause: r.cause.as_deref().map(str::to_string),
        ..base(kind, &r.site, &r.device, o, at)
    })
}

fn of_file(f: &FileIn) -> Envelope {
    use base64::Engine;
    let origin = Origin {
        topic: Arc::from(f.name.as_str()),
        element: None,
    };
    Envelope {
        file: Some(FileBody {
            source: f.source.to_string(),
            login: f.login.clone(),
            from_folder: f.from_folder,
            base64: base64::engine::general_purpose::STANDARD.encode(&f.bytes),
        }),
        ..base(Kind::File, &f.site, "", &origin, f.received_ms)
    }
}

/// A polled link's poll or change: no site (it may serve several), the link in `device`.
fn of_link(kind: Kind, link: &str, on: bool, at_ms: i64) -> Envelope {
    let origin = Origin {
        topic: Arc::from(""),
        element: None,
    };
    Envelope {
        online: Some(on),
        ..base(kind, "", link, &origin, at_ms)
    }
}

impl Envelope {
    /// What orders it in the stream: its site, or for a link's events the link (so one
    /// link's polls and changes keep their order).
    pub fn partition_key(&self) -> &str {
        match self.kind {
            Kind::Poll | Kind::Link => &self.device,
            _ => &self.site,
        }
    }

    /// The tick of instance `instance` at `at_ms`.
    pub fn tick(instance: &str, at_ms: i64) -> Envelope {
        let origin = Origin {
            topic: Arc::from(""),
            element: None,
        };
        base(Kind::Tick, "", instance, &origin, at_ms)
    }

    /// The envelope of an ingress event.
    pub fn of(e: &SourceEvent) -> Result<Envelope, EnvelopeError> {
        match e {
            SourceEvent::Reading {
                reading,
                origin,
                received_ms,
            } => of_reading(Kind::Reading, reading, origin, *received_ms),
            SourceEvent::Stored {
                reading,
                origin,
                received_ms,
            } => of_reading(Kind::Stored, reading, origin, *received_ms),
            SourceEvent::DeviceState {
                site,
                device,
                online,
                origin,
                received_ms,
            } => {
                let b = base(Kind::State, site, device, origin, *received_ms);
                Ok(Envelope {
                    online: Some(*online),
                    ..b
                })
            }
            SourceEvent::Ack {
                site,
                alarm,
                by,
                note,
                via,
                origin,
                received_ms,
            } => {
                let b = base(Kind::Ack, site, "", origin, *received_ms);
                Ok(Envelope {
                    ack: Some((alarm.clone(), by.clone(), note.clone())),
                    via: (via != "mqtt").then(|| via.clone()),
                    ..b
                })
            }
            SourceEvent::File(f) => Ok(of_file(f)),
            SourceEvent::Poll { link, ok, at_ms } => Ok(of_link(Kind::Poll, link, *ok, *at_ms)),
            SourceEvent::Link { link, up, at_ms } => Ok(of_link(Kind::Link, link, *up, *at_ms)),
            _ => Err(EnvelopeError::NotIngress),
        }
    }

    /// The event it carries, as the ingress instance's core would have received it.
    pub fn event(self) -> Result<SourceEvent, EnvelopeError> {
        if self.v != VERSION {
            return Err(EnvelopeError::Version(self.v));
        }
        let origin = Origin {
            topic: Arc::from(self.topic.as_str()),
            element: self.element,
        };
        let received_ms = self.received_ms;
        let reading = |e: Envelope| RawReading {
            site: e.site.as_str().into(),
            device: e.device.as_str().into(),
            ts_ms: e.ts_ms,
            values: e.values,
            status: e.status,
            cause: e.cause.as_deref().map(Arc::from),
        };
        Ok(match self.kind {
            Kind::Reading => SourceEvent::Reading {
                reading: reading(self),
                origin,
                received_ms,
            },
            Kind::Stored => SourceEvent::Stored {
                reading: reading(self),
                origin,
                received_ms,
            },
            Kind::State => SourceEvent::DeviceState {
                online: (self.online)
                    .ok_or(EnvelopeError::Invalid("state without online".into()))?,
                site: self.site,
                device: self.device,
                origin,
                received_ms,
            },
            Kind::Ack => {
                let (alarm, by, note) =
                    (self.ack).ok_or(EnvelopeError::Invalid("ack without alarm".into()))?;
                SourceEvent::Ack {
                    site: self.site,
                    alarm,
                    by,
                    note,
                    via: self.via.unwrap_or_else(|| "mqtt".into()),
                    origin,
                    received_ms,
                }
            }
            Kind::Tick => SourceEvent::Tick { at_ms: received_ms },
            Kind::File => {
                use base64::Engine;
                let f =
                    (self.file).ok_or(EnvelopeError::Invalid("file without its body".into()))?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(f.base64.as_bytes())
                    .map_err(|e| EnvelopeError::Invalid(format!("file body: {e}")))?;
                SourceEvent::File(Box::new(FileIn {
                    source: Arc::from(f.source.as_str()),
                    site: self.site,
                    name: self.topic,
                    login: f.login,
                    from_folder: f.from_folder,
                    bytes,
                    received_ms,
                }))
            }
            Kind::Poll | Kind::Link => {
                let on =
                    (self.online).ok_or(EnvelopeError::Invalid("link without state".into()))?;
                let link = Arc::from(self.device.as_str());
                match self.kind {
                    Kind::Poll => SourceEvent::Poll {
                        link,
                        ok: on,
                        at_ms: received_ms,
                    },
                    _ => SourceEvent::Link {
                        link,
                        up: on,
                        at_ms: received_ms,
                    },
                }
            }
        })
    }

    /// The JetStream message id: the same event redelivered (an MQTT message sent again
    /// after a gateway died before its PUBACK) gets the same id, and JetStream keeps it once.
    /// A reading is one point (site, device, time); without a device time it is the ingress
    /// time, which a redelivery does not repeat, as the single gateway would store it twice.
    pub fn msg_id(&self) -> String {
        let kind = match self.kind {
            Kind::Reading => "r",
            Kind::Stored => "s",
            Kind::State => "o",
            Kind::Ack => "a",
            Kind::Tick => "k",
            Kind::Poll => "p",
            Kind::Link => "l",
            Kind::File => "f",
        };
        let at = match (self.kind, self.ts_ms) {
            (Kind::Reading | Kind::Stored, Some(ts)) => format!("t{ts}"),
            _ => format!("g{}", self.received_ms),
        };
        // A file is its name and content: the same upload again is kept once.
        if let Some(f) = &self.file {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(f.base64.as_bytes());
            let name = &self.topic;
            return format!(
                "f.{}.{}.{}{name}.{}",
                self.site.len(),
                name.len(),
                self.site,
                hex::encode(&digest[..16])
            );
        }
        let alarm = self.ack.as_ref().map_or("", |a| a.0.as_str());
        // Lengths first: ids may hold any character but these can never run together.
        format!(
            "{kind}.{}.{}.{}.{}{}{alarm}.{at}",
            self.site.len(),
            self.device.len(),
            alarm.len(),
            self.site,
            self.device
        )
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain data with finite numbers does not fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        serde_json::from_slice(bytes).map_err(|e| EnvelopeError::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin {
            topic: "safegate/v1/p1/d1".into(),
            element: Some(3),
        }
    }

    fn reading(ts: Option<i64>, v: f64) -> SourceEvent {
        SourceEvent::Reading {
            reading: RawReading {
                site: "p1".into(),
                device: "d1".into(),
                ts_ms: ts,
                values: vec![("lel".into(), v)],
                status: ReadingStatus::Fault,
                cause: Some("传感器故障".into()),
            },
            origin: origin(),
            received_ms: 1_700_000_000_500,
        }
    }

    #[test]
    fn every_ingress_event_comes_back_as_it_went() {
        let events = [
            reading(Some(1_700_000_000_000), 12.5),
            reading(None, -0.25),
            SourceEvent::DeviceState {
                site: "p1".into(),
                device: "d1".into(),
                online: false,
                origin: origin(),
                received_ms: 7,
            },
            SourceEvent::Ack {
                site: "p1".into(),
                alarm: "42".into(),
                by: "值班员".into(),
                note: "现场确认".into(),
                via: "mqtt".into(),
                origin: origin(),
                received_ms: 8,
            },
            SourceEvent::Ack {
                site: "p1".into(),
                alarm: "43".into(),
                by: "值班员".into(),
                note: String::new(),
                via: "http:console".into(),
                origin: origin(),
                received_ms: 9,
            },
            SourceEvent::Poll {
                link: "modbus:tcp://10.0.0.7:502".into(),
                ok: false,
                at_ms: 9,
            },
            SourceEvent::Link {
                link: "modbus:tcp://10.0.0.7:502".into(),
                up: true,
                at_ms: 10,
            },
            SourceEvent::File(Box::new(FileIn {
                source: "mine_files".into(),
                site: "m1".into(),
                name: "150622B0012000001_CDSS_20260601120000.txt".into(),
                login: Some("150622B0012000001".into()),
                from_folder: false,
                // GB 18030, not UTF-8: the bytes travel as they are.
                bytes: vec![0xb7, 0xd6, 0xd5, 0xbe, b';', b'|', b'|'],
                received_ms: 11,
            })),
        ];
        for e in events {
            let env = Envelope::of(&e).unwrap();
            let back = Envelope::from_json(&env.to_json()).unwrap();
            assert_eq!(format!("{:?}", back.event().unwrap()), format!("{e:?}"));
        }
    }

    #[test]
    fn a_tick_is_time_and_each_instance_has_its_own_ids() {
        let t = Envelope::tick("gw-1", 1_700_000_000_000);
        let back = Envelope::from_json(&t.to_json()).unwrap();
        assert_eq!(
            back.event().unwrap(),
            SourceEvent::Tick {
                at_ms: 1_700_000_000_000
            }
        );
        assert_ne!(
            t.msg_id(),
            Envelope::tick("gw-2", 1_700_000_000_000).msg_id()
        );
        assert_ne!(
            t.msg_id(),
            Envelope::tick("gw-1", 1_700_000_001_000).msg_id()
        );
    }

    #[test]
    fn a_file_is_kept_once_by_its_name_and_content() {
        let file = |name: &str, bytes: &[u8]| {
            Envelope::of(&SourceEvent::File(Box::new(FileIn {
                source: "mine_files".into(),
                site: "m1".into(),
                name: name.into(),
                login: None,
                from_folder: true,
                bytes: bytes.to_vec(),
                received_ms: 1,
            })))
            .unwrap()
            .msg_id()
        };
        assert_eq!(file("a.txt", b"x||"), file("a.txt", b"x||"));
        assert_ne!(file("a.txt", b"x||"), file("a.txt", b"y||"));
        assert_ne!(file("a.txt", b"x||"), file("b.txt", b"x||"));
    }

    #[test]
    fn ids_name_one_point_and_cannot_run_together() {
        let a = Envelope::of(&reading(Some(5), 1.0)).unwrap();
        let b = Envelope::of(&reading(Some(5), 2.0)).unwrap();
        assert_eq!(a.msg_id(), b.msg_id(), "the same point, sent again");
        let c = Envelope::of(&reading(Some(6), 1.0)).unwrap();
        assert_ne!(a.msg_id(), c.msg_id());
        let mut x = a.clone();
        (x.site, x.device) = ("p".into(), "1d1".into());
        assert_ne!(x.msg_id(), a.msg_id(), "p1/d1 is not p/1d1");
    }

    #[test]
    fn what_cannot_travel_is_named() {
        let nan = Envelope::of(&reading(Some(1), f64::NAN));
        assert_eq!(nan, Err(EnvelopeError::NotFinite("lel".into())));
        let tick = SourceEvent::Tick { at_ms: 1 };
        assert_eq!(Envelope::of(&tick), Err(EnvelopeError::NotIngress));
        let mut old = Envelope::of(&reading(None, 1.0)).unwrap();
        old.v = 9;
        assert_eq!(old.event().unwrap_err(), EnvelopeError::Version(9));
        assert!(matches!(
            Envelope::from_json(b"{\"v\":1}"),
            Err(EnvelopeError::Invalid(_))
        ));
    }
}
