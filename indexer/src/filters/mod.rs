//! Filters: what Logstash's `filter {}` block does. Each filter changes an event in place and never fails
//! it: a line that does not parse is tagged (`_grokparsefailure`, `_dateparsefailure`, `_jsonparsefailure`,
//! `_dissectfailure`) and still indexed.
//! A [`FilterChain`] runs the configured filters in order, each behind its optional `when`.

pub mod date;
pub mod dissect;
pub mod geoip;
pub mod grok;
pub mod json;
pub mod kv;
pub mod mutate;
pub mod mutate_values;
pub(crate) mod new_fields;
pub mod nginx;
pub mod user_agent;
pub mod zone;

use std::fmt::Debug;

use crate::condition::Condition;
use crate::event::Event;

pub use dissect::{Dissect, Dissection};
pub use geoip::GeoIp;
pub use grok::Grok;
pub use json::Json;
pub use kv::Kv;
pub use mutate::Mutate;
pub use mutate_values::{Conversion, Gsub, MutateValues};
pub use nginx::{NginxAccess, NginxError};
pub use user_agent::UserAgent;

/// Tag on events a parser (nginx or grok) could not match.
pub const GROK_PARSE_FAILURE: &str = "_grokparsefailure";
/// Tag on events whose time could not be parsed.
pub const DATE_PARSE_FAILURE: &str = "_dateparsefailure";

/// One filter. Implementations are compiled at load time and shared across threads.
pub trait Filter: Debug + Send + Sync {
    fn apply(&self, event: &mut Event);

    /// Whether the filter may change `event.id`, which names the document (see
    /// [`FilterChain::keeps_event_id`]). Only a filter that writes fixed fields can answer no.
    fn may_change_event_id(&self) -> bool {
        true
    }
}

/// The filters of a pipeline, in config order.
#[derive(Debug, Default)]
pub struct FilterChain {
    steps: Vec<(Option<Condition>, Box<dyn Filter>)>,
}

impl FilterChain {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `filter`, run only on events matching `when` (all events if `None`).
    pub fn push(&mut self, when: Option<Condition>, filter: Box<dyn Filter>) {
        self.steps.push((when, filter));
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Each filter's `when`, in order (`None` for a filter that runs on every event).
    pub fn conditions(&self) -> impl Iterator<Item = Option<&Condition>> {
        self.steps.iter().map(|(when, _)| when.as_ref())
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Whether no filter can change `event.id`. The document id can then be read before the filters,
    /// while the agent's `event` object is still `{"id": ...}`: after the nginx filter it holds a dozen
    /// members to walk past, and that walk was 8 % of the indexer core's instructions.
    pub fn keeps_event_id(&self) -> bool {
        !self.steps.iter().any(|(_, filter)| filter.may_change_event_id())
    }

    pub fn apply(&self, event: &mut Event) {
        for (when, filter) in &self.steps {
            if when.as_ref().is_none_or(|c| c.matches(event)) {
                filter.apply(event);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn when_gates_each_filter() {
        let mut chain = FilterChain::new();
        let tag = |t: &str| Mutate { add_tag: vec![t.into()], ..Mutate::default() };
        chain.push(Some(Condition::Tag("access".into())), Box::new(tag("a")));
        chain.push(None, Box::new(tag("all")));
        let mut e = Event::from_map(json!({"tags": ["error"]}).as_object().unwrap().clone());
        chain.apply(&mut e);
        assert_eq!(e.tags().collect::<Vec<_>>(), ["error", "all"]);
        let mut e = Event::from_map(json!({"tags": ["access"]}).as_object().unwrap().clone());
        chain.apply(&mut e);
        assert_eq!(e.tags().collect::<Vec<_>>(), ["access", "a", "all"]);
        assert_eq!(chain.len(), 2);
    }
}
