//! IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT on single topic configs (what
//! `kafka-configs --alter --add-config/--delete-config` sends since Kafka 2.3). APPEND and SUBTRACT
//! apply to list configs (`cleanup.policy`) only, as in Kafka.
//!
//! References: <https://kafka.apache.org/protocol#The_Messages_IncrementalAlterConfigs>, KIP-339.

use std::collections::BTreeMap;
use std::future::{ready, Future};
use std::sync::Arc;

use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, RequestHeader};
use kafka_protocol::ResponseError;

use super::alter_configs::{apply, respond};
use crate::broker::Broker;

pub const VERSIONS: (i16, i16) = (0, 1);

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;
/// The list-valued topic configs this broker knows.
const LIST_CONFIGS: &[&str] = &["cleanup.policy"];

pub fn handle(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: IncrementalAlterConfigsRequest,
) -> impl Future<Output = IncrementalAlterConfigsResponse> + Send + 'static {
    let responses = request
        .resources
        .into_iter()
        .map(|resource| {
            let outcome = apply(
                broker,
                resource.resource_type,
                &resource.resource_name,
                |current| change(current, &resource.configs),
                request.validate_only,
            );
            let r = respond(resource.resource_type, &resource.resource_name, outcome);
            AlterConfigsResourceResponse::default()
                .with_error_code(r.error_code)
                .with_error_message(r.error_message)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
        })
        .collect();
    ready(IncrementalAlterConfigsResponse::default().with_responses(responses))
}

fn change(
    current: &BTreeMap<String, String>,
    ops: &[AlterableConfig],
) -> Result<BTreeMap<String, String>, (ResponseError, String)> {
    let mut next = current.clone();
    for op in ops {
        let key = op.name.to_string();
        let value = op.value.as_ref().map(|v| v.to_string());
        let list = |m: &BTreeMap<String, String>| -> Vec<String> {
            m.get(&key)
                .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
                .unwrap_or_default()
        };
        let needs_list = || {
            if LIST_CONFIGS.contains(&key.as_str()) {
                Ok(())
            } else {
                Err((
                    ResponseError::InvalidConfig,
                    format!("{key} is not a list config; APPEND and SUBTRACT apply to {}", LIST_CONFIGS.join(", ")),
                ))
            }
        };
        match (op.config_operation, value) {
            (SET, Some(v)) => {
                next.insert(key, v);
            }
            (SET, None) => return Err((ResponseError::InvalidRequest, format!("SET {key} without a value"))),
            (DELETE, _) => {
                next.remove(&key);
            }
            (APPEND, Some(v)) => {
                needs_list()?;
                let mut items = list(&next);
                items.extend(
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !items.contains(s) && !s.is_empty())
                        .collect::<Vec<_>>(),
                );
                next.insert(key, items.join(","));
            }
            (SUBTRACT, Some(v)) => {
                needs_list()?;
                let gone: Vec<&str> = v.split(',').map(str::trim).collect();
                let items: Vec<String> = list(&next).into_iter().filter(|s| !gone.contains(&s.as_str())).collect();
                next.insert(key, items.join(","));
            }
            (op, _) => return Err((ResponseError::InvalidRequest, format!("unknown config operation {op} on {key}"))),
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::str_bytes;

    fn op(name: &str, operation: i8, value: Option<&str>) -> AlterableConfig {
        AlterableConfig::default()
            .with_name(str_bytes(name))
            .with_config_operation(operation)
            .with_value(value.map(str_bytes))
    }

    #[test]
    fn set_delete_append_subtract() {
        let current = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
        let next =
            change(&current, &[op("retention.ms", DELETE, None), op("segment.bytes", SET, Some("4096"))]).unwrap();
        assert_eq!(next, BTreeMap::from([("segment.bytes".to_string(), "4096".to_string())]));
        let next = change(&next, &[op("cleanup.policy", APPEND, Some("delete"))]).unwrap();
        assert_eq!(next["cleanup.policy"], "delete");
        let next = change(&next, &[op("cleanup.policy", SUBTRACT, Some("delete"))]).unwrap();
        assert_eq!(next["cleanup.policy"], "");
        let err = change(&next, &[op("retention.ms", APPEND, Some("5"))]).unwrap_err();
        assert_eq!(err.0, ResponseError::InvalidConfig);
        assert!(change(&next, &[op("x", 9, None)]).is_err());
    }
}
