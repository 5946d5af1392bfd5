//! SIP digest authentication, the platform's side (RFC 2617 §3.2, RFC 7616 §3.4, RFC 3261
//! §22.4): the `WWW-Authenticate` challenge the gateway sends, the `Authorization` header a
//! device answers with, and whether its `response` proves the password.
//!
//! Written by hand, and small: the SIP crates parse `nc` into a number and print it back
//! (see docs/research/video.md), which changes the hashed text whenever a device sends a
//! count that does not round-trip (`0000000a`, `0000000A`, `1`). Here every field enters the
//! hash exactly as the device sent it, the realm included: vendors answer with the domain,
//! the 20-digit server ID, an address or an empty realm, and it is the password, not the
//! realm, that proves who they are.

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// Why an `Authorization` header does not authenticate. `code()` is the metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("the Authorization header is not `Digest …`: {0:?}")]
    NotDigest(String),
    #[error("the Authorization header cannot be read: {0}")]
    Malformed(String),
    #[error("the Authorization header has no {0}")]
    Missing(&'static str),
    #[error("algorithm {0:?} is not supported (the gateway offers MD5)")]
    Algorithm(String),
    #[error("qop {0:?} is not supported (the gateway offers qop=auth)")]
    Qop(String),
    #[error("the digest response does not match the password")]
    Mismatch,
}

impl DigestError {
    /// The refusal's reason, a low-cardinality label.
    pub fn code(&self) -> &'static str {
        match self {
            DigestError::Mismatch => "wrong_password",
            DigestError::Algorithm(_) | DigestError::Qop(_) => "digest_unsupported",
            _ => "digest_malformed",
        }
    }
}

/// The fields of an `Authorization: Digest …` header, each exactly as received (quotes and
/// escapes removed, nothing else changed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
}

/// The `WWW-Authenticate` value of a 401: `realm` (the domain), `qop="auth"`, MD5, and the
/// caller's fresh `nonce`. `stale` says the response was right but the nonce is too old
/// (RFC 7616 §3.3): the device answers again without asking its user.
pub fn challenge(realm: &str, nonce: &str, stale: bool) -> String {
    let mut s = format!(
        "Digest realm=\"{}\", nonce=\"{}\", qop=\"auth\", algorithm=MD5",
        quote(realm),
        quote(nonce)
    );
    if stale {
        s.push_str(", stale=true");
    }
    s
}

/// `"` and `\` escaped for a quoted-string.
fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Reads an `Authorization` (or `Proxy-Authorization`) header value.
pub fn parse(value: &str) -> Result<Credentials, DigestError> {
    let value = value.trim();
    let (scheme, rest) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("digest") {
        return Err(DigestError::NotDigest(scheme.chars().take(32).collect()));
    }
    let mut c = Credentials::default();
    for (name, v) in params(rest)? {
        match name.to_ascii_lowercase().as_str() {
            "username" => c.username = v,
            "realm" => c.realm = v,
            "nonce" => c.nonce = v,
            "uri" => c.uri = v,
            "response" => c.response = v,
            "algorithm" => c.algorithm = Some(v),
            "qop" => c.qop = Some(v),
            "nc" => c.nc = Some(v),
            "cnonce" => c.cnonce = Some(v),
            "opaque" => c.opaque = Some(v),
            _ => {}
        }
    }
    for (field, v) in [
        ("username", &c.username),
        ("nonce", &c.nonce),
        ("uri", &c.uri),
        ("response", &c.response),
    ] {
        if v.is_empty() {
            return Err(DigestError::Missing(field));
        }
    }
    Ok(c)
}

/// `name=token` or `name="quoted string"` pairs separated by commas (RFC 7235 §2.1).
fn params(s: &str) -> Result<Vec<(String, String)>, DigestError> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
        if rest.is_empty() {
            return Ok(out);
        }
        let eq = rest
            .find('=')
            .ok_or_else(|| DigestError::Malformed(format!("no `=` in {:?}", clip(rest))))?;
        let name = rest[..eq].trim().to_string();
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(q) = rest.strip_prefix('"') {
            let (v, after) = quoted(q)?;
            value = v;
            rest = after;
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        if out.len() >= 32 {
            return Err(DigestError::Malformed("more than 32 parameters".into()));
        }
        out.push((name, value));
    }
}

/// A quoted-string's content after its opening quote, and what follows its closing one.
fn quoted(s: &str) -> Result<(String, &str), DigestError> {
    let mut v = String::new();
    let mut chars = s.char_indices();
    while let Some((i, ch)) = chars.next() {
        match ch {
            '"' => return Ok((v, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, e)) => v.push(e),
                None => break,
            },
            _ => v.push(ch),
        }
    }
    Err(DigestError::Malformed(format!(
        "unclosed quote in {:?}",
        clip(s)
    )))
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

fn md5_hex(parts: &[&str]) -> String {
    let mut h = Md5::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The `response` a device with `password` would send: RFC 2617 §3.2.2.1, with
/// HA1 = MD5(username:realm:password) and HA2 = MD5(method:uri); with `qop=auth`,
/// MD5(HA1:nonce:nc:cnonce:qop:HA2), without qop (RFC 2069, which many cameras still send
/// although `qop="auth"` was offered), MD5(HA1:nonce:HA2). Lower-case hex.
pub fn expected(c: &Credentials, method: &str, password: &str) -> Result<String, DigestError> {
    match c.algorithm.as_deref() {
        None => {}
        Some(a) if a.eq_ignore_ascii_case("md5") => {}
        Some(a) => return Err(DigestError::Algorithm(a.into())),
    }
    let ha1 = md5_hex(&[&c.username, &c.realm, password]);
    let ha2 = md5_hex(&[method, &c.uri]);
    match c.qop.as_deref() {
        None => Ok(md5_hex(&[&ha1, &c.nonce, &ha2])),
        Some(q) if q.eq_ignore_ascii_case("auth") => {
            let nc = c.nc.as_deref().ok_or(DigestError::Missing("nc"))?;
            let cnonce = c.cnonce.as_deref().ok_or(DigestError::Missing("cnonce"))?;
            Ok(md5_hex(&[&ha1, &c.nonce, nc, cnonce, q, &ha2]))
        }
        Some(q) => Err(DigestError::Qop(q.into())),
    }
}

/// Whether `c` proves `password` for a request of `method`. The comparison takes the same
/// time wherever the texts differ; upper-case hex from a device is accepted.
pub fn verify(c: &Credentials, method: &str, password: &str) -> Result<(), DigestError> {
    let want = expected(c, method, password)?;
    let got = c.response.to_ascii_lowercase();
    if bool::from(want.as_bytes().ct_eq(got.as_bytes())) {
        Ok(())
    } else {
        Err(DigestError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    //! The expected responses were computed apart from this code, with Python's hashlib:
    //! `m = lambda s: hashlib.md5(s.encode()).hexdigest()`, then the formulas written out
    //! in each test's comment. The RFC 2617 §3.5 vector is the RFC's own.
    use super::*;

    fn creds(header: &str) -> Credentials {
        parse(header).expect("the header parses")
    }

    #[test]
    fn the_rfc_2617_example_verifies() {
        // RFC 2617 §3.5: HA1 = m("Mufasa:testrealm@host.com:Circle Of Life")
        //   = 939e7578ed9e3c518a452acee763bce9, HA2 = m("GET:/dir/index.html")
        //   = 39aff3a2bab6126f332b942af96d3366, response =
        //   m(HA1 + ":dcd98b7102dd2f0e8b11d0f600bfb0c093:00000001:0a4f113b:auth:" + HA2).
        let c = creds(
            r#"Digest username="Mufasa", realm="testrealm@host.com",
               nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth,
               nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1",
               opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        );
        assert_eq!(
            expected(&c, "GET", "Circle Of Life").unwrap(),
            "6629fae49393a05397450978507c4ef1"
        );
        assert_eq!(verify(&c, "GET", "Circle Of Life"), Ok(()));
        assert_eq!(
            verify(&c, "GET", "circle of life"),
            Err(DigestError::Mismatch)
        );
        assert_eq!(
            c.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
    }

    /// A camera `34020000001320000001`, password `12345678`, domain `3402000000`:
    /// HA1 = m("34020000001320000001:3402000000:12345678") = 8258341d7dd730ce4d3b8fd2db050320,
    /// HA2 = m("REGISTER:sip:34020000002000000001@3402000000") = 95fced343cf76247d3e2102931f17507.
    fn camera(extra: &str, response: &str) -> Credentials {
        creds(&format!(
            "Digest username=\"34020000001320000001\", realm=\"3402000000\", nonce=\"9bd055\", \
             uri=\"sip:34020000002000000001@3402000000\", response=\"{response}\", \
             algorithm=MD5{extra}"
        ))
    }

    #[test]
    fn qop_auth_hashes_the_received_nc_string_as_is() {
        // m(HA1 + ":9bd055:00000001:0a4f113b:auth:" + HA2)
        let c = camera(
            ", qop=auth, nc=00000001, cnonce=\"0a4f113b\"",
            "5c08f6b8a902f9b9ed0206359b0deb9f",
        );
        assert_eq!(verify(&c, "REGISTER", "12345678"), Ok(()));
        // m(HA1 + ":9bd055:0000000A:0a4f113b:auth:" + HA2): upper-case hex, which a parsed
        // and re-printed count would turn into "0000000a" (or "00000010").
        let c = camera(
            ", qop=\"auth\", nc=0000000A, cnonce=\"0a4f113b\"",
            "8477016f0dc78afc23351bec6c87634d",
        );
        assert_eq!(verify(&c, "REGISTER", "12345678"), Ok(()));
        // m(HA1 + ":9bd055:1:0a4f113b:auth:" + HA2): a count not padded to 8 digits.
        let c = camera(
            ", qop=auth, nc=1, cnonce=\"0a4f113b\"",
            "137f3ed283748cea8a8707cf120ea34b",
        );
        assert_eq!(verify(&c, "REGISTER", "12345678"), Ok(()));
        // The same response under another count does not verify.
        let c = camera(
            ", qop=auth, nc=00000002, cnonce=\"0a4f113b\"",
            "5c08f6b8a902f9b9ed0206359b0deb9f",
        );
        assert_eq!(
            verify(&c, "REGISTER", "12345678"),
            Err(DigestError::Mismatch)
        );
    }

    #[test]
    fn without_qop_the_rfc_2069_form_verifies_and_upper_case_hex_is_accepted() {
        // m(HA1 + ":9bd055:" + HA2)
        let c = camera("", "44ac5fd979560c6da6cec866a439bd48");
        assert_eq!(verify(&c, "REGISTER", "12345678"), Ok(()));
        let c = camera("", "44AC5FD979560C6DA6CEC866A439BD48");
        assert_eq!(verify(&c, "REGISTER", "12345678"), Ok(()));
        assert_eq!(
            verify(&c, "REGISTER", "87654321"),
            Err(DigestError::Mismatch)
        );
        assert_eq!(
            verify(&c, "MESSAGE", "12345678"),
            Err(DigestError::Mismatch)
        );
    }

    #[test]
    fn the_realm_the_device_sent_is_the_one_hashed() {
        // realm = the 20-digit server ID: HA1 = m("34020000001320000001:34020000002000000001:
        // 12345678") = 1ac380ca7166797f7eab3fc87cdc7f63, response = m(HA1 + ":9bd055:" + HA2).
        let c = creds(
            "Digest username=\"34020000001320000001\", realm=\"34020000002000000001\", \
             nonce=\"9bd055\", uri=\"sip:34020000002000000001@3402000000\", \
             response=\"7ea537a0862eeaecef18d271685cb0a9\"",
        );
        assert_eq!(verify(&c, "REGISTER", "12345678"), Ok(()));
        // realm = "": HA1 = m("34020000001320000001::12345678") =
        // 3b03f737f09884190eb0e0239c4735b6, response = m(HA1 + ":9bd055:" + HA2).
        let c = creds(
            "Digest username=\"34020000001320000001\", realm=\"\", nonce=\"9bd055\", \
             uri=\"sip:34020000002000000001@3402000000\", \
             response=\"b50503f63370b938a1ea5934bb92736a\"",
        );
        assert_eq!(verify(&c, "REGISTER", "12345678"), Ok(()));
    }

    #[test]
    fn malformed_and_unsupported_headers_are_refused_by_reason() {
        let e = parse("Basic dXNlcjpwYXNz").unwrap_err();
        assert_eq!(e.code(), "digest_malformed");
        assert!(matches!(e, DigestError::NotDigest(_)));
        assert_eq!(
            parse("Digest username=\"a\", nonce=\"n\", uri=\"u\"").unwrap_err(),
            DigestError::Missing("response")
        );
        assert!(matches!(
            parse("Digest username=\"a, nonce=n").unwrap_err(),
            DigestError::Malformed(_)
        ));
        assert!(matches!(
            parse("Digest username").unwrap_err(),
            DigestError::Malformed(_)
        ));
        let c = camera(", qop=auth-int, nc=00000001, cnonce=\"x\"", "00");
        assert_eq!(
            verify(&c, "REGISTER", "p").unwrap_err().code(),
            "digest_unsupported"
        );
        let c = creds(
            "Digest username=\"a\", nonce=\"n\", uri=\"u\", response=\"r\", algorithm=SHA-256",
        );
        assert_eq!(
            verify(&c, "REGISTER", "p"),
            Err(DigestError::Algorithm("SHA-256".into()))
        );
        let c = camera(", qop=auth, cnonce=\"x\"", "00");
        assert_eq!(verify(&c, "REGISTER", "p"), Err(DigestError::Missing("nc")));
        assert_eq!(DigestError::Mismatch.code(), "wrong_password");
    }

    #[test]
    fn quoted_strings_keep_commas_and_escapes_and_the_challenge_quotes_its_values() {
        let c =
            creds(r#"digest username="a\"b", realm="x, y", nonce=n1, uri="sip:a@b", response=r"#);
        assert_eq!(c.username, "a\"b");
        assert_eq!(c.realm, "x, y");
        assert_eq!(c.nonce, "n1");
        assert_eq!(
            challenge("3402000000", "abc", false),
            "Digest realm=\"3402000000\", nonce=\"abc\", qop=\"auth\", algorithm=MD5"
        );
        assert!(challenge("3402000000", "abc", true).ends_with(", stale=true"));
        assert_eq!(
            parse(&challenge("r\"", "n", false).replacen(
                "Digest",
                "Digest username=u, uri=u, response=x,",
                1
            ))
            .unwrap()
            .realm,
            "r\""
        );
    }
}
