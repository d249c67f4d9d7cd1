//! Kafka console tools for logpipe: the everyday commands of `kafka-topics.sh`, the console producer and
//! consumer, and `kafka-consumer-groups.sh`.
//!
//! They are plain Kafka clients (librdkafka through `rdkafka`, plus the producer crate's connection for the
//! few admin requests librdkafka does not expose, with the same TLS and SASL settings), so they work the
//! same against the embedded broker and against an Apache Kafka or Redpanda cluster.
//!
//! The binary flattens [`ConsoleCommand`] into its own subcommands and calls [`run`]:
//!
//! ```text
//! logpipe topics create|list|describe|alter|delete ...
//! logpipe produce TOPIC ...
//! logpipe consume TOPIC ...
//! logpipe groups list|describe|delete|reset-offsets ...
//! ```

mod admin_calls;
mod client;
mod consume;
mod consumer_protocol;
mod error;
mod groups;
mod produce;
mod table;
mod topic_arg;
mod topics;

pub use client::Connection;
pub use consume::{ConsumeArgs, StartOffset};
pub use error::{Error, Result};
pub use groups::{
    group_members, reset_group_offsets, GroupMember, GroupsCommand, ResetTarget, ResetTargetArgs, TopicSpec,
};
pub use logpipe_config::{Acks, Compression};
pub use produce::ProduceArgs;
pub use topic_arg::{OptionalTopicArg, TopicArg};
pub use topics::TopicsCommand;

/// The console subcommands. The binary flattens this enum into its own `Command` enum.
#[derive(Debug, clap::Subcommand)]
pub enum ConsoleCommand {
    /// Create, list, describe, alter and delete topics (like kafka-topics.sh).
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
    },
    /// Send stdin lines to a topic, one record per line (like kafka-console-producer.sh).
    Produce(ProduceArgs),
    /// Print a topic's record values to stdout, one per line (like kafka-console-consumer.sh).
    Consume(ConsumeArgs),
    /// List, describe and delete consumer groups, show lag, reset offsets (like kafka-consumer-groups.sh).
    Groups {
        #[command(subcommand)]
        command: GroupsCommand,
    },
}

/// Runs one console command to completion.
pub async fn run(cmd: ConsoleCommand) -> Result<()> {
    match cmd {
        ConsoleCommand::Topics { command } => topics::run(command).await,
        ConsoleCommand::Produce(args) => produce::run(args).await,
        ConsoleCommand::Consume(args) => consume::run(args).await,
        ConsoleCommand::Groups { command } => groups::run(command).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// Mirrors how the binary embeds the console commands: flattened next to its own subcommands.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Debug, clap::Subcommand)]
    #[allow(clippy::large_enum_variant)] // parsed once per test, as the binary's own Command is
    enum Command {
        Status,
        #[command(flatten)]
        Console(ConsoleCommand),
    }

    #[test]
    fn command_tree_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_defaults_to_local_broker() {
        let cli = Cli::try_parse_from(["logpipe", "topics", "list"]).unwrap();
        match cli.command {
            Command::Console(ConsoleCommand::Topics { command: TopicsCommand::List { connection } }) => {
                assert_eq!(connection.bootstrap_server, "127.0.0.1:9092")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(Cli::try_parse_from(["logpipe", "status"]).unwrap().command, Command::Status));
        assert!(matches!(
            Cli::try_parse_from(["logpipe", "groups", "describe", "g", "--bootstrap-server", "k:9093"])
                .unwrap()
                .command,
            Command::Console(ConsoleCommand::Groups { command: GroupsCommand::Describe { .. } })
        ));
    }
}
