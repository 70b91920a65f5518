//! The API server's audit log (JSON lines, level Metadata), read the one way the tests and the
//! benchmark both need: one event per request. A watch logs ResponseStarted and then
//! ResponseComplete under the same `auditID`; the last stage wins.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

/// Every event in the audit log at `path` (empty when it does not exist yet).
pub fn read_events(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// `events` reduced to one per request (by `auditID`, the last stage wins), in the order each
/// request first appeared.
pub fn one_per_request(events: impl IntoIterator<Item = Value>) -> Vec<Value> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut requests: Vec<Value> = Vec::new();
    for event in events {
        let id = event["auditID"].as_str().unwrap_or_default().to_owned();
        match index.get(&id) {
            Some(&i) => requests[i] = event,
            None => {
                index.insert(id, requests.len());
                requests.push(event);
            }
        }
    }
    requests
}

/// Microseconds since the epoch of an audit timestamp field (RFC 3339, µs precision).
pub fn micros(event: &Value, field: &str) -> Option<i64> {
    let text = event[field].as_str()?;
    text.parse::<k8s_openapi::jiff::Timestamp>()
        .ok()
        .map(|t| t.as_microsecond())
}

/// A short name for the request: "create csr", "watch csr", "create events",
/// "update csr/status", ...
pub fn class(event: &Value) -> String {
    let object = &event["objectRef"];
    let resource = match object["resource"].as_str().unwrap_or("(none)") {
        "certificatesigningrequests" => "csr",
        other => other,
    };
    let sub = object["subresource"]
        .as_str()
        .map(|s| format!("/{s}"))
        .unwrap_or_default();
    format!("{} {resource}{sub}", event["verb"].as_str().unwrap_or("?"))
}
