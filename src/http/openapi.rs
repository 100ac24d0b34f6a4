//! `/v2/openapi.json`: the routes numpool serves, as an OpenAPI 3 document.

use serde_json::{json, Map, Value};

/// `(path, method, summary)` of every route.
const ROUTES: &[(&str, &str, &str)] = &[
    ("/messaging_profiles", "post", "Create a messaging profile"),
    ("/messaging_profiles", "get", "List messaging profiles"),
    (
        "/messaging_profiles/{id}",
        "get",
        "Retrieve a messaging profile",
    ),
    (
        "/messaging_profiles/{id}",
        "patch",
        "Update a messaging profile (number_pool_settings merge)",
    ),
    (
        "/messaging_profiles/{id}",
        "delete",
        "Delete a messaging profile",
    ),
    (
        "/messaging_profiles/{id}/phone_numbers",
        "get",
        "List a profile's phone numbers",
    ),
    (
        "/messaging_profiles/{id}/sticky_mappings",
        "get",
        "List sticky mappings (extension)",
    ),
    (
        "/messaging_profiles/{id}/sticky_mappings/{to}",
        "get",
        "Retrieve a sticky mapping (extension)",
    ),
    (
        "/messaging_profiles/{id}/sticky_mappings/{to}",
        "put",
        "Pin a recipient to a sender (extension)",
    ),
    (
        "/messaging_profiles/{id}/sticky_mappings/{to}",
        "delete",
        "Break a sticky mapping (extension)",
    ),
    (
        "/phone_numbers/messaging",
        "get",
        "List phone numbers with messaging settings",
    ),
    (
        "/phone_numbers/{id}/messaging",
        "get",
        "Retrieve a phone number's messaging settings",
    ),
    (
        "/phone_numbers/{id}/messaging",
        "patch",
        "Assign, move or unassign a phone number",
    ),
    (
        "/messaging_phone_numbers",
        "get",
        "List phone numbers (older path)",
    ),
    (
        "/messaging_phone_numbers/{id}",
        "get",
        "Retrieve a phone number (older path)",
    ),
    (
        "/messaging_phone_numbers/{id}",
        "patch",
        "Update a phone number (older path)",
    ),
    (
        "/messages/number_pool",
        "post",
        "Send a message from a number pool",
    ),
    (
        "/messages",
        "post",
        "Send a message (from a given sender or a profile's pool)",
    ),
    (
        "/webhooks/messaging",
        "post",
        "Report delivery outcomes (message.finalized webhooks)",
    ),
];

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for (path, method, summary) in ROUTES {
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        let mut op = json!({
            "summary": summary,
            "responses": {
                "200": { "description": "Success: {\"data\": ...}" },
                "default": { "description": "Error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Errors" } } } }
            }
        });
        let params: Vec<Value> = ["id", "to"]
            .iter()
            .filter(|p| path.contains(&format!("{{{p}}}")))
            .map(|p| json!({ "name": p, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if matches!(*method, "post" | "patch" | "put") {
            op["requestBody"] =
                json!({ "content": { "application/json": { "schema": { "type": "object" } } } });
        }
        entry[*method] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "numpool",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The number-pool subset of the Telnyx Messaging API v2."
        },
        "servers": [{ "url": "/v2" }],
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Errors": {
                    "type": "object",
                    "properties": { "errors": { "type": "array", "items": {
                        "type": "object",
                        "properties": {
                            "code": { "type": "string" }, "title": { "type": "string" },
                            "detail": { "type": "string" },
                            "source": { "type": "object", "properties": { "pointer": { "type": "string" } } }
                        }
                    } } }
                }
            }
        }
    })
}
