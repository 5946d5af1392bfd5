//! The networking files' format: names, records, encodings and the field tables. Pure and
//! synchronous (no I/O, no clock): a file's name, its bytes and the site's UTC offset in, typed
//! records and the records refused out. See docs/mine-files.md ("File format").
//!
//! - `name`: the file name, the offset and the local times;
//! - `decode`: the encoding, the cleaning, the records and the header;
//! - `records`: the typed records, built field by field;
//! - `tables`: every field list and code table (a regional variant changes only this);
//! - `error`: what is refused, and why.

mod decode;
mod error;
mod name;
mod records;
pub mod tables;

#[cfg(test)]
mod tests;

pub use decode::{Encoding, Header};
pub use error::{FileError, RecordError, RecordReason};
pub use name::{parse_name, parse_tz, FileName, FileType};
pub use records::{
    sensor_kind, sensor_name, Anomaly, AnomalyKind, AreaDef, BaseStationDef, PersonRecord,
    PointDef, PointStatus, PointValue, PowerState, Record, RunState, StationState, SubstationDef,
    TrackPoint, ValueType,
};

/// A parsed file: its records, numbered (the header is record 1), and those refused.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedFile {
    pub name: FileName,
    pub encoding: Encoding,
    pub header: Header,
    pub records: Vec<(u32, Record)>,
    pub refused: Vec<RecordError>,
}

/// Parses a whole file. A file-level fault (name, encoding, full-width separator, no `||`,
/// header, mine code) refuses it whole; a bad record is refused alone and the rest is kept.
pub fn parse_file(name: &str, bytes: &[u8], tz_offset_s: i32) -> Result<ParsedFile, FileError> {
    let file_name = parse_name(name, tz_offset_s)?;
    let offset = name::offset(tz_offset_s)?;
    let layout = tables::layout_of(file_name.file_type);
    let (text, encoding) = decode::decode(bytes)?;
    let body = decode::clean(&text)?;
    let mut recs = decode::records(&body);
    let header = decode::header(recs.next(), layout, &file_name, offset)?;
    let mut records = Vec::new();
    let mut refused = Vec::new();
    for (number, text) in recs {
        match record(number, text, layout, offset) {
            Ok(r) => records.push((number, r)),
            Err(e) => refused.push(e),
        }
    }
    Ok(ParsedFile {
        name: file_name,
        encoding,
        header,
        records,
        refused,
    })
}

/// One record: its field count, then its fields.
fn record(
    number: u32,
    text: &str,
    layout: &'static tables::Layout,
    offset: time::UtcOffset,
) -> Result<Record, RecordError> {
    let values = decode::fields(text);
    let want = layout.fields.len();
    if values.len() != want {
        return Err(RecordError {
            record: number,
            reason: RecordReason::WrongFieldCount,
            detail: format!(
                "{} record has {} fields, expected {want}",
                layout.code,
                values.len()
            ),
        });
    }
    let fields = records::Fields {
        number,
        layout,
        values,
        offset,
    };
    records::build(layout.file_type, &fields)
}
