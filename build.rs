//! Puts the git commit into `logpipe --version` (`0.1.0 (git 1a2b3c4d5e6f)`). Outside a git checkout (a
//! source tarball, `cargo install` from the registry) or without git, the version is the crate's alone.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    let version = env!("CARGO_PKG_VERSION");
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) => {
            println!("cargo:rustc-env=LOGPIPE_VERSION={version} (git {commit})");
            // Rebuild when HEAD moves: HEAD itself (a branch switch), the branch's ref, packed refs.
            for path in ["HEAD", "packed-refs"] {
                if let Some(p) = git(&["rev-parse", "--git-path", path]) {
                    println!("cargo:rerun-if-changed={p}");
                }
            }
            if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
                if let Some(p) = git(&["rev-parse", "--git-path", &branch]) {
                    println!("cargo:rerun-if-changed={p}");
                }
            }
        }
        None => println!("cargo:rustc-env=LOGPIPE_VERSION={version}"),
    }
    println!("cargo:rerun-if-changed=build.rs");
}
