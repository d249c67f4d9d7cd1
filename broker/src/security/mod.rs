//! Security: listeners with Kafka's security protocols, TLS (rustls), SASL (PLAIN, SCRAM-SHA-256/512)
//! and the SCRAM credentials store.
//!
//! - `listener`: `NAME://ip:port`, `listener_security_protocol_map`, `advertised_listeners`.
//! - `tls`: the PEM files, reload on change, the principal of a client certificate.
//! - `scram`: RFC 5802 server side and the salted credential form.
//! - `credentials`: `credentials.json` under `log_dirs` (`logpipe users`).
//! - `sasl`: one connection's SASL exchange and re-authentication.
//! - `acl`: ACLs in Kafka's model and the authorizer.

pub mod acl;
pub mod credentials;
mod listener;
pub mod sasl;
pub mod scram;
pub mod tls;

pub use listener::{resolve as resolve_listeners, ListenerSpec, SecurityProtocol};

use crate::config::BrokerConfig;
use crate::error::{Error, Result};

/// The security settings' checks, run with the rest of the config's: listeners resolve, and an SSL or
/// SASL_SSL listener has readable certificate and key files.
pub fn validate(config: &BrokerConfig) -> Result<()> {
    let specs = listener::resolve(config)?;
    if specs.iter().any(|s| s.protocol.uses_tls()) {
        tls::TlsContext::load(config)?;
    } else {
        tls::ClientAuth::parse(&config.ssl_client_auth)?;
    }
    for mechanism in &config.sasl_enabled_mechanisms {
        if !sasl::MECHANISMS.iter().any(|m| m.eq_ignore_ascii_case(mechanism)) {
            return Err(Error::Config(format!(
                "broker.sasl_enabled_mechanisms: `{mechanism}` is not one of {}",
                sasl::MECHANISMS.join(", ")
            )));
        }
    }
    if config.sasl_enabled_mechanisms.is_empty() && specs.iter().any(|s| s.protocol.uses_sasl()) {
        return Err(Error::Config(
            "broker.sasl_enabled_mechanisms: a SASL listener needs at least one mechanism".into(),
        ));
    }
    if let Some(bad) = config.super_users.iter().find(|p| !p.starts_with("User:") || p.len() == 5) {
        return Err(Error::Config(format!("broker.super_users: `{bad}` is not a principal such as User:admin")));
    }
    acl_bindings(config)?;
    if config.connections_max_reauth_ms < 0 {
        return Err(Error::Config("broker.connections_max_reauth_ms: must be 0 (off) or more".into()));
    }
    Ok(())
}

/// The `[[broker.acls]]` entries as bindings, or the first bad entry's error.
pub fn acl_bindings(config: &BrokerConfig) -> Result<Vec<acl::AclBinding>> {
    let mut out = Vec::new();
    for (i, entry) in config.acls.iter().enumerate() {
        out.extend(entry.bindings(i)?);
    }
    Ok(out)
}

/// `allow_everyone_if_no_acl_found` as given, or its default: true only on a broker whose every listener
/// is PLAINTEXT on a loopback address.
pub fn allow_everyone_if_no_acl_found(config: &BrokerConfig) -> bool {
    config.allow_everyone_if_no_acl_found.unwrap_or_else(|| {
        listener::resolve(config).is_ok_and(|specs| {
            specs.iter().all(|s| s.protocol == SecurityProtocol::Plaintext && s.addr.ip().is_loopback())
        })
    })
}
