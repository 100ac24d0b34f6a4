//! `/v2/openapi.json`: the API as an OpenAPI 3.1 document, generated from
//! the route table ([`super::routes::ROUTES`]) and the types its handlers
//! read and write (their `JsonSchema`), so it cannot drift from the code.

use schemars::generate::SchemaSettings;
use schemars::SchemaGenerator;
use serde_json::{json, Map, Value};

use super::error::Errors;
use super::routes::{Route, CONSISTENCY, ROUTES};

/// Where the document keeps its schemas.
const SCHEMAS: &str = "/components/schemas";

/// A generator of schemas referenced from `#/components/schemas`, for the
/// bodies a handler reads (`Deserialize`) or writes (`Serialize`).
fn generator(settings: SchemaSettings) -> SchemaGenerator {
    settings
        .with(|s| {
            s.definitions_path = SCHEMAS.into();
            s.meta_schema = None;
        })
        .into_generator()
}

/// The schema and description of a query parameter of the route table.
fn query_parameter(name: &str) -> (Value, &'static str) {
    match name {
        "page[number]" => (
            json!({"type": "integer", "minimum": 1, "default": 1}),
            "The page, from 1.",
        ),
        "page[size]" => (
            json!({"type": "integer", "minimum": 1, "maximum": 250, "default": 20}),
            "Records a page.",
        ),
        "page[after]" => (
            json!({"type": "string"}),
            "Extension: the `meta.next_page_after` of the page before (a page costs only itself).",
        ),
        "filter[name]" | "filter[name][eq]" => {
            (json!({"type": "string"}), "Only the profile of this exact name.")
        }
        "filter[name][contains]" => (
            json!({"type": "string"}),
            "Only profiles whose name contains this.",
        ),
        "filter[messaging_profile_id]" => (
            json!({"type": "string", "format": "uuid"}),
            "Only that profile's numbers (a UUID naming no profile: none).",
        ),
        "filter[phone_number]" => (
            json!({"type": "string"}),
            "Only these numbers: a comma-separated list (the leading `+` may be left out).",
        ),
        "filter[phone_number][contains]" => (
            json!({"type": "string"}),
            "Only numbers whose written form contains this.",
        ),
        "filter[type]" => (
            json!({"type": "string", "enum": ["longcode", "tollfree", "shortcode"]}),
            "Only numbers of this kind.",
        ),
        "sort[phone_number]" => (
            json!({"type": "string", "enum": ["asc", "desc"], "default": "asc"}),
            "Order by number.",
        ),
        "filter[sender]" => (
            json!({"type": "string"}),
            "Extension: only the mappings to this sender.",
        ),
        CONSISTENCY => (
            json!({"type": "string", "enum": ["stale"]}),
            "In a cluster: a standby answers from its committed state instead of forwarding to the leader.",
        ),
        _ => (json!({"type": "string"}), ""),
    }
}

/// The `parameters` of one operation: its path parameters, then its query
/// parameters.
fn parameters(route: &Route) -> Vec<Value> {
    let mut out: Vec<Value> = ["id", "to"]
        .iter()
        .filter(|p| route.path.contains(&format!("{{{p}}}")))
        .map(|p| {
            let about = match *p {
                "id" if route.path.contains("phone_numbers") => {
                    "The number (E.164, `+` escaped as %2B or not) or its numeric id."
                }
                "id" => "The profile's UUID.",
                _ => "The recipient, E.164.",
            };
            json!({ "name": p, "in": "path", "required": true, "description": about, "schema": { "type": "string" } })
        })
        .collect();
    let get = route.method == "get";
    let names = route
        .query
        .iter()
        .copied()
        .chain(get.then_some(CONSISTENCY));
    for name in names {
        let (schema, about) = query_parameter(name);
        out.push(json!({ "name": name, "in": "query", "required": false, "description": about, "schema": schema }));
    }
    out
}

/// The document.
pub(super) fn document() -> Value {
    let mut requests = generator(SchemaSettings::draft2020_12().for_deserialize());
    let mut replies = generator(SchemaSettings::draft2020_12().for_serialize());
    let errors = replies.subschema_for::<Errors>();
    let error_reply = json!({
        "description": "An error, in the envelope of docs/API.md (its table lists each status and code)",
        "content": { "application/json": { "schema": errors } }
    });
    let mut paths = Map::new();
    for route in ROUTES {
        let mut op = json!({
            "operationId": operation_id(route),
            "summary": route.summary,
            "responses": {
                "200": {
                    "description": "Success",
                    "content": { route.media: { "schema": (route.reply)(&mut replies) } }
                },
                "default": error_reply,
            }
        });
        let parameters = parameters(route);
        if !parameters.is_empty() {
            op["parameters"] = Value::Array(parameters);
        }
        if let Some(request) = route.request {
            let schema = request(&mut requests);
            // A body with a required field is itself required.
            let required = schema
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.rsplit('/').next())
                .and_then(|name| requests.definitions().get(name))
                .and_then(|d| d.get("required"))
                .and_then(Value::as_array)
                .is_some_and(|r| !r.is_empty());
            let mut content = json!({ route.request_media: { "schema": schema } });
            if route.request_media != "application/json" {
                // A stream of lines: NDJSON, or CSV with a header.
                content["text/csv"] = json!({ "schema": { "type": "string" } });
            }
            op["requestBody"] = json!({ "required": required, "content": content });
        }
        if let Some(links) = links(route) {
            op["responses"]["200"]["links"] = links;
        }
        if route.path == "/webhooks/messaging" {
            // An Ed25519 signature from the hosted service passes too.
            op["security"] = json!([{ "bearer": [] }, { "telnyxSignature": [] }]);
        }
        if route.path == "/openapi.json" {
            op["security"] = json!([]);
        }
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        entry[route.method] = op;
    }
    let mut schemas = requests.take_definitions(true);
    schemas.extend(replies.take_definitions(true));
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "numpool",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The number-pool subset of the Telnyx Messaging API v2, with numpool's extensions (docs/API.md)."
        },
        "servers": [{ "url": "/v2" }],
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" },
                "telnyxSignature": {
                    "type": "apiKey", "in": "header", "name": "telnyx-signature-ed25519",
                    "description": "With telnyx-timestamp: the hosted service's webhook signature (when numpool is given its public key)."
                }
            },
            "schemas": schemas,
        }
    })
}

/// OpenAPI links: where the id a reply holds can be used next (clients
/// and the fuzzer follow them).
fn links(route: &Route) -> Option<Value> {
    let profile_id = json!({ "id": "$response.body#/data/id" });
    let number = json!({ "id": "$response.body#/data/phone_number" });
    let (uses, parameters) = match (route.method, route.path) {
        ("post", "/messaging_profiles") => (
            &[
                ("get", "/messaging_profiles/{id}"),
                ("patch", "/messaging_profiles/{id}"),
                ("delete", "/messaging_profiles/{id}"),
                ("get", "/messaging_profiles/{id}/phone_numbers"),
                ("get", "/messaging_profiles/{id}/sticky_mappings"),
                ("get", "/messaging_profiles/{id}/opt_outs"),
            ][..],
            profile_id,
        ),
        ("patch", "/phone_numbers/{id}/messaging") => {
            (&[("get", "/phone_numbers/{id}/messaging")][..], number)
        }
        _ => return None,
    };
    let mut links = Map::new();
    for (method, path) in uses {
        let target = ROUTES
            .iter()
            .find(|r| r.method == *method && r.path == *path)?;
        let id = operation_id(target);
        links.insert(
            id.clone(),
            json!({ "operationId": id, "parameters": parameters }),
        );
    }
    Some(Value::Object(links))
}

/// `getMessagingProfiles`-style names: the method and the path's words.
fn operation_id(route: &Route) -> String {
    let mut id = route.method.to_string();
    for word in route.path.split(['/', '_', '.']).filter(|w| !w.is_empty()) {
        let word = word.trim_start_matches('{').trim_end_matches('}');
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            id.extend(first.to_uppercase());
            id.push_str(chars.as_str());
        }
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_a_reply_schema_and_every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        // Every $ref names a schema the document holds.
        let mut rest = text.as_str();
        let mut refs = 0;
        while let Some(at) = rest.find("\"$ref\":\"#/components/schemas/") {
            rest = &rest[at + 29..];
            let name = &rest[..rest.find('"').unwrap()];
            assert!(
                schemas.contains_key(name),
                "{name} is referenced, not defined"
            );
            refs += 1;
        }
        assert!(refs > 20, "{refs}");
        let mut ids = std::collections::HashSet::new();
        for route in ROUTES {
            let op = &doc["paths"][route.path][route.method];
            assert!(ids.insert(op["operationId"].as_str().unwrap().to_string()));
            let reply = &op["responses"]["200"]["content"][route.media]["schema"];
            assert!(reply.is_object() || reply == &json!(true), "{reply}");
            // Every query parameter the route takes is described.
            for name in route.query {
                assert!(!query_parameter(name).1.is_empty(), "{name}");
            }
        }
        // The bodies are the handlers' own types, field by field.
        let send = &schemas["SendBody"]["properties"];
        for field in [
            "to",
            "messaging_profile_id",
            "text",
            "media_urls",
            "type",
            "encoding",
        ] {
            assert!(send[field].is_object(), "{field}");
        }
        assert_eq!(schemas["SendBody"]["required"], json!(["to"]));
        assert_eq!(
            schemas["SettingsPatch"]["additionalProperties"],
            json!(false),
            "a typo in number_pool_settings is refused"
        );
        assert!(schemas["Profile"]["properties"]["number_pool_settings"].is_object());
        // A setting may be left out of a patch, never null (null is refused).
        assert_eq!(
            schemas["SettingsPatch"]["properties"]["sticky_sender"]["type"],
            "boolean"
        );
        // Creating a profile needs a name and destinations; patching does not.
        assert_eq!(
            schemas["NewProfileBody"]["required"],
            json!(["name", "whitelisted_destinations"])
        );
        let profiles = &doc["paths"]["/messaging_profiles"];
        assert_eq!(profiles["post"]["requestBody"]["required"], true);
        assert_eq!(
            doc["paths"]["/messaging_profiles/{id}"]["patch"]["requestBody"]["required"],
            false
        );
        assert!(schemas["ErrorSource"]["properties"]["parameter"].is_object());
    }

    #[test]
    fn request_and_reply_types_do_not_share_names() {
        let mut requests = generator(SchemaSettings::draft2020_12().for_deserialize());
        let mut replies = generator(SchemaSettings::draft2020_12().for_serialize());
        for route in ROUTES {
            if let Some(request) = route.request {
                request(&mut requests);
            }
            (route.reply)(&mut replies);
        }
        let requests = requests.take_definitions(true);
        for name in replies.take_definitions(true).keys() {
            assert!(
                !requests.contains_key(name),
                "{name} is both a request and a reply schema"
            );
        }
    }
}
