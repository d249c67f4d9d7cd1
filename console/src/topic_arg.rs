//! Naming the topic a command works on, as `kafka-topics.sh` and the console producer and consumer take
//! it (`--topic NAME`) or positionally (`logpipe topics delete nginx`).

use std::fmt;

/// A topic named positionally or with `--topic`; exactly one of the two.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct TopicArg {
    /// Topic name.
    #[arg(value_name = "TOPIC")]
    name: Option<String>,
    /// Topic name, as Kafka's tools take it (instead of the positional argument).
    #[arg(long = "topic", value_name = "TOPIC")]
    topic: Option<String>,
}

impl TopicArg {
    pub fn name(&self) -> &str {
        self.name.as_deref().or(self.topic.as_deref()).unwrap_or_default()
    }
}

impl fmt::Display for TopicArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// [`TopicArg`] where leaving it out means every topic.
#[derive(Debug, Clone, clap::Args)]
#[group(required = false, multiple = false)]
pub struct OptionalTopicArg {
    /// Topic [default: all topics].
    #[arg(value_name = "TOPIC")]
    name: Option<String>,
    /// Topic, as Kafka's tools take it (instead of the positional argument).
    #[arg(long = "topic", value_name = "TOPIC")]
    topic: Option<String>,
}

impl OptionalTopicArg {
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref().or(self.topic.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        topic: TopicArg,
    }

    #[test]
    fn positional_or_flag_but_not_both() {
        assert_eq!(Cli::try_parse_from(["t", "nginx"]).unwrap().topic.name(), "nginx");
        assert_eq!(Cli::try_parse_from(["t", "--topic", "nginx"]).unwrap().topic.name(), "nginx");
        assert!(Cli::try_parse_from(["t"]).is_err());
        assert!(Cli::try_parse_from(["t", "a", "--topic", "b"]).is_err());
    }
}
