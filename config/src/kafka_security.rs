//! The Kafka client's security settings, with librdkafka's names. In TOML, dotted keys make them read
//! exactly as on the client side:
//!
//! ```toml
//! [agent.output]
//! security.protocol = "SASL_SSL"
//! sasl.mechanism = "SCRAM-SHA-512"
//! sasl.username = "agent"
//! sasl.password_file = "/etc/logpipe/agent.password"   # or sasl.password, or LOGPIPE_AGENT__OUTPUT__SASL__PASSWORD
//! ssl.ca.location = "/etc/logpipe/ca.pem"
//! ssl.certificate.location = "/etc/logpipe/agent.pem"   # mTLS
//! ssl.key.location = "/etc/logpipe/agent.key"
//! ```
//!
//! A section holds three optional tables, `security`, `sasl` and `ssl`; [`KafkaSecurity::librdkafka`]
//! turns them into librdkafka properties. Secrets are never printed: `Debug` hides them.

use std::path::PathBuf;

use serde::Deserialize;

/// `security.protocol`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityTable {
    /// `PLAINTEXT` (default), `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub protocol: Option<String>,
}

/// `sasl.mechanism`, `sasl.username`, `sasl.password` or `sasl.password_file`.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaslTable {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: Option<String>,
    pub username: Option<String>,
    /// The password inline (prefer `password_file` or the `…__SASL__PASSWORD` environment variable).
    pub password: Option<String>,
    /// A file whose first line is the password.
    pub password_file: Option<PathBuf>,
}

impl std::fmt::Debug for SaslTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslTable")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("password_file", &self.password_file)
            .finish()
    }
}

/// `<name>.location`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub location: Option<PathBuf>,
}

/// `ssl.ca.location`, `ssl.certificate.location`, `ssl.key.location`,
/// `ssl.endpoint.identification.algorithm`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SslTable {
    pub ca: Option<Location>,
    pub certificate: Option<Location>,
    pub key: Option<Location>,
    pub endpoint: Option<EndpointTable>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointTable {
    pub identification: Option<AlgorithmTable>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlgorithmTable {
    /// `https` (librdkafka's default: check the broker's host name) or `none`.
    pub algorithm: Option<String>,
}

/// A section's three security tables, borrowed.
pub struct KafkaSecurity<'a> {
    pub security: Option<&'a SecurityTable>,
    pub sasl: Option<&'a SaslTable>,
    pub ssl: Option<&'a SslTable>,
}

/// librdkafka property name and value. The value of `sasl.password` is a secret: never log it.
pub type Property = (&'static str, String);

const PROTOCOLS: [&str; 4] = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];
const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

impl KafkaSecurity<'_> {
    /// The librdkafka properties these settings make, reading `sasl.password_file`. `prefix` names the
    /// section in errors (`agent.output`).
    pub fn librdkafka(&self, prefix: &str) -> Result<Vec<Property>, String> {
        let mut out = Vec::new();
        let protocol = self.security.and_then(|s| s.protocol.clone()).unwrap_or_else(|| "PLAINTEXT".into());
        let protocol = protocol.to_ascii_uppercase();
        if !PROTOCOLS.contains(&protocol.as_str()) {
            return Err(format!("{prefix}.security.protocol: `{protocol}` must be one of {}", PROTOCOLS.join(", ")));
        }
        let uses_sasl = protocol.starts_with("SASL_");
        let uses_tls = protocol.ends_with("SSL");
        out.push(("security.protocol", protocol.to_ascii_lowercase()));
        match (self.sasl, uses_sasl) {
            (Some(sasl), true) => {
                let mechanism = sasl.mechanism.clone().unwrap_or_else(|| "PLAIN".into()).to_ascii_uppercase();
                if !MECHANISMS.contains(&mechanism.as_str()) {
                    return Err(format!(
                        "{prefix}.sasl.mechanism: `{mechanism}` must be one of {}",
                        MECHANISMS.join(", ")
                    ));
                }
                let username = sasl
                    .username
                    .clone()
                    .ok_or_else(|| format!("{prefix}.sasl.username is required with {protocol}"))?;
                let password = match (&sasl.password, &sasl.password_file) {
                    (Some(_), Some(_)) => {
                        return Err(format!("{prefix}.sasl.password and sasl.password_file: set only one"))
                    }
                    (Some(password), None) => password.clone(),
                    (None, Some(file)) => read_password(prefix, file)?,
                    (None, None) => {
                        return Err(format!(
                            "{prefix}.sasl.password_file (or sasl.password) is required with {protocol}"
                        ))
                    }
                };
                out.push(("sasl.mechanism", mechanism));
                out.push(("sasl.username", username));
                out.push(("sasl.password", password));
            }
            (None, true) => return Err(format!("{prefix}.sasl.username and a password are required with {protocol}")),
            (Some(_), false) => {
                return Err(format!(
                    "{prefix}.sasl is set but security.protocol is {protocol}; use SASL_SSL (or SASL_PLAINTEXT)"
                ))
            }
            (None, false) => {}
        }
        if let Some(ssl) = self.ssl {
            if !uses_tls {
                return Err(format!("{prefix}.ssl is set but security.protocol is {protocol}; use SSL or SASL_SSL"));
            }
            for (key, location) in [
                ("ssl.ca.location", &ssl.ca),
                ("ssl.certificate.location", &ssl.certificate),
                ("ssl.key.location", &ssl.key),
            ] {
                if let Some(path) = location.as_ref().and_then(|l| l.location.as_ref()) {
                    std::fs::metadata(path)
                        .map_err(|e| format!("{prefix}.{key}: cannot read {}: {e}", path.display()))?;
                    out.push((key, path.display().to_string()));
                }
            }
            if let Some(algorithm) = ssl.endpoint.as_ref().and_then(|e| e.identification.as_ref()?.algorithm.clone()) {
                out.push(("ssl.endpoint.identification.algorithm", algorithm));
            }
        }
        Ok(out)
    }
}

fn read_password(prefix: &str, file: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("{prefix}.sasl.password_file: cannot read {}: {e}", file.display()))?;
    let password = text.lines().next().unwrap_or("").to_owned();
    if password.is_empty() {
        return Err(format!("{prefix}.sasl.password_file: {} is empty", file.display()));
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_ssl_with_password_file() {
        let dir = std::env::temp_dir().join(format!("logpipe-kafka-security-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        let security = SecurityTable { protocol: Some("sasl_ssl".into()) };
        let sasl = SaslTable {
            mechanism: Some("SCRAM-SHA-512".into()),
            username: Some("agent".into()),
            password_file: Some(file.clone()),
            ..SaslTable::default()
        };
        let props = KafkaSecurity { security: Some(&security), sasl: Some(&sasl), ssl: None }
            .librdkafka("agent.output")
            .unwrap();
        assert!(props.contains(&("security.protocol", "sasl_ssl".into())));
        assert!(props.contains(&("sasl.password", "s3cret".into())));
        assert!(!format!("{sasl:?}").contains("s3cret"));
        let inline = SaslTable { password: Some("x".into()), ..sasl.clone() };
        let err =
            KafkaSecurity { security: Some(&security), sasl: Some(&inline), ssl: None }.librdkafka("a").unwrap_err();
        assert!(err.contains("only one"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn mismatches_name_the_key() {
        let plaintext = SecurityTable { protocol: Some("PLAINTEXT".into()) };
        let sasl = SaslTable::default();
        let err =
            KafkaSecurity { security: Some(&plaintext), sasl: Some(&sasl), ssl: None }.librdkafka("x").unwrap_err();
        assert!(err.contains("x.sasl"), "{err}");
        let none = KafkaSecurity { security: None, sasl: None, ssl: None };
        assert_eq!(none.librdkafka("x").unwrap(), vec![("security.protocol", "plaintext".to_owned())]);
        let bad = SecurityTable { protocol: Some("TLS".into()) };
        assert!(KafkaSecurity { security: Some(&bad), sasl: None, ssl: None }
            .librdkafka("x")
            .unwrap_err()
            .contains("security.protocol"));
    }
}
