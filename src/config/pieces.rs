//! A large file parsed in pieces. toml builds the whole document (every key and value with its
//! position and formatting) before one entry is deserialized: for a 100,000-device inventory
//! that tree was 230 MB, twenty times the text, and it was the gateway's start-up peak. Cut at
//! the entries' own headers (`[[devices]]`, …), the file is a run of documents that parse on
//! their own, of 16 kB or so, each tree freed once its entries are taken.
//!
//! A cut is only a shortcut. A cut inside a multi-line string or array leaves the piece before
//! it unterminated, so that piece cannot parse; a piece holding anything but entries (a section
//! of the main file after its devices, say) does not parse as an inventory; a prefix that
//! spells an entry array itself (`devices = [...]`) is refused. In each of these cases the
//! caller parses the file whole, so what is accepted, and every error message, is exactly
//! what a whole-file parse gives.

use super::InventoryConfig;
use serde::de::DeserializeOwned;

/// Pieces are at least this long; a file no longer than this is parsed whole. Small, so that a
/// piece's tree is small allocations, reused piece after piece: at 256 kB its arrays grew into
/// large ones that jemalloc kept rather than reused (VmHWM of the load of 100,000 devices
/// 106 MB for a heap peak of 39 MB; 42 MB at 16 kB, and no slower).
pub(super) const PIECE_BYTES: usize = 16 * 1024;

/// The arrays of tables an inventory repeats once an entry, in `InventoryConfig`'s order.
const ENTRY_ARRAYS: [&str; 5] = ["sites", "enterprises", "zones", "systems", "devices"];

/// `text` as `T`'s own sections (everything before the first entry header) and the entries
/// after it; `None` when the file must be parsed whole (small, no entry header, or the pieces
/// do not add up, see the module's comment).
pub(super) fn parse<T: DeserializeOwned>(text: &str, piece: usize) -> Option<(T, InventoryConfig)> {
    if text.len() <= piece {
        return None;
    }
    let (heads, counts) = entry_headers(text);
    let first = *heads.first()?;
    let prefix = &text[..first];
    // `devices = []` and then `[[devices]]` is an error in one document, not in two.
    let own: toml::Table = toml::from_str(prefix).ok()?;
    if ENTRY_ARRAYS.iter().any(|k| own.contains_key(*k)) {
        return None;
    }
    drop(own);
    let head: T = toml::from_str(prefix).ok()?;
    // Two passes: the headers counted, each array is allocated once, at its final size.
    let mut entries = InventoryConfig::default();
    entries.sites.reserve_exact(counts[0]);
    entries.enterprises.reserve_exact(counts[1]);
    entries.zones.reserve_exact(counts[2]);
    entries.systems.reserve_exact(counts[3]);
    entries.devices.reserve_exact(counts[4]);
    let mut start = first;
    let ends = heads.iter().copied().chain([text.len()]);
    for end in ends.filter(|&h| h > first) {
        if end - start < piece && end < text.len() {
            continue;
        }
        let part: InventoryConfig = toml::from_str(&text[start..end]).ok()?;
        append(&mut entries, part);
        start = end;
    }
    Some((head, entries))
}

/// Move `src`'s entries after `dst`'s; an array with no room reserved is replaced, not
/// copied into.
pub(super) fn append(dst: &mut InventoryConfig, src: InventoryConfig) {
    fn join<T>(d: &mut Vec<T>, s: Vec<T>) {
        if d.capacity() == 0 {
            *d = s;
        } else {
            d.extend(s);
        }
    }
    join(&mut dst.sites, src.sites);
    join(&mut dst.enterprises, src.enterprises);
    join(&mut dst.zones, src.zones);
    join(&mut dst.systems, src.systems);
    join(&mut dst.devices, src.devices);
}

/// Byte offsets of the lines that are an entry header and nothing else (`[[devices]]`, blanks
/// and a comment allowed), and how many there are of each array. Other spellings
/// (`[[ "devices" ]]`) are not cut at: they stay inside a piece, which is just as correct.
fn entry_headers(text: &str) -> (Vec<usize>, [usize; 5]) {
    let mut heads = Vec::new();
    let mut counts = [0; 5];
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if let Some(i) = entry_header(line) {
            heads.push(at);
            counts[i] += 1;
        }
        at += line.len();
    }
    (heads, counts)
}

/// Which of [`ENTRY_ARRAYS`] the line is the header of.
fn entry_header(line: &str) -> Option<usize> {
    let blank = |c: char| c == ' ' || c == '\t';
    let rest = line.trim_start_matches(blank).strip_prefix("[[")?;
    let (name, rest) = rest.split_once("]]")?;
    let rest = rest.trim_start_matches(blank);
    let ends = rest.is_empty() || rest.starts_with('#') || rest == "\n" || rest == "\r\n";
    let i = ENTRY_ARRAYS
        .iter()
        .position(|a| *a == name.trim_matches(blank))?;
    ends.then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MainFile;

    /// Parsed in pieces of one entry each (`piece` = 1): `None` when left to the whole-file
    /// parse; otherwise what the pieces gave, checked to be what the whole file gives.
    fn pieces<T: DeserializeOwned + std::fmt::Debug>(text: &str) -> Option<InventoryConfig> {
        let (head, entries) = parse::<T>(text, 1)?;
        let whole = toml::from_str::<T>(text)
            .unwrap_or_else(|e| panic!("the pieces parsed, the whole did not: {e}\n{text}"));
        // The whole file's entries are in its head; the pieces' head has none of them.
        let whole = format!("{whole:?}");
        let mut split = format!("{head:?}");
        for (name, list) in [
            ("sites", format!("{:?}", entries.sites)),
            ("enterprises", format!("{:?}", entries.enterprises)),
            ("zones", format!("{:?}", entries.zones)),
            ("systems", format!("{:?}", entries.systems)),
            ("devices", format!("{:?}", entries.devices)),
        ] {
            split = split.replace(&format!("{name}: []"), &format!("{name}: {list}"));
        }
        assert_eq!(split, whole, "{text}");
        Some(entries)
    }

    fn device(id: &str, extra: &str) -> String {
        format!("[[devices]]\nid = \"{id}\"\nsite = \"p1\"\nkind = \"gas_combustible\"\nprotocol = \"mqtt\"\ninterval_s = 10\n{extra}\n")
    }

    const SITE: &str = "[[sites]]\nid = \"p1\"\nname = \"P\"\nkind = \"park\"\n\n";
    const MODBUS: &str = "[devices.modbus]\ntransport = \"tcp\"\naddress = \"127.0.0.1:502\"\n\
        unit = 1\n[[devices.modbus.registers]]\nchannel = \"lel\"\ntable = \"holding\"\n\
        address = 0\ntype = \"u16\"\n[devices.alarm]\nchannel = \"lel\"\n";

    #[test]
    fn entries_in_pieces_are_the_entries_of_the_whole() {
        let text = format!(
            "# inventory\n{SITE}{}{}\n[[zones]] # z\nid = \"z\"\nsite = \"p1\"\nname = \"Z\"\n{}{}{}",
            device("a", ""),
            device("b", "name = 'B'\r\ngas = \"x\"\r"),
            device("c", "enterprise = \"e\""),
            device("m", MODBUS),
            device("e", ""),
        );
        let inv = pieces::<InventoryConfig>(&text).expect("cut into pieces");
        let ids: Vec<&str> = inv.devices.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "m", "e"]);
        assert_eq!(inv.devices.capacity(), 5, "allocated once, at its size");
        assert_eq!(inv.zones.len(), 1);
        // The main file: its own sections first, then the entries.
        let main = format!("include = []\n[mqtt]\nqos = 1\n{text}");
        assert_eq!(pieces::<MainFile>(&main).unwrap().devices.len(), 5);
        // Small files are parsed whole.
        assert!(parse::<InventoryConfig>(&text, text.len()).is_none());
    }

    /// What must not be cut, or must not be taken from the pieces: each goes back to the
    /// whole-file parse (`None`), whose result or error stands.
    #[test]
    fn what_the_pieces_cannot_say_is_left_to_the_whole() {
        let cases = [
            // An inline array, then headers of the same array: one document refuses it.
            format!("devices = []\n{SITE}{}", device("a", "")),
            format!("sites = []\n{SITE}{}", device("a", "")),
            // A header inside a multi-line string, or a multi-line array.
            format!(
                "{SITE}{}",
                device("a", "name = \"\"\"\n[[devices]]\nid = 'x'\n\"\"\"")
            ),
            format!("{SITE}{}", device("a", "name = '''\n[[sites]]\n'''")),
            format!("{SITE}{}", device("a", "x = [\n[[sites]]\n]")),
            // A sub-table of the last device after another array's header.
            format!(
                "{}{SITE}[devices.alarm]\nchannel = \"x\"\n",
                device("a", "")
            ),
            // A section that is not an entry, after the entries.
            format!("{SITE}{}[other]\nx = 1\n", device("a", "")),
            // An unknown key in one entry.
            format!("{SITE}{}{}", device("a", ""), device("b", "colour = 1")),
            // The same entry table twice.
            format!(
                "{SITE}{}[devices.alarm]\n[devices.alarm]\n",
                device("a", "")
            ),
            // Nothing to cut at.
            "devices = [{ id = \"a\" }]\n".repeat(3),
        ];
        for text in &cases {
            assert!(pieces::<InventoryConfig>(text).is_none(), "{text}");
        }
        let main = format!("{SITE}{}[mqtt]\nqos = 1\n", device("a", ""));
        assert!(pieces::<MainFile>(&main).is_none());
        assert!(toml::from_str::<MainFile>(&main).is_ok());
    }

    /// A file large enough to be cut: an error in its last entry is reported as a whole-file
    /// parse reports it, at its line in the file.
    #[test]
    fn errors_in_a_large_file_are_the_whole_files() {
        let many: String = (0..3000).map(|i| device(&format!("d{i}"), "")).collect();
        assert!(many.len() > PIECE_BYTES);
        let good = format!("{SITE}{many}");
        let loaded = crate::config::load_str("t.toml".as_ref(), &good, ".".as_ref()).unwrap();
        assert_eq!(loaded.config.inventory.devices.len(), 3000);
        let bad = format!("{good}{}", device("x", "colour = 1"));
        let want = toml::from_str::<MainFile>(&bad).unwrap_err().to_string();
        let line = bad.lines().count();
        assert!(want.contains(&format!("line {line}")), "{want}");
        let errors = crate::config::load_str("t.toml".as_ref(), &bad, ".".as_ref()).unwrap_err();
        let got = &errors[0].message;
        assert_eq!(got, &want.trim_end().replace('\n', "\n    "));
    }

    #[test]
    fn headers_are_found_only_alone_on_their_line() {
        let text = "a = 1\n[[devices]]\n  [[ sites ]] # x\r\n[[devices.modbus.registers]]\n\
                    [[\"devices\"]]\n[[devicesx]]\n[[zones]] y = 1\nq = \"[[zones]]\"\n[[systems]]";
        let (heads, counts) = entry_headers(text);
        let lines: Vec<&str> = heads
            .iter()
            .map(|&h| text[h..].lines().next().unwrap())
            .collect();
        assert_eq!(lines, ["[[devices]]", "  [[ sites ]] # x", "[[systems]]"]);
        assert_eq!(counts, [1, 0, 0, 1, 1]);
    }
}
