//! Simulators shared by the `park-sim` and `loadgen` binaries and by `safegate demo`.

pub mod fleet;
pub mod loadgen;
