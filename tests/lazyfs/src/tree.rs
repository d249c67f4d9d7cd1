//! The file system's state: every inode with what a process sees now and what an fsync made durable.
//!
//! The model is the strict one LazyFS and crash-consistency checkers use for ext4 without
//! `data=journal`: a file's bytes are durable only after `fsync`/`fdatasync` on that file, and a
//! directory entry (a creation, a rename, an unlink, a mkdir) only after `fsync` on the directory that
//! holds it. [`Tree::drop_unsynced`] is the power cut: every file gets back the bytes of its last
//! fsync, every directory the entries of its last fsync, and whatever no durable entry reaches is gone.
//! Permissions, owners and times are kept as they are (nothing in logpipe depends on them surviving).

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::time::SystemTime;

use fuser::{Errno, FileAttr, FileType, INodeNo};

pub const ROOT: u64 = 1;
const BLOCK: u64 = 4096;

/// What a power cut took away, for the test's log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DropReport {
    /// Bytes written, truncated or overwritten since the file's last fsync, over all files.
    pub bytes_lost: u64,
    /// Directories whose entries differed from their last fsync.
    pub dirs_reverted: u64,
    /// Inodes no durable entry reaches any more (files created and never linked durably, ...).
    pub inodes_removed: u64,
}

/// Counters since mount, so a test can show it exercised the sync paths.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub fsyncs: u64,
    pub dir_fsyncs: u64,
    pub drops: u64,
}

#[derive(Debug)]
enum Body {
    File(FileBody),
    Dir(DirBody),
    Symlink(OsString),
}

#[derive(Debug, Default)]
struct FileBody {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// Lowest byte changed since the last fsync; `None` when `data == durable`. Everything below it
    /// is equal in both, so an fsync copies only from here (an append-only log costs its new bytes).
    dirty_from: Option<usize>,
}

#[derive(Debug, Default)]
struct DirBody {
    entries: BTreeMap<OsString, u64>,
    durable: BTreeMap<OsString, u64>,
}

#[derive(Debug)]
struct Inode {
    body: Body,
    perm: u16,
    uid: u32,
    gid: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
    /// Entries naming this inode now.
    links: u32,
    /// Entries naming it in some directory's durable state: while any is left, a drop can bring it back.
    durable_links: u32,
    /// Open handles (the kernel's open/release and opendir/releasedir).
    open: u32,
}

impl Inode {
    fn new(body: Body, perm: u16, uid: u32, gid: u32) -> Self {
        let now = SystemTime::now();
        Inode { body, perm, uid, gid, atime: now, mtime: now, ctime: now, links: 0, durable_links: 0, open: 0 }
    }

    fn kind(&self) -> FileType {
        match self.body {
            Body::File(_) => FileType::RegularFile,
            Body::Dir(_) => FileType::Directory,
            Body::Symlink(_) => FileType::Symlink,
        }
    }

    fn size(&self) -> u64 {
        match &self.body {
            Body::File(f) => f.data.len() as u64,
            Body::Dir(d) => d.entries.len() as u64,
            Body::Symlink(target) => target.len() as u64,
        }
    }
}

/// All inodes of one mount.
#[derive(Debug)]
pub struct Tree {
    inodes: HashMap<u64, Inode>,
    /// Inode numbers are never reused, so a stale number the kernel still holds after a drop gets
    /// ENOENT instead of another file.
    next_ino: u64,
    stats: Stats,
}

impl Tree {
    /// An empty root directory, already durable (a freshly made file system).
    pub fn new(uid: u32, gid: u32) -> Self {
        let mut root = Inode::new(Body::Dir(DirBody::default()), 0o755, uid, gid);
        root.links = 1;
        root.durable_links = 1;
        Tree { inodes: HashMap::from([(ROOT, root)]), next_ino: ROOT + 1, stats: Stats::default() }
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    pub fn inode_numbers(&self) -> Vec<u64> {
        self.inodes.keys().copied().collect()
    }

    pub fn attr(&self, ino: u64) -> Result<FileAttr, Errno> {
        let node = self.inodes.get(&ino).ok_or(Errno::ENOENT)?;
        let size = node.size();
        let nlink = match &node.body {
            Body::Dir(d) => {
                2 + d
                    .entries
                    .values()
                    .filter(|c| matches!(self.inodes.get(c).map(|n| &n.body), Some(Body::Dir(_))))
                    .count() as u32
            }
            _ => node.links,
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: node.atime,
            mtime: node.mtime,
            ctime: node.ctime,
            crtime: node.ctime,
            kind: node.kind(),
            perm: node.perm,
            nlink,
            uid: node.uid,
            gid: node.gid,
            rdev: 0,
            blksize: BLOCK as u32,
            flags: 0,
        })
    }

    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<FileAttr, Errno> {
        let ino = *self.dir(parent)?.entries.get(name).ok_or(Errno::ENOENT)?;
        self.attr(ino)
    }

    /// Creates a regular file (`kind` file), directory or symlink named `name` in `parent`.
    pub fn create(
        &mut self,
        parent: u64,
        name: &OsStr,
        kind: FileType,
        perm: u16,
        owner: (u32, u32),
        symlink_target: Option<&OsStr>,
    ) -> Result<FileAttr, Errno> {
        if self.dir(parent)?.entries.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let body = match (kind, symlink_target) {
            (FileType::RegularFile, _) => Body::File(FileBody::default()),
            (FileType::Directory, _) => Body::Dir(DirBody::default()),
            (FileType::Symlink, Some(target)) => Body::Symlink(target.to_owned()),
            _ => return Err(Errno::EOPNOTSUPP),
        };
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(ino, Inode::new(body, perm, owner.0, owner.1));
        self.link_entry(parent, name, ino)?;
        self.attr(ino)
    }

    /// A hard link.
    pub fn link(&mut self, ino: u64, parent: u64, name: &OsStr) -> Result<FileAttr, Errno> {
        match self.inodes.get(&ino).map(|n| &n.body) {
            None => return Err(Errno::ENOENT),
            Some(Body::Dir(_)) => return Err(Errno::EPERM),
            Some(_) => {}
        }
        if self.dir(parent)?.entries.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        self.link_entry(parent, name, ino)?;
        self.attr(ino)
    }

    /// unlink (files) and rmdir (empty directories).
    pub fn remove(&mut self, parent: u64, name: &OsStr, want_dir: bool) -> Result<(), Errno> {
        let ino = *self.dir(parent)?.entries.get(name).ok_or(Errno::ENOENT)?;
        match (&self.node(ino)?.body, want_dir) {
            (Body::Dir(d), true) if !d.entries.is_empty() => return Err(Errno::ENOTEMPTY),
            (Body::Dir(_), true) => {}
            (Body::Dir(_), false) => return Err(Errno::EISDIR),
            (_, true) => return Err(Errno::ENOTDIR),
            (_, false) => {}
        }
        self.unlink_entry(parent, name);
        Ok(())
    }

    pub fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        no_replace: bool,
    ) -> Result<(), Errno> {
        let ino = *self.dir(parent)?.entries.get(name).ok_or(Errno::ENOENT)?;
        let moving_dir = matches!(self.node(ino)?.body, Body::Dir(_));
        if moving_dir && (ino == new_parent || self.is_ancestor(ino, new_parent)) {
            return Err(Errno::EINVAL);
        }
        if let Some(&existing) = self.dir(new_parent)?.entries.get(new_name) {
            if existing == ino {
                return Ok(());
            }
            if no_replace {
                return Err(Errno::EEXIST);
            }
            match (&self.node(existing)?.body, moving_dir) {
                (Body::Dir(d), true) if !d.entries.is_empty() => return Err(Errno::ENOTEMPTY),
                (Body::Dir(_), false) => return Err(Errno::EISDIR),
                (_, true) if !matches!(self.node(existing)?.body, Body::Dir(_)) => return Err(Errno::ENOTDIR),
                _ => {}
            }
            self.unlink_entry(new_parent, new_name);
        }
        self.link_entry(new_parent, new_name, ino)?;
        self.unlink_entry(parent, name);
        self.touch_ctime(ino);
        Ok(())
    }

    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>, Errno> {
        match &self.node(ino)?.body {
            Body::Symlink(target) => Ok(target.as_encoded_bytes().to_vec()),
            _ => Err(Errno::EINVAL),
        }
    }

    /// `(ino, kind, name)` of every entry, `.` and `..` first.
    pub fn list(&self, ino: u64) -> Result<Vec<(u64, FileType, OsString)>, Errno> {
        let dir = self.dir(ino)?;
        let mut out = vec![(ino, FileType::Directory, OsString::from(".")), (ino, FileType::Directory, "..".into())];
        for (name, child) in &dir.entries {
            if let Some(node) = self.inodes.get(child) {
                out.push((*child, node.kind(), name.clone()));
            }
        }
        Ok(out)
    }

    pub fn open(&mut self, ino: u64) -> Result<(), Errno> {
        self.node_mut(ino)?.open += 1;
        Ok(())
    }

    pub fn release(&mut self, ino: u64) {
        if let Some(node) = self.inodes.get_mut(&ino) {
            node.open = node.open.saturating_sub(1);
            self.collect(ino);
        }
    }

    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<&[u8], Errno> {
        let data = &self.file(ino)?.data;
        let start = (offset as usize).min(data.len());
        let end = start.saturating_add(size as usize).min(data.len());
        Ok(&data[start..end])
    }

    pub fn write(&mut self, ino: u64, offset: u64, bytes: &[u8]) -> Result<u32, Errno> {
        let offset = usize::try_from(offset).map_err(|_| Errno::EFBIG)?;
        let end = offset.checked_add(bytes.len()).ok_or(Errno::EFBIG)?;
        let file = self.file_mut(ino)?;
        let old_len = file.data.len();
        if end > old_len {
            file.data.resize(end, 0);
        }
        file.data[offset..end].copy_from_slice(bytes);
        file.mark_dirty(offset.min(old_len));
        self.touch_mtime(ino);
        Ok(bytes.len() as u32)
    }

    /// chmod, chown, truncate and utimes in one, as FUSE's setattr sends them.
    pub fn set_attr(
        &mut self,
        ino: u64,
        perm: Option<u32>,
        owner: (Option<u32>, Option<u32>),
        size: Option<u64>,
        times: (Option<SystemTime>, Option<SystemTime>),
    ) -> Result<FileAttr, Errno> {
        if let Some(size) = size {
            let size = usize::try_from(size).map_err(|_| Errno::EFBIG)?;
            let file = self.file_mut(ino)?;
            let old_len = file.data.len();
            if size != old_len {
                file.data.resize(size, 0);
                file.mark_dirty(size.min(old_len));
            }
            self.touch_mtime(ino);
        }
        let node = self.node_mut(ino)?;
        if let Some(perm) = perm {
            node.perm = (perm & 0o7777) as u16;
        }
        node.uid = owner.0.unwrap_or(node.uid);
        node.gid = owner.1.unwrap_or(node.gid);
        node.atime = times.0.unwrap_or(node.atime);
        node.mtime = times.1.unwrap_or(node.mtime);
        node.ctime = SystemTime::now();
        self.attr(ino)
    }

    /// fsync/fdatasync of a file: its bytes become durable (its name does not: that is the directory's).
    pub fn fsync_file(&mut self, ino: u64) -> Result<(), Errno> {
        self.stats.fsyncs += 1;
        match &mut self.node_mut(ino)?.body {
            Body::File(file) => {
                if let Some(from) = file.dirty_from.take() {
                    let from = from.min(file.durable.len()).min(file.data.len());
                    file.durable.truncate(from);
                    file.durable.extend_from_slice(&file.data[from..]);
                }
                Ok(())
            }
            Body::Dir(_) => self.fsync_dir(ino),
            Body::Symlink(_) => Ok(()),
        }
    }

    /// fsync of a directory: its entries as they are now become durable.
    pub fn fsync_dir(&mut self, ino: u64) -> Result<(), Errno> {
        self.stats.dir_fsyncs += 1;
        let dir = self.dir(ino)?;
        if dir.entries == dir.durable {
            return Ok(());
        }
        let old: Vec<u64> = dir.durable.values().copied().collect();
        let new: Vec<u64> = dir.entries.values().copied().collect();
        for child in &new {
            if let Some(node) = self.inodes.get_mut(child) {
                node.durable_links += 1;
            }
        }
        for child in &old {
            if let Some(node) = self.inodes.get_mut(child) {
                node.durable_links = node.durable_links.saturating_sub(1);
            }
        }
        if let Some(Body::Dir(dir)) = self.inodes.get_mut(&ino).map(|n| &mut n.body) {
            dir.durable = dir.entries.clone();
        }
        for child in old {
            self.collect(child);
        }
        Ok(())
    }

    /// The power cut: every file and directory goes back to its last fsync, and inodes that no
    /// durable entry reaches from the root disappear.
    pub fn drop_unsynced(&mut self) -> DropReport {
        self.stats.drops += 1;
        let mut report = DropReport::default();
        for node in self.inodes.values_mut() {
            match &mut node.body {
                Body::File(file) => {
                    if let Some(from) = file.dirty_from.take() {
                        report.bytes_lost += (file.data.len().max(file.durable.len()) - from) as u64;
                        file.data.clone_from(&file.durable);
                    }
                }
                Body::Dir(dir) => {
                    if dir.entries != dir.durable {
                        report.dirs_reverted += 1;
                        dir.entries.clone_from(&dir.durable);
                    }
                }
                Body::Symlink(_) => {}
            }
            node.links = 0;
            node.durable_links = 0;
            node.open = 0;
        }
        // Walk from the root over the (now durable) entries; count the links as we go.
        let mut reached = vec![ROOT];
        let mut stack = vec![ROOT];
        while let Some(ino) = stack.pop() {
            let children: Vec<u64> = match self.inodes.get(&ino).map(|n| &n.body) {
                Some(Body::Dir(dir)) => dir.entries.values().copied().collect(),
                _ => Vec::new(),
            };
            for child in children {
                let Some(node) = self.inodes.get_mut(&child) else { continue };
                if node.links == 0 {
                    reached.push(child);
                    stack.push(child);
                }
                node.links += 1;
                node.durable_links += 1;
            }
        }
        let before = self.inodes.len();
        let reached: std::collections::HashSet<u64> = reached.into_iter().collect();
        self.inodes.retain(|ino, _| reached.contains(ino));
        report.inodes_removed = (before - self.inodes.len()) as u64;
        let root = self.inodes.get_mut(&ROOT).expect("the root is always reached");
        root.links = 1;
        root.durable_links = 1;
        report
    }

    pub fn used_bytes(&self) -> u64 {
        self.inodes.values().map(|n| n.size()).sum()
    }

    pub fn inode_count(&self) -> u64 {
        self.inodes.len() as u64
    }

    fn link_entry(&mut self, parent: u64, name: &OsStr, ino: u64) -> Result<(), Errno> {
        self.dir_mut(parent)?.entries.insert(name.to_owned(), ino);
        self.node_mut(ino)?.links += 1;
        self.touch_mtime(parent);
        Ok(())
    }

    fn unlink_entry(&mut self, parent: u64, name: &OsStr) {
        let Ok(dir) = self.dir_mut(parent) else { return };
        let Some(ino) = dir.entries.remove(name) else { return };
        if let Some(node) = self.inodes.get_mut(&ino) {
            node.links = node.links.saturating_sub(1);
        }
        self.touch_mtime(parent);
        self.collect(ino);
    }

    /// Forgets an inode nothing can reach any more: no entry now, none durable, no open handle.
    fn collect(&mut self, ino: u64) {
        if ino == ROOT {
            return;
        }
        if let Some(node) = self.inodes.get(&ino) {
            if node.links == 0 && node.durable_links == 0 && node.open == 0 {
                self.inodes.remove(&ino);
            }
        }
    }

    fn is_ancestor(&self, ancestor: u64, mut ino: u64) -> bool {
        // Directories have one entry each, so walking up by searching parents is enough for a test fs.
        let mut guard = 0;
        while ino != ROOT && guard < 4096 {
            let parent = self.inodes.iter().find_map(|(p, n)| match &n.body {
                Body::Dir(d) if d.entries.values().any(|c| *c == ino) => Some(*p),
                _ => None,
            });
            match parent {
                Some(p) if p == ancestor => return true,
                Some(p) => ino = p,
                None => return false,
            }
            guard += 1;
        }
        false
    }

    fn touch_mtime(&mut self, ino: u64) {
        if let Some(node) = self.inodes.get_mut(&ino) {
            let now = SystemTime::now();
            node.mtime = now;
            node.ctime = now;
        }
    }

    fn touch_ctime(&mut self, ino: u64) {
        if let Some(node) = self.inodes.get_mut(&ino) {
            node.ctime = SystemTime::now();
        }
    }

    fn node(&self, ino: u64) -> Result<&Inode, Errno> {
        self.inodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Result<&mut Inode, Errno> {
        self.inodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn dir(&self, ino: u64) -> Result<&DirBody, Errno> {
        match &self.node(ino)?.body {
            Body::Dir(dir) => Ok(dir),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: u64) -> Result<&mut DirBody, Errno> {
        match &mut self.node_mut(ino)?.body {
            Body::Dir(dir) => Ok(dir),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn file(&self, ino: u64) -> Result<&FileBody, Errno> {
        match &self.node(ino)?.body {
            Body::File(file) => Ok(file),
            Body::Dir(_) => Err(Errno::EISDIR),
            Body::Symlink(_) => Err(Errno::EINVAL),
        }
    }

    fn file_mut(&mut self, ino: u64) -> Result<&mut FileBody, Errno> {
        match &mut self.node_mut(ino)?.body {
            Body::File(file) => Ok(file),
            Body::Dir(_) => Err(Errno::EISDIR),
            Body::Symlink(_) => Err(Errno::EINVAL),
        }
    }
}

impl FileBody {
    fn mark_dirty(&mut self, from: usize) {
        self.dirty_from = Some(self.dirty_from.map_or(from, |d| d.min(from)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(tree: &mut Tree, parent: u64, name: &str) -> u64 {
        tree.create(parent, OsStr::new(name), FileType::RegularFile, 0o644, (0, 0), None).unwrap().ino.0
    }

    fn dir(tree: &mut Tree, parent: u64, name: &str) -> u64 {
        tree.create(parent, OsStr::new(name), FileType::Directory, 0o755, (0, 0), None).unwrap().ino.0
    }

    fn content(tree: &Tree, parent: u64, name: &str) -> Option<Vec<u8>> {
        let ino = tree.lookup(parent, OsStr::new(name)).ok()?.ino.0;
        Some(tree.read(ino, 0, u32::MAX).unwrap().to_vec())
    }

    #[test]
    fn unsynced_bytes_are_dropped_and_synced_ones_kept() {
        let mut t = Tree::new(0, 0);
        let f = file(&mut t, ROOT, "log");
        t.fsync_dir(ROOT).unwrap();
        t.write(f, 0, b"hello ").unwrap();
        t.fsync_file(f).unwrap();
        t.write(f, 6, b"world").unwrap();
        let report = t.drop_unsynced();
        assert_eq!(content(&t, ROOT, "log").unwrap(), b"hello ");
        assert_eq!(report.bytes_lost, 5);
    }

    #[test]
    fn overwrite_and_truncate_go_back_to_the_synced_bytes() {
        let mut t = Tree::new(0, 0);
        let f = file(&mut t, ROOT, "seg");
        t.fsync_dir(ROOT).unwrap();
        t.write(f, 0, b"0123456789").unwrap();
        t.fsync_file(f).unwrap();
        t.write(f, 2, b"xx").unwrap();
        t.set_attr(f, None, (None, None), Some(4), (None, None)).unwrap();
        t.write(f, 8, b"yy").unwrap();
        t.drop_unsynced();
        assert_eq!(content(&t, ROOT, "seg").unwrap(), b"0123456789");
    }

    #[test]
    fn a_synced_file_without_a_synced_entry_is_gone() {
        let mut t = Tree::new(0, 0);
        let f = file(&mut t, ROOT, "new");
        t.write(f, 0, b"data").unwrap();
        t.fsync_file(f).unwrap();
        let report = t.drop_unsynced();
        assert!(t.lookup(ROOT, OsStr::new("new")).is_err());
        assert_eq!(report.inodes_removed, 1);
    }

    #[test]
    fn a_synced_entry_without_synced_bytes_is_an_empty_file() {
        let mut t = Tree::new(0, 0);
        let f = file(&mut t, ROOT, "new");
        t.write(f, 0, b"data").unwrap();
        t.fsync_dir(ROOT).unwrap();
        t.drop_unsynced();
        assert_eq!(content(&t, ROOT, "new").unwrap(), b"");
    }

    #[test]
    fn rename_is_undone_unless_the_directory_was_synced() {
        let mut t = Tree::new(0, 0);
        let old = file(&mut t, ROOT, "state");
        t.write(old, 0, b"old").unwrap();
        t.fsync_file(old).unwrap();
        t.fsync_dir(ROOT).unwrap();
        let tmp = file(&mut t, ROOT, "state.tmp");
        t.write(tmp, 0, b"new").unwrap();
        t.fsync_file(tmp).unwrap();
        t.rename(ROOT, OsStr::new("state.tmp"), ROOT, OsStr::new("state"), false).unwrap();
        assert_eq!(content(&t, ROOT, "state").unwrap(), b"new");
        t.drop_unsynced();
        assert_eq!(content(&t, ROOT, "state").unwrap(), b"old", "the rename was not synced");
        assert!(t.lookup(ROOT, OsStr::new("state.tmp")).is_err(), "nor was the creation of the tmp file");

        let tmp = file(&mut t, ROOT, "state.tmp");
        t.write(tmp, 0, b"new").unwrap();
        t.fsync_file(tmp).unwrap();
        t.rename(ROOT, OsStr::new("state.tmp"), ROOT, OsStr::new("state"), false).unwrap();
        t.fsync_dir(ROOT).unwrap();
        t.drop_unsynced();
        assert_eq!(content(&t, ROOT, "state").unwrap(), b"new");
    }

    #[test]
    fn unlink_and_rmdir_come_back_unless_synced() {
        let mut t = Tree::new(0, 0);
        let d = dir(&mut t, ROOT, "topic-0");
        let f = file(&mut t, d, "0.log");
        t.write(f, 0, b"batch").unwrap();
        t.fsync_file(f).unwrap();
        t.fsync_dir(d).unwrap();
        t.fsync_dir(ROOT).unwrap();
        t.remove(d, OsStr::new("0.log"), false).unwrap();
        t.remove(ROOT, OsStr::new("topic-0"), true).unwrap();
        t.drop_unsynced();
        assert_eq!(content(&t, d, "0.log").unwrap(), b"batch");
        t.remove(d, OsStr::new("0.log"), false).unwrap();
        t.fsync_dir(d).unwrap();
        t.drop_unsynced();
        assert!(t.lookup(d, OsStr::new("0.log")).is_err());
    }

    #[test]
    fn a_new_directory_needs_its_parent_synced_and_its_own_entries_synced() {
        let mut t = Tree::new(0, 0);
        let d = dir(&mut t, ROOT, "groups");
        let f = file(&mut t, d, "offsets");
        t.fsync_file(f).unwrap();
        t.fsync_dir(d).unwrap();
        t.drop_unsynced();
        assert!(t.lookup(ROOT, OsStr::new("groups")).is_err(), "mkdir not synced through the parent");

        let d = dir(&mut t, ROOT, "groups");
        file(&mut t, d, "offsets");
        t.fsync_dir(ROOT).unwrap();
        t.drop_unsynced();
        assert!(t.lookup(d, OsStr::new("offsets")).is_err(), "the directory's own entries were not synced");
        assert!(t.lookup(ROOT, OsStr::new("groups")).is_ok());
    }

    #[test]
    fn replaced_inodes_are_freed_once_no_durable_entry_names_them() {
        let mut t = Tree::new(0, 0);
        for round in 0..10u8 {
            let tmp = file(&mut t, ROOT, "r.tmp");
            t.write(tmp, 0, &[round]).unwrap();
            t.fsync_file(tmp).unwrap();
            t.rename(ROOT, OsStr::new("r.tmp"), ROOT, OsStr::new("r"), false).unwrap();
            t.fsync_dir(ROOT).unwrap();
        }
        assert_eq!(t.inode_count(), 2, "root and the current file");
    }

    #[test]
    fn open_unlinked_file_stays_readable_until_released() {
        let mut t = Tree::new(0, 0);
        let f = file(&mut t, ROOT, "x");
        t.write(f, 0, b"abc").unwrap();
        t.open(f).unwrap();
        t.remove(ROOT, OsStr::new("x"), false).unwrap();
        assert_eq!(t.read(f, 0, 10).unwrap(), b"abc");
        t.release(f);
        assert!(t.attr(f).is_err());
    }
}
