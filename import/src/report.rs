//! The conversion report, in the style of Grafana Alloy's `convert --report`: one line per finding,
//! `(Severity) file:line:col: what, and what to do`, most severe first.
//!
//! - `Error`: something the source config does that the pipeline cannot do. The import refuses to write
//!   a pipeline while there is one, unless `--bypass-errors` (then the item is left out, with a comment
//!   in the pipeline saying so).
//! - `Warning`: translated, but the behaviour differs in a way the user should know.
//! - `Info`: translated to logpipe's own way of doing the same thing, or not needed.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "Info",
            Severity::Warning => "Warning",
            Severity::Error => "Error",
        })
    }
}

/// A place in a source file: `file:line` or `file:line:col` (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub line: usize,
    pub col: Option<usize>,
}

impl Origin {
    pub fn new(file: &str, line: usize) -> Self {
        Self { file: file.to_string(), line, col: None }
    }

    pub fn at(file: &str, line: usize, col: usize) -> Self {
        Self { file: file.to_string(), line, col: Some(col) }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.col {
            _ if self.line == 0 => write!(f, "{}", self.file),
            Some(col) => write!(f, "{}:{}:{col}", self.file, self.line),
            None => write!(f, "{}:{}", self.file, self.line),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub origin: Origin,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}) {}: {}", self.severity, self.origin, self.message)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    pub(crate) fn push(&mut self, severity: Severity, origin: Origin, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic { severity, origin, message: message.into() });
    }

    pub(crate) fn error(&mut self, origin: Origin, message: impl Into<String>) {
        self.push(Severity::Error, origin, message)
    }

    pub(crate) fn warn(&mut self, origin: Origin, message: impl Into<String>) {
        self.push(Severity::Warning, origin, message)
    }

    pub(crate) fn info(&mut self, origin: Origin, message: impl Into<String>) {
        self.push(Severity::Info, origin, message)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.severity == Severity::Error)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// Findings, most severe first, each severity in source order.
    pub fn sorted(&self) -> Vec<&Diagnostic> {
        let mut all: Vec<&Diagnostic> = self.diagnostics.iter().collect();
        all.sort_by_key(|d| std::cmp::Reverse(d.severity));
        all
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in self.sorted() {
            writeln!(f, "{d}")?;
        }
        let count = |s| self.diagnostics.iter().filter(|d| d.severity == s).count();
        writeln!(
            f,
            "{} errors, {} warnings, {} notes",
            count(Severity::Error),
            count(Severity::Warning),
            count(Severity::Info)
        )
    }
}
