//! Why a file, or one record of it, was refused.

use std::fmt;

/// Why a whole file was refused: nothing of it is kept. Each message tells the operator what to
/// have changed at the mine (its KJ system's export) before the file is sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileError {
    /// The name is not `<mine code>_<TYPE>_<yyyyMMddHHmmss>.txt` with a supported TYPE.
    BadName(String),
    /// Neither UTF-8 nor GB18030; names the byte offset of the first bad byte.
    Undecodable(String),
    /// A full-width `；` where a `;` belongs.
    FullWidthSeparator(String),
    /// The file does not end with `||`.
    Truncated,
    /// No header record.
    NoHeader,
    /// The header is not of the type's layout (field count, mine code, data time).
    BadHeader(String),
    /// The header's mine code is not the name's.
    MineMismatch { name: String, header: String },
    /// The site's UTC offset (seconds) is out of range: a configuration error, not the file's.
    BadOffset(i32),
}

impl FileError {
    /// A stable snake_case reason, for metrics and the quarantine's note.
    pub fn reason(&self) -> &'static str {
        match self {
            FileError::BadName(_) => "bad_name",
            FileError::Undecodable(_) => "undecodable",
            FileError::FullWidthSeparator(_) => "full_width_separator",
            FileError::Truncated => "truncated",
            FileError::NoHeader => "no_header",
            FileError::BadHeader(_) => "bad_header",
            FileError::MineMismatch { .. } => "mine_mismatch",
            FileError::BadOffset(_) => "bad_offset",
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::BadName(d) => write!(
                f,
                "bad file name ({d}); expected <mine code>_<TYPE>_<yyyyMMddHHmmss>.txt"
            ),
            FileError::Undecodable(d) => write!(
                f,
                "the file is neither UTF-8 nor GB18030 ({d}); have the mine export it in UTF-8"
            ),
            FileError::FullWidthSeparator(d) => write!(
                f,
                "full-width separator `；` ({d}); fields must be separated by an ASCII `;`"
            ),
            FileError::Truncated => write!(
                f,
                "the file is incomplete: it does not end with `||`; send it again whole"
            ),
            FileError::NoHeader => write!(f, "the file has no header record"),
            FileError::BadHeader(d) => write!(f, "bad header: {d}"),
            FileError::MineMismatch { name, header } => write!(
                f,
                "the header's mine code `{header}` is not the file name's `{name}`"
            ),
            FileError::BadOffset(s) => write!(
                f,
                "the site's UTC offset {s} s is out of range; fix the site's configuration"
            ),
        }
    }
}

impl std::error::Error for FileError {}

/// Why one record was refused; the rest of the file is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordReason {
    WrongFieldCount,
    BadNumber,
    BadTime,
    BadCode,
    EmptyCode,
}

impl RecordReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordReason::WrongFieldCount => "wrong_field_count",
            RecordReason::BadNumber => "bad_number",
            RecordReason::BadTime => "bad_time",
            RecordReason::BadCode => "bad_code",
            RecordReason::EmptyCode => "empty_code",
        }
    }
}

/// A refused record: its number (the N-th `~`-terminated record of the file, the header being
/// record 1), why, and the field (its Chinese name) with the value, shortened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub record: u32,
    pub reason: RecordReason,
    pub detail: String,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "record {}: {}: {}",
            self.record,
            self.reason.as_str(),
            self.detail
        )
    }
}
