//! Why an input was refused: a small fixed set, used as metric labels and in the API.

use serde::Serialize;

/// The small, fixed set of reasons an input is refused. They are metric labels: keep stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    MalformedJson,
    BadTopic,
    PayloadTooLarge,
    BatchTooLarge,
    UnknownSite,
    UnknownDevice,
    WrongSite,
    InvalidValue,
    EmptyValues,
    BadTimestamp,
    FutureTimestamp,
    /// More channels in one reading than `mqtt.max_channels`.
    TooManyChannels,
    /// Unsigned, for a site with `require_signature = true`.
    MissingSignature,
    /// A signature that does not verify under the site's key (or a site with no key).
    BadSignature,
    /// An acknowledgement for an alarm id the gateway does not know.
    UnknownAlarm,
    /// An acknowledgement published under another site than the alarm's.
    AlarmOfOtherSite,
    /// A payload mapping's required path found nothing, several values, or a non-scalar.
    MappingFailed,
    /// A unit a source declared that the inventory cannot take: it collides with a configured
    /// unit, or names a system, zone or enterprise its site does not have.
    InventoryConflict,
}

impl Reason {
    pub const ALL: [Reason; 18] = [
        Reason::MalformedJson,
        Reason::BadTopic,
        Reason::PayloadTooLarge,
        Reason::BatchTooLarge,
        Reason::UnknownSite,
        Reason::UnknownDevice,
        Reason::WrongSite,
        Reason::InvalidValue,
        Reason::EmptyValues,
        Reason::BadTimestamp,
        Reason::FutureTimestamp,
        Reason::TooManyChannels,
        Reason::MissingSignature,
        Reason::BadSignature,
        Reason::UnknownAlarm,
        Reason::AlarmOfOtherSite,
        Reason::MappingFailed,
        Reason::InventoryConflict,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MalformedJson => "malformed_json",
            Reason::BadTopic => "bad_topic",
            Reason::PayloadTooLarge => "payload_too_large",
            Reason::BatchTooLarge => "batch_too_large",
            Reason::UnknownSite => "unknown_site",
            Reason::UnknownDevice => "unknown_device",
            Reason::WrongSite => "wrong_site",
            Reason::InvalidValue => "invalid_value",
            Reason::EmptyValues => "empty_values",
            Reason::BadTimestamp => "bad_timestamp",
            Reason::FutureTimestamp => "future_timestamp",
            Reason::TooManyChannels => "too_many_channels",
            Reason::MissingSignature => "missing_signature",
            Reason::BadSignature => "bad_signature",
            Reason::UnknownAlarm => "unknown_alarm",
            Reason::AlarmOfOtherSite => "alarm_of_other_site",
            Reason::MappingFailed => "mapping_failed",
            Reason::InventoryConflict => "inventory_conflict",
        }
    }
}
