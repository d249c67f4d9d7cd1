//! `lazyfs MOUNTPOINT`: a test-only FUSE file system that keeps everything in memory and, on command,
//! forgets whatever was not fsynced (file bytes without an fsync of the file, directory entries
//! without an fsync of the directory), the way a power cut does. It plays LazyFS's part in logpipe's
//! power-loss tests; it is not part of the `logpipe` binary.
//!
//! Control is line by line on stdin, answers on stdout (one line each):
//!
//! ```text
//! ready MOUNTPOINT                                    printed once the mount is up
//! drop    -> dropped bytes_lost=N dirs_reverted=N inodes_removed=N
//! stats   -> stats fsyncs=N dir_fsyncs=N drops=N inodes=N bytes=N
//! quit (or end of input) -> unmounts and exits 0
//! ```
//!
//! Drop only after every process that wrote to the mount was killed and reaped: a process's
//! in-flight requests finish before it can be reaped, so nothing of it lands after the drop.

mod fs;
mod tree;

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use clap::Parser;
use fuser::{Config, INodeNo, MountOption, Notifier, Session, SessionACL};

use crate::fs::LazyFs;
use crate::tree::Tree;

#[derive(Parser)]
#[command(about = "In-memory FUSE file system that drops unsynced writes on command (a simulated power cut)")]
struct Args {
    /// An existing, empty directory to mount on.
    mountpoint: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tree = Arc::new(Mutex::new({
        let (uid, gid) = owner_of_self();
        Tree::new(uid, gid)
    }));
    let mut config = Config::default();
    config.mount_options = vec![MountOption::FSName("lazyfs".into()), MountOption::Subtype("lazyfs".into())];
    // Tests run as root; anyone else the test starts (there is no one else) may use it too.
    config.acl = SessionACL::All;
    let session = Session::new(LazyFs::new(tree.clone()), &args.mountpoint, &config).with_context(|| {
        format!(
            "cannot mount lazyfs on {}: it needs /dev/fuse and root (or fusermount3 from Debian's fuse3)",
            args.mountpoint.display()
        )
    })?;
    let background = session.spawn().context("cannot start the FUSE session thread")?;
    let notifier = background.notifier();
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {}", args.mountpoint.display())?;
    out.flush()?;

    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading commands from stdin")?;
        let answer = match line.trim() {
            "" => continue,
            "drop" => drop_unsynced(&tree, &notifier),
            "stats" => stats(&tree),
            "quit" => break,
            other => format!("error unknown command {other:?}: use drop, stats or quit"),
        };
        writeln!(out, "{answer}")?;
        out.flush()?;
    }
    background.umount_and_join().context("unmounting")?;
    Ok(())
}

fn drop_unsynced(tree: &Mutex<Tree>, notifier: &Notifier) -> String {
    let (report, inodes) = {
        let mut tree = tree.lock().unwrap_or_else(|p| p.into_inner());
        let known = tree.inode_numbers();
        (tree.drop_unsynced(), known)
    };
    // The kernel may still hold attributes (sizes) of inodes it looked up before the drop; make it ask
    // again. Errors only mean the kernel did not know that inode.
    for ino in inodes {
        let _ = notifier.inval_inode(INodeNo(ino), 0, 0);
    }
    format!(
        "dropped bytes_lost={} dirs_reverted={} inodes_removed={}",
        report.bytes_lost, report.dirs_reverted, report.inodes_removed
    )
}

fn stats(tree: &Mutex<Tree>) -> String {
    let tree = tree.lock().unwrap_or_else(|p| p.into_inner());
    let s = tree.stats();
    format!(
        "stats fsyncs={} dir_fsyncs={} drops={} inodes={} bytes={}",
        s.fsyncs,
        s.dir_fsyncs,
        s.drops,
        tree.inode_count(),
        tree.used_bytes()
    )
}

/// The owner of the process, read from /proc (no libc call: the workspace forbids unsafe code).
fn owner_of_self() -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| (m.uid(), m.gid())).unwrap_or((0, 0))
}
