//! What `safegate check-config --sample` prints: one line per event a mapping gave.

use crate::core::SourceEvent;

/// One line for a reading (site, device, time, status, channels) or a refusal (element,
/// reason, detail); `None` for any other event.
pub fn describe(ev: &SourceEvent) -> Option<String> {
    match ev {
        SourceEvent::Reading {
            reading: r, origin, ..
        } => {
            let time = r.ts_ms.map_or_else(
                || "(no device time: stamped on receipt)".to_string(),
                crate::model::rfc3339_ms,
            );
            let channels: Vec<String> = r.values.iter().map(|(k, v)| format!("{k}={v}")).collect();
            Some(format!(
                "reading {}: site {} device {} time {} status {} channels {}",
                element(origin.element),
                r.site,
                r.device,
                time,
                r.status.as_str(),
                channels.join(" ")
            ))
        }
        SourceEvent::Rejected(x) => Some(format!(
            "refused {}: {}: {}",
            element(x.origin.element),
            x.reason.as_str(),
            x.detail
        )),
        _ => None,
    }
}

fn element(e: Option<u32>) -> String {
    e.map_or_else(|| "message".to_string(), |i| format!("record {i}"))
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::describe;

    #[test]
    fn readings_and_refusals_are_one_line_each() {
        let m = Mapping::compile(&toml::from_str(r#"name = "n""#).unwrap()).unwrap();
        let mut out = Vec::new();
        let input = Input {
            payload:
                br#"[{"device":"d","ts":1700000000000,"values":{"a":1.5,"b":2}}, {"device":"d"}]"#,
            topic: None,
            site: Some("p1"),
            origin: "POST".into(),
            received_ms: 0,
        };
        m.apply(&input, &Limits::DEFAULT, &mut out);
        let lines: Vec<String> = out.iter().filter_map(describe).collect();
        assert_eq!(
            lines,
            [
                "reading record 0: site p1 device d time 2023-11-14T22:13:20.000Z status normal channels a=1.5 b=2",
                "refused record 1: empty_values: mapping \"n\", record 1: no channel has a value (absent or null): values at $.values",
            ]
        );
    }
}
