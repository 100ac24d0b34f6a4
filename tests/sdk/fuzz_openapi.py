"""Checks numpool's /v2/openapi.json and fuzzes the API with it.

1. The document validates as OpenAPI 3.1 (openapi-spec-validator).
2. A profile, pool numbers, a sticky mapping and an opt-out are made, so
   the fuzzer's requests reach real records, not only 404s.
3. schemathesis runs every operation with a bounded number of examples
   (positive and negative data), checking that no reply is a 5xx, that
   every status, content type and body matches the document.

Usage: fuzz_openapi.py BASE_URL API_KEY WORK_DIR [MAX_EXAMPLES]
BASE_URL is the server's origin (http://127.0.0.1:PORT). Exits non-zero
when a check fails.
"""

import json
import os
import subprocess
import sys
import urllib.request

from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator


def call(base, key, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.load(reply)


def main():
    base, key, work = sys.argv[1], sys.argv[2], sys.argv[3]
    examples = sys.argv[4] if len(sys.argv) > 4 else "25"
    os.makedirs(work, exist_ok=True)

    with urllib.request.urlopen(base + "/v2/openapi.json", timeout=10) as reply:
        document = json.load(reply)
    validate(document, cls=OpenAPIV31SpecValidator)
    operations = sum(len(methods) for methods in document["paths"].values())
    print(f"openapi.json: valid OpenAPI {document['openapi']}, {operations} operations")

    profile = call(
        base,
        key,
        "POST",
        "/v2/messaging_profiles",
        {
            "name": "fuzz",
            "whitelisted_destinations": ["US"],
            "number_pool_settings": {"sticky_sender": True, "geomatch": True},
        },
    )["data"]["id"]
    number, recipient, opted = "+13125550001", "+13125559000", "+13125559001"
    for n in (number, "+18005550002"):
        call(base, key, "PATCH", f"/v2/phone_numbers/{n}/messaging", {"messaging_profile_id": profile})
    call(
        base,
        key,
        "POST",
        "/v2/messages/number_pool",
        {"messaging_profile_id": profile, "to": recipient, "text": "hi"},
    )
    call(base, key, "PUT", f"/v2/messaging_profiles/{profile}/opt_outs/{opted}")

    # Operations on a profile's records use the seeded ones; deleting the
    # profile itself keeps generated ids (else the rest would find nothing).
    config = f"""
[[operations]]
include-path-regex = "^/messaging_profiles/\\\\{{id\\\\}}/"
parameters = {{ "path.id" = "{profile}", "path.to" = "{recipient}" }}

[[operations]]
include-path = "/messaging_profiles/{{id}}"
include-method-regex = "^(GET|PATCH)$"
parameters = {{ "path.id" = "{profile}" }}

[[operations]]
include-path-regex = "^/(phone_numbers|messaging_phone_numbers)/\\\\{{id\\\\}}"
parameters = {{ "path.id" = "{number}" }}
"""
    config_file = os.path.join(work, "schemathesis.toml")
    with open(config_file, "w") as f:
        f.write(config)
    st = os.path.join(os.path.dirname(sys.executable), "st")
    command = [
        st,
        "--config-file",
        config_file,
        "run",
        base + "/v2/openapi.json",
        "--url",
        base + "/v2",
        "-H",
        f"Authorization: Bearer {key}",
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        "--max-examples",
        examples,
        "--seed",
        os.environ.get("NUMPOOL_FUZZ_SEED", "1"),
        "--generation-database",
        "none",
        "--no-color",
        "--warnings",
        "off",
        "--report",
        "junit",
        "--report-dir",
        work,
    ]
    result = subprocess.run(command, cwd=work)
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
