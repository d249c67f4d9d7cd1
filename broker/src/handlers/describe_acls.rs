//! DescribeAcls: the ACLs matching a filter (`kafka-acls --list`), configured and created alike, grouped
//! by resource pattern. It needs DESCRIBE on the cluster (an ACL, or `super_users`).
//!
//! References: <https://kafka.apache.org/protocol#The_Messages_DescribeAcls>, KIP-140, KIP-290.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use kafka_protocol::ResponseError;

use super::{code, str_bytes};
use crate::broker::{Broker, Session};
use crate::security::acl::{AclFilter, Operation, ResourceType, CLUSTER_NAME};

pub const VERSIONS: (i16, i16) = (1, 3);

pub fn handle(broker: &Arc<Broker>, session: &Session, r: DescribeAclsRequest) -> DescribeAclsResponse {
    let response = DescribeAclsResponse::default();
    if !broker.authorize(session, Operation::Describe, ResourceType::Cluster, CLUSTER_NAME) {
        return response
            .with_error_code(code(ResponseError::ClusterAuthorizationFailed))
            .with_error_message(Some(str_bytes("describing ACLs needs DESCRIBE on the cluster")));
    }
    let filter = AclFilter {
        resource_type: r.resource_type_filter,
        resource_name: r.resource_name_filter.map(|s| s.to_string()),
        pattern_type: r.pattern_type_filter,
        principal: r.principal_filter.map(|s| s.to_string()),
        host: r.host_filter.map(|s| s.to_string()),
        operation: r.operation,
        permission: r.permission_type,
    };
    if let Err(message) = filter.validate() {
        return response
            .with_error_code(code(ResponseError::InvalidRequest))
            .with_error_message(Some(str_bytes(message)));
    }
    let mut resources: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for acl in broker.acls.describe(&filter) {
        resources
            .entry((acl.resource_type.code(), acl.resource_name.clone(), acl.pattern_type.code()))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(str_bytes(acl.principal))
                    .with_host(str_bytes(acl.host))
                    .with_operation(acl.operation.code())
                    .with_permission_type(acl.permission.code()),
            );
    }
    response.with_resources(
        resources
            .into_iter()
            .map(|((resource_type, name, pattern_type), acls)| {
                DescribeAclsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(str_bytes(name))
                    .with_pattern_type(pattern_type)
                    .with_acls(acls)
            })
            .collect(),
    )
}
