//! Listeners with Kafka's security protocols: `listeners = ["SASL_SSL://0.0.0.0:9093",
//! "PLAINTEXT://127.0.0.1:9092"]`.
//!
//! The part before `://` is a listener *name*; `listener_security_protocol_map` maps names to one of
//! Kafka's four protocols, and the four protocol names map to themselves unless the map says otherwise
//! (Kafka's default map). A bare `host:port` is a `PLAINTEXT` listener, as before listeners had names.
//! `advertised_listeners` gives, per listener name, the `host:port` clients of that listener are told
//! to use.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::config::BrokerConfig;
use crate::error::{Error, Result};

/// Kafka's `security.protocol` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(Self::Plaintext),
            "SSL" => Some(Self::Ssl),
            "SASL_PLAINTEXT" => Some(Self::SaslPlaintext),
            "SASL_SSL" => Some(Self::SaslSsl),
            _ => None,
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }
}

/// One entry of `listeners`, resolved.
#[derive(Debug, Clone)]
pub struct ListenerSpec {
    /// The listener name (`PLAINTEXT`, `SASL_SSL`, or a name from the protocol map such as `CLIENT`).
    pub name: String,
    pub protocol: SecurityProtocol,
    pub addr: SocketAddr,
    /// `host:port` from `advertised_listeners` for this name, if given.
    pub advertised: Option<(String, u16)>,
}

fn bad(key: &str, reason: String) -> Error {
    Error::Config(format!("broker.{key}: {reason}"))
}

/// Splits `NAME://host:port` (or a bare `host:port`, named PLAINTEXT).
fn split_listener(listener: &str) -> (String, &str) {
    match listener.split_once("://") {
        Some((name, rest)) => (name.to_ascii_uppercase(), rest),
        None => ("PLAINTEXT".to_owned(), listener),
    }
}

fn parse_host_port(key: &str, text: &str) -> Result<(String, u16)> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| bad(key, format!("`{text}` is not host:port (for example 127.0.0.1:9092)")))?;
    let port = port.parse::<u16>().map_err(|_| bad(key, format!("bad port in `{text}`")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad(key, format!("`{text}` has no host")));
    }
    Ok((host.to_owned(), port))
}

/// Resolves `listeners`, `listener_security_protocol_map` and `advertised_listeners` together, with an
/// error naming the key for anything that does not fit.
pub fn resolve(config: &BrokerConfig) -> Result<Vec<ListenerSpec>> {
    if config.listeners.is_empty() {
        return Err(bad("listeners", "at least one listener is required".into()));
    }
    let mut map: BTreeMap<String, SecurityProtocol> = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
        .into_iter()
        .map(|p| (p.to_owned(), SecurityProtocol::parse(p).expect("known protocol")))
        .collect();
    for (name, protocol) in &config.listener_security_protocol_map {
        let protocol = SecurityProtocol::parse(protocol).ok_or_else(|| {
            bad(
                "listener_security_protocol_map",
                format!("`{name} = \"{protocol}\"`: the protocol must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
            )
        })?;
        map.insert(name.to_ascii_uppercase(), protocol);
    }
    let mut advertised = BTreeMap::new();
    for entry in &config.advertised_listeners {
        let (name, rest) = split_listener(entry);
        if !entry.contains("://") {
            return Err(bad(
                "advertised_listeners",
                format!("`{entry}` needs a listener name, as in PLAINTEXT://{entry}"),
            ));
        }
        if advertised.insert(name.clone(), parse_host_port("advertised_listeners", rest)?).is_some() {
            return Err(bad("advertised_listeners", format!("listener {name} is advertised twice")));
        }
    }
    let mut specs: Vec<ListenerSpec> = Vec::with_capacity(config.listeners.len());
    for entry in &config.listeners {
        let (name, rest) = split_listener(entry);
        let protocol = *map.get(&name).ok_or_else(|| {
            bad(
                "listeners",
                format!(
                    "`{entry}`: listener name {name} is neither a security protocol nor in \
                     broker.listener_security_protocol_map"
                ),
            )
        })?;
        let addr = rest.parse::<SocketAddr>().map_err(|_| {
            bad("listeners", format!("`{entry}` is not NAME://ip:port (for example PLAINTEXT://127.0.0.1:9092)"))
        })?;
        if specs.iter().any(|s| s.name == name) {
            return Err(bad(
                "listeners",
                format!("listener name {name} is used twice; name them in listener_security_protocol_map"),
            ));
        }
        if addr.port() != 0 && specs.iter().any(|s| s.addr.port() == addr.port()) {
            return Err(bad("listeners", format!("port {} is used by two listeners", addr.port())));
        }
        if protocol == SecurityProtocol::Plaintext && !addr.ip().is_loopback() && !config.allow_plaintext_remote {
            return Err(bad(
                "listeners",
                format!(
                    "`{entry}` would accept unauthenticated, unencrypted clients from the network; use SSL or \
                     SASL_SSL, or set broker.allow_plaintext_remote = true"
                ),
            ));
        }
        let advertised = advertised.remove(&name);
        specs.push(ListenerSpec { name, protocol, addr, advertised });
    }
    if let Some(name) = advertised.keys().next() {
        return Err(bad("advertised_listeners", format!("{name} is not one of broker.listeners")));
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(listeners: &[&str]) -> BrokerConfig {
        BrokerConfig { listeners: listeners.iter().map(|s| s.to_string()).collect(), ..BrokerConfig::default() }
    }

    #[test]
    fn names_map_to_protocols() {
        let mut c = config(&["SASL_SSL://127.0.0.1:9093", "127.0.0.1:9092", "client://127.0.0.1:9094"]);
        c.listener_security_protocol_map.insert("CLIENT".into(), "ssl".into());
        c.advertised_listeners = vec!["SASL_SSL://broker.example:19093".into()];
        let specs = resolve(&c).unwrap();
        assert_eq!(specs[0].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(specs[0].advertised, Some(("broker.example".into(), 19093)));
        assert_eq!(specs[1].protocol, SecurityProtocol::Plaintext);
        assert_eq!(specs[2].protocol, SecurityProtocol::Ssl);
        assert_eq!(specs[2].name, "CLIENT");
    }

    #[test]
    fn refuses_remote_plaintext_unknown_names_and_stray_advertised() {
        let err = resolve(&config(&["PLAINTEXT://0.0.0.0:9092"])).unwrap_err().to_string();
        assert!(err.contains("allow_plaintext_remote"), "{err}");
        let mut allowed = config(&["0.0.0.0:9092"]);
        allowed.allow_plaintext_remote = true;
        assert!(resolve(&allowed).is_ok());
        let err = resolve(&config(&["INTERNAL://127.0.0.1:9092"])).unwrap_err().to_string();
        assert!(err.contains("listener_security_protocol_map"), "{err}");
        let mut stray = config(&["127.0.0.1:9092"]);
        stray.advertised_listeners = vec!["SSL://x:1".into()];
        assert!(resolve(&stray).unwrap_err().to_string().contains("advertised_listeners"));
        let mut bad_map = config(&["A://127.0.0.1:9092"]);
        bad_map.listener_security_protocol_map.insert("A".into(), "TLS".into());
        assert!(resolve(&bad_map).unwrap_err().to_string().contains("SASL_SSL"));
    }
}
