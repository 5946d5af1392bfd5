//! The readings stream: ingress instances publish each accepted event to its site's
//! partition (`sg.readings.<partition>`) and a partition's owner consumes it. A publish
//! counts only once JetStream acknowledged it (stored on a quorum of nodes): only then may
//! the MQTT message be acknowledged. The message id makes a redelivered event a duplicate
//! JetStream keeps once.

use super::config::ClusterSettings;
use super::error::ClusterError;
use crate::core::cluster::envelope::Envelope;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, stream};
use futures::StreamExt;
use std::time::Duration;
use tokio::time::Instant;

/// The stream's name and subjects.
pub const STREAM: &str = "SG_READINGS";

fn subject(partition: u32) -> String {
    format!("sg.readings.{partition}")
}

/// A publish that went through: the stream sequence, and whether it was a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub sequence: u64,
    pub duplicate: bool,
}

/// Room left under NATS's `max_payload` for a message's headers (its message id).
const HEADROOM: usize = 1_024;

#[derive(Clone)]
pub struct Readings {
    js: jetstream::Context,
    stream: stream::Stream,
}

impl Readings {
    /// Bind to the stream, creating it when missing: `replicas` copies, message ids
    /// remembered for two minutes (a redelivery comes within that).
    pub async fn open(
        client: async_nats::Client,
        s: &ClusterSettings,
    ) -> Result<Readings, ClusterError> {
        let js = jetstream::new(client);
        let config = stream::Config {
            name: STREAM.into(),
            description: Some("safegate cluster: accepted readings, by partition".into()),
            subjects: vec!["sg.readings.*".into()],
            num_replicas: s.replicas,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            max_age: Duration::from_secs(7 * 86_400),
            ..Default::default()
        };
        let stream = (js.get_or_create_stream(config).await).map_err(|e| ClusterError::Bucket {
            bucket: STREAM.into(),
            error: e.to_string(),
        })?;
        Ok(Readings { js, stream })
    }

    /// When the stream was created (ns since the epoch): a stream deleted and created anew
    /// numbers its messages from 1 again, so a checkpoint names the stream it is of.
    pub fn created_ns(&mut self) -> i64 {
        self.stream.cached_info().created.unix_timestamp_nanos() as i64
    }

    /// Publish one event to its partition and wait for JetStream's acknowledgement,
    /// retrying with the same message id while the stream has no leader (an election after
    /// a node died answers "no stream") or the answer times out, until `within` has passed.
    pub async fn publish(
        &self,
        partition: u32,
        env: &Envelope,
        within: Duration,
    ) -> Result<Published, ClusterError> {
        let deadline = Instant::now() + within;
        let (payload, id) = (bytes::Bytes::from(env.to_json()), env.msg_id());
        // The client would refuse it on every try: say so once, as a refusal.
        let limit = self.js.client().server_info().max_payload;
        if limit > 0 && payload.len() + HEADROOM > limit {
            return Err(ClusterError::TooLarge {
                what: format!("the envelope of {:?}", env.topic),
                bytes: payload.len(),
                limit,
            });
        }
        let mut wait = Duration::from_millis(50);
        loop {
            let msg = PublishMessage::build()
                .payload(payload.clone())
                .message_id(&id);
            let ack = match self.js.send_publish(subject(partition), msg).await {
                Ok(future) => future.await,
                Err(e) => Err(e),
            };
            let e = match ack {
                Ok(a) => {
                    return Ok(Published {
                        sequence: a.sequence,
                        duplicate: a.duplicate,
                    })
                }
                Err(e) => e,
            };
            let retry = matches!(
                e.kind(),
                PublishErrorKind::StreamNotFound | PublishErrorKind::TimedOut
            );
            if !retry || Instant::now() + wait > deadline {
                return Err(ClusterError::Request(format!(
                    "publish to partition {partition}: {e}"
                )));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(1));
        }
    }

    /// The durable consumer of one partition (created when missing): everything from the
    /// start of the stream, each message acknowledged explicitly once its effects are kept.
    /// Retried until `within` has passed: right after a node died the cluster may still be
    /// electing the leader that answers (up to about 10 s on nats-server 2.9).
    pub async fn consumer(
        &self,
        partition: u32,
        within: Duration,
    ) -> Result<Partition, ClusterError> {
        let deadline = Instant::now() + within;
        loop {
            match self.try_consumer(partition).await {
                Ok(c) => return Ok(c),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    async fn try_consumer(&self, partition: u32) -> Result<Partition, ClusterError> {
        let name = format!("part-{partition}");
        let config = pull::Config {
            durable_name: Some(name.clone()),
            filter_subject: subject(partition),
            // Each message acknowledged on its own. With `All`, acknowledging a batch's last
            // message acknowledges every earlier one the consumer delivered, those a dead
            // owner had taken and not committed too: they would never come again.
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 10_000,
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        };
        let consumer = (self.stream.get_or_create_consumer(&name, config).await)
            .map_err(|e| ClusterError::Request(format!("consumer {name}: {e}")))?;
        Ok(Partition { consumer })
    }
}

/// The whole stream from `start` on, in order: (stream sequence, payload). An ordered
/// consumer: no acknowledgements, recreated by the client on a gap; the caller starts again
/// after the sequence it last had when the item stream ends.
pub type Followed = futures::stream::BoxStream<'static, Result<(u64, bytes::Bytes), ClusterError>>;

impl Readings {
    pub async fn follow(&self, start: u64) -> Result<Followed, ClusterError> {
        let config = pull::OrderedConfig {
            filter_subject: "sg.readings.*".into(),
            deliver_policy: match start {
                0 | 1 => DeliverPolicy::All,
                s => DeliverPolicy::ByStartSequence { start_sequence: s },
            },
            ..Default::default()
        };
        let request = |e: String| ClusterError::Request(format!("follow the readings stream: {e}"));
        let consumer =
            (self.stream.create_consumer(config).await).map_err(|e| request(e.to_string()))?;
        let messages = (consumer.messages().await).map_err(|e| request(e.to_string()))?;
        Ok(messages
            .map(move |m| {
                let m = m.map_err(|e| request(e.to_string()))?;
                let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
                Ok((seq, m.message.payload))
            })
            .boxed())
    }
}

/// One partition's consumer.
pub struct Partition {
    consumer: jetstream::consumer::Consumer<pull::Config>,
}

/// A message taken from a partition: its event, and the handle to acknowledge it by.
pub struct Taken {
    /// `Err` for a message this gateway cannot read (acknowledged anyway, and counted by
    /// the caller: holding it would block the partition).
    pub envelope: Result<Envelope, crate::core::cluster::envelope::EnvelopeError>,
    pub stream_sequence: u64,
    message: jetstream::Message,
}

impl Taken {
    /// Acknowledge, waiting for the server's confirmation: after this the message is not
    /// delivered again.
    pub async fn ack(&self) -> Result<(), ClusterError> {
        (self.message.double_ack().await).map_err(|e| ClusterError::Request(e.to_string()))
    }
}

/// Acknowledge a batch: every message (sent in order on one connection), waiting for the
/// server's confirmation of the last, so that when this returns none comes again.
pub async fn ack_batch(batch: &[Taken]) -> Result<(), ClusterError> {
    let request = |e: String| ClusterError::Request(e);
    let Some((last, rest)) = batch.split_last() else {
        return Ok(());
    };
    for t in rest {
        t.message.ack().await.map_err(|e| request(e.to_string()))?;
    }
    last.ack().await
}

impl Partition {
    /// Up to `max` messages, waiting at most `wait` for the first. A leader change ends a
    /// batch early (an error item): the next fetch goes on.
    pub async fn fetch(&self, max: usize, wait: Duration) -> Result<Vec<Taken>, ClusterError> {
        let request = |e: String| ClusterError::Request(e);
        let mut batch = (self
            .consumer
            .fetch()
            .max_messages(max)
            .expires(wait)
            .messages()
            .await)
            .map_err(|e| request(e.to_string()))?;
        let mut out = Vec::new();
        while let Some(m) = batch.next().await {
            let Ok(message) = m else { break };
            let stream_sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
            let envelope = Envelope::from_json(&message.payload);
            out.push(Taken {
                envelope,
                stream_sequence,
                message,
            });
        }
        Ok(out)
    }
}
