//! Simulators shared by the `park-sim`, `loadgen`, `modbus-sim` and `mine-sim` binaries and by
//! `safegate demo`.

pub mod fleet;
pub mod loadgen;
pub mod mine;
pub mod mine_demo;
pub mod modbus_sim;
pub mod video;
