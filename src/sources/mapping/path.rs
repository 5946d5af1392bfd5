//! Paths as a mapping writes them: a JSONPath (RFC 9535, evaluated by `serde_json_path`) on the
//! record, or, prefixed `msg:`, on the whole message; and what a record's failure says.

use crate::model::Reason;
use serde_json::Value;
use serde_json_path::JsonPath;

/// A compiled path and the text it was written as (named in messages).
#[derive(Debug, Clone)]
pub struct Path {
    text: String,
    on_msg: bool,
    path: JsonPath,
    /// For a path of member names only: those names, followed with `Value::get` (what the
    /// query selects then, without building a node list).
    names: Option<Vec<String>>,
}

/// What a path is evaluated against.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'v> {
    pub record: &'v Value,
    pub msg: &'v Value,
}

/// What a path found.
#[derive(Debug, PartialEq)]
pub enum Found<'v> {
    Nothing,
    One(&'v Value),
    Several(usize),
}

/// Why one record could not be mapped: its reason and what to tell the operator (the
/// mapping's name and the record's index are put before it).
#[derive(Debug, Clone, PartialEq)]
pub struct Fail {
    pub reason: Reason,
    pub what: String,
}

impl Fail {
    pub fn new(reason: Reason, what: String) -> Fail {
        Fail { reason, what }
    }
}

impl Path {
    /// `$…` on the record, `msg:$…` on the message.
    pub fn compile(s: &str) -> Result<Path, String> {
        let (on_msg, body) = match s.strip_prefix("msg:") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        if !body.starts_with('$') {
            return Err(format!(
                "path {s:?} must start with `$` (the record) or `msg:$` (the whole message)"
            ));
        }
        let path = JsonPath::parse(body).map_err(|e| format!("bad JSONPath {s:?}: {e}"))?;
        Ok(Path {
            text: s.to_string(),
            on_msg,
            path,
            names: super::prune::names_chain(body),
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn on_msg(&self) -> bool {
        self.on_msg
    }

    /// Every node the path selects on `v`, ignoring the `msg:` prefix (the records path).
    pub fn all<'v>(&self, v: &'v Value) -> Vec<&'v Value> {
        self.path.query(v).all()
    }

    pub fn find<'v>(&self, scope: Scope<'v>) -> Found<'v> {
        let on = if self.on_msg { scope.msg } else { scope.record };
        if let Some(names) = &self.names {
            return names
                .iter()
                .try_fold(on, |v, n| v.get(n.as_str()))
                .map_or(Found::Nothing, Found::One);
        }
        let nodes = self.path.query(on);
        match nodes.len() {
            0 => Found::Nothing,
            1 => nodes.first().map_or(Found::Nothing, Found::One),
            n => Found::Several(n),
        }
    }
}

#[cfg(test)]
impl Path {
    /// The same path answered by the query alone (to check the shortcut against it).
    pub fn queried(&self) -> Path {
        Path {
            names: None,
            ..self.clone()
        }
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The first of `paths` that finds a value (nothing and JSON null go on to the next), for an
/// optional key; several values or an array or object is `mapping_failed`. `what` names the
/// key in the message (`time`, `channel "value"`).
pub fn first_found<'p, 'v>(
    paths: &'p [Path],
    scope: Scope<'v>,
    what: impl std::fmt::Display,
) -> Result<Option<(&'p Path, &'v Value)>, Fail> {
    for p in paths {
        match p.find(scope) {
            Found::Nothing | Found::One(Value::Null) => continue,
            Found::One(v @ (Value::Array(_) | Value::Object(_))) => {
                return Err(Fail::new(
                    Reason::MappingFailed,
                    format!(
                        "{what} at {p}: found {}, not a single value",
                        super::time::kind(v)
                    ),
                ))
            }
            Found::One(v) => return Ok(Some((p, v))),
            Found::Several(n) => {
                return Err(Fail::new(
                    Reason::MappingFailed,
                    format!("{what} at {p}: found {n} values"),
                ))
            }
        }
    }
    Ok(None)
}

/// A JSON number, or a string holding one (trimmed), as a finite f64; else what it is
/// (a phrase: `is "abc", not a number`).
pub fn number(v: &Value) -> Result<f64, String> {
    let x = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match (x, v) {
        (Some(x), _) if x.is_finite() => Ok(x),
        (_, Value::String(s)) => Err(format!(
            "is {:?}, not a number",
            crate::core::event::shorten(s, 40)
        )),
        (_, other) => Err(format!("is {}, not a number", super::time::kind(other))),
    }
}

/// A JSON number as text: integers as integers (`12`, also for `12.0`), others as JSON has them.
pub fn number_text(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_find_nothing_one_or_several_on_the_record_or_the_message() {
        let msg = json!({"gw": "g1", "items": [{"a": 1}, {"a": 2}]});
        let rec = &msg["items"][0];
        let scope = Scope {
            record: rec,
            msg: &msg,
        };
        let p = |s: &str| Path::compile(s).unwrap();
        assert_eq!(p("$.a").find(scope), Found::One(&json!(1)));
        assert_eq!(p("msg:$.gw").find(scope), Found::One(&json!("g1")));
        assert_eq!(p("$.b").find(scope), Found::Nothing);
        assert_eq!(p("msg:$.items[*].a").find(scope), Found::Several(2));
        assert!(Path::compile("a.b")
            .unwrap_err()
            .contains("must start with `$`"));
        assert!(Path::compile("$.a[").unwrap_err().contains("bad JSONPath"));
    }

    #[test]
    fn numbers_come_from_numbers_and_numeric_strings_only() {
        assert_eq!(number(&json!(12.5)), Ok(12.5));
        assert_eq!(number(&json!(" 12.5 ")), Ok(12.5));
        assert_eq!(number(&json!("-3e2")), Ok(-300.0));
        assert_eq!(
            number(&json!("abc")),
            Err("is \"abc\", not a number".into())
        );
        assert_eq!(
            number(&json!("NaN")),
            Err("is \"NaN\", not a number".into())
        );
        assert_eq!(
            number(&json!("inf")),
            Err("is \"inf\", not a number".into())
        );
        assert_eq!(
            number(&json!(true)),
            Err("is a boolean, not a number".into())
        );
        assert_eq!(
            number_text(&serde_json::Number::from_f64(12.0).unwrap()),
            "12"
        );
        assert_eq!(
            number_text(&serde_json::Number::from_f64(1.5).unwrap()),
            "1.5"
        );
        assert_eq!(number_text(&serde_json::Number::from(7u64)), "7");
    }
}
