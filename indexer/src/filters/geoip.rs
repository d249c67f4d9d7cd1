//! `type = "geoip"`: what Logstash's `geoip` filter and Elasticsearch's `geoip` processor do: look up
//! the address in `source` (default `[source][ip]`) and write ECS `geo.*` and `as.*` under `target`
//! (default `source`). Private addresses and addresses the databases do not know add nothing. Off (a
//! no-op) when no database was loaded.

use std::net::IpAddr;
use std::sync::Arc;

use super::Filter;
use crate::enrich::GeoIp as Databases;
use crate::event::{Event, FieldRef};

#[derive(Debug, Clone)]
pub struct GeoIp {
    pub source: FieldRef,
    pub target: FieldRef,
    pub databases: Option<Arc<Databases>>,
}

impl GeoIp {
    /// ECS's places: `[source][ip]` into `source`.
    pub fn ecs(databases: Option<Arc<Databases>>) -> Self {
        Self {
            source: FieldRef::parse("[source][ip]").expect("static"),
            target: FieldRef::parse("source").expect("static"),
            databases,
        }
    }
}

impl Filter for GeoIp {
    fn may_change_event_id(&self) -> bool {
        self.target.covers_event_id()
    }

    fn apply(&self, event: &mut Event) {
        let Some(db) = &self.databases else { return };
        let Some(ip) = event.get_str(&self.source).and_then(|s| s.parse::<IpAddr>().ok()) else { return };
        db.lookup(ip).merge_into(event, &self.target);
    }
}
