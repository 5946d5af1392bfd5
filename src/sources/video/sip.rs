//! SIP messages in and out, with no socket: a datagram or a stream's bytes checked and read
//! (rsipstack's parser), the headers the registry needs taken from them, and the replies the
//! registry decides written back. The transports (next) only move bytes.
//!
//! rsipstack is lenient where the gateway must not be (docs/research/video.md): it accepts a
//! body shorter than `Content-Length` and takes a garbage `Content-Length` as 0. The length
//! and the size bound are checked here, on the raw bytes, before its parse is trusted.

use super::session::{Link, Register, Reply};
use rsipstack::sip::headers::{CSeq, CallId, ContentLength, From, To, Via};
use rsipstack::sip::{Header, Headers, HeadersExt, Method, Request, Response, SipMessage};
use rsipstack::sip::{StatusCode, Version};

/// Why bytes were refused before any SIP handling. `code()` is the metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SipError {
    #[error(
        "the SIP message is {len} bytes, more than the {max} allowed (video.max_message_bytes)"
    )]
    TooLarge { len: usize, max: usize },
    #[error("Content-Length says {declared:?}, {got} bytes of body were received")]
    ContentLength {
        declared: Option<String>,
        got: usize,
    },
    #[error("not a SIP message: {0}")]
    Malformed(String),
    #[error("a SIP response where a request was expected")]
    NotRequest,
    #[error("the request has no usable {0} header")]
    Missing(&'static str),
}

impl SipError {
    pub fn code(&self) -> &'static str {
        match self {
            SipError::TooLarge { .. } => "too_large",
            SipError::ContentLength { .. } => "content_length",
            SipError::Malformed(_) | SipError::NotRequest => "sip_malformed",
            SipError::Missing(_) => "sip_missing_header",
        }
    }
}

/// A request, read, with what the registry needs from it.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub request: Request,
    /// The From URI's user part: the device's ID.
    pub device_id: String,
    pub call_id: String,
    pub cseq: u32,
    /// `Expires`, else the Contact's `expires` parameter.
    pub expires: Option<u64>,
    pub authorization: Option<String>,
}

impl Inbound {
    pub fn method(&self) -> &Method {
        self.request.method()
    }

    /// This request as the registry's REGISTER event, received over `link`.
    pub fn register(&self, link: Link) -> Register<'_> {
        Register {
            device_id: &self.device_id,
            call_id: &self.call_id,
            cseq: self.cseq,
            expires: self.expires,
            authorization: self.authorization.as_deref(),
            link,
        }
    }
}

/// The end of the header section (the index of its `\r\n\r\n`).
fn header_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n")
}

/// The `Content-Length` (or `l`) values in a header section.
fn content_length(head: &[u8]) -> Option<String> {
    String::from_utf8_lossy(head)
        .split("\r\n")
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            let name = name.trim();
            (name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l"))
                .then(|| value.trim().to_string())
        })
}

/// One datagram (RFC 3261 §18.3): at most `max` bytes; `Content-Length`, if present, a
/// number no larger than the body received (extra bytes after it are dropped).
pub fn read_datagram(bytes: &[u8], max: usize) -> Result<Inbound, SipError> {
    if bytes.len() > max {
        return Err(SipError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    let end = header_end(bytes).ok_or_else(|| SipError::Malformed("no end of headers".into()))?;
    let got = bytes.len() - end - 4;
    if let Some(declared) = content_length(&bytes[..end]) {
        if declared.parse::<usize>().map_or(true, |n| n > got) {
            return Err(SipError::ContentLength {
                declared: Some(declared),
                got,
            });
        }
    }
    read(bytes)
}

/// What a TCP stream's buffer starts with (RFC 3261 §18.3: `Content-Length` is required on
/// streams; RFC 5626 §3.5.1: a CRLF pair alone is a keepalive ping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// More bytes are needed.
    Incomplete,
    /// This many bytes of CRLFs to skip.
    Ping(usize),
    /// A whole message of this many bytes.
    Message(usize),
}

/// Where the first message of a stream buffer ends, bounded by `max`.
pub fn frame(buf: &[u8], max: usize) -> Result<Frame, SipError> {
    let crlf = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    if crlf > 0 {
        return Ok(Frame::Ping(crlf));
    }
    let Some(end) = header_end(buf) else {
        return if buf.len() > max {
            Err(SipError::TooLarge {
                len: buf.len(),
                max,
            })
        } else {
            Ok(Frame::Incomplete)
        };
    };
    let declared = content_length(&buf[..end]);
    let body = match declared.as_deref().map(str::parse::<usize>) {
        Some(Ok(n)) => n,
        _ => return Err(SipError::ContentLength { declared, got: 0 }),
    };
    let total = end.saturating_add(4).saturating_add(body);
    if total > max {
        return Err(SipError::TooLarge { len: total, max });
    }
    Ok(if buf.len() >= total {
        Frame::Message(total)
    } else {
        Frame::Incomplete
    })
}

/// A whole message's bytes (framed by [`frame`], or a checked datagram) as a request.
pub fn read(bytes: &[u8]) -> Result<Inbound, SipError> {
    let msg = SipMessage::try_from(bytes).map_err(|e| SipError::Malformed(clip(&e.to_string())))?;
    let SipMessage::Request(request) = msg else {
        return Err(SipError::NotRequest);
    };
    let from = request
        .from_header()
        .map_err(|_| SipError::Missing("From"))?;
    let device_id = from
        .uri()
        .ok()
        .and_then(|u| u.user().map(str::to_string))
        .filter(|u| !u.is_empty())
        .ok_or(SipError::Missing("From"))?;
    let call_id = request
        .call_id_header()
        .map(|c| c.value().trim().to_string())
        .map_err(|_| SipError::Missing("Call-ID"))?;
    let cseq = request
        .cseq_header()
        .ok()
        .and_then(|c| c.seq().ok())
        .ok_or(SipError::Missing("CSeq"))?;
    request.via_header().map_err(|_| SipError::Missing("Via"))?;
    let expires = expires(&request);
    let authorization = request.header_value("Authorization");
    Ok(Inbound {
        request,
        device_id,
        call_id,
        cseq,
        expires,
        authorization,
    })
}

fn clip(s: &str) -> String {
    s.chars().take(120).collect()
}

/// `Expires: n`, else `;expires=n` on the Contact (after its URI).
fn expires(r: &Request) -> Option<u64> {
    if let Some(v) = r.header_value("Expires") {
        return v.parse().ok();
    }
    let contact = r.header_value("Contact")?;
    let params = match contact.rfind('>') {
        Some(i) => &contact[i..],
        None => &contact,
    };
    params.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("expires")
            .then(|| v.trim().parse().ok())
            .flatten()
    })
}

/// The response to `req` for `reply`: its Vias, From, Call-ID and CSeq copied, its To with
/// `to_tag` added when it has none (RFC 3261 §8.2.6.2), and the reply's own headers.
pub fn respond(req: &Request, reply: &Reply, to_tag: &str) -> Vec<u8> {
    let status = match reply {
        Reply::Registered { .. } | Reply::Accepted => StatusCode::OK,
        Reply::Challenge { .. } => StatusCode::Unauthorized,
        Reply::BadRequest { .. } => StatusCode::BadRequest,
        Reply::Forbidden { .. } => StatusCode::Forbidden,
    };
    let mut headers = Headers::default();
    for h in req.headers.iter() {
        match h {
            Header::Via(v) => headers.push(Via::new(v.value()).into()),
            Header::From(v) => headers.push(From::new(v.value()).into()),
            Header::CallId(v) => headers.push(CallId::new(v.value()).into()),
            Header::CSeq(v) => headers.push(CSeq::new(v.value()).into()),
            Header::To(v) => {
                let mut to = v.value().to_string();
                if !to.to_ascii_lowercase().contains(";tag=") {
                    to.push_str(";tag=");
                    to.push_str(to_tag);
                }
                headers.push(To::new(to).into());
            }
            _ => {}
        }
    }
    match reply {
        Reply::Registered { expires, date } => {
            headers.push(Header::Other("Expires".into(), expires.to_string()));
            if !date.is_empty() {
                headers.push(Header::Other("Date".into(), date.clone()));
            }
        }
        Reply::Challenge { www_authenticate } => headers.push(Header::Other(
            "WWW-Authenticate".into(),
            www_authenticate.clone(),
        )),
        _ => {}
    }
    headers.push(ContentLength::new("0").into());
    Response {
        status_code: status,
        wire_reason: None,
        version: Version::V2,
        headers,
        body: Vec::new(),
    }
    .to_bytes()
}

/// A request the gateway sends to a device (a catalog query, a catalog SUBSCRIBE, an alarm's
/// answer): `from` is the gateway's ID at `domain`, `via` the address it listens on, `to` the
/// device's ID at `peer` (where it spoke from), `transport` `UDP` or `TCP`.
pub struct Outgoing<'a> {
    pub method: Method,
    pub from: &'a str,
    pub domain: &'a str,
    pub via: std::net::SocketAddr,
    pub transport: &'a str,
    pub to: &'a str,
    pub peer: std::net::SocketAddr,
    /// Unique per request: the Call-ID, the From tag and the branch are made from it.
    pub id: &'a str,
    pub cseq: u32,
    pub body: &'a str,
}

/// The bytes of `o` (RFC 3261 §8.1.1: Via with a fresh branch, From with a tag, To, Call-ID,
/// CSeq, Max-Forwards; a SUBSCRIBE adds `Event: Catalog` and `Expires`, GB/T 28181 9.11).
pub fn request(o: &Outgoing<'_>) -> Result<Vec<u8>, SipError> {
    let uri = rsipstack::sip::Uri::try_from(format!("sip:{}@{}", o.to, o.peer))
        .map_err(|e| SipError::Malformed(clip(&e.to_string())))?;
    let mut headers = Headers::default();
    let via = format!(
        "SIP/2.0/{} {};rport;branch=z9hG4bK{}",
        o.transport, o.via, o.id
    );
    headers.push(Via::new(via).into());
    let from = format!("<sip:{}@{}>;tag={}", o.from, o.domain, o.id);
    headers.push(From::new(from).into());
    headers.push(To::new(format!("<sip:{}@{}>", o.to, o.domain)).into());
    headers.push(CallId::new(o.id).into());
    headers.push(CSeq::new(format!("{} {}", o.cseq, o.method)).into());
    headers.push(Header::Other("Max-Forwards".into(), "70".into()));
    if o.method == Method::Subscribe {
        headers.push(Header::Other("Event".into(), "Catalog".into()));
        headers.push(Header::Other("Expires".into(), "3600".into()));
    }
    headers.push(Header::Other(
        "Content-Type".into(),
        "Application/MANSCDP+xml".into(),
    ));
    headers.push(ContentLength::new(o.body.len().to_string()).into());
    Ok(Request {
        method: o.method,
        uri,
        version: Version::V2,
        headers,
        body: o.body.as_bytes().to_vec(),
    }
    .to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTER: &str = "REGISTER sip:34020000002000000001@3402000000 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK1\r\n\
        From: <sip:34020000001320000001@3402000000>;tag=382\r\n\
        To: <sip:34020000001320000001@3402000000>\r\n\
        Call-ID: 1923@192.168.1.64\r\n\
        CSeq: 2 REGISTER\r\n\
        Contact: <sip:34020000001320000001@192.168.1.64:5060>\r\n\
        Authorization: Digest username=\"34020000001320000001\", realm=\"3402000000\", \
        nonce=\"n1\", uri=\"sip:34020000002000000001@3402000000\", response=\"00\", \
        algorithm=MD5, qop=auth, nc=0000000a, cnonce=\"c\"\r\n\
        Max-Forwards: 70\r\n\
        Expires: 3600\r\n\
        Content-Length: 0\r\n\r\n";

    fn keepalive(declared: &str) -> Vec<u8> {
        let body = "<?xml version=\"1.0\"?><Notify><CmdType>Keepalive</CmdType><SN>1</SN>\
            <DeviceID>34020000001320000001</DeviceID></Notify>";
        format!(
            "MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\n\
             Via: SIP/2.0/TCP 192.168.1.64:5060;branch=z9hG4bK2\r\n\
             From: <sip:34020000001320000001@3402000000>;tag=1\r\n\
             To: <sip:34020000002000000001@3402000000>\r\n\
             Call-ID: k1\r\nCSeq: 20 MESSAGE\r\n\
             Content-Type: Application/MANSCDP+xml\r\n\
             Content-Length: {}\r\n\r\n{body}",
            if declared.is_empty() {
                body.len().to_string()
            } else {
                declared.into()
            }
        )
        .into_bytes()
    }

    #[test]
    fn a_register_is_read_with_its_raw_authorization() {
        let r = read_datagram(REGISTER.as_bytes(), 65_535).unwrap();
        assert_eq!(r.method(), &Method::Register);
        assert_eq!(r.device_id, "34020000001320000001");
        assert_eq!(
            (r.call_id.as_str(), r.cseq, r.expires),
            ("1923@192.168.1.64", 2, Some(3600))
        );
        assert!(r.authorization.unwrap().contains("nc=0000000a"));
        // Without an Expires header, the Contact's parameter; without either, none.
        let contact = REGISTER
            .replace("Expires: 3600\r\n", "")
            .replace("5060>\r\n", "5060>;expires=600\r\n");
        assert_eq!(
            read_datagram(contact.as_bytes(), 65_535).unwrap().expires,
            Some(600)
        );
        let none = REGISTER.replace("Expires: 3600\r\n", "");
        assert_eq!(
            read_datagram(none.as_bytes(), 65_535).unwrap().expires,
            None
        );
    }

    #[test]
    fn datagrams_with_a_wrong_length_or_too_large_are_refused() {
        let ok = keepalive("");
        let r = read_datagram(&ok, 65_535).unwrap();
        assert!(r.request.body().ends_with(b"</Notify>"));
        for declared in ["500", "abc", "-1"] {
            let e = read_datagram(&keepalive(declared), 65_535).unwrap_err();
            assert_eq!(e.code(), "content_length", "{declared}");
        }
        // A shorter Content-Length keeps that much body (RFC 3261 §18.3).
        let r = read_datagram(&keepalive("9"), 65_535).unwrap();
        assert_eq!(r.request.body(), b"<?xml ver");
        assert_eq!(
            read_datagram(&ok, 100).unwrap_err(),
            SipError::TooLarge {
                len: ok.len(),
                max: 100
            }
        );
        assert_eq!(
            read_datagram(b"HELLO\r\n\r\n", 100).unwrap_err().code(),
            "sip_malformed"
        );
        assert_eq!(
            read_datagram(b"no end", 100).unwrap_err().code(),
            "sip_malformed"
        );
        let response = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            read_datagram(response, 100).unwrap_err(),
            SipError::NotRequest
        );
        let no_from = REGISTER.replace(
            "From: <sip:34020000001320000001@3402000000>;tag=382\r\n",
            "",
        );
        assert_eq!(
            read_datagram(no_from.as_bytes(), 65_535).unwrap_err(),
            SipError::Missing("From")
        );
    }

    #[test]
    fn a_stream_is_framed_by_content_length_and_a_missing_one_is_refused() {
        let one = keepalive("");
        let mut two = one.clone();
        two.extend_from_slice(&one);
        assert_eq!(frame(&two, 65_535), Ok(Frame::Message(one.len())));
        assert_eq!(frame(&one[..one.len() - 1], 65_535), Ok(Frame::Incomplete));
        assert_eq!(frame(b"\r\n\r\nMESSAGE", 65_535), Ok(Frame::Ping(4)));
        let missing = String::from_utf8(one.clone()).unwrap();
        let at = missing.find("Content-Length").unwrap();
        let end = at + missing[at..].find("\r\n").unwrap() + 2;
        let missing = format!("{}{}", &missing[..at], &missing[end..]);
        assert_eq!(
            frame(missing.as_bytes(), 65_535).unwrap_err().code(),
            "content_length"
        );
        assert_eq!(
            frame(&keepalive("x1"), 65_535).unwrap_err().code(),
            "content_length"
        );
        assert_eq!(
            frame(&keepalive("100000"), 65_535).unwrap_err().code(),
            "too_large"
        );
        assert_eq!(frame(&[b'A'; 200], 100).unwrap_err().code(), "too_large");
        let Frame::Message(n) = frame(&two, 65_535).unwrap() else {
            unreachable!()
        };
        assert_eq!(read(&two[..n]).unwrap().cseq, 20);
    }

    #[test]
    fn replies_copy_the_dialog_headers_and_carry_their_own() {
        let req = read_datagram(REGISTER.as_bytes(), 65_535).unwrap().request;
        let challenge = Reply::Challenge {
            www_authenticate: "Digest realm=\"3402000000\", nonce=\"x\"".into(),
        };
        let text = String::from_utf8(respond(&req, &challenge, "gw1")).unwrap();
        assert!(text.starts_with("SIP/2.0 401 Unauthorized\r\n"), "{text}");
        for line in [
            "Via: SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK1\r\n",
            "From: <sip:34020000001320000001@3402000000>;tag=382\r\n",
            "To: <sip:34020000001320000001@3402000000>;tag=gw1\r\n",
            "Call-ID: 1923@192.168.1.64\r\n",
            "CSeq: 2 REGISTER\r\n",
            "WWW-Authenticate: Digest realm=\"3402000000\", nonce=\"x\"\r\n",
            "Content-Length: 0\r\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(!text.contains("Authorization: Digest username"));
        let ok = Reply::Registered {
            expires: 3600,
            date: "2023-11-15T06:13:20.123".into(),
        };
        let text = String::from_utf8(respond(&req, &ok, "gw1")).unwrap();
        assert!(text.starts_with("SIP/2.0 200 OK\r\n"));
        assert!(
            text.contains("Expires: 3600\r\n")
                && text.contains("Date: 2023-11-15T06:13:20.123\r\n")
        );
        // The reply reads back as a SIP response.
        let SipMessage::Response(r) = SipMessage::try_from(text.as_str()).unwrap() else {
            panic!("a response");
        };
        assert_eq!(r.status_code, StatusCode::OK);
        let forbidden = respond(
            &req,
            &Reply::Forbidden {
                reason: "wrong_password",
            },
            "t",
        );
        assert!(forbidden.starts_with(b"SIP/2.0 403 Forbidden\r\n"));
    }

    #[test]
    fn a_request_to_a_device_reads_back_with_its_body() {
        let body = super::super::manscdp::catalog_query(7, "34020000001320000001");
        let o = Outgoing {
            method: Method::Subscribe,
            from: "34020000002000000001",
            domain: "3402000000",
            via: "127.0.0.1:5060".parse().unwrap(),
            transport: "UDP",
            to: "34020000001320000001",
            peer: "127.0.0.1:5070".parse().unwrap(),
            id: "gw7",
            cseq: 7,
            body: &body,
        };
        let bytes = request(&o).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("SUBSCRIBE sip:34020000001320000001@127.0.0.1:5070 SIP/2.0\r\n"));
        assert!(text.contains("Event: Catalog\r\n") && text.contains("CSeq: 7 SUBSCRIBE\r\n"));
        let SipMessage::Request(r) = SipMessage::try_from(bytes.as_slice()).unwrap() else {
            panic!("a request");
        };
        assert_eq!(r.body(), body.as_bytes());
    }
}
