//! `logpipe import` and `logpipe run --from`: the import crate translates, and the result is validated
//! the way `logpipe check` validates any pipeline file, by loading it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use logpipe_import::{Imported, Report, Severity};

use crate::pipeline::Pipeline;

fn print_report(report: &Report, full: bool) {
    let mut err = std::io::stderr().lock();
    for d in report.sorted() {
        if full || d.severity > Severity::Info {
            let _ = writeln!(err, "{d}");
        }
    }
    let _ = write!(err, "{}", report.to_string().lines().last().map(|l| format!("{l}\n")).unwrap_or_default());
}

/// Translates `files`, prints the report (the whole of it with `--report`, which alone means stderr;
/// else errors and warnings), refuses on errors unless `bypass_errors`, and validates.
fn translate(files: &[PathBuf], report: Option<&Path>, bypass_errors: bool) -> Result<(Imported, Pipeline)> {
    let imported = logpipe_import::import(files)?;
    match report {
        Some(path) if path != Path::new("-") => {
            std::fs::write(path, imported.report.to_string())
                .with_context(|| format!("cannot write the report to {}", path.display()))?;
            print_report(&imported.report, false);
        }
        Some(_) => print_report(&imported.report, true),
        None => print_report(&imported.report, false),
    }
    let errors = imported.report.errors().count();
    if errors > 0 && !bypass_errors {
        bail!(
            "{errors} item(s) do not translate (listed above, marked Error); change the source configs, or pass \
             --bypass-errors to leave them out (each is named in a comment in the pipeline)"
        );
    }
    let pipeline = validate(&imported.pipeline)?;
    Ok((imported, pipeline))
}

/// Loads the text as `logpipe check` loads a file.
fn validate(text: &str) -> Result<Pipeline> {
    let dir = std::env::temp_dir().join(format!("logpipe-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("imported.toml");
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    let loaded = Pipeline::load(&path);
    let _ = std::fs::remove_dir_all(&dir);
    loaded.map_err(|e| {
        anyhow::anyhow!("the imported pipeline does not load: {e:#}\n--- the pipeline as imported ---\n{text}")
    })
}

pub fn import_command(
    files: &[PathBuf],
    output: Option<&Path>,
    report: Option<&Path>,
    bypass_errors: bool,
) -> Result<()> {
    let (imported, _) = translate(files, report, bypass_errors)?;
    match output {
        Some(path) => {
            std::fs::write(path, &imported.pipeline).with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {} (check it with `logpipe check {}`)", path.display(), path.display());
        }
        None => print!("{}", imported.pipeline),
    }
    Ok(())
}

/// `logpipe run --from ...`: the imported pipeline, in memory.
pub fn import_for_run(files: &[PathBuf], bypass_errors: bool) -> Result<Pipeline> {
    Ok(translate(files, None, bypass_errors)?.1)
}
