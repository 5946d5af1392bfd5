//! The integration tests, one binary: the crate is linked once instead of once per file, and
//! the files' tests run side by side instead of one file after another. A file is a module;
//! the harness (real Mosquitto, VictoriaMetrics, the gateway) is in `common`.

mod common;

mod alarms;
mod api;
mod api_auth;
mod check_config;
mod cluster;
mod cluster_data;
mod cluster_files;
mod cluster_modbus;
mod cluster_resume;
mod console;
mod console_views;
mod demo;
mod device_history;
mod durability;
mod fuzz_inputs;
mod http_push;
mod indicators;
mod limits;
mod live_inventory;
mod mappings;
mod mine_files;
mod mine_files_crash;
mod modbus;
mod mqtt_pipeline;
mod mqtt_tls;
mod overview;
mod prometheus;
mod restart;
mod schemathesis;
mod signing;
mod video_gateway;
mod video_inputs;
mod video_peer;
mod video_sipp;
