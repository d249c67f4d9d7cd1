//! lazyfs mounted for real (needs /dev/fuse and root, as in CI): plain std::fs calls through the
//! kernel, then a drop, then what is left. Proves the file system really forgets unsynced writes,
//! creations and renames, and keeps what was fsynced, so the power-loss tests built on it mean something.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

struct Mount {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Mount {
    fn new() -> Mount {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mnt");
        fs::create_dir(&dir).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_lazyfs"))
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert!(line.starts_with("ready "), "lazyfs did not mount (needs /dev/fuse and root): {line:?}");
        Mount { child, stdin, stdout, dir, _tmp: tmp }
    }

    fn command(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim().to_owned()
    }

    fn power_cut(&mut self) -> String {
        let answer = self.command("drop");
        assert!(answer.starts_with("dropped "), "{answer}");
        answer
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.wait();
    }
}

fn sync_dir(dir: &Path) {
    File::open(dir).unwrap().sync_all().unwrap();
}

fn read(path: &Path) -> Option<Vec<u8>> {
    fs::read(path).ok()
}

#[test]
fn unsynced_appends_are_lost_and_synced_ones_kept() {
    let mut m = Mount::new();
    let path = m.path("00000000000000000000.log");
    let mut f = File::create(&path).unwrap();
    sync_dir(&m.dir);
    f.write_all(b"batch-1;").unwrap();
    f.sync_data().unwrap();
    f.write_all(b"batch-2;").unwrap();
    assert_eq!(read(&path).unwrap(), b"batch-1;batch-2;", "before the cut a reader sees everything");
    drop(f);
    let answer = m.power_cut();
    assert!(answer.contains("bytes_lost=8"), "{answer}");
    assert_eq!(read(&path).unwrap(), b"batch-1;");
    assert_eq!(fs::metadata(&path).unwrap().len(), 8, "the size the kernel reports follows the drop");
}

#[test]
fn overwrites_and_truncations_are_undone() {
    let mut m = Mount::new();
    let path = m.path("index");
    let f = File::create(&path).unwrap();
    sync_dir(&m.dir);
    f.write_all_at(b"0123456789", 0).unwrap();
    f.sync_all().unwrap();
    f.write_all_at(b"xx", 3).unwrap();
    f.set_len(5).unwrap();
    drop(f);
    m.power_cut();
    assert_eq!(read(&path).unwrap(), b"0123456789");
}

#[test]
fn a_created_file_needs_its_directory_synced() {
    let mut m = Mount::new();
    let path = m.path("registry.json");
    let mut f = File::create(&path).unwrap();
    f.write_all(b"{}").unwrap();
    f.sync_all().unwrap();
    drop(f);
    m.power_cut();
    assert!(!path.exists(), "the file's own fsync does not make its name durable");

    let mut f = File::create(&path).unwrap();
    f.write_all(b"{}").unwrap();
    sync_dir(&m.dir);
    drop(f);
    m.power_cut();
    assert_eq!(read(&path).unwrap(), b"", "the name survived, the unsynced bytes did not");
}

#[test]
fn a_rename_needs_its_directory_synced() {
    let mut m = Mount::new();
    let path = m.path("topics.json");
    let tmp = m.path("topics.json.tmp");
    fs::write(&path, b"v1").unwrap();
    File::open(&path).unwrap().sync_all().unwrap();
    sync_dir(&m.dir);

    let mut f = File::create(&tmp).unwrap();
    f.write_all(b"v2").unwrap();
    f.sync_all().unwrap();
    fs::rename(&tmp, &path).unwrap();
    assert_eq!(read(&path).unwrap(), b"v2");
    m.power_cut();
    assert_eq!(read(&path).unwrap(), b"v1", "tmp -> fsync -> rename without the directory's fsync reverts");
    assert!(!tmp.exists());

    let mut f = File::create(&tmp).unwrap();
    f.write_all(b"v2").unwrap();
    f.sync_all().unwrap();
    fs::rename(&tmp, &path).unwrap();
    sync_dir(&m.dir);
    m.power_cut();
    assert_eq!(read(&path).unwrap(), b"v2");
}

#[test]
fn deletions_and_new_directories_follow_their_parent() {
    let mut m = Mount::new();
    let topic = m.path("nginx-0");
    fs::create_dir(&topic).unwrap();
    fs::write(topic.join("0.log"), b"records").unwrap();
    File::open(topic.join("0.log")).unwrap().sync_all().unwrap();
    sync_dir(&topic);
    m.power_cut();
    assert!(!topic.exists(), "mkdir without an fsync of the parent is lost, with all inside it");

    fs::create_dir(&topic).unwrap();
    fs::write(topic.join("0.log"), b"records").unwrap();
    File::open(topic.join("0.log")).unwrap().sync_all().unwrap();
    sync_dir(&topic);
    sync_dir(&m.dir);
    fs::remove_file(topic.join("0.log")).unwrap();
    fs::remove_dir(&topic).unwrap();
    m.power_cut();
    assert_eq!(read(&topic.join("0.log")).unwrap(), b"records", "an unsynced delete is undone");

    fs::remove_file(topic.join("0.log")).unwrap();
    sync_dir(&topic);
    m.power_cut();
    assert!(topic.exists() && !topic.join("0.log").exists());
}

#[test]
fn a_plain_file_api_works_on_it() {
    let mut m = Mount::new();
    let path = m.path("a");
    let mut f = OpenOptions::new().create(true).append(true).open(&path).unwrap();
    for i in 0..1000 {
        writeln!(f, "line {i}").unwrap();
    }
    f.sync_all().unwrap();
    sync_dir(&m.dir);
    let mut text = String::new();
    File::open(&path).unwrap().read_to_string(&mut text).unwrap();
    assert_eq!(text.lines().count(), 1000);
    fs::hard_link(&path, m.path("b")).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().nlink(), 2);
    let names: Vec<_> = fs::read_dir(&m.dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2);
    f.write_all(b"unsynced\n").unwrap();
    drop(f);
    let stats = m.command("stats");
    assert!(stats.starts_with("stats fsyncs="), "{stats}");
    m.power_cut();
    assert!(!m.path("b").exists(), "the hard link was not synced");
    // After a drop the appender goes on where the durable file ends, not where it ended before.
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"after\n").unwrap();
    assert!(fs::read_to_string(&path).unwrap().ends_with("line 999\nafter\n"));
}
