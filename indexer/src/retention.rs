//! Retention of daily indices, what Curator's `delete_indices` action with a `name` age filter did:
//! an index is judged by the date in its name (never by its creation time, which a re-index or a replay
//! of old data changes), and only indices that a route's (or the default index's) template could have
//! made are considered, so nothing else on the cluster is touched.
//!
//! An index is expired once the whole period its name covers (a day for `%{+YYYY.MM.dd}`) ended more than
//! `older_than` ago: with `30d` on 2026-12-22 at 10:00, `nginx_access-2026.11.21` (which ended
//! 2026-11-22 00:00) is deleted and `nginx_access-2026.11.22` is kept until 2026-12-23 00:00.
//!
//! The same code serves `[indexer.retention]` (a check every `check_interval` while the indexer runs) and
//! `logpipe indices list` / `logpipe indices delete --older-than 30d [--dry-run]`, for Elasticsearch,
//! OpenSearch and the file output alike.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::output::{index_pattern, Outputs};
use crate::route::RouteTable;
use crate::stats::Stats;
use crate::template::DatedNames;

/// The dated names the routes can make.
#[derive(Debug, Clone)]
pub struct Retention {
    names: Vec<(DatedNames, Tz)>,
    patterns: Vec<String>,
}

/// One index as `logpipe indices list` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexRow {
    pub index: String,
    pub docs: u64,
    pub bytes: u64,
    /// When the period the name covers starts and ends; `None` for names with no readable date.
    pub period: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

impl IndexRow {
    /// Whether the whole period ended at least `older_than` before `now`.
    pub fn expired(&self, now: DateTime<Utc>, older_than: Duration) -> bool {
        let Ok(age) = chrono::Duration::from_std(older_than) else { return false };
        self.period.is_some_and(|(_, end)| end + age <= now)
    }
}

/// For `logpipe indices`: the retention rules and the output of an `[indexer]` section.
pub fn open(indexer: &crate::Indexer) -> Result<(Retention, Outputs)> {
    let outputs = Outputs::new(&indexer.config.output, std::sync::Arc::new(Stats::default()))?;
    Ok((Retention::new(&indexer.compiled.routes), outputs))
}

/// The indices a configured indexer's store holds, for a caller that lists them while the indexer runs
/// (the web console's Indices page).
pub struct IndexList {
    retention: Retention,
    outputs: Outputs,
}

impl IndexList {
    pub fn open(indexer: &crate::Indexer) -> Result<Self> {
        let (retention, outputs) = open(indexer)?;
        Ok(Self { retention, outputs })
    }

    /// The indices the routes can have made, with documents, bytes and periods.
    pub async fn list(&self) -> Result<Vec<IndexRow>> {
        self.retention.list(&self.outputs).await
    }
}

/// `logpipe indices list` / `delete`: one line per index, oldest first; `older_than` marks (or, for
/// delete, lists) the expired ones.
pub fn table(rows: &[IndexRow], now: DateTime<Utc>, older_than: Option<Duration>) -> String {
    use std::fmt::Write;
    let mut rows: Vec<&IndexRow> = rows.iter().collect();
    rows.sort_by(|a, b| (a.period.map(|p| p.0), &a.index).cmp(&(b.period.map(|p| p.0), &b.index)));
    let width = rows.iter().map(|r| r.index.len()).max().unwrap_or(5).max(5);
    let mut out = format!(
        "{:width$}  {:>12}  {:>14}  {:<10}{}\n",
        "INDEX",
        "DOCS",
        "BYTES",
        "DATE",
        if older_than.is_some() { "  EXPIRED" } else { "" }
    );
    for r in rows {
        let date = r.period.map(|(start, _)| start.format("%Y-%m-%d").to_string()).unwrap_or_else(|| "-".into());
        let _ = write!(out, "{:width$}  {:>12}  {:>14}  {:<10}", r.index, r.docs, r.bytes, date);
        if let Some(age) = older_than {
            out.push_str(if r.expired(now, age) { "  yes" } else { "  no" });
        }
        out.push('\n');
    }
    out
}

impl Retention {
    pub fn new(routes: &RouteTable) -> Self {
        let mut patterns: Vec<String> = routes.templates().filter_map(|(t, _)| index_pattern(t.source())).collect();
        patterns.sort();
        patterns.dedup();
        let names = routes.templates().filter_map(|(t, tz)| t.dated_names().map(|d| (d, tz))).collect();
        Self { names, patterns }
    }

    /// The start and end of the period `index`'s name covers, if one of the templates made it.
    pub fn period(&self, index: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        self.names.iter().find_map(|(d, tz)| d.parse(index, *tz)).map(|(start, p)| (start, p.end(start)))
    }

    /// The indices the routes can have made, with their periods.
    pub async fn list(&self, outputs: &Outputs) -> Result<Vec<IndexRow>> {
        let rows = outputs.list_indices(&self.patterns).await?;
        Ok(rows
            .into_iter()
            .filter(|(name, _, _)| self.covers(name))
            .map(|(index, docs, bytes)| {
                let period = self.period(&index);
                IndexRow { index, docs, bytes, period }
            })
            .collect())
    }

    /// Deletes (unless `dry_run`) the indices whose period ended `older_than` before `now`; returns them.
    pub async fn delete_expired(
        &self,
        outputs: &Outputs,
        now: DateTime<Utc>,
        older_than: Duration,
        dry_run: bool,
    ) -> Result<Vec<IndexRow>> {
        let expired: Vec<IndexRow> =
            self.list(outputs).await?.into_iter().filter(|r| r.expired(now, older_than)).collect();
        if !dry_run {
            for row in &expired {
                outputs.delete_index(&row.index).await?;
                tracing::info!(index = %row.index, docs = row.docs, "index deleted by retention");
            }
        }
        Ok(expired)
    }

    /// Whether a template could have made `name` (a dated match, or the static prefix of a pattern).
    fn covers(&self, name: &str) -> bool {
        self.period(name).is_some()
            || self.patterns.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name == p,
            })
    }

    /// `[indexer.retention]`: checks at start and every `interval` until `stop`. Failures are logged and
    /// tried again at the next check.
    pub async fn run(
        self,
        outputs: std::sync::Arc<Outputs>,
        older_than: Duration,
        interval: Duration,
        stop: CancellationToken,
    ) {
        loop {
            match self.delete_expired(&outputs, Utc::now(), older_than, false).await {
                Ok(deleted) if !deleted.is_empty() => {
                    tracing::info!(deleted = deleted.len(), "retention check done")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("retention check failed, trying again in {interval:?}: {e}"),
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{Route, Unmatched};
    use crate::template::Template;

    fn table() -> RouteTable {
        let route =
            |t: &str, tz| Route { when: None, index: Template::parse(t).unwrap(), time_zone: tz, data_stream: None };
        RouteTable::new(
            vec![route("nginx_access-%{+YYYY.MM.dd}", Tz::UTC), route("app-%{+YYYY.MM}", Tz::UTC)],
            Unmatched::Index { index: Template::parse("logpipe-%{+YYYY.MM.dd}").unwrap(), time_zone: Tz::UTC },
        )
    }

    #[test]
    fn judged_by_the_whole_period_in_the_name() {
        let r = Retention::new(&table());
        let now: DateTime<Utc> = "2026-12-22T10:00:00Z".parse().unwrap();
        let thirty = Duration::from_secs(30 * 86400);
        let row = |name: &str| IndexRow { index: name.into(), docs: 0, bytes: 0, period: r.period(name) };
        assert!(row("nginx_access-2026.11.21").expired(now, thirty));
        assert!(!row("nginx_access-2026.11.22").expired(now, thirty));
        assert!(row("logpipe-2026.01.01").expired(now, thirty));
        // A monthly index goes once its whole month is 30 days past.
        assert!(row("app-2026.10").expired(now, thirty));
        assert!(!row("app-2026.11").expired(now, thirty));
        // Names no template made, or without a readable date, are never expired.
        assert!(!row("nginx_access-old").expired(now, thirty));
        assert!(!row("kibana_sample-2020.01.01").expired(now, thirty));
        assert!(r.covers("nginx_access-old") && !r.covers("kibana_sample-2020.01.01"));
        assert_eq!(r.patterns, ["app-*", "logpipe-*", "nginx_access-*"]);
    }
}
