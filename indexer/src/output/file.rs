//! The file output: one NDJSON file per resolved index name (`data/indices/nginx_access-2026.11.21.ndjson`),
//! each line a document with its `_id` first. It is the embedded default when no Elasticsearch is
//! configured, and it keeps Elasticsearch's `create` rule: an `_id` already in the file is not written
//! again, across restarts too. So a replay after a crash adds nothing.
//!
//! - Each batch is appended and `fdatasync`ed before it counts as written, so a committed offset never
//!   passes a document that is not on disk. A new file's name is made durable too (the directory is
//!   fsynced when the file is created, and the output directory's parent when it is created): without
//!   that, a power cut could take a whole new daily file away after its offsets were committed.
//! - On opening a file, a torn last line (a write cut by a crash, never synced, so never committed) is cut
//!   off, and the ids of its last `dedupe_window` lines are loaded (as 128-bit hashes) to reject replays.
//!   Only the most recent ids are kept ([`RecentIds`]): replays are recent, and a set of every id would
//!   grow with the daily file.
//! - Index names become file names with anything but `[A-Za-z0-9._+-]` replaced by `_`, so a field
//!   value in a template cannot point outside the directory.
//! - Write errors (a full disk) are retried with backoff and logged once per state change, like an
//!   unreachable Elasticsearch.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use xxhash_rust::xxh3::xxh3_128;

use crate::backoff::Backoff;
use crate::batch::Batch;
use crate::error::{Error, Result};

use super::recent_ids::RecentIds;

/// Bytes of documents gathered for one file before they are written (and at the end of each batch).
const PENDING_MAX: usize = 1 << 20;

pub struct FileOutput {
    dir: PathBuf,
    dedupe_window: usize,
    files: Mutex<HashMap<String, IndexFile>>,
}

struct IndexFile {
    file: File,
    ids: RecentIds,
    pending: Vec<u8>,
    /// Lines were added since the last sync.
    unsynced: bool,
}

#[derive(Deserialize)]
struct IdOnly {
    #[serde(rename = "_id")]
    id: String,
}

impl FileOutput {
    /// The output writing under `dir`, rejecting an `_id` already among the last `dedupe_window`
    /// documents of its file.
    pub fn open(dir: &Path, dedupe_window: usize) -> Result<Self> {
        logpipe_durable::create_dir_all(dir)
            .map_err(Error::io(format!("cannot create the file output directory {}", dir.display())))?;
        Ok(Self { dir: dir.to_path_buf(), dedupe_window, files: Mutex::new(HashMap::new()) })
    }

    /// The file an index is written to.
    pub fn path_of(&self, index: &str) -> PathBuf {
        let name: String =
            index.chars().map(|c| if c.is_ascii_alphanumeric() || "._+-".contains(c) { c } else { '_' }).collect();
        let name = if name.trim_matches('.').is_empty() { format!("_{name}") } else { name };
        self.dir.join(format!("{name}.ndjson"))
    }

    /// The index files in the directory: index name (the file name without `.ndjson`), documents (lines)
    /// and bytes.
    pub fn list(&self) -> Result<Vec<(String, u64, u64)>> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.dir)
            .map_err(Error::io(format!("cannot list the file output directory {}", self.dir.display())))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".ndjson")) else {
                continue;
            };
            let Ok(file) = File::open(&path) else { continue };
            let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
            let docs = BufReader::new(file).split(b'\n').count() as u64;
            out.push((name.to_string(), docs, bytes));
        }
        out.sort();
        Ok(out)
    }

    /// Deletes an index's file, first forgetting it if it is open, so a later document for that index
    /// starts a new file instead of going to a deleted one.
    pub fn delete(&self, index: &str) -> Result<()> {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        files.remove(index);
        let path = self.path_of(index);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("cannot delete {}", path.display()))(e)),
        }
    }

    /// Appends the batch's documents whose `_id` is new to their files and syncs them. Returns how many
    /// were new. On error nothing is counted as written: every file the batch touched is forgotten, so
    /// that reopening it re-reads what really reached it, and the batch is retried whole (ids already
    /// appended are then skipped).
    pub fn write(&self, batch: &Batch) -> Result<usize> {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        let mut touched: Vec<String> = Vec::new();
        let result = self.append(&mut files, batch, &mut touched).and_then(|written| {
            for index in &touched {
                let file = files.get_mut(index).expect("touched files are open");
                file.flush(true).map_err(|e| self.write_error(index, e))?;
            }
            Ok(written)
        });
        if result.is_err() {
            for index in touched {
                files.remove(&index);
            }
        }
        result
    }

    /// Adds the batch's new documents to their files, writing (not syncing) each file's gathered lines
    /// once they reach [`PENDING_MAX`]. Every file opened for the batch is listed in `touched`.
    fn append(
        &self,
        files: &mut HashMap<String, IndexFile>,
        batch: &Batch,
        touched: &mut Vec<String>,
    ) -> Result<usize> {
        let mut written = 0;
        for (i, item) in batch.items().enumerate() {
            let index = item.index;
            if !files.contains_key(index) {
                let file = IndexFile::open(&self.path_of(index), self.dedupe_window)?;
                files.insert(index.to_string(), file);
            }
            if !touched.iter().any(|t| t == index) {
                touched.push(index.to_string());
            }
            let file = files.get_mut(index).expect("opened above");
            if !file.ids.insert(xxh3_128(item.id.as_bytes())) {
                continue;
            }
            file.pending.extend_from_slice(br#"{"_id":"#);
            serde_json::to_writer(&mut file.pending, item.id)?;
            let doc = batch.document(i);
            match doc.strip_prefix(b"{") {
                Some(rest) if rest != b"}" => {
                    file.pending.push(b',');
                    file.pending.extend_from_slice(rest);
                }
                _ => file.pending.push(b'}'),
            }
            file.pending.push(b'\n');
            file.unsynced = true;
            if file.pending.len() >= PENDING_MAX {
                file.flush(false).map_err(|e| self.write_error(item.index, e))?;
            }
            written += 1;
        }
        Ok(written)
    }

    fn write_error(&self, index: &str, source: std::io::Error) -> Error {
        Error::Io { context: format!("cannot write {}", self.path_of(index).display()), source }
    }
}

impl IndexFile {
    fn open(path: &Path, dedupe_window: usize) -> Result<Self> {
        let context = || format!("cannot open {}", path.display());
        let created = !path.exists();
        let mut file =
            OpenOptions::new().read(true).append(true).create(true).open(path).map_err(Error::io(context()))?;
        if created {
            logpipe_durable::sync_parent(path).map_err(Error::io(context()))?;
        }
        let mut ids = RecentIds::new(dedupe_window);
        let mut good_len = start_of_last_lines(&mut file, ids.capacity()).map_err(Error::io(context()))?;
        file.seek(SeekFrom::Start(good_len)).map_err(Error::io(context()))?;
        let mut reader = BufReader::new(&mut file);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(Error::io(context()))?;
            if n == 0 || line.last() != Some(&b'\n') {
                break;
            }
            good_len += n as u64;
            match serde_json::from_slice::<IdOnly>(&line) {
                Ok(doc) => {
                    ids.insert(xxh3_128(doc.id.as_bytes()));
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), "a line without a readable _id ({e}); it cannot prevent a duplicate")
                }
            }
        }
        drop(reader);
        let len = file.metadata().map_err(Error::io(context()))?.len();
        if len > good_len {
            tracing::warn!(file = %path.display(), bytes = len - good_len, "cutting a torn last line left by a crash; its document is written again");
            file.set_len(good_len).map_err(Error::io(context()))?;
            file.sync_data().map_err(Error::io(context()))?;
        }
        file.seek(SeekFrom::End(0)).map_err(Error::io(context()))?;
        Ok(Self { file, ids, pending: Vec::new(), unsynced: false })
    }

    /// Writes the gathered lines, and syncs the file if `sync` and lines were added since the last sync.
    /// The buffer is emptied either way.
    fn flush(&mut self, sync: bool) -> std::io::Result<()> {
        let written = self.file.write_all(&self.pending);
        self.pending.clear();
        written?;
        if sync && self.unsynced {
            self.file.sync_data()?;
            self.unsynced = false;
        }
        Ok(())
    }
}

/// Where the last `lines` complete lines of `file` begin (0 if it holds no more than that). A torn last
/// line, without its newline, is not counted. Reads backwards from the end in 1 MiB chunks, so opening a
/// large daily file reads only its tail.
fn start_of_last_lines(file: &mut File, lines: usize) -> std::io::Result<u64> {
    const CHUNK: u64 = 1 << 20;
    let mut end = file.metadata()?.len();
    let mut newlines = 0;
    let mut chunk = Vec::new();
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        chunk.resize((end - start) as usize, 0);
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk)?;
        for at in memchr::memrchr_iter(b'\n', &chunk) {
            newlines += 1;
            // This newline ends the line before the last `lines` complete ones.
            if newlines == lines + 1 {
                return Ok(start + at as u64 + 1);
            }
        }
        end = start;
    }
    Ok(0)
}

/// Writes `batch` on a blocking thread, retrying failures with backoff until it is on disk. False if
/// `stop` fired first.
pub(super) async fn deliver(output: Arc<FileOutput>, batch: Arc<Batch>, stop: &CancellationToken) -> bool {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
    let mut failing = false;
    loop {
        let (output, job) = (output.clone(), batch.clone());
        let result = tokio::task::spawn_blocking(move || output.write(&job)).await;
        match result {
            Ok(Ok(_)) => {
                if failing {
                    tracing::info!("the file output writes again");
                }
                return true;
            }
            Ok(Err(e)) => {
                if !failing {
                    tracing::error!("{e}; retrying with backoff, consumption pauses");
                    failing = true;
                }
            }
            Err(e) => {
                tracing::error!("the file output's writer failed: {e}; retrying");
                failing = true;
            }
        }
        if !super::elasticsearch::sleep_or_stop(backoff.next_delay(), stop).await {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Processor, RecordBatch};
    use crate::config::{Compiled, IndexerConfig};

    fn batch(ids: &[&str]) -> Batch {
        let config = IndexerConfig { default_index: "logs-%{+YYYY.MM.dd}".into(), ..IndexerConfig::default() };
        let p = Processor::new(Compiled::try_from(&config).unwrap());
        let topic: Arc<str> = "t".into();
        let mut records = RecordBatch::default();
        for (i, id) in ids.iter().enumerate() {
            let value =
                format!(r#"{{"@timestamp":"2026-11-21T01:00:00.000Z","message":"m{i}","event":{{"id":"{id}"}}}}"#);
            records.push(&topic, 0, i as i64, -1, Some(value.as_bytes()));
        }
        p.build(1, records)
    }

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[test]
    fn ids_are_written_once_across_reopen_and_torn_tails_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let out = FileOutput::open(dir.path(), 1000).unwrap();
        assert_eq!(out.write(&batch(&["a", "b"])).unwrap(), 2);
        assert_eq!(out.write(&batch(&["b", "c"])).unwrap(), 1);
        let path = out.path_of("logs-2026.11.21");
        drop(out);
        // A crash cut the next write short.
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(br#"{"_id":"d","mess"#).unwrap();
        let out = FileOutput::open(dir.path(), 1000).unwrap();
        assert_eq!(out.write(&batch(&["a", "c", "d"])).unwrap(), 1);
        let docs = lines(&path);
        let ids: Vec<&str> = docs.iter().map(|d| d["_id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["a", "b", "c", "d"]);
        assert_eq!(docs[0]["message"], "m0");
        assert_eq!(docs[0]["event"]["id"], "a");
    }

    fn ids(path: &Path) -> Vec<String> {
        lines(path).iter().map(|d| d["_id"].as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn replays_are_rejected_within_the_window_of_recent_documents_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let out = FileOutput::open(dir.path(), 2).unwrap();
        assert_eq!(out.write(&batch(&["a", "b", "c"])).unwrap(), 3);
        assert_eq!(out.write(&batch(&["b", "c"])).unwrap(), 0, "the last two are remembered");
        assert_eq!(out.write(&batch(&["a"])).unwrap(), 1, "older than the window: written again");
        let path = out.path_of("logs-2026.11.21");
        drop(out);
        // Reopened, the file's last two lines (c, a) are loaded, and no more.
        let out = FileOutput::open(dir.path(), 2).unwrap();
        assert_eq!(out.write(&batch(&["c", "a", "b"])).unwrap(), 1);
        assert_eq!(ids(&path), ["a", "b", "c", "a", "b"]);
    }

    #[test]
    fn reopening_a_file_larger_than_a_read_chunk_loads_exactly_its_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let out = FileOutput::open(dir.path(), 10_000).unwrap();
        let names: Vec<String> = (0..3000).map(|i| format!("{i:0>400}")).collect();
        let all: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(out.write(&batch(&all)).unwrap(), 3000);
        let path = out.path_of("logs-2026.11.21");
        assert!(std::fs::metadata(&path).unwrap().len() > 2 << 20, "the tail is read in more than one chunk");
        drop(out);
        // A torn line at the end is cut and not counted among the last lines.
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(br#"{"_id":"x","#).unwrap();
        let out = FileOutput::open(dir.path(), 2500).unwrap();
        // ids 500..3000 are the last 2500 lines: replays; 499 is just outside the window.
        assert_eq!(out.write(&batch(&[all[500], all[2999], all[1234]])).unwrap(), 0);
        assert_eq!(out.write(&batch(&[all[499]])).unwrap(), 1);
        assert_eq!(ids(&path).len(), 3001);
    }

    #[test]
    fn index_names_cannot_escape_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let out = FileOutput::open(dir.path(), 1000).unwrap();
        assert_eq!(out.path_of("../../etc/passwd"), dir.path().join(".._.._etc_passwd.ndjson"));
        assert_eq!(out.path_of(".."), dir.path().join("_...ndjson"));
        assert_eq!(out.path_of("nginx_access-2026.11.21"), dir.path().join("nginx_access-2026.11.21.ndjson"));
    }
}
