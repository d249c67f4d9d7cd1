//! `logpipe users add|delete|list`: the broker's SCRAM credentials store (`credentials.json` under the
//! broker's `log_dirs`), edited the way `kafka-configs --entity-type users` does, and usable before the
//! broker first starts so a user exists before authentication is switched on.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use logpipe_broker::users::{self, ScramMechanism, MIN_ITERATIONS};
use logpipe_broker::BrokerConfig;

use crate::pipeline::Pipeline;

#[derive(Args)]
pub struct UsersArgs {
    /// The broker's config file; its `log_dirs` holds the store. Without one, Kafka's default `data/broker`.
    #[arg(short, long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: UsersCommand,
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Add a user, or set a new password: salted and hashed, never stored as given.
    Add {
        name: String,
        /// SCRAM-SHA-512 or SCRAM-SHA-256. PLAIN logins are checked against either.
        #[arg(long, default_value = "SCRAM-SHA-512")]
        mechanism: String,
        /// Read the password from the first line of standard input (the only way: never on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// PBKDF2 iterations (at least 4096).
        #[arg(long, default_value_t = MIN_ITERATIONS)]
        iterations: u32,
    },
    /// Delete a user (every mechanism, or only `--mechanism`).
    Delete {
        name: String,
        #[arg(long)]
        mechanism: Option<String>,
    },
    /// List users with their mechanisms and iteration counts (no secrets).
    List,
}

fn mechanism(name: &str) -> Result<ScramMechanism> {
    ScramMechanism::parse(name).with_context(|| format!("--mechanism {name}: use SCRAM-SHA-512 or SCRAM-SHA-256"))
}

pub fn run(args: UsersArgs) -> Result<()> {
    let broker = match &args.config {
        Some(path) => Pipeline::load(path)?
            .broker
            .with_context(|| format!("{} has no [broker] section", path.display()))?
            .into_inner(),
        None => BrokerConfig::default(),
    };
    let log_dirs = broker.log_dirs;
    let store = log_dirs.join(users::FILE_NAME);
    match args.command {
        UsersCommand::Add { name, mechanism: m, password_stdin: _, iterations } => {
            let m = mechanism(&m)?;
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password).context("cannot read the password from stdin")?;
            let password = password.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                bail!("no password on stdin (--password-stdin reads its first line)");
            }
            users::add_user(&log_dirs, &name, m, password, iterations)
                .with_context(|| format!("cannot update {}", store.display()))?;
            println!("user {name}: {} credential stored in {}", m.name(), store.display());
        }
        UsersCommand::Delete { name, mechanism: m } => {
            let m = m.as_deref().map(mechanism).transpose()?;
            if !users::delete_user(&log_dirs, &name, m).with_context(|| format!("cannot update {}", store.display()))? {
                bail!("no such user {name} in {}", store.display());
            }
            println!("user {name} deleted");
        }
        UsersCommand::List => {
            for (name, credentials) in users::list_users(&log_dirs)? {
                let list: Vec<String> = credentials
                    .iter()
                    .map(|(m, iterations)| format!("{}(iterations={iterations})", m.name()))
                    .collect();
                println!("{name}\t{}", list.join(","));
            }
        }
    }
    Ok(())
}
