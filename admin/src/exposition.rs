//! The Prometheus text exposition format 0.0.4: each family is a `# HELP` line, a `# TYPE` line and
//! one sample per label set. Label values escape `\`, `"` and newlines.
//!
//! Reference: <https://prometheus.io/docs/instrumenting/exposition_formats/>.

use std::fmt::{Display, Write as _};

/// The `Content-Type` of a `/metrics` answer.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// A page of metric families being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes one family. `samples` are (labels, value) with labels as `(name, value)` pairs; a family
    /// without samples is left out, as client libraries do for an empty vector.
    pub fn family<L, V>(&mut self, name: &str, kind: Kind, help: &str, samples: impl IntoIterator<Item = (L, V)>)
    where
        L: AsRef<[(&'static str, String)]>,
        V: Display,
    {
        let mut samples = samples.into_iter().peekable();
        if samples.peek().is_none() {
            return;
        }
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        for (labels, value) in samples {
            let labels = labels.as_ref();
            if labels.is_empty() {
                let _ = writeln!(self.out, "{name} {value}");
                continue;
            }
            let rendered: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
            let _ = writeln!(self.out, "{name}{{{}}} {value}", rendered.join(","));
        }
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: impl Display) {
        self.family(name, kind, help, [([] as [(&'static str, String); 0], value)]);
    }

    /// Appends a page written elsewhere (another part's families).
    pub fn append(&mut self, other: Exposition) {
        self.out.push_str(&other.out);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_have_help_type_and_escaped_labels() {
        let mut page = Exposition::new();
        page.family("x_total", Kind::Counter, "Things.", [([("path", "a\"b\\c\nd".to_string())], 3)]);
        page.single("y", Kind::Gauge, "One thing.", 7);
        page.family("empty", Kind::Gauge, "Left out.", Vec::<([(&str, String); 1], u64)>::new());
        assert_eq!(
            page.finish(),
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total{path=\"a\\\"b\\\\c\\nd\"} 3\n\
             # HELP y One thing.\n# TYPE y gauge\ny 7\n"
        );
    }
}
