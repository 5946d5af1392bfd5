//! The store's line-protocol encoder on any reading: tags, channel names and values all
//! arbitrary. It writes one line, byte for byte what the influxdb2 crate writes, or returns an
//! error and writes nothing; a second encode (tag prefix cached) writes the same line again.
#![no_main]

use influxdb2::models::WriteDataPoint;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use safegate::config::DeviceKind;
use safegate::core::ReadingStatus;
use safegate::sinks::record::{LineEncoder, Record, Tags};
use std::sync::Arc;

#[derive(Arbitrary, Debug)]
struct Input {
    site: String,
    device: String,
    kind: u8,
    enterprise: Option<String>,
    zone: Option<String>,
    system: Option<String>,
    gas: Option<String>,
    ts_ms: i64,
    ts_from_gateway: bool,
    status: u8,
    values: Vec<(String, f64)>,
}

fuzz_target!(|i: Input| {
    let r = Record::Reading {
        tags: Tags {
            site: i.site.into(),
            device: i.device.into(),
            kind: DeviceKind::ALL[i.kind as usize % DeviceKind::ALL.len()].as_str(),
            enterprise: i.enterprise.map(Arc::from),
            zone: i.zone.map(Arc::from),
            system: i.system.map(Arc::from),
            gas: i.gas.map(Arc::from),
        },
        ts_ms: i.ts_ms,
        ts_from_gateway: i.ts_from_gateway,
        status: [
            ReadingStatus::Normal,
            ReadingStatus::Fault,
            ReadingStatus::Maintenance,
        ][i.status as usize % 3],
        values: i.values,
    };
    let mut enc = LineEncoder::default();
    let mut first = b"kept\n".to_vec();
    match enc.encode(&r, &mut first) {
        Err(e) => {
            assert_eq!(first, b"kept\n", "written despite {e}");
            assert!(!e.to_string().is_empty());
        }
        Ok(()) => {
            let line = &first[5..];
            let mut want = Vec::new();
            r.to_point()
                .unwrap()
                .write_data_point_to(&mut want)
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(line),
                String::from_utf8_lossy(&want)
            );
            assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
            assert!(line.ends_with(b"\n"));
            let Record::Reading { values, .. } = &r else {
                unreachable!()
            };
            assert!(values.iter().all(|(_, v)| v.is_finite()));
            let mut again = Vec::new();
            enc.encode(&r, &mut again).unwrap();
            assert_eq!(again, line);
        }
    }
});
