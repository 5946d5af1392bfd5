//! Who may log in: a mine's code and its upload password, compared in constant time.

use super::Shared;
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use subtle::ConstantTimeEq;
use unftp_core::auth::{
    AuthenticationError, Authenticator, Credentials, Principal, UserDetail, UserDetailError,
    UserDetailProvider,
};

/// A refused login answers this late, and the attempts from one address are checked one at a
/// time: a guesser gets one try a second per address, however many `PASS` it pipelines or
/// sessions it opens.
const REFUSED_DELAY: Duration = Duration::from_millis(1000);

/// The logged-in mine: all a session knows of its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mine {
    pub code: String,
}

impl fmt::Display for Mine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code)
    }
}

impl UserDetail for Mine {}

/// Checks `mine code → password`. Holds only the passwords' SHA-256 digests, so the
/// comparison takes the same time whatever the lengths; an unknown code is compared with a
/// digest too, so it answers no faster than a wrong password.
pub struct MineLogins {
    digests: HashMap<String, [u8; 32]>,
    shared: Arc<Shared>,
    /// One lock per source address with an attempt under way (forgotten after it).
    in_turn: Mutex<HashMap<IpAddr, Arc<tokio::sync::Mutex<()>>>>,
}

impl fmt::Debug for MineLogins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MineLogins")
            .field("mines", &self.digests.len())
            .finish_non_exhaustive()
    }
}

fn digest(password: &str) -> [u8; 32] {
    Sha256::digest(password.as_bytes()).into()
}

impl MineLogins {
    pub fn new(logins: &HashMap<String, String>, shared: Arc<Shared>) -> MineLogins {
        MineLogins {
            digests: logins
                .iter()
                .map(|(code, pw)| (code.clone(), digest(pw)))
                .collect(),
            shared,
            in_turn: Mutex::new(HashMap::new()),
        }
    }

    fn turn_of(&self, ip: IpAddr) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.in_turn.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(ip).or_default().clone()
    }

    fn forget_turn(&self, ip: IpAddr, turn: Arc<tokio::sync::Mutex<()>>) {
        let mut m = self.in_turn.lock().unwrap_or_else(|p| p.into_inner());
        // The map's and ours: no other attempt from there is waiting.
        if Arc::strong_count(&turn) == 2 {
            m.remove(&ip);
        }
    }

    /// Whether `password` is `code`'s.
    pub fn check(&self, code: &str, password: &str) -> bool {
        let given = digest(password);
        match self.digests.get(code) {
            Some(expected) => bool::from(expected.ct_eq(&given)),
            None => {
                // The same work as for a known code, and a refusal.
                let _ = [0u8; 32].ct_eq(&given);
                false
            }
        }
    }
}

#[async_trait]
impl Authenticator for MineLogins {
    async fn authenticate(
        &self,
        username: &str,
        creds: &Credentials,
    ) -> Result<Principal, AuthenticationError> {
        let password = creds.password.as_deref().unwrap_or("");
        let turn = self.turn_of(creds.source_ip);
        let result = {
            let _in_turn = turn.lock().await;
            self.attempt(username, password, creds).await
        };
        self.forget_turn(creds.source_ip, turn);
        result
    }

    fn name(&self) -> &str {
        "safegate mine logins"
    }
}

impl MineLogins {
    async fn attempt(
        &self,
        username: &str,
        password: &str,
        creds: &Credentials,
    ) -> Result<Principal, AuthenticationError> {
        if self.check(username, password) {
            return Ok(Principal {
                username: username.to_string(),
            });
        }
        self.shared.metrics.logins_refused.inc();
        // Neither the password nor an unknown user name is logged: a user name that is no
        // mine's code is often a password typed in the wrong field.
        let known = self.digests.contains_key(username);
        if let Some(suppressed) = self.shared.warn.allow("login", self.shared.clock.now_ms()) {
            if known {
                tracing::warn!(
                    mine = username,
                    from = %creds.source_ip,
                    suppressed,
                    "mine files FTP: a login with a wrong password was refused"
                );
            } else {
                tracing::warn!(
                    from = %creds.source_ip,
                    suppressed,
                    "mine files FTP: a login with an unknown mine code was refused"
                );
            }
        }
        tokio::time::sleep(REFUSED_DELAY).await;
        Err(if known {
            AuthenticationError::BadPassword
        } else {
            AuthenticationError::BadUser
        })
    }
}

/// A logged-in principal is its mine.
#[derive(Debug)]
pub struct MineDetails;

#[async_trait]
impl UserDetailProvider for MineDetails {
    type User = Mine;

    async fn provide_user_detail(&self, principal: &Principal) -> Result<Mine, UserDetailError> {
        Ok(Mine {
            code: principal.username.clone(),
        })
    }
}
