//! What can go wrong between a gateway and NATS, worded for the operator.

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot connect to NATS ({0}); check cluster.nats_urls and that nats-server runs with JetStream")]
    Connect(String),
    #[error("cannot open the lease bucket {bucket:?} ({error}); JetStream must be enabled on every node, with a quorum up")]
    Bucket { bucket: String, error: String },
    #[error("lease bucket request failed ({0}); leases are kept until their safe time runs out")]
    Request(String),
    #[error("lease round took longer than {0} s; NATS is slow or a node is frozen")]
    Slow(u64),
    /// Refused for good: sending it again will not help.
    #[error("{what} is {bytes} bytes, over the {limit} bytes a NATS message may carry (max_payload on the NATS servers)")]
    TooLarge {
        what: String,
        bytes: usize,
        limit: usize,
    },
}
