//! What of a message a mapping reads, so that the rest is skipped while the message is parsed.
//!
//! Most of a mapped message's cost is building its JSON tree; an envelope carries fields no
//! path reads (`dataId`, `valueUnit` ...). When every path the mapping uses starts with a
//! member name (`$.pointValue…`, `msg:$.collectTime`), the members no path starts with are
//! skipped at the message's top level and at each record's top level; whatever is under a
//! kept member is kept whole. The paths then select exactly what they select on the whole
//! message (a property test checks it). Any other first step (`$`, `$..x`, `$.*`, `$[0]`, a
//! filter) turns pruning off for the mapping: its messages are parsed whole.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// The member names a mapping reads, by level.
#[derive(Debug, Clone)]
pub struct Prune {
    /// Read from the message's top level (its `msg:` paths).
    root: Vec<String>,
    records: Records,
    /// Read from each record's top level.
    record: Vec<String>,
}

/// Where the records are.
#[derive(Debug, Clone, PartialEq)]
enum Records {
    /// `$`: the message is the record.
    Whole,
    /// `$[*]`: the message's elements (or member values) are.
    Elements,
    /// `$.datas[*]`: the elements (or member values) of one top-level member are.
    Member(String),
}

impl Prune {
    /// `None` when a path does not start with a member name: nothing is pruned then.
    pub fn new<'a>(
        records: &str,
        msg_paths: impl IntoIterator<Item = &'a str>,
        record_paths: impl IntoIterator<Item = &'a str>,
    ) -> Option<Prune> {
        let records = match records.trim() {
            "$" => Records::Whole,
            "$[*]" | "$.*" => Records::Elements,
            r => {
                let (name, rest) = first_name(r)?;
                if !matches!(rest, "[*]" | ".*") {
                    return None;
                }
                Records::Member(name)
            }
        };
        let names = |paths: &mut dyn Iterator<Item = &'a str>| -> Option<Vec<String>> {
            paths.map(|p| first_name(p).map(|(n, _)| n)).collect()
        };
        let root = names(&mut msg_paths.into_iter())?;
        let record = names(&mut record_paths.into_iter())?;
        Some(Prune {
            root,
            records,
            record,
        })
    }

    /// The message, without the members no path reads.
    pub fn parse(&self, payload: &[u8]) -> serde_json::Result<Value> {
        let mut de = serde_json::Deserializer::from_slice(payload);
        let v = Level::Root(self).deserialize(&mut de)?;
        de.end()?;
        Ok(v)
    }
}

/// The member names of a path made of nothing else (`$.a['b c'].d` → a, b c, d), which
/// `Value::get` can follow without a query; `None` for any other path (`$` included).
pub fn names_chain(path: &str) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let mut rest = path.trim().to_string();
    loop {
        let (name, after) = first_name(&rest)?;
        names.push(name);
        if after.is_empty() {
            return Some(names);
        }
        rest = format!("${after}");
    }
}

/// The first member name of a path and what follows it: `$.a.b` → (`a`, `.b`);
/// `$['a b'][0]` → (`a b`, `[0]`). `None` for any other first step.
fn first_name(path: &str) -> Option<(String, &str)> {
    let rest = path.trim().strip_prefix('$')?;
    if let Some(r) = rest.strip_prefix('.') {
        let end = r
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || !c.is_ascii()))
            .unwrap_or(r.len());
        let name = &r[..end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        return Some((name.to_string(), &r[end..]));
    }
    for q in ['\'', '"'] {
        if let Some(r) = rest.strip_prefix('[').and_then(|r| r.strip_prefix(q)) {
            let end = r.find(q)?;
            let name = &r[..end];
            if name.contains('\\') {
                return None;
            }
            return Some((name.to_string(), r[end + 1..].strip_prefix(']')?));
        }
    }
    None
}

/// What to keep of the value being parsed.
#[derive(Clone, Copy)]
enum Level<'p> {
    Root(&'p Prune),
    /// The member (or message) holding the records: each element is a record.
    Records(&'p [String]),
    /// A record: only these members.
    Record(&'p [String]),
}

impl<'de> DeserializeSeed<'de> for Level<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Level<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        match self.elements() {
            Some(record) => {
                while let Some(v) = a.next_element_seed(Level::Record(record))? {
                    out.push(v);
                }
            }
            None => {
                while let Some(v) = a.next_element::<Value>()? {
                    out.push(v);
                }
            }
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        // Keys borrowed from the message where they can be: a skipped member costs no copy.
        while let Some(Key(k)) = a.next_key::<Key>()? {
            match self.member(&k) {
                Keep::Whole => {
                    let v = a.next_value::<Value>()?;
                    out.insert(k.into_owned(), v);
                }
                Keep::As(level) => {
                    let v = a.next_value_seed(level)?;
                    out.insert(k.into_owned(), v);
                }
                Keep::Skip => {
                    a.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

enum Keep<'p> {
    Whole,
    As(Level<'p>),
    Skip,
}

impl<'p> Level<'p> {
    /// When this value is an array: the record level of its elements, if they are records.
    fn elements(self) -> Option<&'p [String]> {
        match self {
            Level::Root(p) if p.records == Records::Elements => Some(&p.record),
            Level::Records(record) => Some(record),
            _ => None,
        }
    }

    /// What to keep of member `k` of this object.
    fn member(self, k: &str) -> Keep<'p> {
        let named = |names: &[String]| names.iter().any(|n| n == k);
        match self {
            Level::Root(p) => match &p.records {
                // A member a `msg:` path reads is kept whole, records and all.
                _ if named(&p.root) => Keep::Whole,
                Records::Whole if named(&p.record) => Keep::Whole,
                Records::Elements => Keep::As(Level::Record(&p.record)),
                Records::Member(m) if m == k => Keep::As(Level::Records(&p.record)),
                _ => Keep::Skip,
            },
            Level::Records(record) => Keep::As(Level::Record(record)),
            Level::Record(names) if named(names) => Keep::Whole,
            Level::Record(_) => Keep::Skip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chains_of_names() {
        assert_eq!(
            names_chain("$.a['b c'].d"),
            Some(vec!["a".into(), "b c".into(), "d".into()])
        );
        for p in ["$", "$.a[0]", "$.a.*", "$.a..b", "$.a[?@.b]"] {
            assert_eq!(names_chain(p), None, "{p}");
        }
    }

    #[test]
    fn first_steps() {
        assert_eq!(first_name("$.a.b"), Some(("a".into(), ".b")));
        assert_eq!(first_name("$['a b'][0]"), Some(("a b".into(), "[0]")));
        assert_eq!(first_name("$.数据"), Some(("数据".into(), "")));
        for p in ["$", "$..a", "$.*", "$[0]", "$[?@.a]", "$['a\\'b']", "$.0a"] {
            assert_eq!(first_name(p), None, "{p}");
        }
    }

    #[test]
    fn keeps_what_the_paths_read_and_whole_below_it() {
        let p = Prune::new("$.datas[*]", ["$.time"], ["$.v", "$.x.y"]).unwrap();
        let msg = json!({"id": 1, "time": {"a": 1}, "datas": [
            {"v": 1, "u": "%", "x": {"y": 2, "z": 3}}, 5, {"w": null}]});
        let got = p.parse(msg.to_string().as_bytes()).unwrap();
        assert_eq!(
            got,
            json!({"time": {"a": 1}, "datas": [{"v": 1, "x": {"y": 2, "z": 3}}, 5, {}]})
        );
        // Records as the members of an object, and the message as the record.
        let got = p.parse(br#"{"datas": {"a": {"v": 1, "u": 2}}}"#).unwrap();
        assert_eq!(got, json!({"datas": {"a": {"v": 1}}}));
        let p = Prune::new("$", ["$.t"], ["$.v"]).unwrap();
        assert_eq!(
            p.parse(br#"{"t": 1, "v": 2, "u": 3}"#).unwrap(),
            json!({"t": 1, "v": 2})
        );
        assert!(Prune::new("$.datas[0]", [], ["$.v"]).is_none());
        assert!(Prune::new("$[*]", [], ["$..v"]).is_none());
        assert!(
            p.parse(b"{\"t\": 1} x").is_err(),
            "trailing bytes are an error"
        );
    }
}
