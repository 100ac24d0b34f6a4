"""Compatibility test: the official Telnyx Python SDK against a running numpool.

Usage: NUMPOOL_BASE_URL=http://127.0.0.1:PORT/v2 python telnyx_sdk_compat.py
Runs the scenario twice: with the SDK's default response handling and with
_strict_response_validation=True. Exits non-zero on the first failure.
For a server on https://, NUMPOOL_CA_FILE names the CA (PEM) its
certificate is checked against (and nothing else is trusted).
"""

import json
import os
import ssl
import sys
import urllib.request
import uuid

import telnyx

BASE_URL = os.environ["NUMPOOL_BASE_URL"]
API_KEY = os.environ.get("NUMPOOL_API_KEY", "sdk-test-key")
CA_FILE = os.environ.get("NUMPOOL_CA_FILE")
# The TLS context for both the SDK and the raw requests: the given CA only.
TLS = ssl.create_default_context(cafile=CA_FILE) if CA_FILE else None


def scenario(strict: bool) -> None:
    client = telnyx.Telnyx(
        api_key=API_KEY,
        base_url=BASE_URL,
        max_retries=0,
        _strict_response_validation=strict,
        http_client=telnyx.DefaultHttpxClient(verify=TLS) if TLS else None,
    )
    suffix = "1" if strict else "0"
    profile = client.messaging_profiles.create(
        name=f"sdk-compat-{suffix}", whitelisted_destinations=["US"]
    ).data
    assert profile.id, "created profile has an id"
    assert profile.number_pool_settings is None, "a new profile has the pool off"

    numbers = [f"+1312555{suffix}001", f"+1312555{suffix}002"]
    for number in numbers:
        updated = client.phone_numbers.messaging.update(
            number, messaging_profile_id=profile.id
        ).data
        assert updated.messaging_profile_id == profile.id, updated

    listed = client.messaging_profiles.list_phone_numbers(profile.id)
    assert sorted(n.phone_number for n in listed.data) == sorted(numbers), listed.data

    patched = client.messaging_profiles.update(
        profile.id, number_pool_settings={"sticky_sender": True}
    ).data
    settings = patched.number_pool_settings
    assert settings.sticky_sender is True
    assert settings.long_code_weight == 1 and settings.toll_free_weight == 0
    assert settings.skip_unhealthy is False and settings.geomatch is False

    to = "+14155550199"
    first = client.messages.send_number_pool(
        messaging_profile_id=profile.id, to=to, text="hello"
    ).data
    second = client.messages.send_number_pool(
        messaging_profile_id=profile.id, to=to, text="hello again"
    ).data
    assert first.from_.phone_number in numbers
    assert first.from_.phone_number == second.from_.phone_number, "sticky sender"
    assert second.to[0].status == "queued"

    # An opted-out recipient (opted out through numpool's extension route):
    # the SDK raises its typed 422 error, and the code is readable.
    stopped = "+14155550198"
    request = urllib.request.Request(
        f"{BASE_URL}/messaging_profiles/{profile.id}/opt_outs/%2B{stopped[1:]}",
        method="PUT",
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    with urllib.request.urlopen(request, context=TLS) as reply:
        assert json.load(reply)["data"]["to"] == stopped
    try:
        client.messages.send_number_pool(
            messaging_profile_id=profile.id, to=stopped, text="hello"
        )
    except telnyx.UnprocessableEntityError as e:
        body = e.body if isinstance(e.body, dict) else {}
        errors = body.get("errors") or e.response.json()["errors"]
        assert errors[0]["code"] == "40300", errors
        assert errors[0]["title"] == "Blocked due to STOP message", errors
    else:
        raise AssertionError("a send to an opted-out recipient must raise UnprocessableEntityError")

    patched = client.messaging_profiles.update(
        profile.id, number_pool_settings={"sticky_sender": False}
    ).data
    assert patched.number_pool_settings.sticky_sender is False

    try:
        client.messaging_profiles.retrieve(str(uuid.uuid4()))
    except telnyx.NotFoundError:
        pass
    else:
        raise AssertionError("an unknown profile must raise telnyx.NotFoundError")

    client.messaging_profiles.delete(profile.id)
    print(f"telnyx {telnyx.__version__} strict={strict}: ok")


if __name__ == "__main__":
    for strict in (False, True):
        scenario(strict)
    sys.exit(0)
