//! Enrichment databases the filters share: uap-core's user-agent rules and the GeoIP/ASN files. They are
//! loaded once when the indexer starts (never downloaded); a database that is not there turns that
//! enrichment off with one warning, and everything else goes on.

pub mod answer;
pub mod geoip;
pub mod user_agent;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::EnrichmentConfig;

pub use answer::Answer;
pub use geoip::GeoIp;
pub use user_agent::UserAgentParser;

/// What was loaded; either part may be off.
#[derive(Debug, Clone, Default)]
pub struct Enrichment {
    pub user_agent: Option<Arc<UserAgentParser>>,
    pub geoip: Option<Arc<GeoIp>>,
}

impl Enrichment {
    /// Nothing loaded: the filters parse but do not enrich.
    pub fn none() -> Self {
        Self::default()
    }

    /// Loads what `config` names. A missing or unreadable file logs one warning naming it and what is
    /// turned off; it is not an error, so a host without the databases still indexes.
    pub fn load(config: &EnrichmentConfig) -> Self {
        let user_agent = config.user_agent_regexes.as_ref().filter(|p| !p.as_os_str().is_empty()).and_then(|path| {
            match UserAgentParser::load(path, config.cache_size) {
                Ok(p) => {
                    tracing::info!(rules = %path.display(), "user-agent parsing on");
                    Some(Arc::new(p))
                }
                Err(e) => {
                    tracing::warn!("user-agent parsing off: {e}; install Debian's uap-core package or set indexer.enrichment.user_agent_regexes");
                    None
                }
            }
        });
        let present = |paths: &[PathBuf], what: &str| -> Vec<PathBuf> {
            match paths.iter().find(|p| !Path::new(p).is_file()) {
                Some(missing) => {
                    tracing::warn!("{what} off: {} is missing; see the README's Enrichment section (scripts/geoip.sh installs DB-IP Lite)", missing.display());
                    Vec::new()
                }
                None => paths.to_vec(),
            }
        };
        let city = present(&config.geoip_city, "GeoIP");
        let asn = present(&config.geoip_asn, "ASN lookup");
        let geoip = if city.is_empty() && asn.is_empty() {
            None
        } else {
            match GeoIp::open(&city, &asn, config.cache_size) {
                Ok(g) => {
                    tracing::info!(city = ?city, asn = ?asn, "GeoIP on");
                    Some(Arc::new(g))
                }
                Err(e) => {
                    tracing::warn!("GeoIP and ASN lookup off: {e}");
                    None
                }
            }
        };
        Self { user_agent, geoip }
    }
}
