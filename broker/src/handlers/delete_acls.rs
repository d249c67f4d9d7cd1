//! DeleteAcls: `kafka-acls --remove`. Each filter removes the created ACLs it matches (ACLs from the
//! config file stay: edit the file to change them) and reports them; `acls.json` is rewritten durably
//! before the response. It needs ALTER on the cluster (an ACL, or `super_users`).
//!
//! References: <https://kafka.apache.org/protocol#The_Messages_DeleteAcls>, KIP-140, KIP-290.

use std::future::{ready, Future};
use std::sync::Arc;

use kafka_protocol::messages::delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};
use kafka_protocol::ResponseError;

use super::{code, str_bytes};
use crate::broker::{Broker, Session};
use crate::security::acl::{AclFilter, Operation, ResourceType, CLUSTER_NAME};

pub const VERSIONS: (i16, i16) = (1, 3);

pub fn handle(
    broker: &Arc<Broker>,
    session: &Session,
    request: DeleteAclsRequest,
) -> impl Future<Output = DeleteAclsResponse> + Send + 'static {
    let fail = |error: ResponseError, message: &str| {
        DeleteAclsFilterResult::default().with_error_code(code(error)).with_error_message(Some(str_bytes(message)))
    };
    if !broker.authorize(session, Operation::Alter, ResourceType::Cluster, CLUSTER_NAME) {
        let results = request
            .filters
            .iter()
            .map(|_| fail(ResponseError::ClusterAuthorizationFailed, "deleting ACLs needs ALTER on the cluster"))
            .collect();
        return ready(DeleteAclsResponse::default().with_filter_results(results));
    }
    let filters: Vec<Result<AclFilter, String>> = request
        .filters
        .into_iter()
        .map(|f| {
            let filter = AclFilter {
                resource_type: f.resource_type_filter,
                resource_name: f.resource_name_filter.map(|s| s.to_string()),
                pattern_type: f.pattern_type_filter,
                principal: f.principal_filter.map(|s| s.to_string()),
                host: f.host_filter.map(|s| s.to_string()),
                operation: f.operation,
                permission: f.permission_type,
            };
            filter.validate().map(|()| filter)
        })
        .collect();
    let valid: Vec<AclFilter> = filters.iter().filter_map(|f| f.as_ref().ok().cloned()).collect();
    let removed = broker.acls.delete(&valid);
    if let Err(e) = &removed {
        tracing::error!(error = %e, "cannot write the ACL store");
    }
    let mut removed_iter = removed.as_ref().ok().map(|r| r.iter());
    let results = filters
        .into_iter()
        .map(|f| match f {
            Err(message) => fail(ResponseError::InvalidRequest, &message),
            Ok(_) => match removed_iter.as_mut().and_then(|it| it.next()) {
                None => fail(ResponseError::UnknownServerError, "cannot write the ACL store"),
                Some(acls) => DeleteAclsFilterResult::default().with_matching_acls(
                    acls.iter()
                        .map(|acl| {
                            tracing::info!(by = %session.principal, ?acl, "ACL deleted");
                            DeleteAclsMatchingAcl::default()
                                .with_resource_type(acl.resource_type.code())
                                .with_resource_name(str_bytes(acl.resource_name.clone()))
                                .with_pattern_type(acl.pattern_type.code())
                                .with_principal(str_bytes(acl.principal.clone()))
                                .with_host(str_bytes(acl.host.clone()))
                                .with_operation(acl.operation.code())
                                .with_permission_type(acl.permission.code())
                        })
                        .collect(),
                ),
            },
        })
        .collect();
    ready(DeleteAclsResponse::default().with_filter_results(results))
}
