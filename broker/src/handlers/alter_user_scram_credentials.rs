//! AlterUserScramCredentials (KIP-554): what `kafka-configs --alter --add-config
//! 'SCRAM-SHA-512=[password=…]' --entity-type users` sends. The client salts and hashes the password;
//! the broker keeps only StoredKey and ServerKey, in the same store as `logpipe users`. It needs ALTER on
//! the cluster (an ACL, or `super_users`).
//!
//! References: <https://kafka.apache.org/protocol#The_Messages_AlterUserScramCredentials>, KIP-554.

use std::collections::BTreeMap;
use std::future::{ready, Future};
use std::sync::Arc;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse};
use kafka_protocol::ResponseError;

use super::{code, str_bytes};
use crate::broker::{Broker, Session};
use crate::security::acl::{Operation, ResourceType, CLUSTER_NAME};
use crate::security::scram::{ScramCredential, ScramMechanism, MIN_ITERATIONS};

pub const VERSIONS: (i16, i16) = (0, 0);

/// Kafka's upper bound on iterations.
const MAX_ITERATIONS: i32 = 16384;

pub fn handle(
    broker: &Arc<Broker>,
    session: &Session,
    request: AlterUserScramCredentialsRequest,
) -> impl Future<Output = AlterUserScramCredentialsResponse> + Send + 'static {
    let mut outcome: BTreeMap<String, Result<(), (ResponseError, String)>> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for name in request.deletions.iter().map(|d| &d.name).chain(request.upsertions.iter().map(|u| &u.name)) {
        *counts.entry(name.to_string()).or_default() += 1;
    }
    let allowed = broker.authorize(session, Operation::Alter, ResourceType::Cluster, CLUSTER_NAME);
    let fail = |e: ResponseError, m: &str| Err((e, m.to_owned()));
    for (user, n) in &counts {
        let verdict = if !allowed {
            fail(
                ResponseError::ClusterAuthorizationFailed,
                "altering SCRAM credentials needs ALTER on the cluster (an ACL, or super_users)",
            )
        } else if *n > 1 {
            fail(ResponseError::DuplicateResource, "A user credential cannot be altered twice in the same request")
        } else if user.is_empty() {
            fail(ResponseError::UnacceptableCredential, "Username must not be empty")
        } else {
            Ok(())
        };
        outcome.insert(user.clone(), verdict);
    }
    let mut changes: Vec<(String, ScramMechanism, Option<ScramCredential>)> = Vec::new();
    for deletion in &request.deletions {
        let user = deletion.name.to_string();
        if outcome[&user].is_err() {
            continue;
        }
        match ScramMechanism::from_kafka_type(deletion.mechanism) {
            None => {
                outcome.insert(user, fail(ResponseError::UnsupportedSaslMechanism, "Unknown SCRAM mechanism"));
            }
            Some(m) if broker.credentials.lookup(&user, m).is_none() => {
                outcome.insert(
                    user,
                    fail(ResponseError::ResourceNotFound, "Attempt to delete a user credential that does not exist"),
                );
            }
            Some(m) => changes.push((user, m, None)),
        }
    }
    for upsertion in request.upsertions {
        let user = upsertion.name.to_string();
        if outcome[&user].is_err() {
            continue;
        }
        let Some(m) = ScramMechanism::from_kafka_type(upsertion.mechanism) else {
            outcome.insert(user, fail(ResponseError::UnsupportedSaslMechanism, "Unknown SCRAM mechanism"));
            continue;
        };
        if upsertion.iterations < MIN_ITERATIONS as i32 || upsertion.iterations > MAX_ITERATIONS {
            let message = format!("Iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}");
            outcome.insert(user, fail(ResponseError::UnacceptableCredential, &message));
            continue;
        }
        if upsertion.salt.is_empty() || upsertion.salted_password.is_empty() {
            outcome.insert(user, fail(ResponseError::UnacceptableCredential, "Salt and salted password are required"));
            continue;
        }
        let credential = ScramCredential::from_salted_password(
            m,
            &upsertion.salted_password,
            upsertion.salt.to_vec(),
            upsertion.iterations as u32,
        );
        changes.push((user, m, Some(credential)));
    }
    if !changes.is_empty() {
        let written = broker.credentials.update(|users| {
            for (user, m, credential) in changes.iter().cloned() {
                match credential {
                    Some(c) => users.set(&user, m, c),
                    None => {
                        users.remove(&user, Some(m));
                    }
                }
            }
        });
        if let Err(e) = written {
            tracing::error!(error = %e, "cannot write the credentials store");
            for (user, _, _) in &changes {
                outcome.insert(
                    user.clone(),
                    fail(ResponseError::UnknownServerError, "cannot write the credentials store"),
                );
            }
        } else {
            for (user, m, credential) in &changes {
                let action = if credential.is_some() { "set" } else { "deleted" };
                tracing::info!(user = %user, mechanism = m.name(), by = %session.principal, "SCRAM credential {action}");
            }
        }
    }
    let results = outcome
        .into_iter()
        .map(|(user, verdict)| {
            let r = AlterUserScramCredentialsResult::default().with_user(str_bytes(user));
            match verdict {
                Ok(()) => r,
                Err((e, message)) => r.with_error_code(code(e)).with_error_message(Some(str_bytes(message))),
            }
        })
        .collect();
    ready(AlterUserScramCredentialsResponse::default().with_results(results))
}
