//! DescribeUserScramCredentials (KIP-554): which SCRAM mechanisms (and iteration counts) each user has,
//! never the keys. It needs DESCRIBE on the cluster (an ACL, or `super_users`); others get
//! CLUSTER_AUTHORIZATION_FAILED.
//!
//! References: <https://kafka.apache.org/protocol#The_Messages_DescribeUserScramCredentials>, KIP-554.

use std::collections::BTreeSet;
use std::future::{ready, Future};
use std::sync::Arc;

use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse};
use kafka_protocol::ResponseError;

use super::{code, str_bytes};
use crate::broker::{Broker, Session};
use crate::security::acl::{Operation, ResourceType, CLUSTER_NAME};

pub const VERSIONS: (i16, i16) = (0, 0);

pub fn handle(
    broker: &Arc<Broker>,
    session: &Session,
    request: DescribeUserScramCredentialsRequest,
) -> impl Future<Output = DescribeUserScramCredentialsResponse> + Send + 'static {
    let response = DescribeUserScramCredentialsResponse::default();
    if !broker.authorize(session, Operation::Describe, ResourceType::Cluster, CLUSTER_NAME) {
        return ready(response.with_error_code(code(ResponseError::ClusterAuthorizationFailed)).with_error_message(
            Some(str_bytes("describing SCRAM credentials needs DESCRIBE on the cluster (an ACL, or super_users)")),
        ));
    }
    let users = broker.credentials.describe();
    let result = |user: &str| {
        let mut r = DescribeUserScramCredentialsResult::default().with_user(str_bytes(user));
        match users.get(user) {
            Some(credentials) => {
                r.credential_infos = credentials
                    .iter()
                    .map(|(m, iterations)| {
                        CredentialInfo::default().with_mechanism(m.kafka_type()).with_iterations(*iterations as i32)
                    })
                    .collect();
            }
            None => {
                r.error_code = code(ResponseError::ResourceNotFound);
                r.error_message = Some(str_bytes("Attempt to describe a user credential that does not exist"));
            }
        }
        r
    };
    let results = match request.users {
        None => users.keys().map(|u| result(u)).collect(),
        Some(wanted) => {
            let mut seen = BTreeSet::new();
            let duplicates: BTreeSet<String> =
                wanted.iter().filter(|u| !seen.insert(u.name.to_string())).map(|u| u.name.to_string()).collect();
            let mut out = Vec::new();
            for user in wanted.iter().map(|u| u.name.to_string()).collect::<BTreeSet<_>>() {
                if duplicates.contains(&user) {
                    out.push(
                        DescribeUserScramCredentialsResult::default()
                            .with_user(str_bytes(user))
                            .with_error_code(code(ResponseError::DuplicateResource))
                            .with_error_message(Some(str_bytes(
                                "Cannot describe SCRAM credentials for the same user twice",
                            ))),
                    );
                } else {
                    out.push(result(&user));
                }
            }
            out
        }
    };
    ready(response.with_results(results))
}
