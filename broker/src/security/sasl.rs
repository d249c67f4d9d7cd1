//! One connection's SASL state (KIP-43 SaslHandshake, KIP-152 SaslAuthenticate, KIP-368
//! re-authentication), with the PLAIN and SCRAM-SHA-256/512 mechanisms checked against the
//! [`CredentialStore`].
//!
//! The connection feeds it the handshake's mechanism and then each token (from a SaslAuthenticate
//! request, or a raw frame after SaslHandshake v0) and gets back the token to answer with and, at the
//! end, the authenticated principal or the reason it failed. A failed exchange closes the connection.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::credentials::CredentialStore;
use super::scram::{ScramError, ScramMechanism, ScramServer};

/// The mechanisms this broker can offer.
pub const MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mechanism {
    Plain,
    Scram(ScramMechanism),
}

impl Mechanism {
    fn parse(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("PLAIN") {
            Some(Self::Plain)
        } else {
            ScramMechanism::parse(name).map(Self::Scram)
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::Scram(m) => m.name(),
        }
    }
}

enum Exchange {
    /// No handshake yet (or the last exchange finished).
    Idle,
    /// A mechanism was chosen; the first token is next.
    Started(Mechanism),
    /// SCRAM's server-first was sent; client-final is next.
    Scram(Box<ScramServer>, String),
}

/// What one token led to.
pub enum Step {
    /// Send this token back and wait for the next one.
    Continue(Vec<u8>),
    /// Authenticated as `user`; send the (possibly empty) final token.
    Done { user: String, reply: Vec<u8> },
    /// Authentication failed: answer SASL_AUTHENTICATION_FAILED with this message and close.
    Failed { user: Option<String>, reason: String },
}

pub struct SaslSession {
    enabled: Vec<String>,
    exchange: Exchange,
    /// The authenticated principal (`User:name`), once there is one.
    principal: Option<String>,
    expires: Option<Instant>,
}

impl SaslSession {
    pub fn new(enabled: &[String]) -> Self {
        Self { enabled: enabled.to_vec(), exchange: Exchange::Idle, principal: None, expires: None }
    }

    pub fn enabled_mechanisms(&self) -> &[String] {
        &self.enabled
    }

    pub fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }

    /// Whether a handshake was made and its tokens are expected.
    pub fn in_exchange(&self) -> bool {
        !matches!(self.exchange, Exchange::Idle)
    }

    /// Authenticated and the session (KIP-368) has not run out.
    pub fn is_authenticated(&self, now: Instant) -> bool {
        self.principal.is_some() && self.expires.is_none_or(|at| now < at)
    }

    /// SaslHandshake: `Err` with the enabled list when the mechanism is not offered.
    pub fn handshake(&mut self, mechanism: &str) -> Result<(), ()> {
        let offered = self.enabled.iter().any(|m| m.eq_ignore_ascii_case(mechanism));
        match Mechanism::parse(mechanism) {
            Some(m) if offered => {
                self.exchange = Exchange::Started(m);
                Ok(())
            }
            _ => Err(()),
        }
    }

    /// The next token of the exchange. `lifetime` is `connections_max_reauth_ms` (0: none).
    pub fn step(&mut self, store: &CredentialStore, token: &[u8], lifetime_ms: i64) -> Step {
        let step = match std::mem::replace(&mut self.exchange, Exchange::Idle) {
            Exchange::Idle => {
                Step::Failed { user: None, reason: "SaslAuthenticate without a SaslHandshake first".into() }
            }
            Exchange::Started(Mechanism::Plain) => plain(store, token),
            Exchange::Started(Mechanism::Scram(m)) => match ScramServer::parse_client_first(token) {
                Err(e) => Step::Failed { user: None, reason: e.to_string() },
                Ok(first) => {
                    let user = first.username.clone();
                    match store.lookup(&user, m) {
                        None => Step::Failed { user: Some(user), reason: failed_message(Mechanism::Scram(m)) },
                        Some(credential) => {
                            let mut server = ScramServer::new(m);
                            match server.server_first(first, credential) {
                                Ok(reply) => {
                                    self.exchange = Exchange::Scram(Box::new(server), user);
                                    Step::Continue(reply)
                                }
                                Err(e) => Step::Failed { user: Some(user), reason: e.to_string() },
                            }
                        }
                    }
                }
            },
            Exchange::Scram(mut server, user) => match server.client_final(token) {
                Ok(reply) => Step::Done { user, reply },
                Err(ScramError::InvalidCredentials) => {
                    Step::Failed { user: Some(user), reason: failed_message(Mechanism::Scram(server.mechanism())) }
                }
                Err(e) => Step::Failed { user: Some(user), reason: e.to_string() },
            },
        };
        match step {
            Step::Done { user, reply } => {
                let principal = format!("User:{user}");
                if let Some(previous) = &self.principal {
                    if *previous != principal {
                        // KIP-368: re-authentication may not change who the connection is.
                        return Step::Failed {
                            user: Some(user),
                            reason: "re-authentication may not change the principal".into(),
                        };
                    }
                }
                self.principal = Some(principal);
                self.expires = (lifetime_ms > 0).then(|| Instant::now() + Duration::from_millis(lifetime_ms as u64));
                Step::Done { user, reply }
            }
            other => other,
        }
    }
}

fn failed_message(mechanism: Mechanism) -> String {
    // Kafka's wording, which clients show to their users.
    format!(
        "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
        mechanism.name()
    )
}

/// RFC 4616: `[authzid] NUL authcid NUL passwd`.
fn plain(store: &CredentialStore, token: &[u8]) -> Step {
    let mut parts = token.split(|b| *b == 0);
    let (Some(authzid), Some(user), Some(password), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Step::Failed { user: None, reason: "malformed PLAIN message".into() };
    };
    let Ok(user) = std::str::from_utf8(user) else {
        return Step::Failed { user: None, reason: "PLAIN user name is not UTF-8".into() };
    };
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return Step::Failed {
            user: Some(user.to_owned()),
            reason: "PLAIN authorization id differs from the user".into(),
        };
    }
    let verified = store.lookup_all(user).iter().any(|(m, credential)| credential.verify_password(*m, password));
    if verified {
        Step::Done { user: user.to_owned(), reply: Vec::new() }
    } else {
        Step::Failed { user: Some(user.to_owned()), reason: failed_message(Mechanism::Plain) }
    }
}

/// Logs failed authentications (wrong credentials, failed TLS handshakes, requests before
/// authentication) with the peer and the user, at most `PER_SECOND` a second; the rest are counted and
/// reported in one line with the next failure after that second, so a flood of bad clients cannot flood
/// the log.
pub struct FailureLog {
    window: Mutex<(Instant, u32, u32)>,
}

const PER_SECOND: u32 = 5;

impl Default for FailureLog {
    fn default() -> Self {
        Self { window: Mutex::new((Instant::now(), 0, 0)) }
    }
}

impl FailureLog {
    pub fn record(&self, peer: std::net::SocketAddr, listener: &str, user: Option<&str>, reason: &str) {
        let mut window = self.window.lock().expect("failure log lock poisoned");
        let now = Instant::now();
        if now.duration_since(window.0) >= Duration::from_secs(1) {
            if window.2 > 0 {
                tracing::warn!(suppressed = window.2, "more failed authentications in the last second (not logged)");
            }
            *window = (now, 0, 0);
        }
        if window.1 < PER_SECOND {
            window.1 += 1;
            tracing::warn!(%peer, %listener, user = %user.unwrap_or("-"), %reason, "authentication failed");
        } else {
            window.2 += 1;
        }
    }
}
