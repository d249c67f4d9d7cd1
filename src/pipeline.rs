//! Loading a pipeline file: TOML or YAML plus `LOGPIPE_<SECTION>__<KEY>` environment overrides.
//!
//! Every section denies unknown keys, so `lod_dirs = ...` fails at load time with the key, the file and
//! the section named, instead of running with a default the user did not mean.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use figment::error::{Actual, Kind};
use figment::providers::{Env, Format, Toml, Yaml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::Deserialize;

use logpipe_agent::AgentConfig;
use logpipe_broker::BrokerConfig;
use logpipe_config::{names_secret, Valid};
use logpipe_indexer::{Indexer, IndexerConfig};
use logpipe_status::AdminConfig;

/// The sections a pipeline file may hold, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PipelineFile {
    broker: Option<BrokerConfig>,
    agent: Option<AgentConfig>,
    indexer: Option<IndexerConfig>,
    admin: Option<AdminConfig>,
}

/// A loaded pipeline: every section checked once and the indexer's filters and routes compiled once,
/// ready for the parts' constructors.
#[derive(Debug, Default)]
pub struct Pipeline {
    pub broker: Option<Valid<BrokerConfig>>,
    pub agent: Option<Valid<AgentConfig>>,
    pub indexer: Option<Indexer>,
    /// The admin endpoint (`/status`, `/metrics`); on at 127.0.0.1:9600 when absent.
    pub admin: Option<AdminConfig>,
    /// The file it was loaded from (`logpipe status` shows it).
    pub path: Option<PathBuf>,
}

const SECTIONS: &[&str] = &["broker", "agent", "indexer", "admin"];

impl Pipeline {
    pub fn load(path: &Path) -> Result<Self> {
        if !path.exists() {
            bail!("pipeline file {} does not exist", path.display());
        }
        let file = match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => Figment::from(Yaml::file(path)),
            _ => Figment::from(Toml::file(path)),
        };
        let file: PipelineFile = file.merge(env_overrides()).extract().map_err(|e| {
            // One line per error, each naming its key as written in the file (figment prefixes the
            // profile, `default.`).
            let errors: Vec<String> =
                e.into_iter().map(|e| without_secrets(e).to_string().replace("key \"default.", "key \"")).collect();
            anyhow::anyhow!("invalid pipeline file {}: {}", path.display(), errors.join("; "))
        })?;
        let context = || format!("invalid pipeline file {}", path.display());
        Ok(Pipeline {
            broker: file.broker.map(Valid::new).transpose().with_context(context)?,
            agent: file.agent.map(Valid::new).transpose().with_context(context)?,
            indexer: file
                .indexer
                .map(|config| Valid::new(config).and_then(Indexer::new))
                .transpose()
                .with_context(context)?,
            admin: file.admin,
            path: Some(path.to_path_buf()),
        })
    }
}

/// `LOGPIPE_BROKER__LOG_DIRS=/x` → `broker.log_dirs`. Keys are matched and emitted in lower case, so
/// the documented upper-case form and `LOGPIPE_broker__log_dirs` both work. Only variables naming a
/// known section are read, so unrelated `LOGPIPE_*` variables (`LOGPIPE_LOG`, `LOGPIPE_BIN`) are not
/// mistaken for config keys.
fn env_overrides() -> EnvOverrides {
    EnvOverrides(
        Env::prefixed("LOGPIPE_")
            .filter(|key| {
                let key = key.as_str().to_ascii_lowercase();
                SECTIONS.iter().any(|section| key.starts_with(&format!("{section}__")))
            })
            .split("__")
            .lowercase(true),
    )
}

/// The environment provider, with errors naming the variable to fix (`LOGPIPE_AGENT__QUEUE_MAX_BYTES`)
/// rather than figment's `AGENT.QUEUE_MAX_BYTES`.
struct EnvOverrides(Env);

impl Provider for EnvOverrides {
    fn metadata(&self) -> Metadata {
        Metadata::named("the environment")
            .interpolater(|_: &Profile, keys: &[&str]| format!("LOGPIPE_{}", keys.join("__").to_ascii_uppercase()))
    }

    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        let mut data = self.0.data()?;
        for dict in data.values_mut() {
            keep_secrets_as_written(dict, self.0.iter().map(|(key, text)| (key.as_str().to_owned(), text)));
        }
        Ok(data)
    }
}

/// figment reads a variable's value as data: a password `482913` becomes a number (refused where a string
/// is expected), `007` the number 7, `[x]` a list. A secret is text: this puts the text of each variable
/// (`agent.output.sasl.password`, its value) whose key holds a secret back into `dict`, as written.
fn keep_secrets_as_written(dict: &mut Dict, vars: impl Iterator<Item = (String, String)>) {
    for (key, text) in vars.filter(|(key, _)| names_secret(key)) {
        let (path, leaf) = key.rsplit_once('.').unwrap_or(("", &key));
        let parent = path.split('.').filter(|part| !part.is_empty()).try_fold(&mut *dict, |dict, part| {
            match dict.get_mut(part) {
                Some(Value::Dict(_, inner)) => Some(inner),
                _ => None,
            }
        });
        if let Some(value) = parent.and_then(|parent| parent.get_mut(leaf)) {
            *value = Value::from(text);
        }
    }
}

/// A line of the file that a TOML syntax error quotes (`3 | sasl.password = s3cret`), or its gutter
/// (`  |   ^`).
fn quotes_source(line: &str) -> bool {
    line.trim_start().trim_start_matches(|c: char| c.is_ascii_digit()).trim_start().starts_with('|')
}

/// `error` without the value it quotes when its key holds a secret (figment says `invalid type: found
/// unsigned int `482913`, expected a string`), and without the source line a TOML syntax error quotes
/// (`3 | sasl.password = s3cret`): its line and column remain.
fn without_secrets(mut error: figment::Error) -> figment::Error {
    if let Kind::Message(message) = &mut error.kind {
        *message = message.lines().filter(|line| !quotes_source(line)).collect::<Vec<_>>().join("\n");
    }
    if !names_secret(&error.path.join(".")) {
        return error;
    }
    let hidden = |found: Actual| {
        let found = match found {
            Actual::Bool(_) => "a bool",
            Actual::Unsigned(_) | Actual::Signed(_) | Actual::Float(_) => "a number",
            Actual::Char(_) | Actual::Str(_) => "a string",
            Actual::Bytes(_) => "bytes",
            other => return other,
        };
        Actual::Other(format!("{found} (not shown: the key holds a secret)"))
    };
    error.kind = match error.kind {
        Kind::InvalidType(found, expected) => Kind::InvalidType(hidden(found), expected),
        Kind::InvalidValue(found, expected) => Kind::InvalidValue(hidden(found), expected),
        Kind::Message(_)
        | Kind::UnknownVariant(..)
        | Kind::ISizeOutOfRange(_)
        | Kind::USizeOutOfRange(_)
        | Kind::Unsupported(_)
        | Kind::UnsupportedKey(..) => Kind::Message("invalid value (not shown: the key holds a secret)".into()),
        other => other,
    };
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str) -> Result<Pipeline> {
        let dir = std::env::temp_dir().join(format!("logpipe-pipeline-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{:x}.toml", toml.len() * 31 + toml.bytes().map(|b| b as usize).sum::<usize>()));
        std::fs::write(&path, toml)?;
        let loaded = Pipeline::load(&path);
        let _ = std::fs::remove_file(&path);
        loaded
    }

    #[test]
    fn broker_section_uses_kafka_defaults() {
        let pipeline = load("[broker]\nlog_dirs = \"x\"\n").unwrap();
        let broker = pipeline.broker.unwrap();
        assert_eq!(broker.listeners, vec!["127.0.0.1:9092"]);
        assert_eq!(broker.message_max_bytes, 1_048_588);
        assert_eq!(broker.log_retention_hours, 168);
    }

    #[test]
    fn typo_is_an_error_naming_the_key_and_file() {
        let err = format!("{:#}", load("[broker]\nlod_dirs = \"x\"\n").unwrap_err());
        assert!(err.contains("lod_dirs"), "{err}");
        assert!(err.contains(".toml"), "{err}");
    }

    #[test]
    fn indexer_typo_is_an_error_naming_the_key_and_file() {
        let err = format!("{:#}", load("[indexer.input]\ngroup_idd = \"x\"\n").unwrap_err());
        assert!(err.contains("group_idd") && err.contains(".toml"), "{err}");
        let err = format!("{:#}", load("[[indexer.routes]]\nindex = \"a-%{+YYYY.qq}\"\n").unwrap_err());
        assert!(err.contains("indexer.routes[0].index"), "{err}");
    }

    #[test]
    fn every_shipped_pipeline_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            Pipeline::load(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            checked += 1;
        }
        assert!(checked >= 4, "only {checked} pipelines in {}", dir.display());
    }

    #[test]
    fn unknown_section_is_an_error() {
        let err = format!("{:#}", load("[brokr]\n").unwrap_err());
        assert!(err.contains("brokr"), "{err}");
    }

    #[test]
    fn a_secret_from_the_environment_is_read_as_written() {
        for text in ["482913", "007", "true", "[x]", "\"quoted\""] {
            let key = "agent.output.sasl.password";
            // What figment's environment provider makes of LOGPIPE_AGENT__OUTPUT__SASL__PASSWORD=<text>.
            let mut dict = figment::util::nest(key, text.parse().unwrap()).into_dict().unwrap();
            let other = ("agent.output.linger_ms".to_owned(), "5".to_owned());
            keep_secrets_as_written(&mut dict, [(key.to_owned(), text.to_owned()), other].into_iter());
            let password = dict["agent"].find_ref("output.sasl.password").unwrap();
            assert_eq!(password.as_str(), Some(text), "{password:?}");
        }
    }

    #[test]
    fn errors_never_show_a_secret() {
        for (toml, key) in [
            ("[agent.output]\nsasl.password = 482913\n", "agent.output.sasl.password"),
            ("[indexer.output.elasticsearch]\napi_key = 7213\n", "indexer.output.elasticsearch.api_key"),
            ("[indexer.input]\nlibrdkafka = { \"ssl.key.password\" = true }\n", "ssl.key.password"),
            // A TOML syntax error quotes the line: an unquoted password.
            ("[agent.output]\nsasl.password = s3cret-pw\n", "line 2"),
        ] {
            let err = format!("{:#}", load(toml).unwrap_err());
            assert!(err.contains(key) && err.contains(".toml"), "{err}");
            for secret in ["482913", "7213", "true", "s3cret"] {
                assert!(!err.contains(secret), "{err}");
            }
        }
        // Other errors still show the value.
        let err = format!("{:#}", load("[agent.output]\nsasl.username = 482913\n").unwrap_err());
        assert!(err.contains("482913"), "{err}");
    }

    #[test]
    fn bad_value_is_an_error_naming_the_key() {
        let err = format!("{:#}", load("[broker]\nnum_partitions = 0\n").unwrap_err());
        assert!(err.contains("broker.num_partitions"), "{err}");
    }
}
