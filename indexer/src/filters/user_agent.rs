//! `type = "user_agent"`: what Logstash's `useragent` filter and Elasticsearch's `user_agent` processor
//! do: parse `source` (default `[user_agent][original]`) into ECS fields under `target` (default
//! `user_agent`). Off (a no-op) when no uap-core rules were loaded.

use std::sync::Arc;

use super::Filter;
use crate::enrich::UserAgentParser;
use crate::event::{Event, FieldRef};

#[derive(Debug, Clone)]
pub struct UserAgent {
    pub source: FieldRef,
    pub target: FieldRef,
    pub parser: Option<Arc<UserAgentParser>>,
}

impl UserAgent {
    /// ECS's places: `[user_agent][original]` into `user_agent`.
    pub fn ecs(parser: Option<Arc<UserAgentParser>>) -> Self {
        Self {
            source: FieldRef::parse("[user_agent][original]").expect("static"),
            target: FieldRef::parse("user_agent").expect("static"),
            parser,
        }
    }
}

impl Filter for UserAgent {
    fn may_change_event_id(&self) -> bool {
        self.target.covers_event_id()
    }

    fn apply(&self, event: &mut Event) {
        let Some(parser) = &self.parser else { return };
        let Some(original) = event.get_str(&self.source) else { return };
        parser.parse(original).merge_into(event, &self.target);
    }
}
