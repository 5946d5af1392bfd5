//! What the store receives, and its line-protocol shape (the contract with evaluators):
//!
//! - `reading,site=…,device=…,kind=…[,enterprise=…][,zone=…][,system=…][,gas=…] <channel>=<f64>…,status_code=<0|1|2>[,ts_from_gateway=true] <ts ms>`
//! - `device_state,site=…,device=…,kind=…,cause=… online=<1|0>i <ms>`
//! - `indicator,indicator=…,scope=region|site|enterprise,scope_id=…,window=now|1h|1d|…[,qualifier=…] value=<f64>,numerator=<f64>,denominator=<f64>[,target=<f64>][,completion=<f64>] <ms>`

use crate::core::{Accepted, Inventory, ReadingStatus, Transition};
use influxdb2::models::data_point::DataPointError;
use influxdb2::models::DataPoint;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Tags {
    pub site: Arc<str>,
    pub device: Arc<str>,
    pub kind: &'static str,
    pub enterprise: Option<Arc<str>>,
    pub zone: Option<Arc<str>>,
    pub system: Option<Arc<str>>,
    pub gas: Option<Arc<str>>,
}

impl Tags {
    pub fn of(inv: &Inventory, device: u32) -> Tags {
        let d = &inv.devices[device as usize];
        Tags {
            site: inv.sites[d.site as usize].id.clone(),
            device: d.id.clone(),
            kind: d.kind.as_str(),
            enterprise: d.enterprise.map(|e| inv.enterprises[e as usize].id.clone()),
            zone: d.zone.map(|z| inv.zones[z as usize].id.clone()),
            system: d.system.map(|s| inv.systems[s as usize].id.clone()),
            gas: d.gas.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Record {
    Reading {
        tags: Tags,
        ts_ms: i64,
        ts_from_gateway: bool,
        status: ReadingStatus,
        values: Vec<(String, f64)>,
    },
    DeviceState {
        tags: Tags,
        at_ms: i64,
        online: bool,
        cause: &'static str,
    },
    Indicator {
        indicator: &'static str,
        /// System kind, link name.
        qualifier: Option<String>,
        scope: &'static str,
        scope_id: Arc<str>,
        /// `now` for snapshots, `1h`, `1d` … for closed windows (stamped at the window start).
        window: Arc<str>,
        at_ms: i64,
        value: Option<f64>,
        numerator: f64,
        denominator: f64,
        /// The configured target and the completion against it, when there is one.
        target: Option<f64>,
        completion: Option<f64>,
    },
}

impl Record {
    pub fn reading(inv: &Inventory, a: Accepted) -> Record {
        Record::Reading {
            tags: Tags::of(inv, a.device),
            ts_ms: a.ts_ms,
            ts_from_gateway: a.ts_from_gateway,
            status: a.status,
            values: a.values,
        }
    }

    pub fn transition(inv: &Inventory, t: &Transition) -> Record {
        Record::DeviceState {
            tags: Tags::of(inv, t.device),
            at_ms: t.at_ms,
            online: t.online,
            cause: t.cause.as_str(),
        }
    }

    /// The InfluxDB data point, built with the influxdb2 crate (which does the escaping).
    pub fn to_point(&self) -> Result<DataPoint, DataPointError> {
        fn device_tags(
            b: influxdb2::models::data_point::DataPointBuilder,
            t: &Tags,
        ) -> influxdb2::models::data_point::DataPointBuilder {
            let mut b = b
                .tag("site", &*t.site)
                .tag("device", &*t.device)
                .tag("kind", t.kind);
            for (k, v) in [
                ("enterprise", &t.enterprise),
                ("zone", &t.zone),
                ("system", &t.system),
                ("gas", &t.gas),
            ] {
                if let Some(v) = v {
                    b = b.tag(k, &**v);
                }
            }
            b
        }
        match self {
            Record::Reading {
                tags,
                ts_ms,
                ts_from_gateway,
                status,
                values,
            } => {
                let mut b = device_tags(DataPoint::builder("reading"), tags);
                for (ch, v) in values {
                    b = b.field(ch.as_str(), *v);
                }
                b = b.field("status_code", *status as i64);
                if *ts_from_gateway {
                    b = b.field("ts_from_gateway", true);
                }
                b.timestamp(*ts_ms).build()
            }
            Record::DeviceState {
                tags,
                at_ms,
                online,
                cause,
            } => device_tags(DataPoint::builder("device_state"), tags)
                .tag("cause", *cause)
                .field("online", *online as i64)
                .timestamp(*at_ms)
                .build(),
            Record::Indicator {
                indicator,
                qualifier,
                scope,
                scope_id,
                window,
                at_ms,
                value,
                numerator,
                denominator,
                target,
                completion,
            } => {
                let mut b = DataPoint::builder("indicator")
                    .tag("indicator", *indicator)
                    .tag("scope", *scope)
                    .tag("scope_id", &**scope_id)
                    .tag("window", &**window)
                    .field("numerator", *numerator)
                    .field("denominator", *denominator);
                if let Some(q) = qualifier {
                    b = b.tag("qualifier", q.as_str());
                }
                for (k, v) in [
                    ("value", value),
                    ("target", target),
                    ("completion", completion),
                ] {
                    if let Some(v) = v {
                        b = b.field(k, *v);
                    }
                }
                b.timestamp(*at_ms).build()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use influxdb2::models::WriteDataPoint;

    fn line(r: &Record) -> String {
        let mut v = Vec::new();
        r.to_point().unwrap().write_data_point_to(&mut v).unwrap();
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn reading_line_has_tags_fields_and_ms_timestamp() {
        let r = Record::Reading {
            tags: Tags {
                site: "park 1".into(),
                device: "gas,1".into(),
                kind: "gas_toxic",
                enterprise: Some("e1".into()),
                zone: None,
                system: None,
                gas: Some("H2S".into()),
            },
            ts_ms: 1_700_000_000_123,
            ts_from_gateway: false,
            status: ReadingStatus::Fault,
            values: vec![("ppm".into(), 4.5)],
        };
        assert_eq!(
            line(&r),
            "reading,device=gas\\,1,enterprise=e1,gas=H2S,kind=gas_toxic,site=park\\ 1 ppm=4.5,status_code=1i 1700000000123\n"
        );
    }

    #[test]
    fn indicator_line() {
        let r = Record::Indicator {
            indicator: "online_rate",
            qualifier: None,
            scope: "site",
            scope_id: "p1".into(),
            window: "1h".into(),
            at_ms: 5,
            value: Some(0.75),
            numerator: 3.0,
            denominator: 4.0,
            target: Some(0.9),
            completion: None,
        };
        assert_eq!(
            line(&r),
            "indicator,indicator=online_rate,scope=site,scope_id=p1,window=1h denominator=4,numerator=3,target=0.9,value=0.75 5\n"
        );
    }
}
