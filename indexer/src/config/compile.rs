//! Compiling an [`IndexerConfig`] into the pipeline's runtime stages ([`Compiled`]) and validating it.
//! Every pattern, template, regex and time zone is checked here, once; errors name their key.

use std::collections::BTreeMap;

use chrono_tz::Tz;
use logpipe_config::Validate;
use regex::Regex;

use super::{DataStreamConfig, FilterConfig, IndexerConfig, NginxAccessConfig, WhenConfig};
use crate::codec::Codec;
use crate::condition::Condition;
use crate::direct::DirectNginx;
use crate::enrich::Enrichment;
use crate::error::{Error, Result};
use crate::event::FieldRef;
use crate::filters::date::{DateFilter, DateFormat};
use crate::filters::{Filter, FilterChain, GeoIp, Grok, Mutate, NginxAccess, NginxError, UserAgent};
use crate::route::{DataStream, Route, RouteTable, Unmatched};
use crate::template::Template;

/// The config compiled into the pipeline's runtime stages.
#[derive(Debug)]
pub struct Compiled {
    pub codec: Codec,
    pub filters: FilterChain,
    pub routes: RouteTable,
    /// The nginx pipeline's direct encoder, when the config is that pipeline.
    pub direct: Option<DirectNginx>,
}

fn bad(key: impl Into<String>, why: impl std::fmt::Display) -> Error {
    Error::Config(format!("{}: {why}", key.into()))
}

fn field(key: &str, s: &str) -> Result<FieldRef> {
    FieldRef::parse(s).map_err(|e| bad(key, e))
}

fn zone(key: &str, s: &str) -> Result<Tz> {
    s.parse::<Tz>()
        .map_err(|_| bad(key, format!("{s:?} is not an IANA time zone such as \"UTC\" or \"Europe/Berlin\"")))
}

fn template(key: &str, s: &str) -> Result<Template> {
    Template::parse(s).map_err(|e| bad(key, e))
}

impl WhenConfig {
    /// Compiles the condition; errors name `key` (e.g. `indexer.routes[0].when.and[1].matches`).
    pub fn compile(&self, key: &str) -> Result<Condition> {
        let set = [
            self.tag.is_some(),
            self.exists.is_some(),
            self.field.is_some(),
            self.and.is_some(),
            self.or.is_some(),
            self.not.is_some(),
        ];
        if set.iter().filter(|s| **s).count() != 1 {
            return Err(bad(key, "needs exactly one of tag, exists, field (with equals or matches), and, or, not; combine several with and = [...]"));
        }
        if self.field.is_none() && (self.equals.is_some() || self.matches.is_some()) {
            return Err(bad(key, "equals and matches need a field"));
        }
        let list = |name: &str, items: &[WhenConfig]| -> Result<Vec<Condition>> {
            items.iter().enumerate().map(|(i, w)| w.compile(&format!("{key}.{name}[{i}]"))).collect()
        };
        Ok(if let Some(tag) = &self.tag {
            Condition::Tag(tag.clone())
        } else if let Some(f) = &self.exists {
            Condition::Exists(field(&format!("{key}.exists"), f)?)
        } else if let Some(f) = &self.field {
            let f = field(&format!("{key}.field"), f)?;
            match (&self.equals, &self.matches) {
                (Some(v), None) => Condition::Equals(f, v.clone()),
                (None, Some(re)) => {
                    Condition::Matches(f, Regex::new(re).map_err(|e| bad(format!("{key}.matches"), e))?)
                }
                _ => return Err(bad(key, "a field needs exactly one of equals or matches")),
            }
        } else if let Some(all) = &self.and {
            Condition::And(list("and", all)?)
        } else if let Some(any) = &self.or {
            Condition::Or(list("or", any)?)
        } else {
            let not = self.not.as_ref().expect("counted above");
            Condition::Not(Box::new(not.compile(&format!("{key}.not"))?))
        })
    }
}

/// A data stream's name parts: lowercase, no `-` inside a part (it separates them), as Elasticsearch's
/// naming scheme requires.
fn data_stream(key: &str, d: &DataStreamConfig) -> Result<DataStream> {
    for (name, value) in [("type", &d.kind), ("dataset", &d.dataset), ("namespace", &d.namespace)] {
        let ok = !value.is_empty()
            && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_')
            && !value.starts_with(['.', '_']);
        if !ok {
            return Err(bad(
                format!("{key}.data_stream.{name}"),
                format!("{value:?} must be lowercase letters, digits, '.' or '_' (no '-'), e.g. \"nginx.access\""),
            ));
        }
    }
    Ok(DataStream { kind: d.kind.clone(), dataset: d.dataset.clone(), namespace: d.namespace.clone() })
}

fn when(key: &str, w: &Option<WhenConfig>) -> Result<Option<Condition>> {
    w.as_ref().map(|w| w.compile(&format!("{key}.when"))).transpose()
}

impl FilterConfig {
    /// Compiles one filter without enrichment databases; errors name keys under `key` (e.g.
    /// `indexer.filters[1]`).
    pub fn compile(&self, key: &str) -> Result<(Option<Condition>, Box<dyn Filter>)> {
        self.compile_with(key, &Enrichment::none())
    }

    /// Compiles one filter; the `nginx_access`, `user_agent` and `geoip` filters use `enrichment`.
    pub fn compile_with(&self, key: &str, enrichment: &Enrichment) -> Result<(Option<Condition>, Box<dyn Filter>)> {
        let k = |name: &str| format!("{key}.{name}");
        Ok(match self {
            FilterConfig::NginxAccess(c) => {
                let (when, filter) = nginx_access(key, c, enrichment)?;
                (when, Box::new(filter))
            }
            FilterConfig::UserAgent(c) => (
                when(key, &c.when)?,
                Box::new(UserAgent {
                    source: field(&k("source"), &c.source)?,
                    target: field(&k("target"), &c.target)?,
                    parser: enrichment.user_agent.clone(),
                }),
            ),
            FilterConfig::Geoip(c) => (
                when(key, &c.when)?,
                Box::new(GeoIp {
                    source: field(&k("source"), &c.source)?,
                    target: field(&k("target"), &c.target)?,
                    databases: enrichment.geoip.clone(),
                }),
            ),
            FilterConfig::NginxError(c) => (
                when(key, &c.when)?,
                Box::new(NginxError {
                    source: field(&k("source"), &c.source)?,
                    time_zone: c.time_zone.as_ref().map(|z| zone(&k("time_zone"), z)).transpose()?,
                }),
            ),
            FilterConfig::Json(c) => (when(key, &c.when)?, Box::new(c.compile(key)?)),
            FilterConfig::Kv(c) => (when(key, &c.when)?, Box::new(c.compile(key)?)),
            FilterConfig::Dissect(c) => (when(key, &c.when)?, Box::new(c.compile(key)?)),
            FilterConfig::Grok(c) => {
                // Logstash allows several fields in `match`; we take one so a failure tag is unambiguous.
                let mut entries = c.patterns.iter();
                let (Some((source, patterns)), None) = (entries.next(), entries.next()) else {
                    return Err(bad(
                        k("match"),
                        "needs exactly one field, e.g. match = { message = \"%{IP:[source][ip]} %{GREEDYDATA}\" }",
                    ));
                };
                let patterns = patterns.to_vec();
                if patterns.is_empty() {
                    return Err(bad(k(&format!("match.{source}")), "needs at least one pattern"));
                }
                let source_ref = field(&k("match"), source)?;
                // Compile one by one so the error names the failing pattern's position.
                for (i, p) in patterns.iter().enumerate() {
                    Grok::new(source_ref.clone(), std::slice::from_ref(p), &c.pattern_definitions)
                        .map_err(|e| bad(k(&format!("match.{source}[{i}]")), e))?;
                }
                let grok = Grok::new(source_ref, &patterns, &c.pattern_definitions)?
                    .break_on_match(c.break_on_match)
                    .tag_on_failure(c.tag_on_failure.clone());
                (when(key, &c.when)?, Box::new(grok))
            }
            FilterConfig::Date(c) => {
                let [source, formats @ ..] = c.matches.as_slice() else {
                    return Err(bad(
                        k("match"),
                        "needs a field and at least one format, e.g. [\"timestamp\", \"ISO8601\"]",
                    ));
                };
                if formats.is_empty() {
                    return Err(bad(k("match"), "needs at least one format after the field"));
                }
                let formats = formats
                    .iter()
                    .enumerate()
                    .map(|(i, f)| DateFormat::parse(f).map_err(|e| bad(k(&format!("match[{}]", i + 1)), e)))
                    .collect::<Result<_>>()?;
                let mut filter = DateFilter::new(field(&k("match[0]"), source)?, formats);
                filter.target = field(&k("target"), &c.target)?;
                filter.time_zone = c.timezone.as_ref().map(|z| zone(&k("timezone"), z)).transpose()?;
                filter.tag_on_failure = c.tag_on_failure.clone();
                (when(key, &c.when)?, Box::new(filter))
            }
            FilterConfig::Mutate(c) => {
                let pairs = |name: &str, map: &BTreeMap<String, String>| -> Result<Vec<(FieldRef, Template)>> {
                    map.iter()
                        .map(|(f, v)| {
                            Ok((field(&k(&format!("{name}.{f}")), f)?, template(&k(&format!("{name}.{f}")), v)?))
                        })
                        .collect()
                };
                let mutate = Mutate {
                    rename: c
                        .rename
                        .iter()
                        .map(|(from, to)| {
                            Ok((field(&k(&format!("rename.{from}")), from)?, field(&k(&format!("rename.{from}")), to)?))
                        })
                        .collect::<Result<_>>()?,
                    replace: pairs("replace", &c.replace)?,
                    values: c.values(key)?,
                    add_field: pairs("add_field", &c.add_field)?,
                    remove_field: c
                        .remove_field
                        .iter()
                        .enumerate()
                        .map(|(i, f)| field(&k(&format!("remove_field[{i}]")), f))
                        .collect::<Result<_>>()?,
                    add_tag: c.add_tag.clone(),
                    remove_tag: c.remove_tag.clone(),
                };
                (when(key, &c.when)?, Box::new(mutate))
            }
        })
    }
}

fn nginx_access(key: &str, c: &NginxAccessConfig, enrichment: &Enrichment) -> Result<(Option<Condition>, NginxAccess)> {
    let filter = NginxAccess {
        source: field(&format!("{key}.source"), &c.source)?,
        user_agent: c.user_agent.then(|| UserAgent::ecs(enrichment.user_agent.clone())),
        geoip: c.geoip.then(|| GeoIp::ecs(enrichment.geoip.clone())),
    };
    Ok((when(key, &c.when)?, filter))
}

/// The direct encoder, for a pipeline of the `json` codec, an `nginx_access` filter, routes that read
/// only tags and time, and other filters only under conditions on tags, as in the nginx pipeline (its
/// `nginx_error` filter runs on tag `error`): a record that one of them would run on is left to the event
/// path (see [`DirectNginx`]).
fn direct(
    config: &IndexerConfig,
    filters: &FilterChain,
    enrichment: &Enrichment,
    routes: &RouteTable,
) -> Result<Option<DirectNginx>> {
    if config.input.codec != Codec::Json || !routes.reads_only_tags_and_time() {
        return Ok(None);
    }
    let mut nginx = None;
    let mut others = Vec::new();
    for (i, (filter, when)) in config.filters.iter().zip(filters.conditions()).enumerate() {
        match (filter, when) {
            (FilterConfig::NginxAccess(c), _) if nginx.is_none() => {
                nginx = Some(nginx_access(&format!("indexer.filters[{i}]"), c, enrichment)?);
            }
            (_, Some(when)) if when.reads_only_tags() => others.push(when.clone()),
            _ => return Ok(None),
        }
    }
    let Some((when, filter)) = nginx else { return Ok(None) };
    // The document id is read before the filter, as `Processor` does when no filter can change it.
    Ok(if filter.may_change_event_id() { None } else { DirectNginx::new(when, others, filter) })
}

impl TryFrom<&IndexerConfig> for Compiled {
    type Error = Error;

    /// Compiles without enrichment databases (what validation needs).
    fn try_from(config: &IndexerConfig) -> Result<Self> {
        Self::with_enrichment(config, &Enrichment::none())
    }
}

impl Compiled {
    /// Compiles with the loaded `enrichment` databases (what the running indexer uses).
    pub fn with_enrichment(config: &IndexerConfig, enrichment: &Enrichment) -> Result<Self> {
        let mut filters = FilterChain::new();
        for (i, f) in config.filters.iter().enumerate() {
            let (when, filter) = f.compile_with(&format!("indexer.filters[{i}]"), enrichment)?;
            filters.push(when, filter);
        }
        let routes = config
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let key = format!("indexer.routes[{i}]");
                let data_stream = r.data_stream.as_ref().map(|d| data_stream(&key, d)).transpose()?;
                let index = match (&data_stream, r.index.trim().is_empty()) {
                    (Some(_), false) => {
                        return Err(bad(format!("{key}.index"), "set either index or data_stream, not both"))
                    }
                    (Some(ds), true) => ds.name(),
                    (None, true) => {
                        return Err(bad(
                            format!("{key}.index"),
                            "is required, e.g. index = \"nginx_access-%{+YYYY.MM.dd}\" (or set data_stream)",
                        ))
                    }
                    (None, false) => r.index.clone(),
                };
                Ok(Route {
                    when: when(&key, &r.when)?,
                    index: template(&format!("{key}.index"), &index)?,
                    time_zone: r
                        .time_zone
                        .as_deref()
                        .map(|z| zone(&format!("{key}.time_zone"), z))
                        .transpose()?
                        .unwrap_or(Tz::UTC),
                    data_stream,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let unmatched = if config.drop_unmatched {
            Unmatched::Drop
        } else {
            Unmatched::Index { index: template("indexer.default_index", &config.default_index)?, time_zone: Tz::UTC }
        };
        let routes = RouteTable::new(routes, unmatched);
        let direct = direct(config, &filters, enrichment, &routes)?;
        Ok(Compiled { codec: config.input.codec, filters, routes, direct })
    }
}

impl Validate for IndexerConfig {
    type Error = Error;

    /// Checks what serde cannot, before the filters and routes are compiled (once, by
    /// [`Indexer::new`](crate::Indexer::new)). Errors name the key, e.g. `indexer.input.group_id`.
    fn validate(&self) -> Result<()> {
        let input = &self.input;
        if input.brokers.is_empty() || input.brokers.iter().any(|b| b.trim().is_empty()) {
            return Err(bad("indexer.input.brokers", "needs at least one host:port"));
        }
        if input.topics.is_empty() || input.topics.iter().any(|t| t.trim().is_empty()) {
            return Err(bad("indexer.input.topics", "needs at least one topic name (or ^regex)"));
        }
        for (i, t) in input.topics.iter().enumerate().filter(|(_, t)| t.starts_with('^')) {
            Regex::new(t).map_err(|e| bad(format!("indexer.input.topics[{i}]"), e))?;
        }
        input.security_properties()?;
        input.commit_interval()?;
        if input.group_id.trim().is_empty() {
            return Err(bad("indexer.input.group_id", "must not be empty"));
        }
        if let Some(es) = &self.output.elasticsearch {
            let key = |k: &str| format!("indexer.output.elasticsearch.{k}");
            if es.hosts.is_empty() {
                return Err(bad(key("hosts"), "needs at least one URL such as \"http://127.0.0.1:9200\""));
            }
            for (i, h) in es.hosts.iter().enumerate() {
                if !(h.starts_with("http://") || h.starts_with("https://")) {
                    return Err(bad(key(&format!("hosts[{i}]")), format!("{h:?} must start with http:// or https://")));
                }
            }
            if es.batch_max_events == 0 {
                return Err(bad(key("batch_max_events"), "must be at least 1"));
            }
            if es.batch_max_bytes < 1024 {
                return Err(bad(key("batch_max_bytes"), "must be at least 1024"));
            }
            if es.concurrency == 0 {
                return Err(bad(key("concurrency"), "must be at least 1"));
            }
            if es.user.is_some() != es.password.is_some() {
                return Err(bad(key("password"), "user and password go together"));
            }
            if es.api_key.is_some() && es.user.is_some() {
                return Err(bad(key("api_key"), "use either api_key or user/password, not both"));
            }
            if es.number_of_shards == 0 {
                return Err(bad(key("number_of_shards"), "must be at least 1"));
            }
            if es.refresh_interval.trim().is_empty() {
                return Err(bad(key("refresh_interval"), "must be a time such as \"5s\" (or \"-1\" for none)"));
            }
            if es.retry_initial_backoff.is_zero() || es.retry_max_backoff < es.retry_initial_backoff {
                return Err(bad(key("retry_max_backoff"), "needs 0 < retry_initial_backoff <= retry_max_backoff"));
            }
        }
        if self.output.file.as_ref().is_some_and(|f| f.dedupe_window == 0) {
            return Err(bad("indexer.output.file.dedupe_window", "must be at least 1 (documents per file)"));
        }
        if let Some(r) = &self.retention {
            if r.delete_after.is_zero() {
                return Err(bad("indexer.retention.delete_after", "must be more than 0, e.g. \"30d\""));
            }
            if r.check_interval.is_zero() {
                return Err(bad("indexer.retention.check_interval", "must be more than 0, e.g. \"1h\""));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use logpipe_config::Valid;

    use super::super::tests::load;

    #[test]
    fn a_bad_key_is_named_by_the_checks_or_the_compile() {
        for (toml, key) in [
            ("[[indexer.routes]]\nindex = \"x-%{+YYYY.MM.DD}\"\n", "indexer.routes[0].index"),
            ("[[indexer.routes]]\nindex = \"\"\n", "indexer.routes[0].index"),
            ("[[indexer.routes]]\nindex = \"x\"\ntime_zone = \"Mars/Base\"\n", "indexer.routes[0].time_zone"),
            ("[[indexer.routes]]\nindex = \"x\"\nwhen = { tag = \"a\", field = \"b\", equals = 1 }\n", "indexer.routes[0].when"),
            ("[[indexer.routes]]\nindex = \"x\"\nwhen = { and = [{ tag = \"a\" }, { field = \"m\", matches = \"(\" }] }\n", "indexer.routes[0].when.and[1].matches"),
            ("[[indexer.routes]]\nindex = \"x\"\nwhen = { field = \"m\" }\n", "indexer.routes[0].when"),
            ("[[indexer.filters]]\ntype = \"grok\"\nmatch = { message = [\"%{IP:ip}\", \"%{NOPE}\"] }\n", "indexer.filters[0].match.message[1]"),
            ("[[indexer.filters]]\ntype = \"grok\"\n", "indexer.filters[0].match"),
            ("[[indexer.filters]]\ntype = \"date\"\nmatch = [\"ts\"]\n", "indexer.filters[0].match"),
            ("[[indexer.filters]]\ntype = \"date\"\nmatch = [\"ts\", \"%Q\"]\n", "indexer.filters[0].match[1]"),
            ("[[indexer.filters]]\ntype = \"nginx_error\"\ntime_zone = \"Nowhere\"\n", "indexer.filters[0].time_zone"),
            ("[[indexer.filters]]\ntype = \"mutate\"\nremove_field = [\"[a\"]\n", "indexer.filters[0].remove_field[0]"),
            ("[indexer]\ndefault_index = \"%{[a]\"\n", "indexer.default_index"),
            ("[indexer.input]\ntopics = []\n", "indexer.input.topics"),
            ("[indexer.output.elasticsearch]\nhosts = [\"127.0.0.1:9200\"]\n", "indexer.output.elasticsearch.hosts[0]"),
            ("[indexer.output.elasticsearch]\nuser = \"u\"\n", "indexer.output.elasticsearch.password"),
        ] {
            let cfg = load(toml).unwrap_or_else(|e| panic!("{toml}: {e}"));
            let err = Valid::new(cfg).and_then(crate::Indexer::new).expect_err(toml).to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
    }
}
