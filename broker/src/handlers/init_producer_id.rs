//! InitProducerId: hands out producer ids for idempotent producers.
//!
//! Transactions are refused cleanly: a request with a transactional id gets
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED, a fatal error clients report instead of retrying forever.
//! A producer that re-initialises with its current id and epoch (KIP-360) gets the next epoch.
//!
//! References: KIP-98, KIP-360.

use std::future::{ready, Future};
use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId, RequestHeader};
use kafka_protocol::ResponseError;

use super::code;
use crate::broker::Broker;

pub const VERSIONS: (i16, i16) = (0, 4);

pub fn handle(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: InitProducerIdRequest,
) -> impl Future<Output = InitProducerIdResponse> + Send + 'static {
    let response = InitProducerIdResponse::default();
    let transactional = request.transactional_id.as_ref().is_some_and(|id| !id.is_empty());
    let response = if transactional {
        response
            .with_error_code(code(ResponseError::TransactionalIdAuthorizationFailed))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    } else if request.producer_id.0 >= 0 && request.producer_epoch >= 0 && request.producer_epoch < i16::MAX - 1 {
        response.with_producer_id(request.producer_id).with_producer_epoch(request.producer_epoch + 1)
    } else {
        response.with_producer_id(ProducerId(broker.allocate_producer_id())).with_producer_epoch(0)
    };
    ready(response)
}
