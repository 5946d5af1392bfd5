//! From bytes to numbered records: the encoding, the stray line breaks and BOM, the `||` end,
//! the `~` records and the `;` fields, and the header.

use super::error::FileError;
use super::name::{parse_local_time, shorten, FileName};
use super::tables::{self, Layout};
use encoding_rs::{DecoderResult, GB18030};
use time::UtcOffset;

/// The encoding a file was read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    /// GB18030, a superset of GBK and GB2312: what a Chinese Windows KJ host writes.
    Gb18030,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf8",
            Encoding::Gb18030 => "gb18030",
        }
    }
}

/// A file's header record.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub mine_code: String,
    pub mine_name: String,
    /// The header's 数据时间, epoch ms.
    pub data_ms: i64,
    /// All of the header's fields, as they were (trimmed).
    pub fields: Vec<String>,
}

/// Valid UTF-8 is UTF-8; anything else is read as GB18030, and a byte sequence that is not
/// GB18030 either refuses the file, naming its offset.
pub fn decode(bytes: &[u8]) -> Result<(String, Encoding), FileError> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok((text.to_string(), Encoding::Utf8));
    }
    let mut decoder = GB18030.new_decoder_without_bom_handling();
    let room = decoder
        .max_utf8_buffer_length_without_replacement(bytes.len())
        .ok_or_else(|| FileError::Undecodable("the file is too large to decode".into()))?;
    let mut text = String::with_capacity(room);
    let (result, read) = decoder.decode_to_string_without_replacement(bytes, &mut text, true);
    match result {
        DecoderResult::InputEmpty => Ok((text, Encoding::Gb18030)),
        DecoderResult::Malformed(bad, after) => {
            let at = read.saturating_sub(usize::from(bad) + usize::from(after));
            Err(FileError::Undecodable(format!(
                "not UTF-8, and not GB18030 at byte {at}"
            )))
        }
        DecoderResult::OutputFull => Err(FileError::Undecodable(format!(
            "not UTF-8, and GB18030 decoding stopped at byte {read}"
        ))),
    }
}

/// The text without its BOM and stray CR/LF, cut at the final `||`; refused when truncated or
/// when it holds a full-width separator.
pub fn clean(text: &str) -> Result<String, FileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let flat: String = text.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    let body = flat
        .trim_end()
        .strip_suffix(tables::FILE_END)
        .ok_or(FileError::Truncated)?;
    if let Some(at) = body.find(tables::FULL_WIDTH_SEP) {
        let record = body
            .get(..at)
            .map_or(0, |b| b.matches(tables::RECORD_END).count())
            + 1;
        return Err(FileError::FullWidthSeparator(format!(
            "in record {record}, character {}",
            body.get(..at).map_or(0, |b| b.chars().count()) + 1
        )));
    }
    Ok(body.to_string())
}

/// The records, numbered from 1 (the header), each its trimmed text. A record that is empty
/// (`~~`, or blanks) is skipped but keeps its number; the last record may end at `||` instead
/// of `~`.
pub fn records(body: &str) -> impl Iterator<Item = (u32, &str)> {
    body.split(tables::RECORD_END)
        .enumerate()
        .map(|(i, r)| (u32::try_from(i + 1).unwrap_or(u32::MAX), r.trim()))
        .filter(|(_, r)| !r.is_empty())
}

/// A record's fields, trimmed, empty ones kept.
pub fn fields(record: &str) -> Vec<&str> {
    record.split(tables::FIELD_SEP).map(str::trim).collect()
}

/// The header: at least the layout's fields, the mine code the name's, the data time valid.
pub fn header(
    record: Option<(u32, &str)>,
    layout: &Layout,
    name: &FileName,
    offset: UtcOffset,
) -> Result<Header, FileError> {
    let (number, text) = record.ok_or(FileError::NoHeader)?;
    if number != 1 {
        return Err(FileError::NoHeader);
    }
    let f = fields(text);
    let want = layout.header.len();
    if f.len() < want {
        return Err(FileError::BadHeader(format!(
            "{} header has {} fields, expected {want} ({})",
            layout.code,
            f.len(),
            layout.header.join(";")
        )));
    }
    let field = |i: usize| f.get(i).copied().unwrap_or("");
    let mine_code = field(0);
    if mine_code.is_empty() {
        return Err(FileError::BadHeader("the 矿井编码 is empty".into()));
    }
    if mine_code != name.mine_code {
        return Err(FileError::MineMismatch {
            name: name.mine_code.clone(),
            header: shorten(mine_code),
        });
    }
    let time = field(want.saturating_sub(1));
    let data_ms = parse_local_time(time, offset).ok_or_else(|| {
        FileError::BadHeader(format!(
            "数据时间 `{}` is not yyyy-MM-dd HH:mm:ss",
            shorten(time)
        ))
    })?;
    Ok(Header {
        mine_code: mine_code.to_string(),
        mine_name: field(1).to_string(),
        data_ms,
        fields: f.iter().map(|s| s.to_string()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_is_taken_as_it_is() {
        let (text, enc) = decode("示范煤矿".as_bytes()).unwrap();
        assert_eq!((text.as_str(), enc), ("示范煤矿", Encoding::Utf8));
        assert_eq!(enc.as_str(), "utf8");
    }

    #[test]
    fn gbk_bytes_are_read_as_gb18030() {
        let (bytes, _, _) = encoding_rs::GBK.encode("示范煤矿;环境瓦斯");
        let (text, enc) = decode(&bytes).unwrap();
        assert_eq!(
            (text.as_str(), enc),
            ("示范煤矿;环境瓦斯", Encoding::Gb18030)
        );
        assert_eq!(enc.as_str(), "gb18030");
    }

    #[test]
    fn bytes_in_neither_encoding_are_refused_at_their_offset() {
        // "示范" in GBK, then 0xFF, which starts no character in either encoding.
        let bytes = [0xCA, 0xBE, 0xB7, 0xB6, b';', 0xFF, b'a'];
        let err = decode(&bytes).unwrap_err();
        assert_eq!(err.reason(), "undecodable");
        assert!(err.to_string().contains("byte 5"), "{err}");
    }

    #[test]
    fn bom_and_line_breaks_go_and_the_end_is_cut() {
        let body = clean("\u{feff}a;b~\r\nc;\rd~\n||\r\n").unwrap();
        assert_eq!(body, "a;b~c;d~");
        let recs: Vec<_> = records(&body).collect();
        assert_eq!(recs, [(1, "a;b"), (2, "c;d")]);
    }

    #[test]
    fn a_file_without_its_end_is_truncated() {
        assert_eq!(clean("a;b~c;d~"), Err(FileError::Truncated));
        assert_eq!(clean("a;b~c;d~|"), Err(FileError::Truncated));
        assert_eq!(clean(""), Err(FileError::Truncated));
    }

    #[test]
    fn a_full_width_separator_refuses_the_file_naming_the_record() {
        let err = clean("a;b~c；d~||").unwrap_err();
        assert_eq!(err.reason(), "full_width_separator");
        assert!(err.to_string().contains("record 2"), "{err}");
    }

    #[test]
    fn empty_records_keep_their_numbers_and_empty_fields_their_places() {
        let recs: Vec<_> = records("h~ ~a;;b~~c").collect();
        assert_eq!(recs, [(1, "h"), (3, "a;;b"), (5, "c")]);
        assert_eq!(fields(" a ;; b;"), ["a", "", "b", ""]);
    }
}
