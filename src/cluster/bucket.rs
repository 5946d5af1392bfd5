//! The lease bucket on NATS JetStream: one key per partition (`lease.<p>`) and one per live
//! instance (`member.<id>`), both holding `instance boot` and expiring `lease_ttl_s` after
//! their last write (the bucket's `max_age`).

use super::config::ClusterSettings;
use super::error::ClusterError;
use crate::core::cluster::{Holder, Lease, Step};
use async_nats::jetstream::{self, kv, stream};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::time::Duration;

/// The bucket and how to reach it.
pub struct Bucket {
    kv: kv::Store,
    partitions: u32,
}

/// What a write came to.
#[derive(Debug)]
pub enum Written {
    /// Accepted; the lease is now at this revision.
    Held(u64),
    /// Refused: the lease is someone else's or already gone (compare-and-swap lost).
    Refused,
    /// Deleted (a release).
    Released,
}

/// Connect to NATS (retrying in the background until a node answers).
pub async fn connect(s: &ClusterSettings) -> Result<async_nats::Client, ClusterError> {
    async_nats::ConnectOptions::new()
        .name(format!("safegate {}", s.instance_id))
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        // A frozen node is noticed after about 3 missed pings; the default (60 s) is
        // longer than a lease.
        .ping_interval(Duration::from_secs(2))
        .max_reconnects(None)
        .connect(s.nats_urls.as_slice())
        .await
        .map_err(|e| ClusterError::Connect(e.to_string()))
}

impl Bucket {
    /// Bind to the bucket, creating its stream when missing. The stream is created directly:
    /// async-nats's `create_key_value` asks for account fields nats-server 2.9 does not send
    /// (docs/research/nats.md).
    pub async fn open(
        client: async_nats::Client,
        s: &ClusterSettings,
    ) -> Result<Bucket, ClusterError> {
        let timeout = Duration::from_secs(s.renew_every_s.clamp(1, 5));
        let js = jetstream::context::ContextBuilder::new()
            .timeout(timeout)
            .build(client);
        let config = stream::Config {
            name: format!("KV_{}", s.bucket),
            description: Some("safegate cluster: partition leases and members".into()),
            subjects: vec![format!("$KV.{}.>", s.bucket)],
            max_messages_per_subject: 1,
            max_age: Duration::from_secs(s.lease_ttl_s),
            num_replicas: s.replicas,
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        };
        let bucket_error = |e: String| ClusterError::Bucket {
            bucket: s.bucket.clone(),
            error: e,
        };
        js.get_or_create_stream(config)
            .await
            .map_err(|e| bucket_error(e.to_string()))?;
        let kv = (js.get_key_value(&s.bucket).await).map_err(|e| bucket_error(e.to_string()))?;
        Ok(Bucket {
            kv,
            partitions: s.partitions,
        })
    }

    /// Say this instance is alive.
    pub async fn heartbeat(&self, me: &Holder) -> Result<(), ClusterError> {
        let key = format!("member.{}", me.instance);
        (self.kv.put(key, me.encode().into()).await)
            .map(|_| ())
            .map_err(|e| ClusterError::Request(e.to_string()))
    }

    /// The live instances, sorted.
    pub async fn members(&self) -> Result<Vec<String>, ClusterError> {
        let request = |e: String| ClusterError::Request(e);
        let mut keys = self.kv.keys().await.map_err(|e| request(e.to_string()))?;
        let mut live = Vec::new();
        while let Some(k) = keys.next().await {
            let k = k.map_err(|e| request(e.to_string()))?;
            if let Some(id) = k.strip_prefix("member.") {
                live.push(id.to_string());
            }
        }
        live.sort();
        Ok(live)
    }

    /// Every partition's lease as it is now (deleted ones are absent).
    pub async fn leases(&self) -> Result<BTreeMap<u32, Lease>, ClusterError> {
        let mut out = BTreeMap::new();
        for p in 0..self.partitions {
            let entry = (self.kv.entry(format!("lease.{p}")).await)
                .map_err(|e| ClusterError::Request(e.to_string()))?;
            if let Some(e) = entry.filter(|e| e.operation == kv::Operation::Put) {
                let holder = Holder::decode(&e.value);
                out.insert(
                    p,
                    Lease {
                        holder,
                        revision: e.revision,
                    },
                );
            }
        }
        Ok(out)
    }

    /// Make one write of the plan.
    pub async fn write(&self, step: &Step, me: &Holder) -> Result<Written, ClusterError> {
        let request = |e: String| ClusterError::Request(e);
        let value = || bytes::Bytes::from(me.encode());
        match *step {
            Step::Acquire(p) => match self.kv.create(format!("lease.{p}"), value()).await {
                Ok(rev) => Ok(Written::Held(rev)),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(Written::Refused),
                Err(e) => Err(request(e.to_string())),
            },
            Step::Renew {
                partition,
                revision,
            } => {
                let key = format!("lease.{partition}");
                match self.kv.update(key, value(), revision).await {
                    Ok(rev) => Ok(Written::Held(rev)),
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                        Ok(Written::Refused)
                    }
                    Err(e) => Err(request(e.to_string())),
                }
            }
            Step::Release {
                partition,
                revision,
            } => {
                let key = format!("lease.{partition}");
                // A refused delete means the lease moved on already: nothing to give back.
                match self.kv.delete_expect_revision(key, Some(revision)).await {
                    Ok(()) => Ok(Written::Released),
                    Err(_) => Ok(Written::Refused),
                }
            }
        }
    }

    /// Take this instance off the member list (orderly shutdown).
    pub async fn leave(&self, me: &Holder) {
        let _ = self.kv.delete(format!("member.{}", me.instance)).await;
    }
}
