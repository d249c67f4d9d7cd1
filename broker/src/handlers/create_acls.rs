//! CreateAcls: `kafka-acls --add`. The new ACLs are written to `acls.json` under `log_dirs` (atomically,
//! fsynced with its directory) before the response, so they survive a crash or restart. It needs ALTER on
//! the cluster (an ACL, or `super_users`). A binding Kafka would refuse (an unknown or wildcard code, a
//! principal without a type, a prefixed `*`) gets INVALID_REQUEST, and the others are still created.
//!
//! References: <https://kafka.apache.org/protocol#The_Messages_CreateAcls>, KIP-140, KIP-290.

use std::future::{ready, Future};
use std::sync::Arc;

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
use kafka_protocol::ResponseError;

use super::{code, str_bytes};
use crate::broker::{Broker, Session};
use crate::security::acl::{AclBinding, Operation, PatternType, Permission, ResourceType, CLUSTER_NAME};

pub const VERSIONS: (i16, i16) = (1, 3);

fn binding(c: &kafka_protocol::messages::create_acls_request::AclCreation) -> Result<AclBinding, String> {
    let acl = AclBinding {
        resource_type: ResourceType::from_code(c.resource_type).ok_or_else(|| {
            format!("resource type {} is not topic, group, cluster or transactional id", c.resource_type)
        })?,
        resource_name: c.resource_name.to_string(),
        pattern_type: PatternType::from_code(c.resource_pattern_type)
            .ok_or_else(|| format!("pattern type {} is not literal or prefixed", c.resource_pattern_type))?,
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation: Operation::from_code(c.operation)
            .ok_or_else(|| format!("operation {} is not known", c.operation))?,
        permission: Permission::from_code(c.permission_type)
            .ok_or_else(|| format!("permission type {} is not allow or deny", c.permission_type))?,
    };
    acl.validate()?;
    Ok(acl)
}

pub fn handle(
    broker: &Arc<Broker>,
    session: &Session,
    request: CreateAclsRequest,
) -> impl Future<Output = CreateAclsResponse> + Send + 'static {
    let fail = |error: ResponseError, message: String| {
        AclCreationResult::default().with_error_code(code(error)).with_error_message(Some(str_bytes(message)))
    };
    if !broker.authorize(session, Operation::Alter, ResourceType::Cluster, CLUSTER_NAME) {
        let results = request
            .creations
            .iter()
            .map(|_| fail(ResponseError::ClusterAuthorizationFailed, "creating ACLs needs ALTER on the cluster".into()))
            .collect();
        return ready(CreateAclsResponse::default().with_results(results));
    }
    let parsed: Vec<Result<AclBinding, String>> = request.creations.iter().map(binding).collect();
    let valid: Vec<AclBinding> = parsed.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
    let written = if valid.is_empty() { Ok(()) } else { broker.acls.create(valid.clone()) };
    if let Err(e) = &written {
        tracing::error!(error = %e, "cannot write the ACL store");
    } else {
        for acl in &valid {
            tracing::info!(by = %session.principal, ?acl, "ACL created");
        }
    }
    let results = parsed
        .into_iter()
        .map(|p| match (p, &written) {
            (Err(message), _) => fail(ResponseError::InvalidRequest, message),
            (Ok(_), Err(_)) => fail(ResponseError::UnknownServerError, "cannot write the ACL store".into()),
            (Ok(_), Ok(())) => AclCreationResult::default(),
        })
        .collect();
    ready(CreateAclsResponse::default().with_results(results))
}
