//! The MQTT topic and payload parser on any bytes. Byte 0 picks the size and batch limits,
//! byte 1 a topic shape of the contract (or, past them, a raw topic up to the first newline)
//! and the channel limit; the rest is the payload. Checks what tests/it/fuzz_inputs.rs checks for any message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use safegate::core::{Reason, SourceEvent};
use safegate::sources::mqtt::payload::{parse_message, parse_topic, Limits, MAX_ID_LEN};

const PREFIX: &str = "p/v1";

fuzz_target!(|data: &[u8]| {
    let [limits, shape, rest @ ..] = data else {
        return;
    };
    let limits = Limits {
        max_payload_bytes: if limits & 0x80 != 0 {
            (*limits as usize & 0x3f) * 8
        } else {
            64 << 10
        },
        max_batch_len: 1 + (*limits as usize >> 3 & 0x7),
        max_channels: 1 + (*shape as usize >> 3),
        ..Limits::DEFAULT
    };
    let (topic, payload) = match shape % 8 {
        0 => (format!("{PREFIX}/s/d/data"), rest),
        1 => (format!("{PREFIX}/s/batch"), rest),
        2 => (format!("{PREFIX}/s/d/state"), rest),
        3 => (format!("{PREFIX}/s/alarms/12/ack"), rest),
        4 => (format!("{PREFIX}/s/alarms/12"), rest),
        _ => {
            let cut = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
            let topic = String::from_utf8_lossy(&rest[..cut]).into_owned();
            (topic, rest.get(cut + 1..).unwrap_or_default())
        }
    };
    let mut out = Vec::new();
    parse_message(PREFIX, &topic, payload, 1_767_225_600_000, limits, &mut out);

    assert!(out.len() <= limits.max_batch_len.max(1), "{out:?}");
    let whole = |reason| matches!(&out[..], [SourceEvent::Rejected(r)] if r.reason == reason);
    if payload.len() > limits.max_payload_bytes {
        assert!(whole(Reason::PayloadTooLarge), "{out:?}");
        return;
    }
    let long_level = topic
        .strip_prefix(PREFIX)
        .is_some_and(|r| r.split('/').any(|l| l.len() > MAX_ID_LEN));
    if long_level || parse_topic(PREFIX, &topic).is_none() {
        assert!(whole(Reason::BadTopic), "{out:?}");
        return;
    }
    for (i, ev) in out.iter().enumerate() {
        match ev {
            SourceEvent::Rejected(r) => {
                assert!(!r.detail.trim().is_empty(), "{r:?}");
                assert!(topic.starts_with(r.origin.topic.trim_end_matches('…')));
                assert!(r.origin.element.is_none_or(|e| e as usize == i));
            }
            SourceEvent::Reading {
                reading, origin, ..
            } => {
                assert!(topic.starts_with(origin.topic.trim_end_matches('…')));
                assert!(origin.element.is_none_or(|e| e as usize == i));
                assert!(topic.starts_with(&format!("{PREFIX}/{}/", reading.site)));
                assert!(
                    reading.values.iter().all(|(_, v)| v.is_finite()),
                    "{reading:?}"
                );
            }
            SourceEvent::DeviceState { site, device, .. } => {
                assert_eq!(topic, format!("{PREFIX}/{site}/{device}/state"));
            }
            SourceEvent::Ack {
                site, alarm, by, ..
            } => {
                assert_eq!(topic, format!("{PREFIX}/{site}/alarms/{alarm}/ack"));
                assert!(!by.trim().is_empty());
            }
            other => panic!("the MQTT parser made {other:?}"),
        }
    }
});
