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
    /// A file record with more or fewer fields than its type has (mine files).
    WrongFieldCount,
    /// A code field that is empty or not one the format defines (mine files).
    BadCode,
    /// A file name that is not `<mine code>_<TYPE>_<yyyyMMddHHmmss>.txt`.
    BadFileName,
    /// A file that is neither UTF-8 nor GB18030, or uses full-width separators.
    Undecodable,
    /// A file whose header, name and login name different mines.
    MineMismatch,
    /// A file that does not end with `||`.
    TruncatedFile,
    /// A file of a mine code no site has.
    UnknownMine,
    /// A mine file the site's inventory cannot hold (no system of the kind it needs).
    MineNotConfigured,
    /// A unit a source declared that the inventory cannot take: it collides with a configured
    /// unit, or names a system, zone or enterprise its site does not have.
    InventoryConflict,
    /// A SIP message that cannot be read (GB/T 28181 video): no end of headers, a bad start
    /// line, a wrong `Content-Length`, a missing header, a missing `Expires`, a CSeq out of order.
    SipMalformed,
    /// A REGISTER whose digest does not authenticate: wrong password, malformed or
    /// unsupported `Authorization`, a username that is not the From ID.
    DigestRefused,
    /// A MESSAGE from a known device that is not registered now.
    NotRegistered,
    /// A MANSCDP body refused: charset, DOCTYPE or entity, malformed XML, unknown `CmdType`,
    /// a missing field, a catalog too large or inconsistent.
    ManscdpMalformed,
    /// More messages from one address than `video.address_rate_per_s`.
    RateLimited,
}

impl Reason {
    pub const ALL: [Reason; 31] = [
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
        Reason::WrongFieldCount,
        Reason::BadCode,
        Reason::BadFileName,
        Reason::Undecodable,
        Reason::MineMismatch,
        Reason::TruncatedFile,
        Reason::UnknownMine,
        Reason::MineNotConfigured,
        Reason::InventoryConflict,
        Reason::SipMalformed,
        Reason::DigestRefused,
        Reason::NotRegistered,
        Reason::ManscdpMalformed,
        Reason::RateLimited,
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
            Reason::WrongFieldCount => "wrong_field_count",
            Reason::BadCode => "bad_code",
            Reason::BadFileName => "bad_file_name",
            Reason::Undecodable => "undecodable",
            Reason::MineMismatch => "mine_mismatch",
            Reason::TruncatedFile => "truncated_file",
            Reason::UnknownMine => "unknown_mine",
            Reason::MineNotConfigured => "mine_not_configured",
            Reason::InventoryConflict => "inventory_conflict",
            Reason::SipMalformed => "sip_malformed",
            Reason::DigestRefused => "digest_refused",
            Reason::NotRegistered => "not_registered",
            Reason::ManscdpMalformed => "manscdp_malformed",
            Reason::RateLimited => "rate_limited",
        }
    }
}
