//! `/v2/openapi.json`: the routes numpool serves, as an OpenAPI 3 document.

use serde_json::{json, Map, Value};

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for super::routes::Route {
        path,
        method,
        summary,
        ..
    } in super::routes::ROUTES
    {
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
