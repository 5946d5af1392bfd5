//! What the API asks of the core task. The API sends; the runtime's core task answers on
//! `reply`, so the API never reaches into the core's state to change it.

use crate::core::alarms::{AckError, AckReply, AlarmId};

/// What the API asks of the core task; the answer comes back on `reply`.
#[derive(Debug)]
pub enum Command {
    Ack {
        id: AlarmId,
        /// When the acknowledger is bound to a site.
        site: Option<String>,
        by: String,
        note: String,
        /// `http`, or `http:{token name}` when the API has tokens.
        via: String,
        reply: tokio::sync::oneshot::Sender<Result<AckReply, AckError>>,
    },
}
