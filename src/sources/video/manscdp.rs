//! MANSCDP bodies (`Application/MANSCDP+xml`, GB/T 28181-2016 Annex A): the keepalive, catalog
//! and alarm messages a device sends, read into types; and the queries and responses the
//! gateway sends back. See docs/video.md ("Messages") for every rule.
//!
//! quick-xml tokenizes; it expands no entity of its own (an `&name;` arrives as a reference
//! event), and the reader below refuses a DOCTYPE and every reference but the five predefined
//! ones and character references, so no document can grow while it is read (an "XML bomb").
//! The charset is UTF-8 when the body is valid UTF-8, else the prolog's, else GB18030 (of
//! which GB2312 and GBK are subsets): see [`decode`].

use quick_xml::events::Event;
use quick_xml::Reader;

/// Deeper documents are refused (MANSCDP nests four levels: root, DeviceList, Item, Info).
const MAX_DEPTH: usize = 16;
/// More elements than this in one body are refused.
const MAX_ELEMENTS: usize = 50_000;

/// Why a body was refused. `code()` is its metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the body is {len} bytes, more than the {max} allowed (video.max_message_bytes)")]
    TooLarge { len: usize, max: usize },
    #[error(
        "the body is neither valid in its declared charset {declared:?} nor in UTF-8 or GB18030"
    )]
    Charset { declared: Option<String> },
    #[error("the body has a DOCTYPE, which MANSCDP never needs (refused: entity expansion)")]
    Doctype,
    #[error("the body uses the entity &{0}; (only the five XML entities and character references are read)")]
    Entity(String),
    #[error("the body is not well-formed XML: {0}")]
    Malformed(String),
    #[error("the body's root is <{0}>, not Notify, Response, Query or Control")]
    Root(String),
    #[error("CmdType {cmd:?} under <{root}> is not one the gateway knows")]
    CmdType { root: String, cmd: String },
    #[error("<{root}> {cmd} has no {field}")]
    Missing {
        root: String,
        cmd: String,
        field: &'static str,
    },
    #[error("<{field}> is {value:?}, {expected}")]
    Field {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl BodyError {
    /// The reason, a small fixed set of labels.
    pub fn code(&self) -> &'static str {
        match self {
            BodyError::TooLarge { .. } => "too_large",
            BodyError::Charset { .. } => "bad_charset",
            BodyError::Doctype => "xml_doctype",
            BodyError::Entity(_) => "xml_entity",
            BodyError::Malformed(_) => "xml_malformed",
            BodyError::Root(_) | BodyError::CmdType { .. } => "unknown_cmdtype",
            BodyError::Missing { .. } | BodyError::Field { .. } => "bad_field",
        }
    }
}

/// A read MANSCDP body.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// `<Notify><CmdType>Keepalive</CmdType>`.
    Keepalive { sn: u32, device_id: String },
    /// `<Response><CmdType>Catalog</CmdType>` (one page of the answer to a catalog query), or
    /// `<Notify><CmdType>Catalog</CmdType>` (a subscribed change: items carry an `Event`).
    Catalog(CatalogPage),
    /// `<Notify><CmdType>Alarm</CmdType>`.
    Alarm(Alarm),
    /// A command the gateway knows and has no use for yet (DeviceInfo, DeviceStatus, …):
    /// answered 200 and otherwise left alone.
    Other { root: String, cmd: String },
}

/// One page of a catalog: `SumNum` is the count of all pages' items together.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogPage {
    pub sn: u32,
    pub device_id: String,
    pub sum_num: u32,
    pub items: Vec<CatalogItem>,
    /// From a `<Notify>` (a change), not a `<Response>` (an answer).
    pub is_notify: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CatalogItem {
    pub device_id: String,
    pub name: String,
    pub parent_id: Option<String>,
    pub status: ChannelStatus,
    /// The status as sent (kept for the API and for unknown values).
    pub status_raw: String,
    /// A change notification's `Event` (ON, OFF, VLOST, DEFECT, ADD, DEL, UPDATE).
    pub event: Option<String>,
}

/// A channel's status as the gateway counts it (docs/video.md, "Channel status").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelStatus {
    /// `ON`, `ONLINE`, `OK`.
    Online,
    /// `OFF`, `OFFLINE`, and an empty or unknown status.
    Offline,
    /// `VLOST` (video lost: signalled but no picture), `DEFECT` (the device reports a fault).
    Faulty,
}

impl ChannelStatus {
    /// Upper-cased, surrounding space ignored.
    pub fn parse(s: &str) -> ChannelStatus {
        match s.trim().to_ascii_uppercase().as_str() {
            "ON" | "ONLINE" | "OK" => ChannelStatus::Online,
            "VLOST" | "DEFECT" => ChannelStatus::Faulty,
            _ => ChannelStatus::Offline,
        }
    }
}

/// An alarm notification (GB/T 28181-2016 A.2.5.4).
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    pub sn: u32,
    /// The alarming device or channel.
    pub device_id: String,
    /// 1 (一级警情, the most urgent) … 4 (四级); `None` when absent or not 1–4.
    pub priority: Option<u8>,
    /// 1 电话, 2 设备, 3 短信, 4 GPS, 5 视频, 6 设备故障, 7 其他 报警.
    pub method: Option<u8>,
    /// `AlarmType` (under `Info` in 2016, or directly), meaning per method.
    pub alarm_type: Option<u16>,
    pub time: Option<String>,
    pub description: Option<String>,
}

/// The commands the gateway knows but does not act on (answered 200).
const KNOWN_OTHER: &[&str] = &[
    "DeviceInfo",
    "DeviceStatus",
    "RecordInfo",
    "MobilePosition",
    "ConfigDownload",
    "PresetQuery",
    "DeviceControl",
    "DeviceConfig",
    "Broadcast",
    "MediaStatus",
];

/// Reads a body of at most `max_bytes` bytes.
pub fn parse(body: &[u8], max_bytes: usize) -> Result<Message, BodyError> {
    if body.len() > max_bytes {
        return Err(BodyError::TooLarge {
            len: body.len(),
            max: max_bytes,
        });
    }
    let text = decode(body)?;
    let root = tree(&text)?;
    let cmd = root.child_text("CmdType").unwrap_or_default().to_string();
    let root_name = root.name.clone();
    let root_kind = ["Notify", "Response", "Query", "Control"]
        .into_iter()
        .find(|r| r.eq_ignore_ascii_case(&root_name))
        .ok_or_else(|| BodyError::Root(root_name.clone()))?;
    let missing = |field| BodyError::Missing {
        root: root_kind.into(),
        cmd: cmd.clone(),
        field,
    };
    let sn = number(root.child_text("SN").ok_or_else(|| missing("SN"))?, "SN")?;
    let device_id = root
        .child_text("DeviceID")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing("DeviceID"))?
        .to_string();
    match (root_kind, cmd.to_ascii_lowercase().as_str()) {
        ("Notify", "keepalive") => Ok(Message::Keepalive { sn, device_id }),
        ("Notify" | "Response", "catalog") => {
            let sum = root.child_text("SumNum").ok_or_else(|| missing("SumNum"))?;
            Ok(Message::Catalog(CatalogPage {
                sn,
                device_id,
                sum_num: number(sum, "SumNum")?,
                items: catalog_items(&root),
                is_notify: root_kind == "Notify",
            }))
        }
        ("Notify", "alarm") => Ok(Message::Alarm(alarm(&root, sn, device_id))),
        _ => match KNOWN_OTHER.iter().find(|k| k.eq_ignore_ascii_case(&cmd)) {
            Some(k) => Ok(Message::Other {
                root: root_kind.into(),
                cmd: (*k).into(),
            }),
            None => Err(BodyError::CmdType {
                root: root_kind.into(),
                cmd: cmd.chars().take(64).collect(),
            }),
        },
    }
}

fn number(s: &str, field: &'static str) -> Result<u32, BodyError> {
    s.trim().parse().map_err(|_| BodyError::Field {
        field,
        value: s.chars().take(32).collect(),
        expected: "a whole number from 0 to 4294967295",
    })
}

fn catalog_items(root: &Element) -> Vec<CatalogItem> {
    let Some(list) = root.child("DeviceList") else {
        return Vec::new();
    };
    list.children
        .iter()
        .filter(|e| e.name.eq_ignore_ascii_case("Item"))
        .filter_map(|item| {
            let id = item.child_text("DeviceID").filter(|s| !s.is_empty())?;
            let raw = item.child_text("Status").unwrap_or_default();
            Some(CatalogItem {
                device_id: id.to_string(),
                name: item.child_text("Name").unwrap_or_default().to_string(),
                parent_id: item.child_text("ParentID").map(str::to_string),
                status: ChannelStatus::parse(raw),
                status_raw: raw.to_string(),
                event: item.child_text("Event").map(str::to_string),
            })
        })
        .collect()
}

fn alarm(root: &Element, sn: u32, device_id: String) -> Alarm {
    let small = |name| {
        root.child_text(name)
            .and_then(|s| s.trim().parse::<u8>().ok())
    };
    let alarm_type = root
        .child("Info")
        .and_then(|i| i.child_text("AlarmType"))
        .or_else(|| root.child_text("AlarmType"))
        .and_then(|s| s.trim().parse().ok());
    let opt = |name| root.child_text(name).map(str::to_string);
    Alarm {
        sn,
        device_id,
        priority: small("AlarmPriority").filter(|p| (1..=4).contains(p)),
        method: small("AlarmMethod"),
        alarm_type,
        time: opt("AlarmTime"),
        description: opt("AlarmDescription"),
    }
}

/// The charset the prolog declares (`<?xml … encoding="GB2312"?>`), if any. Lenient about
/// what stands between `encoding` and the quote (one vendor writes `encoding-"gb2312"`).
fn declared_charset(body: &[u8]) -> Option<String> {
    let head = &body[..body.len().min(256)];
    let end = head.windows(2).position(|w| w == b"?>")?;
    let prolog = std::str::from_utf8(&head[..end]).ok()?;
    if !prolog.trim_start().starts_with("<?xml") {
        return None;
    }
    let after = &prolog[prolog.to_ascii_lowercase().find("encoding")? + 8..];
    let open = after.find(['"', '\''])?;
    let quote = after[open..].chars().next()?;
    let value = &after[open + 1..];
    Some(value[..value.find(quote)?].trim().to_string())
}

/// The body as text: UTF-8 when it is valid UTF-8, whatever the prolog says (devices that
/// declare GB2312 and send UTF-8 are common, while GB2312 text is seldom valid UTF-8 by
/// chance; the reverse test tells nothing, as GB18030 decodes most UTF-8 without error);
/// else in the declared charset, else in GB18030, if that decodes without a malformed
/// sequence.
pub fn decode(body: &[u8]) -> Result<String, BodyError> {
    use encoding_rs::{Encoding, GB18030, UTF_8};
    if let Some(rest) = body.strip_prefix(b"\xEF\xBB\xBF") {
        return std::str::from_utf8(rest)
            .map(str::to_string)
            .map_err(|_| BodyError::Charset { declared: None });
    }
    let declared = declared_charset(body);
    let named = declared.as_deref().and_then(|label| {
        let l = label.to_ascii_lowercase();
        if ["gb2312", "gbk", "gb18030", "gb_2312-80", "cp936"].contains(&l.as_str()) {
            Some(GB18030)
        } else {
            Encoding::for_label(label.as_bytes())
        }
    });
    let clean = |enc: &'static Encoding| {
        let (text, had_errors) = enc.decode_without_bom_handling(body);
        (!had_errors).then(|| text.into_owned())
    };
    clean(UTF_8)
        .or_else(|| named.filter(|e| *e != UTF_8).and_then(clean))
        .or_else(|| clean(GB18030))
        .ok_or(BodyError::Charset { declared })
}

/// An element: its local name, its attributes, its text (trimmed, references resolved) and
/// its children.
#[derive(Debug, Default)]
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
    children: Vec<Element>,
}

impl Element {
    /// The first child of that name, compared without case (`cmdType` is seen in captures).
    fn child(&self, name: &str) -> Option<&Element> {
        self.children
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// A child element's text, else an attribute's value: MANSCDP is written both ways
    /// (`<Response><CmdType>Catalog</CmdType><SN>1</SN>` and `<Response CmdType="Catalog"
    /// SN="1">`, the form older platforms and some device libraries use).
    fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim()).or_else(|| {
            self.attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim())
        })
    }
}

/// An element opened by a start or empty tag, with its attributes read.
fn open(e: &quick_xml::events::BytesStart<'_>) -> Result<Element, BodyError> {
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|e| BodyError::Malformed(e.to_string()))?;
        let value =
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| match e {
                    quick_xml::Error::Escape(
                        quick_xml::escape::EscapeError::UnrecognizedEntity(_, name),
                    ) => BodyError::Entity(name.chars().take(32).collect()),
                    other => BodyError::Malformed(other.to_string()),
                })?;
        attrs.push((local(a.key.local_name().as_ref()), value.into_owned()));
    }
    Ok(Element {
        name: local(e.local_name().as_ref()),
        attrs,
        ..Element::default()
    })
}

/// The document's root element, read with quick-xml under the rules at the top of this file.
fn tree(text: &str) -> Result<Element, BodyError> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    let mut count = 0usize;
    let malformed = |e: &dyn std::fmt::Display| BodyError::Malformed(e.to_string());
    loop {
        let event = reader.read_event().map_err(|e| malformed(&e))?;
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(BodyError::Malformed(
                    "content after the root element".into(),
                ))
            }
            Event::Start(_) | Event::Empty(_) if stack.len() >= MAX_DEPTH => {
                return Err(BodyError::Malformed(format!(
                    "elements nested deeper than {MAX_DEPTH}"
                )));
            }
            Event::Start(e) => {
                count += 1;
                stack.push(open(&e)?);
            }
            Event::Empty(e) => {
                count += 1;
                let el = open(&e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| malformed(&"an unopened end tag"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let s = t.xml10_content().map_err(|e| malformed(&e))?;
                push_text(&mut stack, &s)?;
            }
            Event::CData(c) => {
                let s = c.decode().map_err(|e| malformed(&e))?;
                push_text(&mut stack, &s)?;
            }
            Event::GeneralRef(r) => {
                let ch = resolve(&r)?;
                push_text(&mut stack, ch.encode_utf8(&mut [0; 4]))?;
            }
            Event::DocType(_) => return Err(BodyError::Doctype),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
        if count > MAX_ELEMENTS {
            return Err(BodyError::Malformed(format!(
                "more than {MAX_ELEMENTS} elements"
            )));
        }
    }
    if !stack.is_empty() {
        return Err(malformed(&format!("<{}> is not closed", stack[0].name)));
    }
    root.ok_or_else(|| malformed(&"no root element"))
}

fn local(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

/// Text outside the root is only whitespace.
fn push_text(stack: &mut [Element], s: &str) -> Result<(), BodyError> {
    match stack.last_mut() {
        Some(el) => {
            el.text.push_str(s);
            Ok(())
        }
        None if s.trim().is_empty() => Ok(()),
        None => Err(BodyError::Malformed("text outside the root element".into())),
    }
}

/// A character reference, or one of `lt gt amp apos quot`; any other name is refused.
fn resolve(r: &quick_xml::events::BytesRef<'_>) -> Result<char, BodyError> {
    let name = String::from_utf8_lossy(r).into_owned();
    if name.starts_with('#') {
        return match r.resolve_char_ref() {
            Ok(Some(ch)) => Ok(ch),
            _ => Err(BodyError::Malformed(format!(
                "bad character reference &{name};"
            ))),
        };
    }
    quick_xml::escape::resolve_predefined_entity(&name)
        .and_then(|s| s.chars().next())
        .ok_or_else(|| BodyError::Entity(name.chars().take(32).collect()))
}

/// The prolog of what the gateway sends: GB2312 as the standard's examples declare (what
/// the gateway writes is ASCII, the same bytes in either).
const PROLOG: &str = "<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n";

fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

/// The catalog query (A.2.4.3), also the body of a catalog SUBSCRIBE (A.2.4.3, 9.7).
pub fn catalog_query(sn: u32, device_id: &str) -> String {
    format!(
        "{PROLOG}<Query>\r\n<CmdType>Catalog</CmdType>\r\n<SN>{sn}</SN>\r\n\
         <DeviceID>{}</DeviceID>\r\n</Query>\r\n",
        escape(device_id)
    )
}

/// The answer to an alarm notification (A.2.6.4): `Result` OK.
pub fn alarm_response(sn: u32, device_id: &str) -> String {
    format!(
        "{PROLOG}<Response>\r\n<CmdType>Alarm</CmdType>\r\n<SN>{sn}</SN>\r\n\
         <DeviceID>{}</DeviceID>\r\n<Result>OK</Result>\r\n</Response>\r\n",
        escape(device_id)
    )
}

/// The 3-digit type code of a 20-digit GB/T 28181 ID (digits 11–13: 111 DVR, 118 NVR,
/// 131 camera, 132 network camera, 200 platform, 215 business group, 216 virtual
/// organisation …); `None` for an ID that is not 20 digits.
pub fn type_code(id: &str) -> Option<u16> {
    (id.len() == 20 && id.bytes().all(|b| b.is_ascii_digit()))
        .then(|| id[10..13].parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 65_535;

    fn catalog_page(sum: u32, items: &[(&str, &str)]) -> String {
        let mut s = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response>\n<CmdType>Catalog</CmdType>\n\
             <SN>17</SN>\n<DeviceID>34020000001180000001</DeviceID>\n<SumNum>{sum}</SumNum>\n\
             <DeviceList Num=\"{}\">\n",
            items.len()
        );
        for (id, status) in items {
            s.push_str(&format!(
                "<Item><DeviceID>{id}</DeviceID><Name>Cam</Name><Status>{status}</Status></Item>\n"
            ));
        }
        s.push_str("</DeviceList>\n</Response>\n");
        s
    }

    #[test]
    fn a_keepalive_is_read_whatever_the_case_of_its_names() {
        let body = b"<?xml version=\"1.0\"?>\r\n<Notify>\r\n<cmdType>Keepalive</cmdType>\r\n\
            <SN>43</SN>\r\n<DeviceID>34020000001320000001</DeviceID>\r\n<Status>OK</Status>\r\n\
            </Notify>\r\n";
        assert_eq!(
            parse(body, MAX),
            Ok(Message::Keepalive {
                sn: 43,
                device_id: "34020000001320000001".into()
            })
        );
    }

    #[test]
    fn the_attribute_form_reads_as_the_element_form() {
        // The form gb28181-rs and older platforms write: CmdType and SN as attributes.
        let body =
            b"<Notify CmdType=\"Keepalive\" SN=\"12\"><DeviceID>34020000001320000001</DeviceID>\
            <Status>OK</Status></Notify>";
        assert_eq!(
            parse(body, MAX),
            Ok(Message::Keepalive {
                sn: 12,
                device_id: "34020000001320000001".into()
            })
        );
        let page =
            "<Response CmdType=\"Catalog\" SN=\"3\"><DeviceID>34020000001180000001</DeviceID>\
            <SumNum>1</SumNum><DeviceList Num=\"1\"><Item><DeviceID>34020000001310000001</DeviceID>\
            <Name>A &amp; B</Name><Status>ON</Status></Item></DeviceList></Response>";
        let Ok(Message::Catalog(p)) = parse(page.as_bytes(), MAX) else {
            panic!("a catalog page");
        };
        assert_eq!((p.sn, p.sum_num, p.items[0].name.as_str()), (3, 1, "A & B"));
        // An element wins over an attribute of the same name.
        let both = "<Notify CmdType=\"Alarm\" SN=\"1\"><CmdType>Keepalive</CmdType><DeviceID>x</DeviceID></Notify>";
        assert!(matches!(
            parse(both.as_bytes(), MAX),
            Ok(Message::Keepalive { .. })
        ));
        // Attributes are held to the same entity rule.
        let entity = "<Notify CmdType=\"&lol;\" SN=\"1\"><DeviceID>x</DeviceID></Notify>";
        assert_eq!(
            parse(entity.as_bytes(), MAX),
            Err(BodyError::Entity("lol".into()))
        );
        let broken = "<Notify CmdType=\"Keepalive SN=1><DeviceID>x</DeviceID></Notify>";
        assert_eq!(
            parse(broken.as_bytes(), MAX).unwrap_err().code(),
            "xml_malformed"
        );
    }

    #[test]
    fn a_catalog_page_maps_each_status_variant() {
        let body = catalog_page(
            8,
            &[
                ("34020000001310000001", "ON"),
                ("34020000001310000002", "ONLINE"),
                ("34020000001310000003", "ok"),
                ("34020000001310000004", "OFF"),
                ("34020000001310000005", "VLOST"),
                ("34020000001310000006", "DEFECT"),
                ("34020000001310000007", ""),
                ("34020000001310000008", "Strange"),
            ],
        );
        let Ok(Message::Catalog(page)) = parse(body.as_bytes(), MAX) else {
            panic!("a catalog page");
        };
        assert_eq!((page.sn, page.sum_num, page.is_notify), (17, 8, false));
        assert_eq!(page.device_id, "34020000001180000001");
        let got: Vec<ChannelStatus> = page.items.iter().map(|i| i.status).collect();
        use ChannelStatus::*;
        assert_eq!(
            got,
            [Online, Online, Online, Offline, Faulty, Faulty, Offline, Offline]
        );
        assert_eq!(page.items[2].status_raw, "ok");
        assert_eq!(type_code(&page.items[0].device_id), Some(131));
        assert_eq!(type_code(&page.device_id), Some(118));
        assert_eq!(type_code("3402000000"), None);
    }

    #[test]
    fn gb2312_declared_or_undeclared_and_utf8_bodies_decode() {
        // "中文" is d6 d0 ce c4 in GB2312/GB18030 (Python: "中文".encode("gb18030")).
        let mut gb =
            b"<?xml version=\"1.0\" encoding=\"GB2312\"?><Response><CmdType>Catalog</CmdType>\
            <SN>1</SN><DeviceID>34020000001180000001</DeviceID><SumNum>1</SumNum><DeviceList>\
            <Item><DeviceID>34020000001310000001</DeviceID><Name>"
                .to_vec();
        gb.extend_from_slice(&[0xd6, 0xd0, 0xce, 0xc4]);
        gb.extend_from_slice(b"</Name><Status>ON</Status></Item></DeviceList></Response>");
        let name = |body: &[u8]| match parse(body, MAX) {
            Ok(Message::Catalog(p)) => p.items[0].name.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(name(&gb), "中文");
        // Undeclared: not UTF-8, so GB18030.
        let mut bytes = gb.clone();
        let at = bytes
            .windows(18)
            .position(|w| w == b" encoding=\"GB2312\"")
            .unwrap();
        bytes.drain(at..at + 18);
        assert!(bytes.starts_with(b"<?xml version=\"1.0\"?><Response>"));
        assert_eq!(name(&bytes), "中文");
        // Declared GB2312 but sent as UTF-8 (seen in the field): valid UTF-8 is UTF-8 (the
        // same bytes also decode as GB18030 without error, to "鎽勫儚鏈轰竴").
        let liar =
            "<?xml version=\"1.0\" encoding=\"GB2312\"?><Response><CmdType>Catalog</CmdType>\
            <SN>1</SN><DeviceID>34020000001180000001</DeviceID><SumNum>1</SumNum><DeviceList>\
            <Item><DeviceID>34020000001310000001</DeviceID><Name>摄像机一</Name><Status>ON</Status>\
            </Item></DeviceList></Response>";
        assert_eq!(name(liar.as_bytes()), "摄像机一");
        // The typo `encoding-"gb2312"` from a vendor's capture is still read as a declaration.
        assert_eq!(
            declared_charset(b"<?xml version=\"1.0\" encoding-\"gb2312\"?><a/>").as_deref(),
            Some("gb2312")
        );
        // Neither charset: refused.
        let bad = [
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Notify>".as_slice(),
            &[0xff, 0xff, 0x80],
            b"</Notify>",
        ]
        .concat();
        assert_eq!(parse(&bad, MAX).unwrap_err().code(), "bad_charset");
    }

    #[test]
    fn doctype_entities_and_bad_xml_are_refused_by_reason() {
        let bomb = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \
            \"&lol;&lol;&lol;&lol;&lol;\">]><Notify><CmdType>Keepalive</CmdType><SN>1</SN>\
            <DeviceID>&lol2;</DeviceID></Notify>";
        assert_eq!(parse(bomb.as_bytes(), MAX), Err(BodyError::Doctype));
        let entity =
            "<Notify><CmdType>Keepalive</CmdType><SN>1</SN><DeviceID>&lol;</DeviceID></Notify>";
        assert_eq!(
            parse(entity.as_bytes(), MAX),
            Err(BodyError::Entity("lol".into()))
        );
        let refs = "<Notify><CmdType>Keep&#97;live</CmdType><SN>1</SN><DeviceID>a&amp;b&#x4e2d;</DeviceID></Notify>";
        assert_eq!(
            parse(refs.as_bytes(), MAX),
            Ok(Message::Keepalive {
                sn: 1,
                device_id: "a&b中".into()
            })
        );
        for bad in [
            "<Notify><CmdType>Keepalive</CmdType>",
            "<Notify><CmdType>Keepalive</Notify>",
            "<Notify/><Notify/>",
            "text",
            "",
        ] {
            assert_eq!(
                parse(bad.as_bytes(), MAX).unwrap_err().code(),
                "xml_malformed",
                "{bad}"
            );
        }
        let deep = format!("<Notify>{}{}</Notify>", "<a>".repeat(20), "</a>".repeat(20));
        assert_eq!(
            parse(deep.as_bytes(), MAX).unwrap_err().code(),
            "xml_malformed"
        );
        assert_eq!(
            parse(&[b' '; 100], 99),
            Err(BodyError::TooLarge { len: 100, max: 99 })
        );
    }

    #[test]
    fn unknown_commands_and_missing_fields_are_refused_known_ones_pass() {
        let body = |root: &str, cmd: &str| {
            format!("<{root}><CmdType>{cmd}</CmdType><SN>5</SN><DeviceID>34020000001320000001</DeviceID></{root}>")
        };
        let e = parse(body("Notify", "Launch").as_bytes(), MAX).unwrap_err();
        assert_eq!(e.code(), "unknown_cmdtype");
        assert_eq!(
            parse(body("Order", "Keepalive").as_bytes(), MAX),
            Err(BodyError::Root("Order".into()))
        );
        assert_eq!(
            parse(body("Response", "DeviceInfo").as_bytes(), MAX),
            Ok(Message::Other {
                root: "Response".into(),
                cmd: "DeviceInfo".into()
            })
        );
        let no_sn = "<Notify><CmdType>Keepalive</CmdType><DeviceID>x</DeviceID></Notify>";
        assert!(matches!(
            parse(no_sn.as_bytes(), MAX),
            Err(BodyError::Missing { field: "SN", .. })
        ));
        let bad_sn = body("Notify", "Keepalive").replace("<SN>5", "<SN>-5");
        assert_eq!(
            parse(bad_sn.as_bytes(), MAX).unwrap_err().code(),
            "bad_field"
        );
        let no_sum = body("Response", "Catalog");
        assert!(matches!(
            parse(no_sum.as_bytes(), MAX),
            Err(BodyError::Missing {
                field: "SumNum",
                ..
            })
        ));
    }

    #[test]
    fn an_alarm_is_read_and_its_priority_mapped_to_levels() {
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Notify><CmdType>Alarm</CmdType>\
            <SN>2</SN><DeviceID>34020000001340000001</DeviceID><AlarmPriority>1</AlarmPriority>\
            <AlarmMethod>5</AlarmMethod><AlarmTime>2023-10-20T09:19:12</AlarmTime>\
            <AlarmDescription>视频动检</AlarmDescription><Info><AlarmType>2</AlarmType></Info></Notify>";
        let Ok(Message::Alarm(a)) = parse(body.as_bytes(), MAX) else {
            panic!("an alarm");
        };
        assert_eq!(
            (a.sn, a.priority, a.method, a.alarm_type),
            (2, Some(1), Some(5), Some(2))
        );
        assert_eq!(a.description.as_deref(), Some("视频动检"));
        assert_eq!(a.time.as_deref(), Some("2023-10-20T09:19:12"));
        let out_of_range = body.replace("<AlarmPriority>1", "<AlarmPriority>7");
        let Ok(Message::Alarm(a)) = parse(out_of_range.as_bytes(), MAX) else {
            panic!("an alarm");
        };
        assert_eq!(a.priority, None);
    }

    #[test]
    fn the_gateways_own_bodies_read_back() {
        let q = catalog_query(9, "34020000001180000001");
        assert!(q.starts_with("<?xml version=\"1.0\" encoding=\"GB2312\"?>"));
        let Element { name, children, .. } = tree(&q).unwrap();
        assert_eq!(name, "Query");
        assert_eq!(children.len(), 3);
        let r = alarm_response(2, "34020000001340000001");
        let root = tree(&r).unwrap();
        assert_eq!(root.name, "Response");
        assert_eq!(root.child_text("Result"), Some("OK"));
        assert_eq!(root.child_text("SN"), Some("2"));
        assert_eq!(
            tree(&catalog_query(1, "a<b"))
                .unwrap()
                .child_text("DeviceID"),
            Some("a<b")
        );
    }
}
