//! Shared, lock-free status of the edges, read by the API and readiness checks.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

/// An upstream link (the MQTT connection; later Modbus endpoints).
#[derive(Debug, Default)]
pub struct LinkStatus {
    connected: AtomicBool,
    reconnects: AtomicU64,
    since_ms: AtomicI64,
    last_error: Mutex<Option<String>>,
    /// Woken when the link goes up.
    up: tokio::sync::Notify,
}

impl LinkStatus {
    pub fn set_connected(&self, now_ms: i64) {
        self.connected.store(true, Ordering::Relaxed);
        self.since_ms.store(now_ms, Ordering::Relaxed);
        self.up.notify_waiters();
    }
    /// Return once the link is up (at once if it is).
    pub async fn wait_connected(&self) {
        loop {
            // Registered before the check, so a change between the two is not missed.
            let up = self.up.notified();
            if self.connected() {
                return;
            }
            up.await;
        }
    }
    /// Returns true when this call is the one that took the link down.
    pub fn set_disconnected(&self, now_ms: i64, error: String) -> bool {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
        let was = self.connected.swap(false, Ordering::Relaxed);
        if was {
            self.since_ms.store(now_ms, Ordering::Relaxed);
        }
        was
    }
    pub fn count_reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }
    /// When the link last went up or down.
    pub fn since_ms(&self) -> i64 {
        self.since_ms.load(Ordering::Relaxed)
    }
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreHealth {
    /// No `[store]` configured.
    Disabled,
    /// Nothing written yet.
    Unknown,
    Ok,
    Failing,
}

#[derive(Debug)]
pub struct StoreStatus {
    health: AtomicU8,
    last_error: Mutex<Option<String>>,
}

impl StoreStatus {
    pub fn new(enabled: bool) -> StoreStatus {
        let h = if enabled {
            StoreHealth::Unknown
        } else {
            StoreHealth::Disabled
        };
        StoreStatus {
            health: AtomicU8::new(h as u8),
            last_error: Mutex::new(None),
        }
    }
    pub fn set(&self, h: StoreHealth, error: Option<String>) {
        self.health.store(h as u8, Ordering::Relaxed);
        if error.is_some() {
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
        }
    }
    pub fn health(&self) -> StoreHealth {
        match self.health.load(Ordering::Relaxed) {
            0 => StoreHealth::Disabled,
            1 => StoreHealth::Unknown,
            2 => StoreHealth::Ok,
            _ => StoreHealth::Failing,
        }
    }
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The outbox's backlog and budget, for `/readyz`, `/healthz` and the outbox endpoint.
#[derive(Debug, Default)]
pub struct OutboxStatus {
    enabled: AtomicBool,
    bytes: AtomicU64,
    points: AtomicU64,
    batches: AtomicU64,
    /// 0 when empty.
    oldest_ms: AtomicI64,
    max_bytes: AtomicU64,
    full: AtomicBool,
    dead_letters: AtomicU64,
    disk_measured: AtomicBool,
    disk_low: AtomicBool,
    disk_free: AtomicU64,
    disk_floor: AtomicU64,
    reserve_held: AtomicU64,
}

/// The disk of `data_dir` as the outbox last measured it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct DiskSnapshot {
    pub measured: bool,
    /// Below the free-space floor: MQTT acknowledgements held, Modbus polling paused.
    pub low: bool,
    pub free_bytes: u64,
    pub floor_bytes: u64,
    /// Bytes of the reserve file held now (0 once released on a full disk).
    pub reserve_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct OutboxSnapshot {
    pub enabled: bool,
    pub bytes: u64,
    pub max_bytes: u64,
    pub points: u64,
    pub batches: u64,
    pub oldest_ms: Option<i64>,
    /// At the budget: MQTT acknowledgements held, Modbus polling paused.
    pub full: bool,
    pub dead_letters: u64,
    pub disk: DiskSnapshot,
}

impl OutboxStatus {
    pub fn enable(&self, max_bytes: u64) {
        self.enabled.store(true, Ordering::Relaxed);
        self.max_bytes.store(max_bytes, Ordering::Relaxed);
    }
    pub fn set_backlog(&self, bytes: u64, points: u64, batches: u64, oldest_ms: Option<i64>) {
        self.bytes.store(bytes, Ordering::Relaxed);
        self.points.store(points, Ordering::Relaxed);
        self.batches.store(batches, Ordering::Relaxed);
        self.oldest_ms
            .store(oldest_ms.unwrap_or(0), Ordering::Relaxed);
    }
    pub fn set_full(&self, full: bool) {
        self.full.store(full, Ordering::Relaxed);
    }
    pub fn set_disk(&self, d: DiskSnapshot) {
        self.disk_measured.store(d.measured, Ordering::Relaxed);
        self.disk_low.store(d.low, Ordering::Relaxed);
        self.disk_free.store(d.free_bytes, Ordering::Relaxed);
        self.disk_floor.store(d.floor_bytes, Ordering::Relaxed);
        self.reserve_held.store(d.reserve_bytes, Ordering::Relaxed);
    }
    pub fn set_dead_letters(&self, n: u64) {
        self.dead_letters.store(n, Ordering::Relaxed);
    }
    pub fn snapshot(&self) -> OutboxSnapshot {
        let oldest = self.oldest_ms.load(Ordering::Relaxed);
        OutboxSnapshot {
            enabled: self.enabled.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            max_bytes: self.max_bytes.load(Ordering::Relaxed),
            points: self.points.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            oldest_ms: (oldest != 0).then_some(oldest),
            full: self.full.load(Ordering::Relaxed),
            dead_letters: self.dead_letters.load(Ordering::Relaxed),
            disk: DiskSnapshot {
                measured: self.disk_measured.load(Ordering::Relaxed),
                low: self.disk_low.load(Ordering::Relaxed),
                free_bytes: self.disk_free.load(Ordering::Relaxed),
                floor_bytes: self.disk_floor.load(Ordering::Relaxed),
                reserve_bytes: self.reserve_held.load(Ordering::Relaxed),
            },
        }
    }
}
