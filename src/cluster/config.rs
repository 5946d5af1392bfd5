//! `[cluster]`: several gateways sharing the work over NATS JetStream. Without the section the
//! gateway runs alone, as it always has. A key left out takes its value from `Default`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// The NATS servers (all nodes of the cluster, so a lost node is not a lost link), like
    /// `nats://127.0.0.1:4222`. Required.
    pub nats_urls: Vec<String>,
    /// This instance's name: unique among the instances, stable across restarts (letters,
    /// digits, `-` and `_`, at most 64). Required.
    pub instance_id: String,
    /// Partitions the sites hash onto. Fixed for the life of a deployment: changing it moves
    /// sites between partitions. 1 to 1024. Default 16.
    pub partitions: u32,
    /// How long a partition's lease outlives its owner's last renewal: an instance that dies
    /// gives up its partitions this long after. Longer than a NATS leader election (up to
    /// about 10 s on nats-server 2.9), or a healthy owner loses its lease during one.
    /// Default 20 s.
    pub lease_ttl_s: u64,
    /// Leases and membership are renewed this often; an owner also stops working on a
    /// partition this long before its lease could expire. At most a third of `lease_ttl_s`.
    /// Default 3 s.
    pub renew_every_s: u64,
    /// The JetStream key-value bucket of the leases and members (`KV_<bucket>` stream).
    /// Default `safegate`.
    pub bucket: String,
    /// Copies JetStream keeps of the bucket: 3 on a 3-node cluster, so one node may go.
    /// 1 to 5. Default 3.
    pub replicas: usize,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            nats_urls: Vec::new(),
            instance_id: String::new(),
            partitions: 16,
            lease_ttl_s: 20,
            renew_every_s: 3,
            bucket: "safegate".into(),
            replicas: 3,
        }
    }
}

/// A name NATS accepts in a key or stream name, and a reader accepts in a log line.
fn plain_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl ClusterSettings {
    pub fn problems(&self, err: &mut dyn FnMut(&str, String)) {
        if self.nats_urls.is_empty() {
            err(
                "cluster.nats_urls",
                "is required: the NATS servers, like [\"nats://127.0.0.1:4222\"]".into(),
            );
        }
        for u in &self.nats_urls {
            match url::Url::parse(u) {
                Ok(p) if matches!(p.scheme(), "nats" | "tls") && p.port().is_some() => {}
                _ => err(
                    "cluster.nats_urls",
                    format!("{u:?} must look like nats://host:port"),
                ),
            }
        }
        if !plain_name(&self.instance_id) {
            err(
                "cluster.instance_id",
                format!(
                    "{:?} must be 1 to 64 letters, digits, '-' or '_', unique per instance",
                    self.instance_id
                ),
            );
        }
        if !(1..=1024).contains(&self.partitions) {
            err(
                "cluster.partitions",
                format!("{} is not between 1 and 1024", self.partitions),
            );
        }
        if self.renew_every_s == 0 || self.lease_ttl_s < 3 * self.renew_every_s {
            err(
                "cluster.lease_ttl_s",
                format!(
                    "{} s must be at least 3 × renew_every_s ({} s, positive): a lease must survive two late renewals",
                    self.lease_ttl_s, self.renew_every_s
                ),
            );
        }
        if !plain_name(&self.bucket) {
            err(
                "cluster.bucket",
                format!(
                    "{:?} must be 1 to 64 letters, digits, '-' or '_'",
                    self.bucket
                ),
            );
        }
        if !(1..=5).contains(&self.replicas) {
            err(
                "cluster.replicas",
                format!("{} is not between 1 and 5", self.replicas),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ClusterSettings;

    fn problems(s: &ClusterSettings) -> Vec<(String, String)> {
        let mut out = Vec::new();
        s.problems(&mut |k, m| out.push((k.to_string(), m)));
        out
    }

    #[test]
    fn a_complete_section_passes_and_each_mistake_is_named() {
        let ok = ClusterSettings {
            nats_urls: vec!["nats://127.0.0.1:4222".into()],
            instance_id: "gw-1".into(),
            ..Default::default()
        };
        assert!(problems(&ok).is_empty(), "{:?}", problems(&ok));
        let bad = ClusterSettings {
            nats_urls: vec!["127.0.0.1:4222".into()],
            instance_id: "gw 1".into(),
            partitions: 0,
            lease_ttl_s: 5,
            renew_every_s: 3,
            bucket: "a.b".into(),
            replicas: 7,
        };
        let keys: Vec<String> = problems(&bad).into_iter().map(|(k, _)| k).collect();
        let want = [
            "cluster.nats_urls",
            "cluster.instance_id",
            "cluster.partitions",
            "cluster.lease_ttl_s",
            "cluster.bucket",
            "cluster.replicas",
        ];
        assert_eq!(keys, want);
        assert!(problems(&ClusterSettings::default())[0]
            .1
            .contains("is required"));
    }
}
