//! Why the gateway did not start: each names what to fix (a file, a setting, an address).

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Broker(#[from] super::broker::BrokerError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Store(#[from] crate::sinks::store::StoreError),
    #[error(transparent)]
    Outbox(#[from] crate::sinks::outbox::OutboxError),
    #[error(transparent)]
    Mqtt(#[from] crate::sources::mqtt::MqttSourceError),
    #[error(transparent)]
    MineFiles(#[from] crate::sources::mine_files::MineFilesError),
    #[error(transparent)]
    Video(#[from] crate::sources::video::VideoError),
    #[error(transparent)]
    SigningKey(#[from] crate::sources::mqtt::signature::MissingKey),
    #[error("the API cannot listen on {0}: {1} (set api.listen to a free address)")]
    ApiBind(SocketAddr, std::io::Error),
    #[error("cannot open the audit log under {0}: {1}")]
    Audit(std::path::PathBuf, std::io::Error),
    #[error("api.tls_cert_file / tls_key_file ({0}): {1}")]
    ApiTls(String, std::io::Error),
    #[error("refusing to serve the API on {0} without [[tokens]]: anyone who can reach it could read the fleet and acknowledge alarms; add [[tokens]] (see docs/security.md) or listen on 127.0.0.1")]
    OpenApi(SocketAddr),
    #[error("{0} problem(s) in [[mappings]]; run `safegate check-config` for each")]
    Mappings(usize),
}
