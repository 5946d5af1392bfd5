//! Declarative payload mappings (`[[mappings]]`): a park platform's JSON, in its own shape,
//! turned into the gateway's source events by paths and templates written in the
//! configuration, with no code per vendor. Pure and synchronous: bytes in, events out.
//!
//! A [`Mapping`] is compiled once from its [`MappingConfig`] (after its preset fills what it
//! leaves out); [`Mapping::apply`] then gives one event per record: a reading, or a rejection
//! naming the mapping, the record and the path that failed. One bad record never loses the
//! others; a message that cannot be read at all (not JSON, no records, too many) is one
//! rejection without an element. The rules: `docs/mappings.md`.

pub mod config;
pub mod metrics;
mod path;
pub mod presets;
mod prune;
pub mod sample;
mod template;
pub mod time;
pub mod topic;

pub use config::{ChannelConfig, MappingConfig, Paths, Preset};
pub use metrics::MappingMetrics;

use crate::core::{Origin, RawReading, ReadingStatus, Rejection, SourceEvent};
use crate::model::Reason;
use path::{first_found, number, Fail, Found, Path, Scope};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use template::{Env, Template};

/// One message handed to a mapping.
pub struct Input<'a> {
    pub payload: &'a [u8],
    /// The MQTT topic it arrived on (for `{topic:N}`), None over HTTP.
    pub topic: Option<&'a str>,
    /// The site named by the HTTP URL (for `{site}`), None over MQTT.
    pub site: Option<&'a str>,
    /// What rejections name as their origin (the topic, or "POST /api/v1/ingest/…").
    pub origin: Arc<str>,
    pub received_ms: i64,
}

/// What one message may hold; the caller takes them from its section (`[mqtt]`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// More records in one message: the message is refused (`batch_too_large`).
    pub max_records: usize,
    /// More channels in one record: the record is refused (`too_many_channels`).
    pub max_channels: usize,
    /// Longest site or device id, bytes (`invalid_value`).
    pub max_id_bytes: usize,
    /// Longest channel name, bytes (`invalid_value`).
    pub max_channel_name_bytes: usize,
}

impl Limits {
    /// `[mqtt]`'s defaults.
    pub const DEFAULT: Limits = Limits {
        max_records: 10_000,
        max_channels: 64,
        max_id_bytes: 128,
        max_channel_name_bytes: 64,
    };
}

#[derive(Debug, Clone)]
struct Channel {
    name: Template,
    paths: Vec<Path>,
    scale: f64,
    offset: f64,
}

/// A compiled mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    name: String,
    topics: Vec<String>,
    records: Path,
    site: Template,
    device: Template,
    time: Vec<Path>,
    time_format: time::TimeFormat,
    timezone: ::time::UtcOffset,
    status: Vec<Path>,
    status_map: BTreeMap<String, ReadingStatus>,
    /// `None`: a status not in the map is refused.
    status_default: Option<ReadingStatus>,
    values: Option<Path>,
    rename: BTreeMap<String, String>,
    channels: Vec<Channel>,
    /// What of a message its paths read (`None`: messages are parsed whole).
    prune: Option<prune::Prune>,
    /// The last time text read and its epoch ms, across messages: a platform's messages of
    /// one second share it.
    last_time: Arc<std::sync::Mutex<(String, i64)>>,
}

/// `channel "name"` in a refusal.
struct ChannelNamed<'a>(&'a str);

impl std::fmt::Display for ChannelNamed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "channel {:?}", self.0)
    }
}

/// What the records of one message share, worked out once for all of them.
#[derive(Default)]
struct Memo<'v> {
    /// The last time text read and its epoch ms.
    time: Option<(&'v str, i64)>,
    /// The site, when no record path is in its template.
    site: Option<Result<String, Fail>>,
}

/// Problems found compiling, each as (key, problem).
type Problems = Vec<(String, String)>;

fn status_named(s: &str) -> Option<ReadingStatus> {
    match s {
        "normal" => Some(ReadingStatus::Normal),
        "fault" => Some(ReadingStatus::Fault),
        "maintenance" => Some(ReadingStatus::Maintenance),
        _ => None,
    }
}

fn paths(p: &Option<Paths>, key: &str, errs: &mut Problems) -> Vec<Path> {
    let list = p.as_ref().map_or(&[][..], Paths::as_slice);
    let mut out = Vec::new();
    for (j, s) in list.iter().enumerate() {
        match Path::compile(s) {
            Ok(p) => out.push(p),
            Err(e) if list.len() == 1 => errs.push((key.into(), e)),
            Err(e) => errs.push((format!("{key}[{j}]"), e)),
        }
    }
    out
}

fn template(t: Option<&str>, key: &str, errs: &mut Problems) -> Template {
    let Some(t) = t else {
        errs.push((
            key.into(),
            format!("{key} is required (the preset gives none)"),
        ));
        return Template::compile("-").unwrap_or_else(|_| unreachable!());
    };
    Template::compile(t).unwrap_or_else(|e| {
        errs.push((key.into(), e));
        Template::compile("-").unwrap_or_else(|_| unreachable!())
    })
}

impl Mapping {
    /// Compile `cfg` after its preset fills what it leaves out. Problems are keyed by the key
    /// inside the mapping (`records`, `channels[1].path`); [`Mappings::compile`] puts
    /// `mappings[i] ("name").` before them.
    pub fn compile(cfg: &MappingConfig) -> Result<Mapping, Problems> {
        let c = presets::resolve(cfg);
        let mut errs: Problems = Vec::new();
        if let Some(p) = config::name_problem(&c.name) {
            errs.push(("name".into(), p));
        }
        for (j, f) in c.topics.iter().enumerate() {
            if let Some(p) = topic::filter_problem(f) {
                errs.push((format!("topics[{j}]"), p));
            }
        }
        let records = compile_records(c.records.as_deref(), &mut errs);
        let site = template(c.site.as_deref().or(Some("{site}")), "site", &mut errs);
        let device = template(c.device.as_deref(), "device", &mut errs);
        let time = paths(&c.time, "time", &mut errs);
        let time_format = time::TimeFormat::compile(c.time_format.as_deref().unwrap_or("auto"))
            .unwrap_or_else(|e| {
                errs.push(("time_format".into(), e));
                time::TimeFormat::Auto
            });
        let timezone = time::parse_offset(c.timezone.as_deref().unwrap_or("+08:00"))
            .unwrap_or_else(|e| {
                errs.push(("timezone".into(), e));
                ::time::UtcOffset::UTC
            });
        let status = paths(&c.status, "status", &mut errs);
        let (status_map, status_default) = compile_status(&c, &mut errs);
        let values = c.values.as_deref().and_then(|v| {
            Path::compile(v)
                .map_err(|e| errs.push(("values".into(), e)))
                .ok()
        });
        let channels = compile_channels(c.channels.as_deref().unwrap_or(&[]), &mut errs);
        if c.values.is_none() && channels.is_empty() && errs.is_empty() {
            errs.push((
                "channels".into(),
                "neither `values` nor `channels` is set: the mapping would give no channel".into(),
            ));
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Mapping {
            name: c.name,
            topics: c.topics,
            records,
            site,
            device,
            time,
            time_format,
            timezone,
            status,
            status_map,
            status_default,
            values,
            rename: c.rename.unwrap_or_default(),
            channels,
            prune: None,
            last_time: Arc::default(),
        }
        .with_pruning())
    }

    /// Work out what its paths read, so the rest of a message is skipped when parsing.
    fn with_pruning(mut self) -> Mapping {
        let mut all: Vec<&Path> = Vec::new();
        all.extend(self.site.paths().chain(self.device.paths()));
        all.extend(self.time.iter().chain(&self.status).chain(&self.values));
        for ch in &self.channels {
            all.extend(ch.paths.iter().chain(ch.name.paths()));
        }
        let body = |p: &&Path| {
            p.text()
                .strip_prefix("msg:")
                .unwrap_or(p.text())
                .to_string()
        };
        let msg: Vec<String> = all.iter().filter(|p| p.on_msg()).map(body).collect();
        let rec: Vec<String> = all.iter().filter(|p| !p.on_msg()).map(body).collect();
        self.prune = prune::Prune::new(
            self.records.text(),
            msg.iter().map(String::as_str),
            rec.iter().map(String::as_str),
        );
        self
    }

    /// The same mapping parsing messages whole (to check that pruning changes nothing).
    #[cfg(test)]
    pub(crate) fn unpruned(&self) -> Mapping {
        Mapping {
            prune: None,
            ..self.clone()
        }
    }

    #[cfg(test)]
    pub(crate) fn prunes(&self) -> bool {
        self.prune.is_some()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// MQTT topic filters it reads (`+` and `#` wildcards).
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    pub fn matches_topic(&self, topic: &str) -> bool {
        self.topics.iter().any(|f| topic::matches(f, topic))
    }

    /// One event per record of the message in `input`, appended to `out`; or one rejection
    /// (no element) when the message cannot be read at all.
    pub fn apply(&self, input: &Input, limits: &Limits, out: &mut Vec<SourceEvent>) {
        let reject = |reason, element, detail| {
            SourceEvent::Rejected(Rejection {
                reason,
                origin: Origin {
                    topic: input.origin.clone(),
                    element,
                },
                detail,
                received_ms: input.received_ms,
            })
        };
        let name = &self.name;
        let parsed = match &self.prune {
            Some(p) => p.parse(input.payload),
            None => serde_json::from_slice(input.payload),
        };
        let msg: Value = match parsed {
            Ok(v) => v,
            Err(e) => {
                let detail = format!("mapping {name:?}: the message is not JSON: {e}");
                out.push(reject(Reason::MalformedJson, None, detail));
                return;
            }
        };
        let records = self.records.all(&msg);
        if records.is_empty() {
            let detail = format!("mapping {name:?}: records {}: found nothing", self.records);
            out.push(reject(Reason::MappingFailed, None, detail));
            return;
        }
        if records.len() > limits.max_records {
            let detail = format!(
                "mapping {name:?}: records {}: found {} records, the limit is {}",
                self.records,
                records.len(),
                limits.max_records
            );
            out.push(reject(Reason::BatchTooLarge, None, detail));
            return;
        }
        out.reserve(records.len());
        let mut memo = Memo::default();
        for (i, record) in records.into_iter().enumerate() {
            let env = Env {
                scope: Scope { record, msg: &msg },
                topic: input.topic,
                site: input.site,
            };
            let element = Some(u32::try_from(i).unwrap_or(u32::MAX));
            out.push(match self.record(&env, limits, &mut memo) {
                Ok(reading) => SourceEvent::Reading {
                    reading,
                    origin: Origin {
                        topic: input.origin.clone(),
                        element,
                    },
                    received_ms: input.received_ms,
                },
                Err(f) => {
                    let detail = format!("mapping {name:?}, record {i}: {}", f.what);
                    reject(f.reason, element, detail)
                }
            });
        }
    }

    fn record<'v>(
        &self,
        env: &Env<'v, '_>,
        limits: &Limits,
        memo: &mut Memo<'v>,
    ) -> Result<RawReading, Fail> {
        // A site read from the topic, the URL or the message is the same for every record.
        let site = match self.site.paths().all(Path::on_msg) {
            true => memo
                .site
                .get_or_insert_with(|| self.site.render(env, "site"))
                .clone()?,
            false => self.site.render(env, "site")?,
        };
        id_within("site", &self.site, &site, limits)?;
        let device = self.device.render(env, "device")?;
        id_within("device", &self.device, &device, limits)?;
        let values = self.values_of(env, limits)?;
        let ts_ms = match first_found(&self.time, env.scope, "time")? {
            None => None,
            Some((p, v)) => Some(self.time_of(p, v, memo)?),
        };
        let status = self.status_of(env)?;
        Ok(RawReading {
            site: site.into(),
            device: device.into(),
            ts_ms,
            values,
            status,
            cause: None,
        })
    }

    /// The points of one envelope mostly share their time text: it is read once.
    fn time_of<'v>(&self, p: &Path, v: &'v Value, memo: &mut Memo<'v>) -> Result<i64, Fail> {
        if let (Value::String(s), Some((last, ms))) = (v, memo.time) {
            if s == last {
                return Ok(ms);
            }
        }
        let last = |s: &str| {
            let l = self.last_time.lock().ok()?;
            (l.0 == s && !s.is_empty()).then_some(l.1)
        };
        if let Some(ms) = v.as_str().and_then(last) {
            memo.time = v.as_str().map(|s| (s, ms));
            return Ok(ms);
        }
        let ms = self
            .time_format
            .read(v, self.timezone)
            .map_err(|why| Fail::new(Reason::BadTimestamp, format!("time at {p} {why}")))?;
        if let Value::String(s) = v {
            memo.time = Some((s, ms));
            if let Ok(mut l) = self.last_time.lock() {
                l.0.clear();
                l.0.push_str(s);
                l.1 = ms;
            }
        }
        Ok(ms)
    }

    fn status_of(&self, env: &Env) -> Result<ReadingStatus, Fail> {
        let Some((p, v)) = first_found(&self.status, env.scope, "status")? else {
            return Ok(ReadingStatus::Normal);
        };
        let key: std::borrow::Cow<str> = match v {
            Value::String(s) => s.trim().into(),
            Value::Number(n) => path::number_text(n).into(),
            other => other.to_string().into(),
        };
        match (self.status_map.get(key.as_ref()), self.status_default) {
            (Some(s), _) => Ok(*s),
            (None, Some(s)) => Ok(s),
            (None, None) => Err(Fail::new(
                Reason::InvalidValue,
                format!(
                    "status at {p} is {:?}, which status_map does not list",
                    crate::core::event::shorten(&key, 40)
                ),
            )),
        }
    }

    fn values_of(&self, env: &Env, limits: &Limits) -> Result<crate::core::event::Values, Fail> {
        let mut out: crate::core::event::Values = Vec::new();
        let too_many = || {
            Fail::new(
                Reason::TooManyChannels,
                format!("more than {} channels (max_channels)", limits.max_channels),
            )
        };
        if let Some(p) = &self.values {
            for (k, v) in self.values_object(p, env.scope)? {
                if v.is_null() {
                    continue;
                }
                let x = number(v).map_err(|why| {
                    Fail::new(
                        Reason::InvalidValue,
                        format!("value of channel {k:?} at {p} {why}"),
                    )
                })?;
                let name = self.rename.get(k).unwrap_or(k);
                out.push((name.as_str().into(), x));
                if out.len() > limits.max_channels {
                    return Err(too_many());
                }
            }
        }
        for ch in &self.channels {
            // Named only if it fails: formatting it for every record cost an allocation.
            let what = ChannelNamed(ch.name.text());
            let Some((p, v)) = first_found(&ch.paths, env.scope, what)? else {
                continue;
            };
            let name = ch.name.render(env, "channel name")?;
            let x = number(v).map_err(|why| {
                Fail::new(
                    Reason::InvalidValue,
                    format!("value of channel {name:?} at {p} {why}"),
                )
            })?;
            let y = x * ch.scale + ch.offset;
            if !y.is_finite() {
                return Err(Fail::new(
                    Reason::InvalidValue,
                    format!(
                        "value of channel {name:?} at {p}: {x} × {} + {} is not a finite number",
                        ch.scale, ch.offset
                    ),
                ));
            }
            out.push((name.into(), y));
            if out.len() > limits.max_channels {
                return Err(too_many());
            }
        }
        self.channels_fit(&out, limits)?;
        Ok(out)
    }

    /// The object `values` found: empty when it found nothing or null.
    fn values_object<'v>(
        &self,
        p: &Path,
        scope: Scope<'v>,
    ) -> Result<Vec<(&'v String, &'v Value)>, Fail> {
        match p.find(scope) {
            Found::Nothing | Found::One(Value::Null) => Ok(Vec::new()),
            Found::One(Value::Object(m)) => Ok(m.iter().collect()),
            Found::One(v) => Err(Fail::new(
                Reason::MappingFailed,
                format!(
                    "values at {p}: found {}, not an object of channel → number",
                    time::kind(v)
                ),
            )),
            Found::Several(n) => Err(Fail::new(
                Reason::MappingFailed,
                format!("values at {p}: found {n} values"),
            )),
        }
    }

    fn channels_fit(
        &self,
        values: &[(crate::core::event::Channel, f64)],
        limits: &Limits,
    ) -> Result<(), Fail> {
        if values.is_empty() {
            let mut looked: Vec<String> = self
                .values
                .iter()
                .map(|p| format!("values at {p}"))
                .collect();
            looked.extend(self.channels.iter().map(|c| {
                let at: Vec<&str> = c.paths.iter().map(Path::text).collect();
                format!("channel {:?} at {}", c.name.text(), at.join(", "))
            }));
            return Err(Fail::new(
                Reason::EmptyValues,
                format!(
                    "no channel has a value (absent or null): {}",
                    looked.join("; ")
                ),
            ));
        }
        if let Some((ch, _)) = values
            .iter()
            .find(|(c, _)| c.len() > limits.max_channel_name_bytes)
        {
            return Err(Fail::new(
                Reason::InvalidValue,
                format!(
                    "channel name {:?} is {} bytes, the limit is {} (max_channel_name_bytes)",
                    crate::core::event::shorten(ch, 32),
                    ch.len(),
                    limits.max_channel_name_bytes
                ),
            ));
        }
        match crate::core::event::channel_names_problem(values) {
            Some(p) => Err(Fail::new(Reason::InvalidValue, p)),
            None => Ok(()),
        }
    }
}

/// A site or device id the template made: not empty, not longer than the limit.
fn id_within(what: &str, t: &Template, id: &str, limits: &Limits) -> Result<(), Fail> {
    if id.is_empty() {
        return Err(Fail::new(
            Reason::InvalidValue,
            format!("{what} {} is empty", t.text()),
        ));
    }
    if id.len() > limits.max_id_bytes {
        return Err(Fail::new(
            Reason::InvalidValue,
            format!(
                "{what} {} is {:?}, {} bytes; ids are at most {} (max_id_bytes)",
                t.text(),
                crate::core::event::shorten(id, 32),
                id.len(),
                limits.max_id_bytes
            ),
        ));
    }
    Ok(())
}

fn compile_records(records: Option<&str>, errs: &mut Problems) -> Path {
    let fallback = || Path::compile("$").unwrap_or_else(|_| unreachable!());
    match records {
        None => {
            errs.push((
                "records".into(),
                "records is required (the preset gives none); \"$\" if the message is one record"
                    .into(),
            ));
            fallback()
        }
        Some(r) => match Path::compile(r) {
            Ok(p) if p.on_msg() => {
                errs.push((
                    "records".into(),
                    "records is always read on the message; write it without `msg:`".into(),
                ));
                fallback()
            }
            Ok(p) => p,
            Err(e) => {
                errs.push(("records".into(), e));
                fallback()
            }
        },
    }
}

type StatusRules = (BTreeMap<String, ReadingStatus>, Option<ReadingStatus>);

fn compile_status(c: &MappingConfig, errs: &mut Problems) -> StatusRules {
    let mut map = BTreeMap::new();
    for (k, v) in c.status_map.iter().flatten() {
        match status_named(v) {
            Some(s) => {
                map.insert(k.clone(), s);
            }
            None => errs.push((
                format!("status_map.{k}"),
                format!("{v:?} is not normal, fault or maintenance"),
            )),
        }
    }
    let default = match c.status_default.as_deref().unwrap_or("reject") {
        "reject" => None,
        s => status_named(s).or_else(|| {
            errs.push((
                "status_default".into(),
                format!("{s:?} is not reject, normal, fault or maintenance"),
            ));
            None
        }),
    };
    (map, default)
}

fn compile_channels(chs: &[ChannelConfig], errs: &mut Problems) -> Vec<Channel> {
    let mut out = Vec::new();
    for (j, ch) in chs.iter().enumerate() {
        let key = format!("channels[{j}]");
        let name = template(Some(&ch.name), &format!("{key}.name"), errs);
        let paths = paths(&Some(ch.path.clone()), &format!("{key}.path"), errs);
        if paths.is_empty() && ch.path.as_slice().is_empty() {
            errs.push((format!("{key}.path"), "at least one path is needed".into()));
        }
        for (k, x) in [("scale", ch.scale), ("offset", ch.offset)] {
            if !x.is_finite() {
                errs.push((format!("{key}.{k}"), format!("{x} is not a finite number")));
            }
        }
        out.push(Channel {
            name,
            paths,
            scale: ch.scale,
            offset: ch.offset,
        });
    }
    out
}

/// Every compiled mapping: found by name (HTTP) or by the first whose topic filter matches (MQTT).
#[derive(Debug, Clone, Default)]
pub struct Mappings {
    list: Vec<Mapping>,
}

impl Mappings {
    /// Compile them all; problems are keyed `mappings[i] ("name").key`. Names must be unique,
    /// and no two mappings may list the same topic filter.
    pub fn compile(cfgs: &[MappingConfig]) -> Result<Mappings, Problems> {
        let mut errs = Vec::new();
        let mut list = Vec::new();
        for (i, cfg) in cfgs.iter().enumerate() {
            let at = format!("mappings[{i}] ({:?})", cfg.name);
            if let Some(j) = cfgs[..i].iter().position(|c| c.name == cfg.name) {
                errs.push((
                    format!("{at}.name"),
                    format!("the name is also mappings[{j}]'s"),
                ));
            }
            for (k, f) in cfg.topics.iter().enumerate() {
                if let Some(j) = cfgs[..i].iter().position(|c| c.topics.contains(f)) {
                    errs.push((
                        format!("{at}.topics[{k}]"),
                        format!("topic filter {f:?} is also mappings[{j}]'s"),
                    ));
                }
            }
            match Mapping::compile(cfg) {
                Ok(m) => list.push(m),
                Err(e) => errs.extend(e.into_iter().map(|(k, p)| (format!("{at}.{k}"), p))),
            }
        }
        if errs.is_empty() {
            Ok(Mappings { list })
        } else {
            Err(errs)
        }
    }

    pub fn get(&self, name: &str) -> Option<&Mapping> {
        self.list.iter().find(|m| m.name == name)
    }

    /// The first mapping (in configuration order) one of whose filters matches `topic`.
    pub fn for_topic(&self, topic: &str) -> Option<&Mapping> {
        self.list.iter().find(|m| m.matches_topic(topic))
    }

    /// Every mapping's filters, in configuration order (what to subscribe to).
    pub fn topic_filters(&self) -> Vec<String> {
        self.list.iter().flat_map(|m| m.topics.clone()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Mapping> {
        self.list.iter()
    }
}

#[cfg(test)]
mod examples;
#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
