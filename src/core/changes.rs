//! What changed in the core since its last read model was built: which chunks of device
//! rows, and whether any alarm did. Kept by the core as it applies events, read by the
//! snapshot builder (`snapshot.rs`) so that unchanged parts are shared, not rebuilt.

use super::inventory::DeviceIdx;

/// Devices per chunk of rows: small enough that a few busy devices rebuild little, large
/// enough that the chunk list stays short (98 chunks at 100,000 devices).
pub const CHUNK: usize = 1024;

/// What changed since the core's last snapshot; kept by the core.
#[derive(Debug, Default)]
pub struct Changes {
    /// Per chunk of rows: a device in it changed.
    pub(super) chunks: Vec<bool>,
    /// An alarm was raised, cleared or acknowledged (every change of the open alarms' counts
    /// comes with an alarm change in the core's outputs).
    pub(super) alarms: bool,
    /// Snapshots built so far: a snapshot may serve as the base of the next one only if it
    /// is the last one built.
    pub(super) built: u64,
    /// Devices changed since the last checkpoint (cluster mode, `core::resume`), each once;
    /// kept only when `checkpoints` is on.
    saved: Vec<DeviceIdx>,
    saved_flag: Vec<bool>,
    pub(super) checkpoints: bool,
}

impl Changes {
    pub fn new(devices: usize) -> Changes {
        Changes {
            chunks: vec![true; devices.div_ceil(CHUNK)],
            alarms: true,
            built: 0,
            saved: Vec::new(),
            saved_flag: Vec::new(),
            checkpoints: false,
        }
    }

    /// The devices changed since the last call, each once.
    pub(super) fn take_saved(&mut self) -> Vec<DeviceIdx> {
        for d in &self.saved {
            self.saved_flag[*d as usize] = false;
        }
        std::mem::take(&mut self.saved)
    }

    pub fn touch(&mut self, d: DeviceIdx) {
        if let Some(c) = self.chunks.get_mut(d as usize / CHUNK) {
            *c = true;
        }
        if !self.checkpoints {
            return;
        }
        let i = d as usize;
        if self.saved_flag.len() <= i {
            self.saved_flag.resize(i + 1, false);
        }
        if !std::mem::replace(&mut self.saved_flag[i], true) {
            self.saved.push(d);
        }
    }
}
