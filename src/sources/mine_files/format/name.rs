//! The file name `<mine code>_<TYPE>_<yyyyMMddHHmmss>.txt`, the site's UTC offset, and the
//! local times of the format.

use super::error::FileError;
use super::tables;
use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset};

/// The file types supported (the name's TYPE part).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    /// 测点定义.
    Cddy,
    /// 测点实时数据.
    Cdss,
    /// 异常报警.
    Ycbj,
    /// 分站定义.
    Fzdy,
    /// 分站实时状态.
    Fzss,
    /// 基站实时状态 (personnel positioning).
    Jzss,
    /// 人员实时数据 (personnel positioning).
    Ryss,
    /// 基站定义 (personnel positioning).
    Ryjz,
    /// 区域定义 (personnel positioning).
    Ryqy,
}

impl FileType {
    /// The name's TYPE part: "CDDY"…
    pub fn as_str(self) -> &'static str {
        tables::layout_of(self).code
    }

    /// A real-time file: CDSS, FZSS, JZSS, RYSS.
    pub fn is_realtime(self) -> bool {
        tables::layout_of(self).realtime
    }

    /// The type named `code` (exactly, upper case), if supported.
    pub fn from_code(code: &str) -> Option<FileType> {
        tables::LAYOUTS
            .iter()
            .find(|l| l.code == code)
            .map(|l| l.file_type)
    }
}

/// A file's name, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName {
    pub mine_code: String,
    pub file_type: FileType,
    /// The name's stamp, local time at the site's offset, epoch ms.
    pub stamp_ms: i64,
}

/// Parses `<mine code>_<TYPE>_<yyyyMMddHHmmss>.txt`, split from the right: regional mine codes
/// are longer than the national 12 digits (and may hold letters). The extension's case does not
/// matter; the TYPE's does.
pub fn parse_name(name: &str, tz_offset_s: i32) -> Result<FileName, FileError> {
    let offset = offset(tz_offset_s)?;
    let bad = |why: &str| FileError::BadName(format!("{}: {why}", shorten(name)));
    let (rest, tail) = name
        .rsplit_once('_')
        .ok_or_else(|| bad("no `_` before the stamp"))?;
    let stamp = strip_txt(tail).ok_or_else(|| bad("it does not end with `.txt`"))?;
    let stamp_ms =
        parse_stamp(stamp, offset).ok_or_else(|| bad("the stamp is not a valid yyyyMMddHHmmss"))?;
    let (code, kind) = rest
        .rsplit_once('_')
        .ok_or_else(|| bad("no `_` between the mine code and the type"))?;
    let file_type = FileType::from_code(kind)
        .ok_or_else(|| bad(&format!("unknown file type `{}`", shorten(kind))))?;
    if code.is_empty() || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(bad("the mine code must be ASCII digits or letters"));
    }
    Ok(FileName {
        mine_code: code.to_string(),
        file_type,
        stamp_ms,
    })
}

/// `"+08:00"`, `"-05:30"`, `"+0800"`, `"+08"`, `"Z"` or `"UTC"` → seconds east of UTC.
pub fn parse_tz(s: &str) -> Option<i32> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("z") || s.eq_ignore_ascii_case("utc") {
        return Some(0);
    }
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let rest = s.get(1..)?;
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    let colons = rest.len() - digits.len();
    let ok_shape = match digits.len() {
        2 => colons == 0,
        4 => colons == 0 || (colons == 1 && rest.get(2..3) == Some(":")),
        _ => false,
    };
    if !ok_shape || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = digits.get(0..2)?.parse().ok()?;
    let minutes: i32 = digits
        .get(2..)
        .filter(|m| !m.is_empty())
        .map_or(Some(0), |m| m.parse().ok())?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some(sign * (hours * 3600 + minutes * 60))
}

/// The offset, or the file is refused: an offset out of range is a configuration error.
pub(crate) fn offset(tz_offset_s: i32) -> Result<UtcOffset, FileError> {
    UtcOffset::from_whole_seconds(tz_offset_s).map_err(|_| FileError::BadOffset(tz_offset_s))
}

/// `yyyy-MM-dd HH:mm:ss`, local at `offset` → epoch ms.
pub(crate) fn parse_local_time(s: &str, offset: UtcOffset) -> Option<i64> {
    let b = s.as_bytes();
    let shape = b.len() == 19
        && b.get(4) == Some(&b'-')
        && b.get(7) == Some(&b'-')
        && b.get(10) == Some(&b' ')
        && b.get(13) == Some(&b':')
        && b.get(16) == Some(&b':');
    if !shape {
        return None;
    }
    let digits: String = [0..4, 5..7, 8..10, 11..13, 14..16, 17..19]
        .into_iter()
        .map(|r| s.get(r))
        .collect::<Option<Vec<_>>>()?
        .concat();
    parse_stamp(&digits, offset)
}

/// `yyyyMMddHHmmss`, local at `offset` → epoch ms.
fn parse_stamp(s: &str, offset: UtcOffset) -> Option<i64> {
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r).and_then(|d| d.parse::<u16>().ok());
    let month = Month::try_from(u8::try_from(n(4..6)?).ok()?).ok()?;
    let date = Date::from_calendar_date(i32::from(n(0..4)?), month, u8::try_from(n(6..8)?).ok()?);
    let time = Time::from_hms(
        u8::try_from(n(8..10)?).ok()?,
        u8::try_from(n(10..12)?).ok()?,
        u8::try_from(n(12..14)?).ok()?,
    );
    let at = PrimitiveDateTime::new(date.ok()?, time.ok()?).assume_offset(offset);
    Some(at.unix_timestamp() * 1000)
}

/// The part before a case-insensitive `.txt`.
fn strip_txt(tail: &str) -> Option<&str> {
    let cut = tail.len().checked_sub(4)?;
    let ext = tail.get(cut..)?;
    ext.eq_ignore_ascii_case(".txt").then(|| tail.get(..cut))?
}

/// At most 40 characters of `s`, for messages.
pub(crate) fn shorten(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        return s.to_string();
    }
    let mut out: String = s.chars().take(MAX).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CST: i32 = 8 * 3600;

    #[test]
    fn a_national_name_parses_with_its_stamp_at_the_site_offset() {
        let n = parse_name("150621011038_CDSS_20260301080000.txt", CST).unwrap();
        assert_eq!(n.mine_code, "150621011038");
        assert_eq!(n.file_type, FileType::Cdss);
        // 2026-03-01 08:00:00 +08:00 = 2026-03-01 00:00:00 UTC.
        assert_eq!(n.stamp_ms, 1_772_323_200_000);
    }

    #[test]
    fn a_longer_regional_code_with_letters_splits_from_the_right() {
        let n = parse_name("150622B0012000200092_RYSS_20260301080000.TXT", CST).unwrap();
        assert_eq!(n.mine_code, "150622B0012000200092");
        assert_eq!(n.file_type, FileType::Ryss);
        assert!(n.file_type.is_realtime());
    }

    #[test]
    fn every_type_round_trips_through_its_code() {
        for l in tables::LAYOUTS {
            let name = format!("150621011038_{}_20260301080000.txt", l.code);
            let n = parse_name(&name, CST).unwrap();
            assert_eq!(n.file_type, l.file_type);
            assert_eq!(n.file_type.as_str(), l.code);
        }
        let realtime: Vec<_> = tables::LAYOUTS
            .iter()
            .filter(|l| l.file_type.is_realtime())
            .map(|l| l.code)
            .collect();
        assert_eq!(realtime, ["CDSS", "FZSS", "JZSS", "RYSS"]);
    }

    #[test]
    fn bad_names_are_refused_with_the_reason() {
        for (name, why) in [
            ("150621011038_CDSS_20260301080000.csv", ".txt"),
            ("150621011038_CDSS_2026030108000.txt", "stamp"),
            ("150621011038_CDSS_20261301080000.txt", "stamp"),
            ("150621011038_CDSS_20260230080000.txt", "stamp"),
            (
                "150621011038_XXXX_20260301080000.txt",
                "unknown file type `XXXX`",
            ),
            ("150621011038_cdss_20260301080000.txt", "unknown file type"),
            ("_CDSS_20260301080000.txt", "mine code"),
            ("1506-21011038_CDSS_20260301080000.txt", "mine code"),
            ("CDSS_20260301080000.txt", "between"),
            ("20260301080000.txt", "no `_`"),
            ("", "no `_`"),
            ("a_b_矿.txt", "stamp"),
            ("a_b_.txt", "stamp"),
            ("a_b_t", ".txt"),
        ] {
            let err = parse_name(name, CST).unwrap_err();
            assert_eq!(err.reason(), "bad_name", "{name}");
            assert!(err.to_string().contains(why), "{name}: {err}");
        }
    }

    #[test]
    fn an_offset_out_of_range_refuses_the_file() {
        let err = parse_name("150621011038_CDSS_20260301080000.txt", 26 * 3600).unwrap_err();
        assert_eq!(err, FileError::BadOffset(26 * 3600));
    }

    #[test]
    fn offsets_parse_in_their_usual_spellings() {
        assert_eq!(parse_tz("+08:00"), Some(28_800));
        assert_eq!(parse_tz("-05:30"), Some(-19_800));
        assert_eq!(parse_tz("+0800"), Some(28_800));
        assert_eq!(parse_tz("+08"), Some(28_800));
        assert_eq!(parse_tz("Z"), Some(0));
        assert_eq!(parse_tz("utc"), Some(0));
        for bad in [
            "", "08:00", "+8", "+08:0", "+24:00", "+08:60", "+0:800", "+08::0", "+１８",
        ] {
            assert_eq!(parse_tz(bad), None, "{bad}");
        }
    }

    #[test]
    fn local_times_parse_strictly() {
        let off = offset(CST).unwrap();
        assert_eq!(
            parse_local_time("2026-03-01 08:00:00", off),
            Some(1_772_323_200_000)
        );
        for bad in [
            "2026-03-01T08:00:00",
            "2026-3-01 08:00:00",
            "2026-03-01 24:00:00",
            "",
            "2026-03-01 08:00:0０",
        ] {
            assert_eq!(parse_local_time(bad, off), None, "{bad}");
        }
    }
}
