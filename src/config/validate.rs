//! Semantic checks on the merged configuration: ids, references, intervals, settings.

use super::loaded::{ConfigError, LoadedConfig, Origins};
use super::{Config, DeviceKind, Protocol, SiteKind};
use crate::model::id_problem;
use crate::sources::modbus::config::{modbus_problems, Transport};
use std::collections::{HashMap, HashSet};

/// Longest reporting interval or offline delay accepted (30 days).
const MAX_INTERVAL_S: f64 = 30.0 * 86_400.0;

pub(super) fn validate(l: &LoadedConfig) -> Vec<ConfigError> {
    let mut errs = Vec::new();
    let c = &l.config;
    let main = l.files[0].clone();
    let mut err_main = |key: &str, message: String| {
        errs.push(ConfigError {
            file: main.clone(),
            key: key.into(),
            message,
        })
    };

    // Settings, section by section, against the main file.
    for check in [
        mqtt_problems,
        api_problems,
        store_problems,
        indicator_problems,
        target_problems,
        token_problems,
        alarm_problems,
        bound_problems,
        mapping_problems,
        cluster_problems,
    ] {
        check(c, &mut err_main);
    }

    let inv = &c.inventory;
    let o = &l.origins;
    let mut push = |array: &str, origin: (usize, usize), id: &str, field: &str, msg: String| {
        let (file, key) = l.locate(array, origin, id);
        let key = if field.is_empty() {
            key
        } else {
            format!("{key}.{field}")
        };
        errs.push(ConfigError {
            file,
            key,
            message: msg,
        });
    };

    let sites = site_problems(c, o, &mut push);

    // Per-site unique children, checked for the site and kind they belong to.
    let mut check_child = |array: &str,
                           origin: (usize, usize),
                           id: &str,
                           site: &str,
                           need: SiteKind,
                           seen: &mut HashSet<(String, String)>| {
        if let Some(p) = id_problem(id) {
            push(array, origin, id, "id", p);
        }
        match sites.get(site) {
            None => push(array, origin, id, "site", format!("unknown site {site:?}")),
            Some(k) if *k != need => push(
                array,
                origin,
                id,
                "site",
                format!("site {site:?} is a {k:?}, but {array} belong to a {need:?}",),
            ),
            _ => {}
        }
        if !seen.insert((site.to_string(), id.to_string())) {
            push(
                array,
                origin,
                id,
                "id",
                format!("duplicate id {id:?} in site {site:?}"),
            );
        }
    };
    let mut enterprises = HashSet::new();
    for (i, e) in inv.enterprises.iter().enumerate() {
        check_child(
            "enterprises",
            o.enterprises[i],
            &e.id,
            &e.site,
            SiteKind::Park,
            &mut enterprises,
        );
    }
    let mut zones = HashSet::new();
    for (i, z) in inv.zones.iter().enumerate() {
        check_child(
            "zones",
            o.zones[i],
            &z.id,
            &z.site,
            SiteKind::Park,
            &mut zones,
        );
    }
    let mut systems = HashSet::new();
    for (i, s) in inv.systems.iter().enumerate() {
        check_child(
            "systems",
            o.systems[i],
            &s.id,
            &s.site,
            SiteKind::Mine,
            &mut systems,
        );
    }

    device_problems(
        c,
        o,
        &Known {
            sites: &sites,
            enterprises: &enterprises,
            zones: &zones,
            systems: &systems,
        },
        &mut push,
    );
    alarm_rule_problems(c, o, &mut push);
    errs
}

/// `[[sites]]`: ids, platforms, signatures, duplicates; returns each site's kind by id.
fn site_problems<'a>(
    c: &'a Config,
    o: &Origins,
    push: &mut Push<'_>,
) -> HashMap<&'a str, SiteKind> {
    let inv = &c.inventory;
    let mut sites: HashMap<&str, SiteKind> = HashMap::new();
    let mut codes = HashSet::new();
    for (i, s) in inv.sites.iter().enumerate() {
        if let Some(p) = id_problem(&s.id) {
            push("sites", o.sites[i], &s.id, "id", p);
        }
        for p in &s.platforms {
            if let Some(msg) = id_problem(p) {
                push("sites", o.sites[i], &s.id, "platforms", msg);
            }
        }
        if s.require_signature && s.signing_key_env.is_none() {
            push(
                "sites",
                o.sites[i],
                &s.id,
                "require_signature",
                "needs signing_key_env, the environment variable that holds the site's key".into(),
            );
        }
        for (field, msg) in mine_site_problems(s, &mut codes) {
            push("sites", o.sites[i], &s.id, field, msg);
        }
        if sites.insert(&s.id, s.kind).is_some() {
            push(
                "sites",
                o.sites[i],
                &s.id,
                "id",
                format!("duplicate site id {:?}", s.id),
            );
        }
    }
    sites
}

/// A mine site's networking-file settings: its code (letters and digits, unique), its
/// timezone, and a password variable only with a code.
fn mine_site_problems<'a>(
    s: &'a super::SiteConfig,
    codes: &mut HashSet<&'a str>,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    match &s.mine_code {
        Some(code) => {
            if code.is_empty()
                || code.len() > 32
                || !code.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                out.push((
                    "mine_code",
                    format!("{code:?} is not a mine code (1 to 32 letters and digits, 12 digits nationally)"),
                ));
            } else if !codes.insert(code) {
                out.push((
                    "mine_code",
                    format!("mine_code {code:?} is also another site's"),
                ));
            }
            if s.kind != SiteKind::Mine {
                out.push((
                    "mine_code",
                    "only a site of kind \"mine\" has a mine_code".into(),
                ));
            }
        }
        None if s.upload_password_env.is_some() => out.push((
            "upload_password_env",
            "a site uploads mine files only with a mine_code".into(),
        )),
        None => {}
    }
    if let Some(tz) = &s.timezone {
        if crate::sources::mine_files::format::parse_tz(tz).is_none() {
            out.push((
                "timezone",
                format!("{tz:?} is not a UTC offset like \"+08:00\""),
            ));
        }
    }
    out
}

/// Where an inventory problem is reported: (array, origin in the files, id, field, message).
type Push<'a> = dyn FnMut(&str, (usize, usize), &str, &str, String) + 'a;

/// The ids the sections before the devices declared, for the devices' references.
struct Known<'a> {
    sites: &'a HashMap<&'a str, SiteKind>,
    enterprises: &'a HashSet<(String, String)>,
    zones: &'a HashSet<(String, String)>,
    systems: &'a HashSet<(String, String)>,
}

/// `[[devices]]`: ids, references, intervals, protocol settings, Modbus units and lines.
fn device_problems(c: &Config, o: &Origins, known: &Known<'_>, push: &mut Push<'_>) {
    let inv = &c.inventory;
    let (sites, enterprises, zones, systems) =
        (known.sites, known.enterprises, known.zones, known.systems);
    let mut devices = HashSet::new();
    let mut lines = Lines::default();
    for (i, d) in inv.devices.iter().enumerate() {
        let org = o.devices[i];
        if let Some(p) = id_problem(&d.id) {
            push("devices", org, &d.id, "id", p);
        }
        if !sites.contains_key(d.site.as_str()) {
            push(
                "devices",
                org,
                &d.id,
                "site",
                format!("unknown site {:?}", d.site),
            );
        }
        if !devices.insert((d.site.as_str(), d.id.as_str())) {
            push(
                "devices",
                org,
                &d.id,
                "id",
                format!("duplicate device id {:?} in site {:?}", d.id, d.site),
            );
        }
        let refs = [
            ("enterprise", &d.enterprise, &enterprises),
            ("zone", &d.zone, &zones),
            ("system", &d.system, &systems),
        ];
        for (field, value, set) in refs {
            if let Some(v) = value {
                if !set.contains(&(d.site.clone(), v.clone())) {
                    push(
                        "devices",
                        org,
                        &d.id,
                        field,
                        format!("unknown {field} {v:?} in site {:?}", d.site),
                    );
                }
            }
        }
        if d.interval_s.is_finite() && d.interval_s > MAX_INTERVAL_S {
            push(
                "devices",
                org,
                &d.id,
                "interval_s",
                format!("{} s is more than 30 days", d.interval_s),
            );
        }
        if let Some(off) = d
            .offline_after_s
            .filter(|o| o.is_finite() && *o > MAX_INTERVAL_S)
        {
            push(
                "devices",
                org,
                &d.id,
                "offline_after_s",
                format!("{off} s is more than 30 days"),
            );
        }
        if !(d.interval_s.is_finite() && d.interval_s > 0.0) {
            push(
                "devices",
                org,
                &d.id,
                "interval_s",
                format!("must be a positive number of seconds, not {}", d.interval_s),
            );
        }
        if let Some(off) = d.offline_after_s {
            if !(off.is_finite() && off > 0.0) {
                push(
                    "devices",
                    org,
                    &d.id,
                    "offline_after_s",
                    format!("must be a positive number of seconds, not {off}"),
                );
            } else if d.interval_s.is_finite() && off < d.interval_s {
                push(
                    "devices",
                    org,
                    &d.id,
                    "offline_after_s",
                    format!(
                        "{off} s is shorter than interval_s ({} s): the device would flap offline between readings",
                        d.interval_s
                    ),
                );
            }
        }
        protocol_problems(d, org, &mut lines, push);
        gas_problems(d, org, push);
    }
}

/// Serial settings of a line: baud, parity, data bits, stop bits.
type SerialSettings = (u32, crate::sources::modbus::config::Parity, u8, u8);

/// What the devices so far claimed on Modbus links: units per endpoint, settings per line.
#[derive(Default)]
struct Lines {
    units: HashMap<(String, u8), String>,
    /// GB/T 28181 IDs claimed so far, with the device that claimed each.
    gb_ids: HashMap<String, String>,
    serial_lines: HashMap<String, (String, SerialSettings)>,
}

/// A device's protocol table: a Modbus device's settings, its unit unique on its endpoint,
/// one set of serial settings per line; none for an MQTT device.
fn protocol_problems(
    d: &super::DeviceConfig,
    org: (usize, usize),
    lines: &mut Lines,
    push: &mut Push<'_>,
) {
    gb_problems(d, org, &mut lines.gb_ids, push);
    let Lines {
        units,
        serial_lines,
        ..
    } = lines;
    match (d.protocol, &d.modbus) {
        (Protocol::Gb28181, Some(_)) => push(
            "devices",
            org,
            &d.id,
            "modbus",
            "only protocol = \"modbus\" devices take a [devices.modbus] table".into(),
        ),
        (Protocol::Gb28181, None) => {}
        (Protocol::MineFiles, _) => push(
            "devices",
            org,
            &d.id,
            "protocol",
            "mine_files points are defined by the mine's own CDDY file, not in the inventory \
             (give the site a mine_code, see docs/mine-files.md)"
                .into(),
        ),
        (Protocol::Modbus, None) => push(
            "devices",
            org,
            &d.id,
            "modbus",
            "a modbus device needs a [devices.modbus] table (transport, address, registers, …)"
                .into(),
        ),
        (Protocol::Modbus, Some(m)) => {
            for (field, msg) in modbus_problems(m, d.interval_s) {
                push("devices", org, &d.id, &format!("modbus.{field}"), msg);
            }
            let key = m.endpoint_key();
            let serial = (m.baud, m.parity, m.data_bits, m.stop_bits);
            if m.transport == Transport::Rtu {
                match serial_lines.get(&key) {
                    Some((first, s)) if *s != serial => push(
                        "devices",
                        org,
                        &d.id,
                        "modbus.baud",
                        format!(
                            "serial line {:?} is also used by device {first:?} with other settings (baud, parity, data_bits, stop_bits must agree on one line)",
                            m.serial.as_deref().unwrap_or("")
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        serial_lines.insert(key.clone(), (d.id.clone(), serial));
                    }
                }
            }
            if let Some(first) = units.insert((key, m.unit), d.id.clone()) {
                push(
                    "devices",
                    org,
                    &d.id,
                    "modbus.unit",
                    format!(
                        "unit {} on {} is already polled as device {first:?}",
                        m.unit,
                        m.endpoint_key()
                    ),
                );
            }
        }
        (Protocol::Mqtt, Some(_)) => push(
            "devices",
            org,
            &d.id,
            "modbus",
            "only protocol = \"modbus\" devices take a [devices.modbus] table".into(),
        ),
        (Protocol::Mqtt, None) => {}
    }
}

/// A GB/T 28181 device has a 20-digit `gb_id` no other device has; other devices have none.
fn gb_problems(
    d: &super::DeviceConfig,
    org: (usize, usize),
    gb_ids: &mut HashMap<String, String>,
    push: &mut Push<'_>,
) {
    use crate::sources::video::config::is_gb_id;
    match (d.protocol, &d.gb_id) {
        (Protocol::Gb28181, None) => push(
            "devices",
            org,
            &d.id,
            "gb_id",
            "a gb28181 device needs the 20-digit GB/T 28181 ID it registers with (gb_id)".into(),
        ),
        (Protocol::Gb28181, Some(id)) if !is_gb_id(id) => push(
            "devices",
            org,
            &d.id,
            "gb_id",
            format!("{id:?} is not a 20-digit GB/T 28181 ID"),
        ),
        (Protocol::Gb28181, Some(id)) => {
            if let Some(first) = gb_ids.insert(id.clone(), d.id.clone()) {
                push(
                    "devices",
                    org,
                    &d.id,
                    "gb_id",
                    format!("{id} is already the gb_id of device {first:?}"),
                );
            }
        }
        (_, Some(_)) => push(
            "devices",
            org,
            &d.id,
            "gb_id",
            "only protocol = \"gb28181\" devices take a gb_id".into(),
        ),
        (_, None) => {}
    }
}

/// A toxic-gas detector names its gas (a tag of every reading); other kinds take none.
fn gas_problems(d: &super::DeviceConfig, org: (usize, usize), push: &mut Push<'_>) {
    match (d.kind, &d.gas) {
        (DeviceKind::GasToxic, None) => push(
            "devices",
            org,
            &d.id,
            "gas",
            "a gas_toxic device must name its gas (H2S, CO, NH3, Cl2, …)".into(),
        ),
        // The gas is a tag of every stored reading: line protocol cannot carry these.
        (DeviceKind::GasToxic, Some(g))
            if g.trim().is_empty() || g.chars().any(|c| c.is_control() || c == '\\') =>
        {
            push(
                "devices",
                org,
                &d.id,
                "gas",
                format!("{g:?} must name the gas, without control characters or backslashes"),
            )
        }
        (DeviceKind::GasToxic, Some(_)) | (_, None) => {}
        (k, Some(_)) => push(
            "devices",
            org,
            &d.id,
            "gas",
            format!(
                "only gas_toxic devices take `gas`, this one is {}",
                k.as_str()
            ),
        ),
    }
}

/// Alarm rules, resolved as the gateway will resolve them. A problem that comes from a kind
/// default or a site's scheme, not the device's own rule, is reported once per site and kind
/// rather than for every device.
fn alarm_rule_problems(c: &Config, o: &Origins, push: &mut Push<'_>) {
    let (inv, al) = (&c.inventory, &c.alarms);
    let mut site_scheme: HashMap<&str, Option<super::alarms::Scheme>> = HashMap::new();
    for (i, s) in inv.sites.iter().enumerate() {
        let a = s.alarms.as_ref();
        site_scheme.insert(&s.id, a.and_then(|a| a.scheme));
        if let Some(p) = a
            .and_then(|a| a.response_deadline_s.as_ref())
            .and_then(super::alarms::deadline_problem)
        {
            push("sites", o.sites[i], &s.id, "alarms.response_deadline_s", p);
        }
    }
    let mut reported: HashSet<(String, DeviceKind, Option<String>, String)> = HashSet::new();
    for (i, d) in inv.devices.iter().enumerate() {
        let input = crate::core::alarms::rules::RuleInput {
            kind: d.kind,
            gas: d.gas.as_deref(),
            site_scheme: site_scheme.get(d.site.as_str()).copied().flatten(),
            first_channel: d
                .modbus
                .as_ref()
                .and_then(|m| m.registers.first())
                .map(|r| r.channel.as_str()),
            device: d.alarm.as_deref(),
        };
        if let Err((field, m)) = crate::core::alarms::rules::resolve(al, &input) {
            if d.alarm.is_some()
                || reported.insert((d.site.clone(), d.kind, d.gas.clone(), m.clone()))
            {
                let m = if d.alarm.is_some() {
                    m
                } else {
                    format!(
                        "{m}; this applies to every {} device of site {:?} without its own alarm rule",
                        d.kind.as_str(),
                        d.site
                    )
                };
                push("devices", o.devices[i], &d.id, &field, m);
            }
        }
    }
}

/// `[mqtt]`: the section's own rules, then the logins against the sites' platforms.
/// `[[mappings]]`: each compiles, names and filters are unique (`Mappings::compile`), and no
/// filter reaches into the native topic tree, whose messages would then be parsed twice.
fn mapping_problems(c: &Config, err_main: &mut dyn FnMut(&str, String)) {
    use crate::sources::mapping::{topic, Mappings};
    if let Err(problems) = Mappings::compile(&c.mappings) {
        for (key, p) in problems {
            err_main(&key, p);
        }
    }
    let native = format!("{}/#", c.mqtt.topic_prefix);
    for (i, m) in c.mappings.iter().enumerate() {
        for (k, f) in m.topics.iter().enumerate() {
            if topic::filter_problem(f).is_none() && topic::overlap(f, &native) {
                err_main(
                    &format!("mappings[{i}] ({:?}).topics[{k}]", m.name),
                    format!(
                        "topic filter {f:?} reaches into the native tree {native:?} (mqtt.topic_prefix): its messages would be read twice"
                    ),
                );
            }
        }
    }
}

fn mqtt_problems(c: &Config, err_main: &mut dyn FnMut(&str, String)) {
    c.mqtt.problems(err_main);
    // Platform logins: the gateway's own identity must be set and must not be a platform's
    // (it would get the gateway's rights), nor the embedded broker guard's internal one.
    let platform_ids: std::collections::BTreeSet<&str> = c
        .inventory
        .sites
        .iter()
        .flat_map(|s| s.platforms.iter().map(String::as_str))
        .collect();
    if platform_ids.is_empty() {
        return;
    }
    match c.mqtt.username.as_deref() {
        None if c.mqtt.embedded => err_main(
            "mqtt.username",
            "sites list platforms, so the embedded broker requires logins: set mqtt.username and mqtt.password_env for the gateway".into(),
        ),
        Some(u) if platform_ids.contains(u) => err_main(
            "mqtt.username",
            format!("{u:?} is also a platform of a site: the gateway needs an identity of its own"),
        ),
        Some(super::broker_acl::GUARD_USER) if c.mqtt.embedded => err_main(
            "mqtt.username",
            format!("{:?} is the embedded broker's internal login; choose another", super::broker_acl::GUARD_USER),
        ),
        _ => {}
    }
}

/// `[api]`: TLS files, CORS origins, limits.
fn api_problems(c: &Config, err_main: &mut dyn FnMut(&str, String)) {
    c.api.problems(err_main);
    c.ingest.problems(err_main);
    c.mine_files.problems(err_main);
    if let Some(v) = &c.video {
        v.problems(err_main);
    }
    video_problems(c, err_main);
}

/// GB/T 28181 devices need `[video]`, and belong to a system of kind `video_monitoring`
/// or `ai_video` when they name one.
fn video_problems(c: &Config, err_main: &mut dyn FnMut(&str, String)) {
    use crate::model::SystemKind;
    let gb = || {
        c.inventory
            .devices
            .iter()
            .filter(|d| d.protocol == Protocol::Gb28181)
    };
    if let (None, Some(d)) = (&c.video, gb().next()) {
        err_main(
            "video",
            format!(
                "device {:?} has protocol = \"gb28181\" but there is no [video] section to \
                 register it (docs/video.md)",
                d.id
            ),
        );
    }
    if let Some(v) = &c.video {
        for id in v.device_password_env.keys() {
            if !gb().any(|d| d.gb_id.as_deref() == Some(id)) {
                err_main(
                    "video.device_password_env",
                    format!(
                        "{id:?} is no device's gb_id: a password for a device the inventory does                          not have would never be used (check the ID, or add the device)"
                    ),
                );
            }
        }
    }
    for d in gb() {
        let Some(sys) = &d.system else { continue };
        let kind = c
            .inventory
            .systems
            .iter()
            .find(|s| s.site == d.site && &s.id == sys)
            .map(|s| s.kind);
        let video = |k: &SystemKind| matches!(k, SystemKind::VideoMonitoring | SystemKind::AiVideo);
        if let Some(k) = kind.filter(|k| !video(k)) {
            err_main(
                "devices",
                format!(
                    "device {:?} (protocol = \"gb28181\") names system {sys:?} of kind {k:?}; a \
                     video device belongs to a video_monitoring or ai_video system",
                    d.id
                ),
            );
        }
    }
}

/// `[store]` and `[outbox]`.
fn store_problems(c: &Config, err_main: &mut dyn FnMut(&str, String)) {
    if let Some(s) = &c.store {
        s.problems(err_main);
        c.outbox.problems(err_main);
    }
}

/// `[cluster]`.
fn cluster_problems(c: &Config, err_main: &mut dyn FnMut(&str, String)) {
    if let Some(s) = &c.cluster {
        s.problems(err_main);
        // What the stream does not carry yet (docs/scaling.md): every instance would run it
        // on its own, as a single gateway does.
        let not_yet = "is not carried through the cluster yet (docs/scaling.md); run it on a gateway without [cluster]";
        if c.mqtt.embedded {
            err_main("mqtt.embedded", format!("the embedded broker {not_yet}"));
        }
        if c.video.is_some() {
            err_main("video", format!("GB/T 28181 video {not_yet}"));
        }
        // A unit is polled by whichever instance owns its site, so each must reach it: a
        // serial line is wired to one machine.
        let serial = c.inventory.devices.iter().find(|d| {
            d.protocol == Protocol::Modbus
                && d.modbus
                    .as_ref()
                    .is_some_and(|m| m.transport == Transport::Rtu)
        });
        if let Some(d) = serial {
            err_main(
                "cluster",
                format!(
                    "device {:?} of site {:?}: a serial line (transport = \"rtu\") is wired to one machine, and in cluster mode any instance may have to poll it; put it behind a serial server (transport = \"rtu_over_tcp\") or poll it from a gateway without [cluster]",
                    d.id, d.site
                ),
            );
        }
    }
}

/// `[indicators]`.
fn indicator_problems(c: &Config, err_main: &mut dyn FnMut(&str, String)) {
    let ind = &c.indicators;
    if !(ind.system_online_share > 0.0 && ind.system_online_share <= 1.0) {
        err_main(
            "indicators.system_online_share",
            format!("{} is not a share in (0, 1]", ind.system_online_share),
        );
    }
    for w in &ind.store_windows {
        if super::parse_window(w).is_none() {
            err_main(
                "indicators.store_windows",
                format!("{w:?} is not a window like \"15m\", \"1h\" or \"1d\" (at least 1 s)"),
            );
        }
    }
    if !(-12..=14).contains(&ind.utc_offset_h) {
        err_main(
            "indicators.utc_offset_h",
            format!("{} is not a UTC offset in hours", ind.utc_offset_h),
        );
    }
}

/// `[[targets]]`: the rows of the self-evaluation table.
fn target_problems(c: &Config, err_main: &mut dyn FnMut(&str, String)) {
    for (i, t) in c.targets.iter().enumerate() {
        let key = format!("targets[{i}] ({:?})", t.label);
        if t.declared.is_none()
            && !crate::core::indicators::engine::MEASURED.contains(&t.indicator.as_str())
        {
            err_main(
                &format!("{key}.indicator"),
                format!(
                    "{:?} is not a measured indicator ({}); give `declared = …` for a row telemetry cannot measure",
                    t.indicator,
                    crate::core::indicators::engine::MEASURED.join(", ")
                ),
            );
        }
        let scope_ok = match t.scope.split_once(':') {
            None => t.scope == "region",
            Some(("site", id)) => c.inventory.sites.iter().any(|s| s.id == id),
            Some(("enterprise", id)) => c.inventory.enterprises.iter().any(|e| e.id == id),
            Some(_) => false,
        };
        if !scope_ok {
            err_main(
                &format!("{key}.scope"),
                format!(
                    "{:?} is not region, site:{{id}} or enterprise:{{id}} of the inventory",
                    t.scope
                ),
            );
        }
        if t.weight < rust_decimal::Decimal::ZERO {
            err_main(&format!("{key}.weight"), "must not be negative".into());
        }
    }
}

/// `[[tokens]]`: unique names and tokens, known roles.
fn token_problems(c: &Config, err_main: &mut dyn FnMut(&str, String)) {
    crate::api::config::token_problems(&c.tokens, err_main);
    // A platform token pushes for the sites that list its name; listed by none, it can do
    // nothing, which is a mistake in one file or the other.
    for (i, t) in c.tokens.iter().enumerate() {
        let listed = c
            .inventory
            .sites
            .iter()
            .any(|s| s.platforms.contains(&t.name));
        if t.role == super::Role::Platform && !listed {
            err_main(
                &format!("tokens[{i}] ({:?}).role", t.name),
                format!(
                    "a platform token pushes for the sites that list its name in `platforms`, and no site lists {:?}",
                    t.name
                ),
            );
        }
    }
}

/// `[alarms]`: deadlines, hysteresis, gas limits and per-kind rules.
fn alarm_problems(c: &Config, err_main: &mut dyn FnMut(&str, String)) {
    let al = &c.alarms;
    if let Some(p) = super::alarms::deadline_problem(&al.response_deadline_s) {
        err_main("alarms.response_deadline_s", p);
    }
    if !(al.hysteresis > 0.0 && al.hysteresis <= 1.0) {
        err_main(
            "alarms.hysteresis",
            format!("{} is not a share in (0, 1]", al.hysteresis),
        );
    }
    for (k, n) in [
        ("raise_after", al.raise_after),
        ("clear_after", al.clear_after),
    ] {
        if !(1..=10_000).contains(&n) {
            err_main(
                &format!("alarms.{k}"),
                format!("{n} is not a count of readings in 1..=10000"),
            );
        }
    }
    if al.retain_closed_s == 0 {
        err_main("alarms.retain_closed_s", "must be positive".into());
    }
    for (gas, v) in &al.toxic_oel_ppm {
        if !(v.is_finite() && *v > 0.0) {
            err_main(
                &format!("alarms.toxic_oel_ppm.{gas}"),
                format!("{v} is not a positive limit in ppm"),
            );
        }
    }
    for (kind, rule) in &al.kinds {
        let key = format!("alarms.kinds.{kind}");
        let Some(k) = DeviceKind::parse(kind) else {
            err_main(
                &key,
                format!(
                    "{kind:?} is not a device kind ({})",
                    DeviceKind::ALL.map(|k| k.as_str()).join(", ")
                ),
            );
            continue;
        };
        if k == DeviceKind::GasToxic && rule.levels.is_none() {
            continue; // resolved per gas, on each device
        }
        let input = crate::core::alarms::rules::RuleInput {
            kind: k,
            gas: None,
            site_scheme: None,
            first_channel: None,
            device: None,
        };
        if let Err((field, m)) = crate::core::alarms::rules::resolve(al, &input) {
            err_main(&format!("{key}.{}", field.trim_start_matches("alarm.")), m);
        }
    }
}

/// Upper bounds on the settings the runtime turns into instants, capacities and buffers.
fn bound_problems(c: &Config, err_main: &mut dyn FnMut(&str, String)) {
    let al = &c.alarms;
    // Upper bounds. The runtime turns these into instants, capacities and preallocated
    // buffers: past them it panicked (an Instant or multiplication overflow, a channel or Vec
    // capacity overflow), wrapped to nonsense, or let memory grow without bound.
    let mut bounds: Vec<(&str, u64, u64, &str)> = vec![
        (
            "gateway.max_future_skew_s",
            c.gateway.max_future_skew_s,
            30 * 86_400,
            "30 days",
        ),
        (
            "gateway.recent_rejections",
            c.gateway.recent_rejections as u64,
            100_000,
            "100000",
        ),
        (
            "gateway.recent_values",
            u64::from(c.gateway.recent_values),
            1_000,
            "1000",
        ),
        (
            "mqtt.max_payload_bytes",
            c.mqtt.max_payload_bytes as u64,
            268_435_455,
            "MQTT's largest packet",
        ),
        (
            "mqtt.keep_alive_s",
            c.mqtt.keep_alive_s,
            65_535,
            "MQTT's 16-bit field",
        ),
        (
            "alarms.retain_closed_s",
            al.retain_closed_s,
            366 * 86_400,
            "366 days",
        ),
    ];
    if let Some(s) = &c.store {
        bounds.extend([
            (
                "store.batch_size",
                s.batch_size as u64,
                100_000,
                "100000 points",
            ),
            (
                "store.queue_capacity",
                s.queue_capacity as u64,
                10_000_000,
                "10000000 points",
            ),
            (
                "store.flush_interval_ms",
                s.flush_interval_ms,
                3_600_000,
                "an hour",
            ),
            (
                "store.indicator_interval_s",
                s.indicator_interval_s,
                86_400,
                "a day",
            ),
            ("store.timeout_ms", s.timeout_ms, 3_600_000, "an hour"),
            (
                "outbox.commit_interval_ms",
                c.outbox.commit_interval_ms,
                60_000,
                "a minute: every MQTT acknowledgement waits for it",
            ),
            (
                "outbox.reserve_bytes",
                c.outbox.reserve_bytes,
                1 << 30,
                "1 GiB: it is written in full at every start",
            ),
            (
                "outbox.wal_max_bytes",
                c.outbox.wal_max_bytes,
                1 << 30,
                "1 GiB",
            ),
        ]);
    }
    for (key, value, max, what) in bounds {
        if value > max {
            err_main(key, format!("{value} is above {max} ({what})"));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;
    use std::path::Path;

    fn problems(text: &str) -> Vec<String> {
        match load_str(Path::new("t.toml"), text, Path::new(".")) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .iter()
                .map(|e| format!("{}: {}", e.key, e.message))
                .collect(),
        }
    }

    #[test]
    fn what_the_cluster_cannot_carry_is_refused_with_it() {
        let cluster =
            "[cluster]\nnats_urls = [\"nats://127.0.0.1:4222\"]\ninstance_id = \"gw-1\"\n";
        assert_eq!(problems(cluster), Vec::<String>::new());
        let p = problems(&format!("{cluster}\n[mqtt]\nembedded = true\n"));
        assert!(
            p.iter()
                .any(|m| m.starts_with("mqtt.embedded: the embedded broker is not carried")),
            "{p:?}"
        );
        // Mine files go through the stream whole (docs/scaling.md).
        let files = problems(&format!("{cluster}\n[mine_files]\nenabled = true\n"));
        assert!(!files.iter().any(|m| m.contains("cluster")), "{files:?}");
        let modbus = r#"
[[sites]]
id = "p1"
name = "P"
kind = "park"

[[devices]]
id = "m1"
site = "p1"
kind = "gas_combustible"
protocol = "modbus"
interval_s = 10
[devices.modbus]
transport = "tcp"
address = "127.0.0.1:502"
unit = 1
registers = [{ channel = "lel", table = "holding", address = 0, type = "u16" }]
"#;
        // Polled by the site's owner: any instance must reach it, so over TCP it is fine…
        assert_eq!(
            problems(&format!("{cluster}\n{modbus}")),
            Vec::<String>::new()
        );
        // …and a serial line, wired to one machine, is refused.
        let serial = modbus.replace(
            "transport = \"tcp\"\naddress = \"127.0.0.1:502\"",
            "transport = \"rtu\"\nserial = \"/dev/ttyUSB0\"",
        );
        let p = problems(&format!("{cluster}\n{serial}"));
        assert!(
            p.iter()
                .any(|m| m.contains("device \"m1\" of site \"p1\": a serial line")),
            "{p:?}"
        );
        // Without [cluster], all of it is fine.
        assert!(!problems(modbus).iter().any(|m| m.contains("cluster")));
    }

    #[test]
    fn mappings_are_checked_with_their_index_and_name() {
        assert_eq!(
            problems(
                r#"
[[mappings]]
name = "acme"
topics = ["acme/+/telemetry"]
site = "{topic:1}"
"#
            ),
            Vec::<String>::new()
        );
        let p = problems(
            r##"
[[mappings]]
name = "acme"
records = "$.x["
topics = ["safegate/v1/+/batch"]

[[mappings]]
name = "acme"
topics = ["#"]
"##,
        );
        let keys: Vec<&str> = p.iter().map(|m| m.split(": ").next().unwrap()).collect();
        assert_eq!(
            keys,
            [
                r#"mappings[0] ("acme").records"#,
                r#"mappings[1] ("acme").name"#,
                r#"mappings[0] ("acme").topics[0]"#,
                r#"mappings[1] ("acme").topics[0]"#,
            ],
            "{p:#?}"
        );
        assert!(p[2].contains("reaches into the native tree"), "{p:?}");
    }

    #[test]
    fn gb28181_devices_take_a_unique_gb_id_a_video_system_and_their_timing_from_video() {
        let inv = |gb_a: &str, gb_b: &str, kind: &str| {
            format!(
                "[[sites]]\nid = \"m1\"\nname = \"M\"\nkind = \"mine\"\n\n\
                 [[systems]]\nid = \"cctv\"\nsite = \"m1\"\nkind = \"{kind}\"\n\n\
                 [[devices]]\nid = \"nvr1\"\nsite = \"m1\"\nkind = \"video\"\nsystem = \"cctv\"\n\
                 protocol = \"gb28181\"\ngb_id = \"{gb_a}\"\ninterval_s = 60\n\n\
                 [[devices]]\nid = \"nvr2\"\nsite = \"m1\"\nkind = \"video\"\n\
                 protocol = \"gb28181\"\ngb_id = \"{gb_b}\"\ninterval_s = 60\n\n"
            )
        };
        let video = "[video]\nserver_id = \"34020000002000000001\"\npassword_env = \"VIDEO_PW\"\n\
                     keepalive_s = 10\nkeepalive_misses = 2\n\n";
        let ok = format!(
            "{video}{}",
            inv(
                "34020000001180000001",
                "34020000001180000002",
                "video_monitoring"
            )
        );
        assert_eq!(problems(&ok), Vec::<String>::new());
        let loaded = load_str(Path::new("t.toml"), &ok, Path::new(".")).unwrap();
        let d = &loaded.config.inventory.devices[0];
        assert_eq!((d.interval_s, d.offline_after_s), (10.0, Some(20.0)));
        // A password for an ID no device has, and a bad variable name, are named.
        let own = video.replace(
            "keepalive_s",
            "device_password_env = { \"34020000001180000002\" = \"NVR2_PW\", \"34020000001180000009\" = \"x-y\" }\nkeepalive_s",
        );
        let p = problems(&format!(
            "{own}{}",
            inv(
                "34020000001180000001",
                "34020000001180000002",
                "video_monitoring"
            )
        ));
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p.iter()
                .any(|m| m.contains("\"34020000001180000009\" is no device's gb_id")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|m| m.contains("\"x-y\" is not an environment variable")),
            "{p:?}"
        );
        let dup = format!(
            "{video}{}",
            inv("34020000001180000001", "34020000001180000001", "ai_video")
        );
        let p = problems(&dup);
        assert!(
            p.iter()
                .any(|m| m.contains("is already the gb_id of device \"nvr1\"")),
            "{p:?}"
        );
        let bad = format!(
            "{video}{}",
            inv("1234", "34020000001180000002", "major_hazard")
        );
        let p = problems(&bad);
        assert!(
            p.iter().any(|m| m.contains("\"1234\" is not a 20-digit")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|m| m.contains("video_monitoring or ai_video")),
            "{p:?}"
        );
        let p = problems(&inv(
            "34020000001180000001",
            "34020000001180000002",
            "ai_video",
        ));
        assert!(
            p.iter().any(|m| m.starts_with("video: device \"nvr1\"")),
            "{p:?}"
        );
    }

    #[test]
    fn a_video_section_is_optional_and_checked_when_present() {
        let ok = "[video]\nserver_id = \"34020000002000000001\"\npassword_env = \"VIDEO_PW\"\n";
        assert_eq!(problems(ok), Vec::<String>::new());
        let loaded = load_str(Path::new("t.toml"), ok, Path::new(".")).unwrap();
        let video = loaded.config.video.expect("[video] read");
        assert_eq!(
            (video.domain(), video.keepalive_s),
            ("3402000000".into(), 60)
        );
        let none = load_str(Path::new("t.toml"), "", Path::new(".")).unwrap();
        assert!(none.config.video.is_none());
        let p = problems("[video]\nserver_id = \"123\"\nkeepalive_misses = 0\n");
        assert!(
            p.iter().any(|m| m.starts_with("video.server_id: ")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|m| m.starts_with("video.password_env: ")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|m| m.starts_with("video.keepalive_misses: ")),
            "{p:?}"
        );
        let p = problems("[video]\nkeepalive = 60\n");
        assert!(
            p.iter().any(|m| m.contains("unknown field `keepalive`")),
            "{p:?}"
        );
    }
}
