//! Routing: an ordered [`RouteTable`] of (condition, index template, time zone). The first route whose
//! condition holds names the index; an event no route takes goes to the default index, or is dropped
//! (and counted by the caller) if the config says so.
//!
//! Unlike Logstash's independent `if` blocks, one event goes to one index: the first match wins.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::condition::Condition;
use crate::event::Event;
use crate::template::Template;

/// One `[[indexer.routes]]` entry, compiled.
#[derive(Debug, Clone)]
pub struct Route {
    /// None means "always".
    pub when: Option<Condition>,
    pub index: Template,
    pub time_zone: Tz,
    /// Set when the route writes to a data stream (`index` is then its name).
    pub data_stream: Option<DataStream>,
}

/// A data stream a route writes to, named `<type>-<dataset>-<namespace>` as Elastic's conventions have
/// it (`logs-nginx.access-default`); its documents get the three as `data_stream.*` fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataStream {
    pub kind: String,
    pub dataset: String,
    pub namespace: String,
}

impl DataStream {
    pub fn name(&self) -> String {
        format!("{}-{}-{}", self.kind, self.dataset, self.namespace)
    }

    /// Sets `data_stream.type`, `.dataset` and `.namespace` on `event`.
    pub fn mark(&self, event: &mut Event) {
        use serde_json::Value;
        event.insert_path(&["data_stream", "type"], Value::String(self.kind.clone()));
        event.insert_path(&["data_stream", "dataset"], Value::String(self.dataset.clone()));
        event.insert_path(&["data_stream", "namespace"], Value::String(self.namespace.clone()));
    }
}

/// What happens to events no route takes.
#[derive(Debug, Clone)]
pub enum Unmatched {
    Index { index: Template, time_zone: Tz },
    Drop,
}

/// Where [`RouteTable::route`] sent an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed {
    /// Taken by the route at this position; the index name was written.
    Route(usize),
    /// Taken by the default index; the index name was written.
    Default,
    /// No route matched and unmatched events are dropped; nothing was written.
    Dropped,
}

#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<Route>,
    unmatched: Unmatched,
}

impl RouteTable {
    pub fn new(routes: Vec<Route>, unmatched: Unmatched) -> Self {
        Self { routes, unmatched }
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Every index template events can be written to (the routes', then the default index's), with its
    /// time zone.
    pub fn templates(&self) -> impl Iterator<Item = (&Template, Tz)> {
        let default = match &self.unmatched {
            Unmatched::Index { index, time_zone } => Some((index, *time_zone)),
            Unmatched::Drop => None,
        };
        self.routes.iter().map(|r| (&r.index, r.time_zone)).chain(default)
    }

    /// Picks the index for `event`, clearing `index` and writing the name into it (the buffer is reused
    /// across events, so routing allocates only when a name outgrows it).
    pub fn route(&self, event: &Event, index: &mut String) -> Routed {
        let routed = self.pick(event);
        index.clear();
        if let Some((template, time_zone)) = self.template(routed) {
            template.render(event, time_zone, index);
        }
        routed
    }

    /// Whether every condition reads only `tags`, no index name reads a field and no route writes to a
    /// data stream (which marks the event): then [`RouteTable::pick`] and [`RouteTable::render_at`] route
    /// an event before a filter that adds no tag and sets `@timestamp` as the filter would after it.
    pub fn reads_only_tags_and_time(&self) -> bool {
        let default_reads_fields = match &self.unmatched {
            Unmatched::Index { index, .. } => index.reads_fields(),
            Unmatched::Drop => false,
        };
        !default_reads_fields
            && self.routes.iter().all(|r| {
                r.when.as_ref().is_none_or(Condition::reads_only_tags)
                    && !r.index.reads_fields()
                    && r.data_stream.is_none()
            })
    }

    /// Which route takes `event`, as [`RouteTable::route`] picks it, without writing the index name.
    pub fn pick(&self, event: &Event) -> Routed {
        match self.routes.iter().position(|route| route.when.as_ref().is_none_or(|c| c.matches(event))) {
            Some(i) => Routed::Route(i),
            None if matches!(self.unmatched, Unmatched::Drop) => Routed::Dropped,
            None => Routed::Default,
        }
    }

    /// Writes the index name of `routed` (as [`RouteTable::pick`] gave it) for an event whose
    /// `@timestamp` is `time` into `index`, cleared first, for a table that
    /// [`reads_only_tags_and_time`](RouteTable::reads_only_tags_and_time).
    pub fn render_at(&self, routed: Routed, time: DateTime<Utc>, index: &mut String) {
        index.clear();
        if let Some((template, time_zone)) = self.template(routed) {
            template.render_at(time, time_zone, index);
        }
    }

    /// Whether [`RouteTable::render_at`] writes the same name for `routed` at every time of the UTC minute
    /// of `time`: its template writes no second, and its time zone's offset is the same all that minute
    /// and whole minutes (as every offset in use since the 1970s is; the local mean times of old dates
    /// are not).
    pub fn same_for_the_minute(&self, routed: Routed, time: DateTime<Utc>) -> bool {
        use chrono::{Offset, TimeDelta, Timelike};
        self.template(routed).is_none_or(|(template, time_zone)| {
            let start = time
                - TimeDelta::seconds(i64::from(time.second()))
                - TimeDelta::nanoseconds(i64::from(time.nanosecond()));
            let offset = |t: DateTime<Utc>| t.with_timezone(&time_zone).offset().fix().local_minus_utc();
            let first = offset(start);
            !template.reads_seconds()
                && first % 60 == 0
                && offset(start + TimeDelta::nanoseconds(59_999_999_999)) == first
        })
    }

    /// The index template of `routed` and its time zone; `None` for `Dropped`.
    fn template(&self, routed: Routed) -> Option<(&Template, Tz)> {
        match (routed, &self.unmatched) {
            (Routed::Route(i), _) => Some((&self.routes[i].index, self.routes[i].time_zone)),
            (Routed::Default, Unmatched::Index { index, time_zone }) => Some((index, *time_zone)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn route(tag: &str, index: &str, time_zone: Tz) -> Route {
        Route {
            when: Some(Condition::Tag(tag.into())),
            index: Template::parse(index).unwrap(),
            time_zone,
            data_stream: None,
        }
    }

    fn event(v: serde_json::Value) -> Event {
        Event::from_map(v.as_object().unwrap().clone())
    }

    #[test]
    fn first_match_wins_then_default_or_drop() {
        let routes = vec![
            route("access", "nginx_access-%{+YYYY.MM.dd}", Tz::UTC),
            route("error", "nginx_error-%{+YYYY.MM.dd}", Tz::Asia__Tokyo),
            route("access", "never", Tz::UTC),
        ];
        let default = Unmatched::Index { index: Template::parse("logs-%{+YYYY.MM.dd}").unwrap(), time_zone: Tz::UTC };
        let table = RouteTable::new(routes.clone(), default);
        let mut index = String::from("stale");
        let access = event(json!({"tags": ["access"], "@timestamp": "2026-11-21T23:59:59.999Z"}));
        assert_eq!(table.route(&access, &mut index), Routed::Route(0));
        assert_eq!(index, "nginx_access-2026.11.21");
        let error = event(json!({"tags": ["error"], "@timestamp": "2026-11-21T23:59:59.999Z"}));
        assert_eq!(table.route(&error, &mut index), Routed::Route(1));
        assert_eq!(index, "nginx_error-2026.11.22");
        let other = event(json!({"@timestamp": "2026-11-20T00:00:00Z"}));
        assert_eq!(table.route(&other, &mut index), Routed::Default);
        assert_eq!(index, "logs-2026.11.20");

        let dropping = RouteTable::new(routes, Unmatched::Drop);
        assert_eq!(dropping.route(&other, &mut index), Routed::Dropped);
        assert_eq!(index, "");
    }
}
