//! Templates: literal text with `{…}` placeholders, for site and device ids and channel
//! names. `{$…}` / `{msg:$…}` must select one string or number (integral numbers are written
//! as integers), `{topic:N}` is the MQTT topic's level N (from 0), `{site}` the HTTP URL's site.
//! `{{` and `}}` are literal braces.

use super::path::{number_text, Fail, Found, Path, Scope};
use crate::model::Reason;
use serde_json::Value;

#[derive(Debug, Clone)]
enum Part {
    Lit(String),
    Path(Path),
    Topic(usize),
    Site,
}

#[derive(Debug, Clone)]
pub struct Template {
    text: String,
    parts: Vec<Part>,
}

impl Template {
    /// The paths its placeholders read.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.parts.iter().filter_map(|p| match p {
            Part::Path(p) => Some(p),
            _ => None,
        })
    }
}

/// What a template is rendered with.
#[derive(Debug, Clone, Copy)]
pub struct Env<'v, 'a> {
    pub scope: Scope<'v>,
    pub topic: Option<&'a str>,
    pub site: Option<&'a str>,
}

impl Template {
    pub fn compile(s: &str) -> Result<Template, String> {
        if s.is_empty() {
            return Err("the template is empty".into());
        }
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(c) = rest.chars().next() {
            if let Some(r) = rest.strip_prefix("{{") {
                lit.push('{');
                rest = r;
            } else if let Some(r) = rest.strip_prefix("}}") {
                lit.push('}');
                rest = r;
            } else if c == '}' {
                return Err(format!(
                    "template {s:?}: a `}}` without its `{{` (write `}}}}` for a brace)"
                ));
            } else if c == '{' {
                let end = rest.find('}').ok_or_else(|| {
                    format!("template {s:?}: a `{{` is not closed (write `{{{{` for a brace)")
                })?;
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(placeholder(s, &rest[1..end])?);
                rest = &rest[end + 1..];
            } else {
                lit.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template {
            text: s.to_string(),
            parts,
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text, or why it cannot be made; `what` names the key (`device`, `site`).
    pub fn render(&self, env: &Env, what: &str) -> Result<String, Fail> {
        let fail = |p: &str, why: String| {
            Fail::new(Reason::MappingFailed, format!("{what} {{{p}}}: {why}"))
        };
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Path(p) => match p.find(env.scope) {
                    Found::One(Value::String(s)) => out.push_str(s),
                    Found::One(Value::Number(n)) => out.push_str(&number_text(n)),
                    Found::One(v) => {
                        return Err(fail(
                            p.text(),
                            format!("found {}, not a string or number", super::time::kind(v)),
                        ))
                    }
                    Found::Nothing => return Err(fail(p.text(), "found nothing".into())),
                    Found::Several(n) => return Err(fail(p.text(), format!("found {n} values"))),
                },
                Part::Topic(n) => match env.topic {
                    None => {
                        return Err(fail(
                            &format!("topic:{n}"),
                            "the message has no MQTT topic (it came over HTTP)".into(),
                        ))
                    }
                    Some(t) => match t.split('/').nth(*n) {
                        Some(level) => out.push_str(level),
                        None => {
                            return Err(fail(
                                &format!("topic:{n}"),
                                format!(
                                    "the topic {:?} has no level {n}",
                                    crate::core::event::shorten(t, 80)
                                ),
                            ))
                        }
                    },
                },
                Part::Site => match env.site {
                    Some(s) => out.push_str(s),
                    None => {
                        return Err(fail(
                            "site",
                            "no site in the URL (the message came over MQTT: take it from the topic, `{topic:N}`)".into(),
                        ))
                    }
                },
            }
        }
        Ok(out)
    }
}

fn placeholder(template: &str, p: &str) -> Result<Part, String> {
    if p.starts_with('$') || p.starts_with("msg:") {
        return Path::compile(p)
            .map(Part::Path)
            .map_err(|e| format!("template {template:?}: {e}"));
    }
    if p == "site" {
        return Ok(Part::Site);
    }
    if let Some(n) = p.strip_prefix("topic:") {
        return n.parse::<usize>().map(Part::Topic).map_err(|_| {
            format!("template {template:?}: {{{p}}}: a topic level is a number from 0, {{topic:1}}")
        });
    }
    Err(format!(
        "template {template:?}: unknown placeholder {{{p}}}; use {{$…}}, {{msg:$…}}, {{topic:N}} or {{site}}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(
        t: &str,
        rec: &Value,
        topic: Option<&str>,
        site: Option<&str>,
    ) -> Result<String, Fail> {
        let msg = json!({"gw": "G7", "n": 12.0});
        let env = Env {
            scope: Scope {
                record: rec,
                msg: &msg,
            },
            topic,
            site,
        };
        Template::compile(t).unwrap().render(&env, "device")
    }

    #[test]
    fn placeholders_render_paths_topic_levels_and_the_site() {
        let rec = json!({"code": "P-1", "num": 42, "f": 3.0});
        assert_eq!(
            render("{msg:$.gw}-{$.code}", &rec, None, None),
            Ok("G7-P-1".into())
        );
        assert_eq!(
            render("d{$.num}-{$.f}-{msg:$.n}", &rec, None, None),
            Ok("d42-3-12".into())
        );
        assert_eq!(
            render("{topic:1}.{topic:2}", &rec, Some("acme/park-1/gas-3"), None),
            Ok("park-1.gas-3".into())
        );
        assert_eq!(render("{site}", &rec, None, Some("p1")), Ok("p1".into()));
        assert_eq!(render("{{x}}", &rec, None, None), Ok("{x}".into()));
    }

    #[test]
    fn what_cannot_be_rendered_names_the_key_and_placeholder() {
        let rec = json!({"o": {}, "l": [1, 2]});
        let f = |t: &str, topic, site| render(t, &rec, topic, site).unwrap_err();
        let e = f("{$.code}", None, None);
        assert_eq!(e.reason, Reason::MappingFailed);
        assert_eq!(e.what, "device {$.code}: found nothing");
        assert_eq!(
            f("{$.l[*]}", None, None).what,
            "device {$.l[*]}: found 2 values"
        );
        assert_eq!(
            f("{$.o}", None, None).what,
            "device {$.o}: found an object, not a string or number"
        );
        assert!(f("{topic:3}", Some("a/b"), None)
            .what
            .contains("has no level 3"));
        assert!(f("{topic:0}", None, None).what.contains("came over HTTP"));
        assert!(f("{site}", None, None).what.contains("came over MQTT"));
    }

    #[test]
    fn bad_templates_are_refused_at_compile_time() {
        for (t, says) in [
            ("", "empty"),
            ("{nope}", "unknown placeholder {nope}"),
            ("{topic:x}", "a topic level is a number"),
            ("{$.a", "not closed"),
            ("a}", "without its"),
            ("{$.a[}", "bad JSONPath"),
        ] {
            let e = Template::compile(t).unwrap_err();
            assert!(e.contains(says), "{t}: {e}");
        }
    }
}
