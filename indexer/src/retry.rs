//! The retry decision: a pure function from a `_bulk` response (HTTP status and body) to what happens
//! next, so the rule that guards "never drop, never duplicate" is tested on canned responses.
//!
//! - Whole request 429 or 5xx, any other non-2xx, a body that is not a bulk response, or an item count
//!   that differs from what was sent: [`BulkOutcome::Retry`] the whole request (consumption pauses; the
//!   backlog waits in the broker). Nothing is dead-lettered on a guess.
//! - Whole request 413: [`BulkOutcome::TooLarge`], its items go again in smaller requests.
//! - 2xx with `"errors": false`: [`BulkOutcome::Done`].
//! - Otherwise per item: 200/201 ok; 409 under `create` ok (the `_id` is already indexed, a replay); 400
//!   (a mapping error) and 404 (a missing index with auto-create off), which no retry can mend, and 409
//!   on other actions go to the dead-letter topic with their error, as Logstash's `dlq_custom_codes`
//!   default does; every other status retries, as in Logstash: 429 and 5xx, but also 401 and 403, which a
//!   write block (`index.blocks.write`, Elasticsearch 7's flood-stage `read_only_allow_delete`) or an
//!   account without rights on a new index name answer per item until an operator mends it. If nothing
//!   needs retry or dead letter, the result is `Done`.
//!
//! References: Elasticsearch "Bulk API" response body (`took`, `errors`, `items[].<action>.{status, error}`).

use serde::Deserialize;
use serde_json::Value;

/// What to do after a `_bulk` response. Indices refer to items in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkOutcome {
    /// Every item is indexed (or was already).
    Done,
    /// Send the whole request again after a backoff.
    Retry { reason: String },
    /// 413: the request was larger than the cluster takes (`http.max_content_length`); send its items in
    /// smaller requests.
    TooLarge { reason: String },
    /// Some items are done, some need another attempt alone (`retry_reason`: the first one's error, to
    /// log), some go to the dead-letter topic.
    Partial { retry: Vec<usize>, retry_reason: Option<String>, dead_letter: Vec<(usize, String)>, ok: Vec<usize> },
}

#[derive(Deserialize)]
struct ErrorsFlag {
    errors: bool,
}

#[derive(Deserialize)]
struct Response {
    items: Vec<serde_json::Map<String, Value>>,
}

/// Decides on the response to a request of `sent` items.
pub fn decide(status: u16, body: &[u8], sent: usize) -> BulkOutcome {
    let retry = |reason: String| BulkOutcome::Retry { reason };
    if status == 401 || status == 403 {
        // Retried (credentials may be fixed on the cluster side), but the reason says what is wrong.
        return retry(format!(
            "HTTP {status}: {}; Elasticsearch refused the indexer's credentials: check \
             indexer.output.elasticsearch.user and .password (or .api_key)",
            top_level_reason(body)
        ));
    }
    if status == 413 {
        return BulkOutcome::TooLarge { reason: format!("HTTP 413: {}", top_level_reason(body)) };
    }
    if !(200..300).contains(&status) {
        return retry(format!("HTTP {status}: {}", top_level_reason(body)));
    }
    // Fast path: a clean response needs only its `errors` flag, not a walk over every item.
    match serde_json::from_slice::<ErrorsFlag>(body) {
        Ok(ErrorsFlag { errors: false }) => return BulkOutcome::Done,
        Ok(_) => {}
        Err(e) => return retry(format!("unreadable bulk response: {e}")),
    }
    let items = match serde_json::from_slice::<Response>(body) {
        Ok(r) => r.items,
        Err(e) => return retry(format!("unreadable bulk response: {e}")),
    };
    if items.len() != sent {
        return retry(format!("bulk response has {} items for {sent} sent", items.len()));
    }
    let (mut retry_items, mut dead_letter, mut ok) = (Vec::new(), Vec::new(), Vec::new());
    let mut retry_reason = None;
    for (i, item) in items.iter().enumerate() {
        let Some((action, result)) = item.iter().next() else {
            retry_items.push(i);
            retry_reason.get_or_insert_with(|| "an item without an action in the bulk response".to_string());
            continue;
        };
        let status = result.get("status").and_then(Value::as_u64).unwrap_or(0);
        match status {
            200..=299 => ok.push(i),
            409 if action == "create" => ok.push(i),
            400 | 404 | 409 => dead_letter.push((i, item_reason(status, result.get("error")))),
            _ => {
                retry_items.push(i);
                retry_reason.get_or_insert_with(|| match status {
                    0 => "an item without a status in the bulk response".to_string(),
                    _ => item_reason(status, result.get("error")),
                });
            }
        }
    }
    if retry_items.is_empty() && dead_letter.is_empty() {
        BulkOutcome::Done
    } else {
        BulkOutcome::Partial { retry: retry_items, retry_reason, dead_letter, ok }
    }
}

/// `400 mapper_parsing_exception: failed to parse field [x]`, kept with the dead-lettered event.
fn item_reason(status: u64, error: Option<&Value>) -> String {
    match error {
        Some(Value::Object(e)) => {
            let kind = e.get("type").and_then(Value::as_str).unwrap_or("error");
            match e.get("reason").and_then(Value::as_str) {
                Some(reason) => format!("{status} {kind}: {reason}"),
                None => format!("{status} {kind}"),
            }
        }
        Some(Value::String(s)) => format!("{status} {s}"),
        _ => format!("{status}"),
    }
}

fn top_level_reason(body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    match parsed.as_ref().and_then(|v| v.get("error")) {
        Some(e) => item_reason(0, Some(e)).trim_start_matches("0 ").to_string(),
        None => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_CREATED: &str = r#"{"took":30,"errors":false,"items":[
        {"create":{"_index":"nginx_access-2026.11.21","_id":"a","_version":1,"result":"created","_shards":{"total":2,"successful":1,"failed":0},"_seq_no":0,"_primary_term":1,"status":201}},
        {"create":{"_index":"nginx_access-2026.11.21","_id":"b","_version":1,"result":"created","_shards":{"total":2,"successful":1,"failed":0},"_seq_no":1,"_primary_term":1,"status":201}}]}"#;

    const MIXED: &str = r#"{"took":486,"errors":true,"items":[
        {"create":{"_index":"i","_id":"a","_version":1,"result":"created","_shards":{"total":2,"successful":1,"failed":0},"_seq_no":0,"_primary_term":1,"status":201}},
        {"create":{"_index":"i","_id":"b","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[b]: version conflict, document already exists (current version [1])","index_uuid":"aAsFqTI0Tc2W0LCWgPNrOA","shard":"0","index":"i"}}},
        {"create":{"_index":"i","_id":"c","status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution of coordinating operation"}}},
        {"create":{"_index":"i","_id":"d","status":400,"error":{"type":"document_parsing_exception","reason":"[1:15] failed to parse field [http.response.status_code] of type [long] in document with id 'd'","caused_by":{"type":"illegal_argument_exception","reason":"For input string: \"abc\""}}}},
        {"create":{"_index":"i","_id":"e","status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}},
        {"create":{"_index":"missing","_id":"f","status":404,"error":{"type":"index_not_found_exception","reason":"no such index [missing]"}}}]}"#;

    #[test]
    fn clean_response_is_done() {
        assert_eq!(decide(200, ALL_CREATED.as_bytes(), 2), BulkOutcome::Done);
    }

    #[test]
    fn mixed_items_split_three_ways() {
        assert_eq!(
            decide(200, MIXED.as_bytes(), 6),
            BulkOutcome::Partial {
                retry: vec![2, 4],
                retry_reason: Some("429 es_rejected_execution_exception: rejected execution of coordinating operation".into()),
                dead_letter: vec![
                    (3, "400 document_parsing_exception: [1:15] failed to parse field [http.response.status_code] of type [long] in document with id 'd'".into()),
                    (5, "404 index_not_found_exception: no such index [missing]".into()),
                ],
                ok: vec![0, 1],
            }
        );
    }

    #[test]
    fn write_blocks_and_missing_rights_retry_rather_than_dead_letter() {
        let body = r#"{"errors":true,"items":[
            {"create":{"_index":"i","_id":"a","status":403,"error":{"type":"cluster_block_exception","reason":"index [i] blocked by: [FORBIDDEN/12/index read-only / allow delete (api)];"}}},
            {"create":{"_index":"j","_id":"b","status":403,"error":{"type":"security_exception","reason":"action [indices:data/write/bulk[s]] is unauthorized"}}},
            {"create":{"_index":"i","_id":"c","status":201}}]}"#;
        assert_eq!(
            decide(200, body.as_bytes(), 3),
            BulkOutcome::Partial {
                retry: vec![0, 1],
                retry_reason: Some("403 cluster_block_exception: index [i] blocked by: [FORBIDDEN/12/index read-only / allow delete (api)];".into()),
                dead_letter: vec![],
                ok: vec![2]
            }
        );
    }

    #[test]
    fn replay_of_existing_ids_is_done() {
        let body = r#"{"took":3,"errors":true,"items":[
            {"create":{"_index":"i","_id":"a","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[a]: version conflict, document already exists (current version [1])"}}},
            {"create":{"_index":"i","_id":"b","status":201}}]}"#;
        assert_eq!(decide(200, body.as_bytes(), 2), BulkOutcome::Done);
        // 409 under `index` is not a replay of a create.
        let body = r#"{"errors":true,"items":[{"index":{"_index":"i","_id":"a","status":409,"error":{"type":"version_conflict_engine_exception","reason":"conflict"}}}]}"#;
        assert_eq!(
            decide(200, body.as_bytes(), 1),
            BulkOutcome::Partial {
                retry: vec![],
                retry_reason: None,
                dead_letter: vec![(0, "409 version_conflict_engine_exception: conflict".into())],
                ok: vec![]
            }
        );
    }

    #[test]
    fn whole_request_failures_retry() {
        let too_many = r#"{"error":{"root_cause":[{"type":"es_rejected_execution_exception","reason":"rejected execution"}],"type":"es_rejected_execution_exception","reason":"rejected execution"},"status":429}"#;
        match decide(429, too_many.as_bytes(), 2) {
            BulkOutcome::Retry { reason } => {
                assert_eq!(reason, "HTTP 429: es_rejected_execution_exception: rejected execution")
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(decide(503, b"<html>Service Unavailable</html>", 2), BulkOutcome::Retry { reason } if reason.contains("503") && reason.contains("Unavailable"))
        );
        assert!(matches!(decide(502, b"", 2), BulkOutcome::Retry { .. }));
        assert!(
            matches!(decide(401, br#"{"error":"unauthorized"}"#, 2), BulkOutcome::Retry { reason } if reason.contains("401"))
        );
        assert!(matches!(decide(200, b"not json", 2), BulkOutcome::Retry { .. }));
        assert!(
            matches!(decide(200, ALL_CREATED.replace("false", "true").as_bytes(), 3), BulkOutcome::Retry { reason } if reason.contains("2 items for 3"))
        );
        let no_status = r#"{"errors":true,"items":[{"create":{"_index":"i","_id":"a"}},{}]}"#;
        assert_eq!(
            decide(200, no_status.as_bytes(), 2),
            BulkOutcome::Partial {
                retry: vec![0, 1],
                retry_reason: Some("an item without a status in the bulk response".into()),
                dead_letter: vec![],
                ok: vec![]
            }
        );
    }
}
