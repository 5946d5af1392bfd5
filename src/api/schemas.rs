//! The OpenAPI schemas of answers that the handlers build from the core's types (counts,
//! rates, alarm views), which carry no `utoipa` derive: the core does not depend on the API's
//! crates. Each is a shape only, never built; `deny_unknown_fields` makes the document say
//! `additionalProperties: false`, and the tests below read a real value of each core type
//! into its shape, so a field added to or taken from the core fails them until this file
//! says the same.

#![allow(dead_code)]

use serde::Deserialize;
use utoipa::ToSchema;

/// Devices by what they are and do (`core::stats::Counts`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    /// Every device in the inventory: the plan, whatever its status.
    planned: u64,
    /// `status = "built"`.
    built: u64,
    /// `status = "suspended"`.
    suspended: u64,
    /// Have reported at least once since registration.
    reported: u64,
    online: u64,
    offline: u64,
    /// Never reported.
    never: u64,
    /// Online, but their last reading said `status: fault`.
    faulty: u64,
    /// Online, but their last reading said `status: maintenance`.
    maintenance: u64,
    /// Built devices of active sites, not under maintenance: the online rate's denominator.
    counted: u64,
    /// Counted devices online now: the numerator.
    counted_online: u64,
}

/// A rate: `numerator / denominator` (`core::stats::Rate`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Null when nothing is counted.
    #[schema(required = true)]
    value: Option<f64>,
    numerator: u64,
    denominator: u64,
}

/// Alarms not yet closed (`core::snapshot::AlarmCounts`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlarmCounts {
    /// Raised and not cleared.
    active: usize,
    /// Waiting for an acknowledgement.
    unacknowledged: usize,
}

/// One event of an alarm's history (`core::alarms::view::EventView`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlarmEvent {
    at_ms: i64,
    /// RFC 3339.
    at: String,
    /// `raised`, `escalated`, `acknowledged`, `cleared`, …
    event: String,
    level: u8,
    value: Option<f64>,
    by: Option<String>,
    note: Option<String>,
    via: Option<String>,
}

/// An alarm (`core::alarms::view::AlarmView`): the same shape is published on MQTT and kept
/// in the journal.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Alarm {
    id: u64,
    site: String,
    device: String,
    /// The device's kind (`gas_combustible`, `methane`, …).
    kind: String,
    /// `value`, `rate`, `offline` or `fault`.
    #[serde(rename = "type")]
    alarm_type: String,
    #[schema(required = true)]
    channel: Option<String>,
    scheme: String,
    level: u8,
    /// 一级/二级, or 蓝/黄/橙/红.
    level_name: String,
    /// `active_unacked`, `active_acked`, `cleared_unacked` or `cleared_acked`.
    state: String,
    raised_ms: i64,
    raised_at: String,
    deadline_ms: i64,
    deadline_at: String,
    #[schema(required = true)]
    value: Option<f64>,
    #[schema(required = true)]
    peak: Option<f64>,
    #[schema(required = true)]
    acknowledged_ms: Option<i64>,
    #[schema(required = true)]
    acknowledged_at: Option<String>,
    #[schema(required = true)]
    acknowledged_by: Option<String>,
    #[schema(required = true)]
    note: Option<String>,
    /// `http` or `mqtt`.
    #[schema(required = true)]
    acknowledged_via: Option<String>,
    #[schema(required = true)]
    cleared_ms: Option<i64>,
    #[schema(required = true)]
    cleared_at: Option<String>,
    /// Acknowledged − raised, seconds.
    #[schema(required = true)]
    response_s: Option<f64>,
    /// `responded`, `late`, `missed` or `pending`, as known when this view was made.
    outcome: String,
    /// The full history, oldest first (left out in lists).
    #[serde(default)]
    events: Vec<AlarmEvent>,
}

/// `GET /api/v1/alarms`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlarmList {
    /// How many are listed.
    count: usize,
    /// Newest first.
    alarms: Vec<Alarm>,
}

/// `POST /api/v1/alarms/{id}/ack`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckAnswer {
    /// True for the first acknowledgement, false when it was already acknowledged (the
    /// first stands).
    acknowledged: bool,
    message: String,
    alarm: Alarm,
}

/// How the indicators count (`core::config::indicators::Policy`, `[indicators]`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// `active` or `planned`: which units the rates divide by.
    denominator: String,
    /// What a coal mine's units are: `systems` or `devices`.
    mine_units: String,
    /// When a system counts as online.
    online_quorum: Quorum,
    /// A system counts in `system_count` when online at least this share of its counted time.
    system_online_share: f64,
}

/// When a system counts as online: `"Any"` or `"All"` of its points, or `{"Fraction": f}`.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Quorum {
    Word(String),
    Share {
        #[serde(rename = "Fraction")]
        fraction: f64,
    },
}

/// A target row's goal (`[[targets]]`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// `>=` or `<=`.
    comparator: String,
    /// The target in the indicator's display unit (percent for rates), a decimal as a string.
    value: String,
    /// The row's wording in the target table (三级指标).
    label: String,
}

/// An exact ratio, for auditors (unit-milliseconds for time-weighted rates).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Exact {
    num: i64,
    den: i64,
}

/// One indicator of a scope over the window.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Indicator {
    /// `online_rate`, `coverage_rate`, `system_count`, … (docs/indicators.md).
    id: String,
    /// The system kind, link, alarm type or level the row is about; null for none.
    #[schema(required = true)]
    qualifier: Option<String>,
    /// `ratio`, `count` or `milliseconds`.
    unit: String,
    /// Null when nothing is counted.
    #[schema(required = true)]
    value: Option<f64>,
    /// The value as the report shows it (`98.5%`, `3`, `120 ms`); null when nothing is counted.
    #[schema(required = true)]
    display: Option<String>,
    numerator: f64,
    denominator: f64,
    exact: Exact,
    /// The `[[targets]]` row of this indicator and scope; null when there is none.
    #[schema(required = true)]
    target: Option<Target>,
    /// Percent, a decimal as a string; null without a target or a value.
    #[schema(required = true)]
    completion_pct: Option<String>,
    /// Percent, a decimal as a string; null without a target or a value.
    #[schema(required = true)]
    deviation_pct: Option<String>,
}

/// `GET /api/v1/indicators`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Indicators {
    /// `region`, `site:{id}` or `enterprise:{id}`.
    scope: String,
    /// The window, RFC 3339: from (inclusive) …
    from: String,
    /// … to (exclusive).
    to: String,
    policy: Policy,
    indicators: Vec<Indicator>,
}

/// `GET /api/v1/cluster`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterAnswer {
    /// False without a `[cluster]` section (the gateway runs alone).
    enabled: bool,
    #[schema(required = true)]
    cluster: Option<ClusterView>,
}

/// One instance's view of the cluster (`crate::core::cluster::ClusterView`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterView {
    instance_id: String,
    /// This process's boot id; a restarted instance has a new one.
    boot: String,
    partitions: u32,
    /// The partitions this instance works on at the moment of the answer, ascending.
    owned: Vec<u32>,
    /// Instances with a live membership entry, as last read.
    members: Vec<String>,
    /// Each partition's lease holder as last read, by partition; null: free.
    leases: Vec<Option<String>>,
    /// Whether the last lease round reached NATS.
    nats_ok: bool,
    /// The last round's problem.
    #[schema(required = true)]
    last_error: Option<String>,
    /// When the last round ended (Unix ms).
    round_ms: i64,
    /// The stream sequence of the last envelope this instance applied from the readings
    /// stream; 0 before the first.
    applied_sequence: u64,
    /// The stream's time as applied (Unix ms): figures for a window ending before it agree
    /// on every instance that has reached it.
    stream_time_ms: i64,
    /// The last checkpoint committed to this instance's journal (0 before the first): the
    /// history, alarms and figures it answers come to this stream sequence and time; a
    /// window is final here once `checkpoint_time_ms` has passed its end.
    checkpoint_sequence: u64,
    checkpoint_time_ms: i64,
    /// The checkpoint this boot resumed from; null: it applied the stream from its start.
    #[schema(required = true)]
    resumed_from: Option<u64>,
    /// Messages the stream no longer held when this boot resumed (its retention had passed
    /// them): this instance's history misses them.
    gap: u64,
}

/// `GET /api/v1/whoami`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Whoami {
    /// False when no `[[tokens]]` are configured (the API is open, on loopback only).
    auth: bool,
    /// The token's name; null without tokens.
    #[schema(required = true)]
    name: Option<String>,
    /// `viewer`, `operator`, `evaluator`, `admin`, `scrape` or `platform`.
    role: String,
}

/// The disk of `data_dir` as the outbox last measured it (`telemetry::DiskSnapshot`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    measured: bool,
    /// Below the free-space floor: MQTT acknowledgements held, Modbus polling paused.
    low: bool,
    free_bytes: u64,
    floor_bytes: u64,
    /// Bytes of the reserve file held now (0 once released on a full disk).
    reserve_bytes: u64,
}

/// The outbox as health shows it; only `enabled` (false) without `[store]`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Outbox {
    enabled: bool,
    /// `ok`, `full` (at its budget) or `disk_low`.
    state: Option<String>,
    backlog_bytes: Option<u64>,
    max_bytes: Option<u64>,
    backlog_points: Option<u64>,
    backlog_batches: Option<u64>,
    /// RFC 3339; null when nothing is pending.
    oldest_pending: Option<String>,
    oldest_pending_age_s: Option<f64>,
    dead_letters: Option<u64>,
    disk: Option<Disk>,
}

/// A line the store refused for good.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadLetter {
    /// The line protocol line.
    line: String,
    /// The store's HTTP status.
    status: u16,
    /// What the store said.
    store_said: String,
    /// RFC 3339.
    at: String,
}

/// `GET /api/v1/outbox`: the outbox as health shows it, and its dead letters.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboxListing {
    enabled: bool,
    /// `ok`, `full` (at its budget) or `disk_low`.
    state: Option<String>,
    backlog_bytes: Option<u64>,
    max_bytes: Option<u64>,
    backlog_points: Option<u64>,
    backlog_batches: Option<u64>,
    oldest_pending: Option<String>,
    oldest_pending_age_s: Option<f64>,
    dead_letters: Option<u64>,
    disk: Option<Disk>,
    /// Oldest first, at most `limit`; left out without `[store]`.
    dead_letter_lines: Option<Vec<DeadLetter>>,
}

/// `GET /healthz`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// `ok`.
    status: String,
    outbox: Outbox,
}

/// The MQTT link, for readiness.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MqttLink {
    connected: bool,
    reconnects: u64,
    /// RFC 3339: connected or disconnected since.
    since: String,
    #[schema(required = true)]
    last_error: Option<String>,
}

/// The store, for readiness.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreLink {
    /// `disabled` (no `[store]`), `unknown` (nothing written yet), `ok` or `failing`.
    health: String,
    #[schema(required = true)]
    last_error: Option<String>,
}

/// `GET /readyz`, 200 or 503 alike.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Ready {
    /// MQTT connected, and the store taking writes with the outbox under its budget and the
    /// disk above its floor.
    ready: bool,
    mqtt: MqttLink,
    store: StoreLink,
    outbox: Outbox,
}

/// A measured reason for a missed target, ranked by what it costs.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportReason {
    /// `device`, `system`, `zone`, `enterprise` or `link`.
    unit: String,
    id: String,
    site: String,
    /// What it costs in the window, ms of unit-time: the ranking key.
    cost_ms: i64,
    /// Its share of the row's shortfall, a decimal (6 places) as a string.
    share: String,
    /// Time counted but down in the window, ms (0 for count-based reasons).
    down_ms: i64,
    outages: u32,
    /// RFC 3339: the longest outage, when there was one.
    #[schema(required = true)]
    longest_from: Option<String>,
    #[schema(required = true)]
    longest_to: Option<String>,
    never_reported: bool,
    /// The reason in English (for scripts; the report's Markdown and CSV print it).
    note: String,
    /// What `note` says as a code (`device_down`, `alarm_late`, … every code in
    /// `report::NOTE_CODES` and docs/indicators.md), for a reader to word it in its language.
    note_code: String,
    /// The code's parameters: durations in ms (`…_ms`), times RFC 3339, ids as text.
    #[schema(value_type = Object)]
    note_params: serde_json::Value,
}

/// The reasons not listed, as one line (`report::Folded`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Folded {
    count: usize,
    max_cost_ms: i64,
    total_cost_ms: i64,
    /// Their share of the shortfall together, a decimal as a string.
    share: String,
}

/// What the reasons explain (`report::Shortfall`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Shortfall {
    /// `unit_ms`, `units` or `polls`.
    unit: String,
    total: i64,
    /// Every reason, listed and folded.
    reasons: usize,
}

/// One row of the self-evaluation report (自评表).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportRow {
    /// 一级指标.
    level1: String,
    /// 二级指标.
    level2: String,
    /// 三级指标.
    label: String,
    indicator: String,
    scope: String,
    #[schema(required = true)]
    qualifier: Option<String>,
    /// 指标值, e.g. `≥90%`.
    target: String,
    /// 实际完成值, e.g. `26.50%`; empty when nothing could be measured.
    actual: String,
    #[schema(required = true)]
    numerator: Option<f64>,
    #[schema(required = true)]
    denominator: Option<f64>,
    /// Decimals as strings, null when not measured.
    #[schema(required = true)]
    completion_pct: Option<String>,
    #[schema(required = true)]
    deviation_pct: Option<String>,
    weight: String,
    #[schema(required = true)]
    score: Option<String>,
    /// `measured` or `declared`.
    source: String,
    reasons: Vec<ReportReason>,
    #[schema(required = true)]
    folded: Option<Folded>,
    #[schema(required = true)]
    shortfall: Option<Shortfall>,
}

/// A declared setting the rules do not allow (`report::findings::FindingRow`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    site: String,
    /// The source that declared the unit, e.g. `mine_files`.
    source: String,
    unit: String,
    check: String,
    #[schema(required = true)]
    declared: Option<f64>,
    limit: String,
    basis: String,
    text: String,
}

/// `GET /api/v1/report` as JSON.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The window, RFC 3339.
    from: String,
    to: String,
    policy: Policy,
    rows: Vec<ReportRow>,
    /// Decimals as strings.
    total_weight: String,
    total_score: String,
    findings: Vec<Finding>,
}

/// A rejected input.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rejected {
    /// RFC 3339: when it came in.
    at: String,
    /// Why (`malformed_json`, `unknown_device`, … as the counts name them).
    reason: String,
    /// The MQTT topic, or the push or file it came from.
    topic: String,
    /// Its index inside a batch; null for a single message.
    #[schema(required = true)]
    element: Option<u32>,
    /// What exactly was wrong, for the operator.
    detail: String,
}

/// `GET /api/v1/rejections`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rejections {
    /// Rejected inputs since the start, by reason; every reason is present (0 when none).
    counts: std::collections::BTreeMap<String, u64>,
    /// The recent ones, newest first.
    recent: Vec<Rejected>,
}

/// A Modbus unit polled over an endpoint.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointUnit {
    site: String,
    device: String,
    unit: u8,
}

/// A Modbus endpoint (one shared connection) with its units' counters summed
/// (`sources::modbus::EndpointStatus`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// `tcp://host:port` or the serial line.
    endpoint: String,
    /// `tcp`, `rtu_over_tcp` or `rtu`.
    transport: String,
    connected: bool,
    /// Polling waits for the outbox to take commits again.
    paused: bool,
    /// Cluster mode: another instance owns the sites of its units and polls it; this one
    /// holds no connection to it (always false alone).
    elsewhere: bool,
    /// RFC 3339: connected or disconnected since; null before the first attempt.
    #[schema(required = true)]
    since: Option<String>,
    #[schema(required = true)]
    last_error: Option<String>,
    reconnects: u64,
    /// Units polled over it.
    devices: usize,
    polls: u64,
    successes: u64,
    timeouts: u64,
    transport_errors: u64,
    /// Modbus exception responses by code (`0x02`, …).
    exceptions: std::collections::BTreeMap<String, u64>,
    units: Vec<EndpointUnit>,
}

/// `GET /api/v1/endpoints`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoints {
    total: usize,
    endpoints: Vec<Endpoint>,
}

/// Poll periods achieved, ms; null before the first poll.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AchievedPeriod {
    count: u64,
    #[schema(required = true)]
    mean: Option<f64>,
    #[schema(required = true)]
    min: Option<f64>,
    #[schema(required = true)]
    max: Option<f64>,
    #[schema(required = true)]
    last: Option<f64>,
    #[schema(required = true)]
    recent_min: Option<f64>,
    #[schema(required = true)]
    recent_max: Option<f64>,
}

/// A Modbus device's polling (`sources::modbus::DeviceStatus`), in a device listing.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModbusPolling {
    endpoint: String,
    unit: u8,
    poll_period_ms: u64,
    polls: u64,
    successes: u64,
    timeouts: u64,
    transport_errors: u64,
    /// Modbus exception responses by code (`0x02`, …).
    exceptions: std::collections::BTreeMap<String, u64>,
    consecutive_failures: u32,
    /// RFC 3339: polling backs off until then; null when it does not.
    #[schema(required = true)]
    backoff_until: Option<String>,
    #[schema(required = true)]
    last_success: Option<String>,
    #[schema(required = true)]
    last_error: Option<String>,
    achieved_period_ms: AchievedPeriod,
}

/// The last file of one type a mine delivered.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LastFile {
    name: String,
    /// The file's data time, epoch ms.
    data_ms: i64,
    received_ms: i64,
    /// Arrival − data time, ms: how late the mine's uploader delivers.
    lag_ms: i64,
}

/// A substation or a base station of a mine, as its last file says.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Station {
    code: String,
    #[schema(required = true)]
    location: Option<String>,
    /// `normal`, `comm_interrupted`, `fault`, …
    run: String,
    /// The power supply's state.
    power: String,
    data_ms: i64,
}

/// A mine and its networking files (`sources::mine_files::status::MineView`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Mine {
    mine_code: String,
    site: String,
    /// The last file applied of each type (`CDSS`, `CDDY`, …).
    last_files: std::collections::BTreeMap<String, LastFile>,
    files_applied: u64,
    files_duplicate: u64,
    /// Files refused whole, by reason.
    files_refused: std::collections::BTreeMap<String, u64>,
    records_accepted: u64,
    records_refused: u64,
    points: usize,
    substations: Vec<Station>,
    base_stations: Vec<Station>,
    /// By the last personnel file (RYSS); names are never kept.
    #[schema(required = true)]
    people_underground: Option<u32>,
}

/// The overview's window figures of one scope: exact ratios `[numerator, denominator]`
/// (unit-milliseconds for the two time-weighted rates, alarms for the response rate);
/// `[0, 0]` when nothing was counted.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverviewWindow {
    /// 联网在线率, time-weighted over the window.
    online_rate: [i64; 2],
    /// 公共区域监测监控设备覆盖率.
    coverage_rate: [i64; 2],
    /// 预警响应率: alarms acknowledged by their deadline ÷ alarms whose deadline passed.
    alarm_response_rate: [i64; 2],
}

/// A site's mine uploads on the overview.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverviewMine {
    code: String,
    /// No 测点实时数据 (CDSS) file within `mine_files.upload_timeout_s`, or none yet.
    late: bool,
}

/// One site on the overview.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverviewSite {
    id: String,
    name: String,
    /// `park` or `mine`.
    kind: String,
    /// `active` or `suspended`.
    status: String,
    /// Devices in the online rate's denominator now.
    counted: u64,
    online: u64,
    offline: u64,
    never: u64,
    faulty: u64,
    /// 联网在线率 now (counted online ÷ counted); null when nothing is counted.
    #[schema(required = true)]
    online_rate: Option<f64>,
    alarms_active: usize,
    alarms_unacked: usize,
    /// Modbus endpoints with a device of this site that are down or paused.
    endpoints_down: usize,
    /// Sites with a `mine_code` under `[mine_files]`; null otherwise.
    #[schema(required = true)]
    mine: Option<OverviewMine>,
    window: OverviewWindow,
}

/// The region on the overview.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverviewRegion {
    counted: u64,
    online: u64,
    offline: u64,
    never: u64,
    faulty: u64,
    #[schema(required = true)]
    online_rate: Option<f64>,
    alarms_active: usize,
    alarms_unacked: usize,
    /// Modbus endpoints configured, and how many are down or paused.
    endpoints: usize,
    endpoints_down: usize,
    /// Mines taking networking files, and how many are late.
    mines: usize,
    mines_late: usize,
    window: OverviewWindow,
}

/// A `[[targets]]` row on one of the overview's three indicators.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverviewTarget {
    /// `region` or `site:{id}`.
    scope: String,
    /// `online_rate`, `coverage_rate` or `alarm_response_rate`.
    indicator: String,
    /// `>=`, `<=`, …
    comparator: String,
    /// The target, percent, a decimal as a string.
    target: String,
    label: String,
    /// The window's value as the report shows it (`97.12%`); null when nothing was counted.
    #[schema(required = true)]
    actual: Option<String>,
    /// A decimal as a string; null when nothing was counted.
    #[schema(required = true)]
    completion_pct: Option<String>,
}

/// The window the figures are over, and when they were computed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverviewSpan {
    from: String,
    /// The end used: the requested end or now, whichever is earlier.
    to: String,
    /// The window's figures are kept up to 30 s (by the gateway's clock).
    computed_at: String,
}

/// `GET /api/v1/overview`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Overview {
    now: String,
    window: OverviewSpan,
    region: OverviewRegion,
    targets: Vec<OverviewTarget>,
    sites: Vec<OverviewSite>,
}

/// An online/offline transition of a device.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    at: String,
    online: bool,
    /// Why: `first_reading`, `reading` (after an outage), `silence` (no reading for
    /// `offline_after`), `state_offline` (its state topic said so) or `removed`.
    #[schema(required = true)]
    cause: Option<String>,
}

/// A recent reading of a device: its first channel's value.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecentValue {
    ts: String,
    value: f64,
}

/// `GET /api/v1/devices/{site}/{id}/history`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceHistory {
    site: String,
    device: String,
    from: String,
    /// The end used: the requested end or now, whichever is earlier.
    to: String,
    /// `online`, `offline`, or `never` (no transition before `from`).
    state_at_from: String,
    /// In the window, oldest first (at most 10,000); a window up to now includes a change
    /// at now.
    transitions: Vec<Transition>,
    /// More transitions than listed.
    truncated: bool,
    /// The channel of `values`; null when none is kept.
    #[schema(required = true)]
    channel: Option<String>,
    /// The kind's unit (`%LEL`, `ppm`, …).
    unit: String,
    /// The last `gateway.recent_values` readings, as they arrived (not limited to the window).
    values: Vec<RecentValue>,
}

/// A zone of a site now.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteZone {
    id: String,
    name: String,
    /// Devices assigned to it (any status).
    devices: u64,
    /// Of them, counted in the online rate now.
    counted: u64,
    /// Counted and online now (a mine point not faulty).
    online: u64,
    offline: u64,
    never: u64,
    /// At least one assigned device online: the zone counts as covered (覆盖率).
    covered: bool,
}

/// `GET /api/v1/sites/{id}/zones`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteZones {
    site: String,
    total: usize,
    covered: usize,
    zones: Vec<SiteZone>,
}

/// A system of a site now.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteSystem {
    id: String,
    #[schema(required = true)]
    name: Option<String>,
    /// `slope_monitoring`, `video_monitoring`, `ai_video`, `major_hazard` or `positioning`.
    kind: String,
    /// `planned`, `built` or `suspended`.
    status: String,
    devices: u64,
    counted: u64,
    online: u64,
    offline: u64,
    never: u64,
    /// Devices that must be online for the system to be (by `indicators.online_quorum` of
    /// `counted`).
    need: u64,
    quorum_met: bool,
}

/// `GET /api/v1/sites/{id}/systems`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteSystems {
    site: String,
    /// `indicators.online_quorum`, as the indicators' policy shows it.
    quorum: Quorum,
    total: usize,
    systems: Vec<SiteSystem>,
}

/// `GET /api/v1/mines`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Mines {
    total: usize,
    mines: Vec<Mine>,
}

/// A configuration file in force and its SHA-256 (`unreadable: …` when it could not be read
/// again after the start).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    file: String,
    sha256: String,
}

/// `[mqtt]` as in force, without the password or the client key.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigMqtt {
    url: String,
    client_id: String,
    #[schema(required = true)]
    username: Option<String>,
    topic_prefix: String,
    qos: u8,
    /// `after_commit` or `on_receive`, as `mqtt.ack`.
    ack: String,
    embedded: bool,
    #[schema(required = true)]
    tls_ca_file: Option<String>,
    /// Whether a client certificate is configured (not the file).
    client_certificate: bool,
    max_payload_bytes: usize,
    max_batch_len: usize,
    max_channels: usize,
}

/// `[store]` as in force, without its token.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigStore {
    url: String,
    org: String,
    bucket: String,
}

/// `[outbox]` and `gateway.on_damaged_file`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigOutbox {
    max_bytes: u64,
    commit_interval_ms: u64,
    /// `refuse` or `move_aside`.
    on_damaged_file: String,
}

/// `[api]` as in force, without the TLS files.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigApi {
    /// `address:port`.
    listen: String,
    /// Whether HTTPS is served.
    tls: bool,
    cors_origins: Vec<String>,
    max_body_bytes: usize,
    rate_limit_per_s: u32,
    rate_limit_burst: u32,
}

/// A `[[tokens]]` entry: its name and role, never its hash.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigToken {
    name: String,
    /// `viewer`, `operator`, `evaluator`, `admin`, `scrape` or `platform`.
    role: String,
}

/// `[alarms]`: whether alarms are raised, the scheme and the deadlines.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigAlarms {
    enabled: bool,
    /// `two_level` or `four_colour`.
    scheme: String,
    /// The response deadlines as `alarms.response_deadline_s` has them, seconds, level 1
    /// first.
    response_deadline_s: Vec<f64>,
}

/// A site whose readings are signed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigSignedSite {
    site: String,
    /// Unsigned readings are refused (not only flagged).
    required: bool,
}

/// `GET /api/v1/config`: the files in force with their hashes, the inventory's summary and
/// the settings that matter for trusting the figures. No password, key or token hash.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigView {
    /// The main file first, then each included one.
    files: Vec<ConfigFile>,
    /// The inventory counted, one line (as at start in the log).
    summary: String,
    mqtt: ConfigMqtt,
    /// Null without `[store]`.
    #[schema(required = true)]
    store: Option<ConfigStore>,
    outbox: ConfigOutbox,
    api: ConfigApi,
    tokens: Vec<ConfigToken>,
    indicators: Policy,
    alarms: ConfigAlarms,
    signed_sites: Vec<ConfigSignedSite>,
}

/// Added, changed and removed units of one kind (`core::live::Tally`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tally {
    added: usize,
    changed: usize,
    removed: usize,
}

/// What a reload did to the inventory (`core::live::InventoryTally`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InventoryTally {
    sites: Tally,
    enterprises: Tally,
    zones: Tally,
    systems: Tally,
    devices: Tally,
}

/// A reload applied (`api::command::ReloadReport`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReloadReport {
    /// When the change took effect (RFC 3339, the gateway's clock).
    at: String,
    at_ms: i64,
    /// The files read, the main file first.
    files: Vec<String>,
    inventory: InventoryTally,
    /// What differs from the running configuration and waits for a restart.
    needs_restart: Vec<String>,
}

/// `POST /api/v1/config/reload`, 200.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReloadApplied {
    /// Always true.
    applied: bool,
    reload: ReloadReport,
}

/// A problem that refused a reload, located as at start.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReloadProblem {
    file: String,
    key: String,
    message: String,
}

/// `{code, message}` inside an answer that is not only an error.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerError {
    code: String,
    message: String,
}

/// `POST /api/v1/config/reload`, 422: nothing changed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReloadRefused {
    /// Always false.
    applied: bool,
    /// `invalid_config`, with the number of problems.
    error: AnswerError,
    problems: Vec<ReloadProblem>,
}

/// An element of a push refused, or the whole request (`element` null).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushRefusal {
    /// The element's index in the batch; null for the request as a whole.
    #[schema(required = true)]
    element: Option<usize>,
    /// A rejection reason's code, as `GET /api/v1/rejections` counts them.
    reason: String,
    detail: String,
}

/// The answer to an HTTP push (200, 207, 422, 400 or 413): how many readings were stored and
/// what was refused; with `error` when the request was refused whole (400, 413).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushAnswer {
    accepted: usize,
    refused: Vec<PushRefusal>,
    /// Only when the request was refused whole: its reason's code and detail.
    error: Option<AnswerError>,
}

/// The error alone, closed: what a push refused before reading it answers (a body over
/// `ingest.max_body_bytes`, one that could not be read).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushError {
    error: AnswerError,
}

/// A push refused whole (400, 413): the push answer with its `error` when the request was
/// read and refused, or the error alone when it could not be read (`accepted` tells them
/// apart).
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PushRefusedWhole {
    Answer(PushAnswer),
    Error(PushError),
}

/// `json` reads into `Shape`, unknown fields refused; the panic names both (for the tests
/// of the modules whose answers these shapes describe).
#[cfg(test)]
pub(super) fn must_fit<Shape: serde::de::DeserializeOwned>(json: &serde_json::Value) {
    if let Err(e) = serde_json::from_value::<Shape>(json.clone()) {
        panic!(
            "{json} does not fit {}: {e}",
            std::any::type_name::<Shape>()
        );
    }
}

/// An answer's status and JSON body.
#[cfg(test)]
pub(super) async fn answered(r: axum::response::Response) -> (u16, serde_json::Value) {
    let status = r.status().as_u16();
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::alarms::view::{AlarmView, EventView};
    use serde::de::DeserializeOwned;

    /// `value` serialized reads back into `Shape`, unknown fields refused.
    fn fits<Shape: DeserializeOwned>(value: impl serde::Serialize) {
        let json = serde_json::to_value(value).unwrap();
        if let Err(e) = serde_json::from_value::<Shape>(json.clone()) {
            panic!(
                "{json} does not fit {}: {e}",
                std::any::type_name::<Shape>()
            );
        }
    }

    fn alarm(full: bool) -> AlarmView {
        let s = |v: &str| full.then(|| v.to_string());
        AlarmView {
            id: 7,
            site: "p1".into(),
            device: "g1".into(),
            kind: "gas_combustible".into(),
            alarm_type: "value".into(),
            channel: s("lel"),
            scheme: "two_level".into(),
            level: 1,
            level_name: "一级".into(),
            state: "active_acked".into(),
            raised_ms: 1,
            raised_at: "t".into(),
            deadline_ms: 2,
            deadline_at: "t".into(),
            value: full.then_some(25.0),
            peak: full.then_some(30.0),
            acknowledged_ms: full.then_some(3),
            acknowledged_at: s("t"),
            acknowledged_by: s("desk"),
            note: s("vented"),
            acknowledged_via: s("http"),
            cleared_ms: full.then_some(4),
            cleared_at: s("t"),
            response_s: full.then_some(0.002),
            outcome: "responded".into(),
            events: match full {
                false => vec![],
                true => vec![EventView {
                    at_ms: 1,
                    at: "t".into(),
                    event: "raised".into(),
                    level: 1,
                    value: Some(25.0),
                    by: s("desk"),
                    note: s("n"),
                    via: s("http"),
                }],
            },
        }
    }

    #[test]
    fn each_shape_reads_what_the_core_serializes() {
        let counts = crate::core::stats::Counts::default();
        fits::<Counts>(counts);
        fits::<Rate>(crate::core::stats::Rate::new(1, 2));
        fits::<Rate>(crate::core::stats::Rate::new(0, 0));
        fits::<AlarmCounts>(crate::core::snapshot::AlarmCounts::default());
        let view = crate::core::cluster::ClusterView {
            owned: vec![1],
            leases: vec![None, Some("gw-1".into())],
            last_error: Some("e".into()),
            ..Default::default()
        };
        fits::<ClusterAnswer>(serde_json::json!({"enabled": true, "cluster": view}));
        fits::<ClusterAnswer>(serde_json::json!({"enabled": false, "cluster": null}));
        fits::<Shortfall>(crate::report::Shortfall {
            unit: "unit_ms",
            total: 5,
            reasons: 1,
        });
        fits::<Finding>(crate::report::findings::FindingRow {
            site: "m1".into(),
            source: "mine_files".into(),
            unit: "T001".into(),
            check: "alarm_threshold",
            declared: Some(1.5),
            limit: "1.0".into(),
            basis: "AQ 1029",
            text: "t".into(),
        });
        for r in crate::report::tests::sample_reasons() {
            fits::<ReportReason>(r);
        }
        let reason = crate::model::Reason::ALL[0];
        fits::<Rejected>(serde_json::json!({
            "at": "t", "reason": reason, "topic": "t", "element": 3, "detail": "d"
        }));
        let m = crate::sources::modbus::metrics::ModbusMetrics::register(&Default::default());
        let key = "tcp://127.0.0.1:1";
        let d = crate::sources::modbus::DeviceStatus::new(&m, "p1", "m1", key, 1, 500);
        fits::<ModbusPolling>(d.to_json());
        let mut e = crate::sources::modbus::EndpointStatus::new(&m, key, "tcp");
        e.devices.push(std::sync::Arc::new(d));
        fits::<Endpoint>(e.to_json());
        use crate::sources::mine_files::status as mine;
        let station = mine::StationView {
            code: "F003".into(),
            location: Some("主井".into()),
            run: "normal",
            power: "mains",
            data_ms: 1,
        };
        let file = mine::LastFile {
            name: "150621011038_CDSS_20260101000000.txt".into(),
            data_ms: 1,
            received_ms: 2,
            lag_ms: 1,
        };
        fits::<Mine>(mine::MineView {
            mine_code: "150621011038".into(),
            last_files: [("CDSS", file)].into(),
            files_refused: [("bad_name", 1)].into(),
            substations: vec![station.clone()],
            base_stations: vec![station],
            people_underground: Some(3),
            ..Default::default()
        });
        fits::<Disk>(crate::telemetry::DiskSnapshot::default());
        fits::<StoreLink>(serde_json::json!({
            "health": crate::telemetry::StoreHealth::Failing, "last_error": "refused"
        }));
        fits::<Policy>(crate::core::config::indicators::Policy::default());
        let share = crate::core::config::indicators::Quorum::Fraction(0.5);
        fits::<Quorum>(share);
        let d = rust_decimal::Decimal::new(955, 1);
        fits::<Target>(serde_json::json!({
            "comparator": crate::core::config::indicators::Comparator::AtLeast,
            "value": d,
            "label": "联网在线率",
        }));
        let a = crate::core::indicators::targets::assess(
            d,
            d,
            crate::core::config::indicators::Comparator::AtLeast,
            d,
        );
        fits::<Indicator>(serde_json::json!({
            "id": "online_rate", "qualifier": null, "unit": "ratio", "value": 0.5,
            "display": "50%", "numerator": 1.0, "denominator": 2.0,
            "exact": {"num": 1, "den": 2}, "target": null,
            "completion_pct": a.completion_pct, "deviation_pct": a.deviation_pct,
        }));
        for full in [false, true] {
            fits::<Alarm>(alarm(full));
            fits::<AlarmList>(serde_json::json!({"count": 1, "alarms": [alarm(full)]}));
        }
    }

    #[test]
    fn a_field_the_shape_does_not_name_is_refused() {
        let mut v = serde_json::to_value(crate::core::stats::Counts::default()).unwrap();
        v["new_field"] = 1.into();
        assert!(serde_json::from_value::<Counts>(v).is_err());
    }
}
