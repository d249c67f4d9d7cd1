//! A `file` input compiled once from its [`InputConfig`]: path globs, file and line regexes, multiline
//! settings and the envelope metadata its events carry. Compiling at construction means a bad regex is
//! a config error at startup, not a failure in the read loop.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use regex::bytes::Regex as BytesRegex;
use regex::Regex;

use crate::config::{InputConfig, MultilineConfig, StartPosition};
use crate::envelope::InputMeta;
use crate::error::{Error, Result};

/// One compiled `file` input.
pub(super) struct FileInput {
    pub(super) paths: Vec<String>,
    pub(super) exclude_files: Vec<Regex>,
    pub(super) include_lines: Vec<BytesRegex>,
    pub(super) exclude_lines: Vec<BytesRegex>,
    pub(super) multiline: Option<MultilineConfig>,
    pub(super) max_line_bytes: usize,
    pub(super) scan_frequency: Duration,
    pub(super) close_inactive: Duration,
    pub(super) start_position: StartPosition,
    pub(super) meta: InputMeta,
    pub(super) topic: String,
    pub(super) next_scan: Instant,
    pub(super) last_scan: Instant,
    /// Globs that matched no file, or a file that cannot be read, at the last scan (logged once, see
    /// `crate::stalls`).
    pub(super) unmatched: crate::stalls::Ongoing,
    /// Files matched at the last scan that could not be opened, and why: each is logged when it starts
    /// failing or fails differently, not every scan.
    pub(super) unreadable: HashMap<PathBuf, String>,
}

pub(super) fn compile(input: &InputConfig, host: &str, default_topic: &str, now: Instant) -> Result<FileInput> {
    let re = |list: &[String]| -> Result<Vec<Regex>> {
        list.iter().map(|r| Regex::new(r).map_err(|e| Error::Config(format!("{r:?}: {e}")))).collect()
    };
    let bre = |list: &[String]| -> Result<Vec<BytesRegex>> {
        list.iter().map(|r| BytesRegex::new(r).map_err(|e| Error::Config(format!("{r:?}: {e}")))).collect()
    };
    if let Some(ml) = &input.multiline {
        BytesRegex::new(&ml.pattern).map_err(|e| Error::Config(format!("multiline.pattern: {e}")))?;
    }
    Ok(FileInput {
        paths: input.paths.clone(),
        exclude_files: re(&input.exclude_files)?,
        include_lines: bre(&input.include_lines)?,
        exclude_lines: bre(&input.exclude_lines)?,
        multiline: input.multiline.clone(),
        max_line_bytes: input.max_line_bytes,
        scan_frequency: input.scan_frequency,
        close_inactive: input.close_inactive,
        start_position: input.start_position,
        meta: InputMeta {
            host: host.to_string(),
            input_type: "file",
            tags: input.tags.clone(),
            fields: input.fields.clone(),
            fields_under_root: input.fields_under_root,
            command_line: None,
            timezone: crate::envelope::input_timezone(input.timezone.as_deref()),
            fragments: Default::default(),
        },
        topic: input.topic.clone().unwrap_or_else(|| default_topic.to_string()),
        next_scan: now,
        last_scan: now,
        unmatched: Default::default(),
        unreadable: HashMap::new(),
    })
}
