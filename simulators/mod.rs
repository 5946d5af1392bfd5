//! Simulators shared by the `park-sim`, `loadgen` and `modbus-sim` binaries and by
//! `safegate demo`.

pub mod fleet;
pub mod loadgen;
pub mod modbus_sim;
