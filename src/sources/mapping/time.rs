//! Device times: the `time_format` and `timezone` keys, compiled once, then applied to the
//! value a time path found. Rules (also in `docs/mappings.md`, "Time"):
//!
//! - `auto`: a JSON number is epoch milliseconds, a string is RFC 3339 (the native contract);
//! - `epoch_ms`, `epoch_s`: a number, or a string holding one; may be fractional (rounded to
//!   the millisecond);
//! - `rfc3339`: a string, with its own offset;
//! - anything else is a pattern. With a `[` in it, it is a `time` crate format description
//!   (`[year]-[month]-[day] [hour]:[minute]:[second]`); otherwise Java-style letters
//!   (`yyyy-MM-dd HH:mm:ss`). A pattern without an offset is read in `timezone`. A number is
//!   read as its decimal text (a vendor's `20231114221320`).

use serde_json::Value;
use time::format_description::OwnedFormatItem;
use time::{Date, OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// Largest epoch milliseconds taken, as the native parser (about the year 287 000).
const MAX_ABS_MS: f64 = 9.0e15;

#[derive(Debug, Clone)]
pub enum TimeFormat {
    Auto,
    EpochMs,
    EpochS,
    Rfc3339,
    /// Read with its own offset if it has one, else in `timezone`; a date alone is its
    /// midnight.
    Pattern(OwnedFormatItem, Reads),
}

/// What a pattern holds, found once when it is compiled, so that a time is parsed once (as
/// the kind it is) rather than tried as each kind in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// A date, a time and an offset.
    Offset,
    /// A date and a time, read in `timezone`.
    Local,
    /// A date alone: its midnight in `timezone`.
    Date,
}

impl TimeFormat {
    pub fn compile(s: &str) -> Result<TimeFormat, String> {
        Ok(match s {
            "auto" => TimeFormat::Auto,
            "epoch_ms" => TimeFormat::EpochMs,
            "epoch_s" => TimeFormat::EpochS,
            "rfc3339" => TimeFormat::Rfc3339,
            p => {
                let description = if p.contains('[') {
                    p.to_string()
                } else {
                    java_to_description(p)?
                };
                let items = time::format_description::parse_owned::<1>(&description)
                    .map_err(|e| format!("bad time pattern {p:?}: {e}"))?;
                // What it writes, it must read back as a time: a pattern without a full date
                // (no year, a two-digit year) is refused here rather than on every message.
                let sample = OffsetDateTime::UNIX_EPOCH
                    .format(&items)
                    .map_err(|e| format!("bad time pattern {p:?}: {e}"))?;
                let reads = if OffsetDateTime::parse(&sample, &items).is_ok() {
                    Reads::Offset
                } else if PrimitiveDateTime::parse(&sample, &items).is_ok() {
                    Reads::Local
                } else if let Err(e) = Date::parse(&sample, &items) {
                    return Err(format!(
                        "time pattern {p:?} does not name a full date and time: {e}"
                    ));
                } else {
                    Reads::Date
                };
                TimeFormat::Pattern(items, reads)
            }
        })
    }

    /// Epoch milliseconds of `v`, or what is wrong with it (a phrase: "is …").
    pub fn read(&self, v: &Value, tz: UtcOffset) -> Result<i64, String> {
        match (self, v) {
            (TimeFormat::Auto | TimeFormat::EpochMs, Value::Number(_)) => epoch(v, 1.0),
            (TimeFormat::EpochMs, Value::String(_)) => epoch(v, 1.0),
            (TimeFormat::EpochS, Value::Number(_) | Value::String(_)) => epoch(v, 1000.0),
            (TimeFormat::Auto | TimeFormat::Rfc3339, Value::String(s)) => {
                crate::model::parse_rfc3339_ms(s.trim())
                    .ok_or_else(|| format!("is {:?}, not an RFC 3339 time", short(s)))
            }
            (TimeFormat::Pattern(items, r), Value::String(s)) => pattern(items, *r, s.trim(), tz),
            (TimeFormat::Pattern(items, r), Value::Number(n)) => {
                pattern(items, *r, &n.to_string(), tz)
            }
            (_, other) => Err(format!("is {}, not a time", kind(other))),
        }
    }
}

fn pattern(items: &OwnedFormatItem, reads: Reads, s: &str, tz: UtcOffset) -> Result<i64, String> {
    let t = match reads {
        Reads::Offset => OffsetDateTime::parse(s, items),
        Reads::Local => PrimitiveDateTime::parse(s, items).map(|t| t.assume_offset(tz)),
        Reads::Date => Date::parse(s, items).map(|d| d.midnight().assume_offset(tz)),
    }
    .map_err(|e| format!("is {:?}, which does not fit the pattern: {e}", short(s)))?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| format!("is {:?}, out of range", short(s)))
}

fn short(s: &str) -> String {
    crate::core::event::shorten(s, 40)
}

/// A JSON number or a string holding one, times `factor`, as epoch milliseconds.
fn epoch(v: &Value, factor: f64) -> Result<i64, String> {
    let x = match v {
        Value::Number(n) => {
            if let (Some(i), true) = (n.as_i64(), factor == 1.0) {
                return Ok(i);
            }
            n.as_f64().unwrap_or(f64::NAN)
        }
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("is {:?}, not a number", short(s)))?,
        other => return Err(format!("is {}, not a number", kind(other))),
    };
    let ms = (x * factor).round();
    if ms.is_finite() && ms.abs() < MAX_ABS_MS {
        Ok(ms as i64)
    } else {
        Err(format!("is {x}, out of range"))
    }
}

/// "a string", "an object": what a JSON value is, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A Java-style pattern (`yyyy-MM-dd HH:mm:ss.SSS`) as a `time` format description. Letters:
/// `yyyy` year, `MM` month, `dd` day, `HH` hour (00–23), `mm` minute,
/// `ss` second, `S`…`SSSSSSSSS` fraction digits, `XXX` offset (`+08:00`); `M`, `d`, `H`
/// alone: without a leading zero. Text in single quotes is literal (`'T'`; `''` is a quote);
/// any other non-letter is literal. Any other letter is refused.
pub fn java_to_description(p: &str) -> Result<String, String> {
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let run = chars[i..].iter().take_while(|&&x| x == c).count();
        if c == '\'' {
            i += 1;
            if chars.get(i) == Some(&'\'') {
                out.push('\'');
                i += 1;
                continue;
            }
            while i < chars.len() && chars[i] != '\'' {
                push_literal(&mut out, chars[i]);
                i += 1;
            }
            if i == chars.len() {
                return Err(format!("time pattern {p:?}: a quote is not closed"));
            }
            i += 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            push_literal(&mut out, c);
            i += 1;
            continue;
        }
        let token = match (c, run) {
            ('y', 4) => "[year]".to_string(),
            ('M', 2) => "[month]".to_string(),
            ('M', 1) => "[month padding:none]".to_string(),
            ('d', 2) => "[day]".to_string(),
            ('d', 1) => "[day padding:none]".to_string(),
            ('H', 2) => "[hour]".to_string(),
            ('H', 1) => "[hour padding:none]".to_string(),
            ('m', 2) => "[minute]".to_string(),
            ('s', 2) => "[second]".to_string(),
            ('S', 1..=9) => format!("[subsecond digits:{run}]"),
            ('X', 3) => "[offset_hour sign:mandatory]:[offset_minute]".to_string(),
            _ => {
                return Err(format!(
                    "time pattern {p:?}: {:?} is not a pattern letter this gateway reads (yyyy MM M dd d HH H mm ss S… XXX; quote literal text: 'T')",
                    c.to_string().repeat(run)
                ))
            }
        };
        out.push_str(&token);
        i += run;
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    if c == '[' {
        out.push_str("[[");
    } else {
        out.push(c);
    }
}

/// `+08:00`, `-05:30`, `Z` or `UTC`.
pub fn parse_offset(s: &str) -> Result<UtcOffset, String> {
    if s == "Z" || s.eq_ignore_ascii_case("utc") {
        return Ok(UtcOffset::UTC);
    }
    let bad = || format!("timezone {s:?} is not a fixed offset like \"+08:00\" or \"Z\"");
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1i8, &s[1..]),
        Some(b'-') => (-1i8, &s[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: i8 = h.parse().map_err(|_| bad())?;
    let m: i8 = m.parse().map_err(|_| bad())?;
    if h > 18 || m > 59 {
        return Err(bad());
    }
    UtcOffset::from_hms(sign * h, sign * m, 0).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CST: UtcOffset = time::macros::offset!(+8);

    fn read(fmt: &str, v: Value) -> Result<i64, String> {
        TimeFormat::compile(fmt).unwrap().read(&v, CST)
    }

    #[test]
    fn auto_takes_epoch_ms_numbers_and_rfc3339_strings() {
        assert_eq!(
            read("auto", json!(1_700_000_000_000i64)),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            read("auto", json!("2023-11-14T22:13:20Z")),
            Ok(1_700_000_000_000)
        );
        assert!(read("auto", json!("1700000000000")).is_err());
        assert!(read("auto", json!(true)).unwrap_err().contains("a boolean"));
    }

    #[test]
    fn epochs_take_numbers_fractions_and_numeric_strings() {
        assert_eq!(read("epoch_s", json!(1_700_000_000)), Ok(1_700_000_000_000));
        assert_eq!(
            read("epoch_s", json!(1_700_000_000.25)),
            Ok(1_700_000_000_250)
        );
        assert_eq!(
            read("epoch_s", json!(" 1700000000.5 ")),
            Ok(1_700_000_000_500)
        );
        assert_eq!(
            read("epoch_ms", json!("1700000000000")),
            Ok(1_700_000_000_000)
        );
        assert!(read("epoch_s", json!("soon"))
            .unwrap_err()
            .contains("not a number"));
        assert!(read("epoch_s", json!(1e300))
            .unwrap_err()
            .contains("out of range"));
    }

    #[test]
    fn rfc3339_keeps_its_own_offset() {
        assert_eq!(
            read("rfc3339", json!("2023-11-15T06:13:20+08:00")),
            Ok(1_700_000_000_000)
        );
        assert!(read("rfc3339", json!(5)).is_err());
    }

    #[test]
    fn java_patterns_are_read_in_the_timezone() {
        // 2023-11-15 06:13:20 in +08:00 is 22:13:20 UTC the day before.
        assert_eq!(
            read("yyyy-MM-dd HH:mm:ss", json!("2023-11-15 06:13:20")),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            read("yyyyMMddHHmmss", json!("20231115061320")),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            read("yyyyMMddHHmmss", json!(20231115061320i64)),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            read(
                "yyyy-MM-dd'T'HH:mm:ss.SSS",
                json!("2023-11-15T06:13:20.125")
            ),
            Ok(1_700_000_000_125)
        );
        assert_eq!(
            read("yyyy-MM-dd HH:mm:ssXXX", json!("2023-11-14 22:13:20+00:00")),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            read("yyyy-MM-dd", json!("2023-11-15")),
            Ok(1_700_000_000_000 - (6 * 3600 + 13 * 60 + 20) * 1000)
        );
        let utc = TimeFormat::compile("yyyy-MM-dd HH:mm:ss").unwrap();
        assert_eq!(
            utc.read(&json!("2023-11-14 22:13:20"), UtcOffset::UTC),
            Ok(1_700_000_000_000)
        );
        let e = read("yyyy-MM-dd HH:mm:ss", json!("2023/11/15")).unwrap_err();
        assert!(e.contains("does not fit the pattern"), "{e}");
    }

    #[test]
    fn time_crate_descriptions_are_taken_as_they_are() {
        assert_eq!(
            read(
                "[year]/[month]/[day] [hour]:[minute]:[second]",
                json!("2023/11/15 06:13:20")
            ),
            Ok(1_700_000_000_000)
        );
    }

    #[test]
    fn bad_patterns_and_offsets_are_refused_at_compile_time() {
        assert!(TimeFormat::compile("yyyy-MM-dd hh:mm")
            .unwrap_err()
            .contains("\"hh\""));
        assert!(TimeFormat::compile("HH:mm:ss")
            .unwrap_err()
            .contains("full date"));
        assert!(TimeFormat::compile("yy-MM-dd").is_err());
        assert!(TimeFormat::compile("[year]-[nonsense]").is_err());
        assert!(TimeFormat::compile("yyyy 'T").is_err());
        assert_eq!(parse_offset("+08:00"), Ok(CST));
        assert_eq!(parse_offset("-05:30").unwrap().whole_minutes(), -330);
        assert_eq!(parse_offset("Z"), Ok(UtcOffset::UTC));
        for bad in ["8", "+8:00", "+25:00", "Asia/Shanghai", ""] {
            assert!(parse_offset(bad).is_err(), "{bad}");
        }
    }
}
