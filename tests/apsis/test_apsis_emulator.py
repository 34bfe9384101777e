"""The APSIS One emulator on its own: auth, limits, problem+json, profile semantics."""

import base64
import json

import requests
from apsis_support import token
from syncd_apsis.audience import EMAIL

CRM = "com.apsis1.keyspaces.crm-id"
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


def api(emu, method, path, tok, **kwargs):
    headers = {"Authorization": f"Bearer {tok}", **kwargs.pop("headers", {})}
    return requests.request(method, emu.url + path, headers=headers, timeout=5, **kwargs)


def attrs_path(emu, key, ks=CRM, v2=True):
    return (f"{'/v2' if v2 else ''}/audience/keyspaces/{ks}/profiles/{key}/sections/"
            f"{emu.section}/attributes")


def test_token_is_a_jwt_with_exp_and_json_only(emu):
    tok = token(emu)
    header, claims, signature = tok.split(".")
    exp = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["exp"]
    assert exp > 0 and signature
    form = requests.post(f"{emu.url}/oauth/token", data={"grant_type": "client_credentials",
                         "client_id": emu.client_id, "client_secret": emu.client_secret})
    assert form.status_code == 400
    bad = requests.post(f"{emu.url}/oauth/token", json={"grant_type": "client_credentials",
                        "client_id": emu.client_id, "client_secret": "nope"})
    assert bad.status_code == 401
    assert bad.headers["Content-Type"] == "application/problem+json"
    assert set(bad.json()) == {"type", "title", "status", "detail"}


def test_token_endpoint_allows_ten_a_minute(make_emulator):
    emu = make_emulator(token_limit_per_minute=3)
    for _ in range(3):
        token(emu)
    r = requests.post(f"{emu.url}/oauth/token", json={"grant_type": "client_credentials",
                      "client_id": emu.client_id, "client_secret": emu.client_secret})
    assert r.status_code == 429 and float(r.headers["Retry-After"]) > 50
    assert r.json()["status"] == 429


def test_api_needs_a_valid_bearer(emu):
    assert api(emu, "GET", "/audience/sections", "forged").status_code == 401
    tok = token(emu)
    assert api(emu, "GET", "/audience/sections", tok).status_code == 200
    emu.tokens.expire_all()
    r = api(emu, "GET", "/audience/sections", tok)
    assert r.status_code == 401 and r.headers["Content-Type"] == "application/problem+json"


def test_definitions(emu):
    tok = token(emu)
    keyspaces = api(emu, "GET", "/audience/keyspaces", tok).json()["items"]
    assert {k["discriminator"] for k in keyspaces} >= {CRM, EMAIL}
    assert all("manage_subscriptions" in k for k in keyspaces)
    version = emu.define_attribute("usercreated.attributes.score", type="number")
    attrs = api(emu, "GET", f"/audience/sections/{emu.section}/attributes", tok).json()["items"]
    by_name = {a["discriminator"]: a["version_id"] for a in attrs}
    assert by_name["usercreated.attributes.score"] == version
    assert {"com.apsis1.attributes.email", "com.apsis1.attributes.crmid"} <= set(by_name)
    topics = api(emu, "GET", f"/v2/audience/sections/{emu.section}/topics", tok).json()["items"]
    assert topics and all("discriminator" in t for t in topics)
    assert api(emu, "GET", "/audience/sections/nope/attributes", tok).status_code == 404


def test_v2_does_not_create_and_needs_merge_patch(emu):
    tok = token(emu)
    body = json.dumps({"com.apsis1.attributes.firstname": "Jan"})
    assert api(emu, "PATCH", attrs_path(emu, "k1"), tok, data=body,
               headers=MERGE_PATCH).status_code == 404
    versions = {a["discriminator"]: a["version_id"] for a in api(
        emu, "GET", f"/audience/sections/{emu.section}/attributes", tok).json()["items"]}
    v1_body = json.dumps({versions["com.apsis1.attributes.firstname"]: "Jan"})
    r = api(emu, "PATCH", attrs_path(emu, "k1", v2=False), tok, data=v1_body,
            headers={"Content-Type": "application/json"})
    assert r.status_code == 415  # v1 bodies are merge patches too (apis.md 3.3)
    assert r.headers["Content-Type"] == "application/problem+json"
    r = api(emu, "PATCH", attrs_path(emu, "k1", v2=False), tok, data=v1_body, headers=MERGE_PATCH)
    assert r.status_code == 201
    assert api(emu, "PATCH", attrs_path(emu, "k1"), tok, data=body,
               headers={"Content-Type": "application/json"}).status_code == 415
    r = api(emu, "PATCH", attrs_path(emu, "k1"), tok, headers=MERGE_PATCH,
            data=json.dumps({"com.apsis1.attributes.firstname": None}))
    assert r.status_code == 204
    assert emu.snapshot() == {"k1": {"com.apsis1.attributes.crmid": "k1"}}
    last = versions["com.apsis1.attributes.lastname"]
    api(emu, "PATCH", attrs_path(emu, "k1", v2=False), tok, data=json.dumps({last: "Smit"}),
        headers=MERGE_PATCH)
    assert emu.profile("k1")["com.apsis1.attributes.lastname"] == "Smit"
    delete = f"{attrs_path(emu, 'k1', v2=False)}/{last}"
    assert api(emu, "DELETE", delete, tok).status_code == 204
    assert emu.snapshot() == {"k1": {"com.apsis1.attributes.crmid": "k1"}}
    only_key = f"{attrs_path(emu, 'k1', v2=False)}/{versions['com.apsis1.attributes.crmid']}"
    assert api(emu, "DELETE", only_key, tok).status_code == 409  # it would have no key left


def test_merges(emu):
    tok = token(emu)

    def merge(a, b):
        return api(emu, "PUT", "/audience/profiles/merges", tok, json={"profiles": [
            {"keyspace_discriminator": a[0], "profile_key": a[1]},
            {"keyspace_discriminator": b[0], "profile_key": b[1]}]})

    assert merge((CRM, "k1"), (EMAIL, "a@x.nl")).status_code == 204
    assert emu.keys_of("k1") == {CRM: "k1", EMAIL: "a@x.nl"}
    assert merge((CRM, "k2"), (EMAIL, "b@x.nl")).status_code == 204
    r = merge((CRM, "k1"), (CRM, "k2"))
    assert r.status_code == 409 and r.json()["title"] == "Conflict"


def test_consent_statuses(emu):
    tok = token(emu)
    emu.seed(1)
    path = f"/v2/audience/keyspaces/{EMAIL}/profiles/lead0-0@example.org/sections/{emu.section}"
    consent = {"topic_discriminator": "com.apsis1.topics.newsletter",
               "channel_discriminator": "com.apsis1.channels.email", "type": "opt-in",
               "reason": "test", "source": "test"}
    assert api(emu, "POST", f"{path}/consents", tok, json=consent).status_code == 201
    assert api(emu, "POST", f"{path}/consents", tok, json=consent).status_code == 409
    out = {**consent, "type": "opt-out"}
    assert api(emu, "POST", f"{path}/consents", tok, json=out).status_code == 204
    bad = {**consent, "type": "confirmed-opt-in"}
    assert api(emu, "POST", f"{path}/consents", tok, json=bad).status_code == 400
    got = api(emu, "GET", f"{path}/consents?consent_types=opt-out", tok).json()["items"]
    assert [c["type"] for c in got] == ["opt-out"]
    assert api(emu, "GET", f"{path}/consents?consent_types=opt-in", tok).json()["items"] == []
    assert emu.snapshot() == {}  # seeded leads have no CRM id


def test_account_budget_and_missing_retry_after(make_emulator):
    emu = make_emulator(requests_per_second=2, send_retry_after=False)
    tok = token(emu)
    statuses = [api(emu, "GET", "/audience/sections", tok) for _ in range(4)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited and all("Retry-After" not in r.headers for r in limited)
    assert limited[0].json()["detail"].startswith("more than the allowed")


def test_body_limit(emu):
    tok = token(emu)
    r = api(emu, "PATCH", attrs_path(emu, "k1"), tok, headers=MERGE_PATCH,
            data=json.dumps({"com.apsis1.attributes.firstname": "x" * 110_000}))
    assert r.status_code == 413 and r.json()["status"] == 413


def test_documented_media_types_and_required_fields_are_enforced(emu):
    tok = token(emu)
    emu.seed(1)
    key = "lead0-0@example.org"
    as_json = {"Content-Type": "application/json"}
    tags = f"/audience/keyspaces/{EMAIL}/profiles/{key}/sections/{emu.section}/tags"
    r = api(emu, "PATCH", tags, tok, data=json.dumps({"t": True}), headers=as_json)
    assert r.status_code == 415 and r.json()["status"] == 415
    assert api(emu, "PATCH", tags, tok, data=json.dumps({"t": True}),
               headers=MERGE_PATCH).status_code == 204
    v2 = attrs_path(emu, key, ks=EMAIL)
    r = api(emu, "PATCH", v2, tok, data="{}", headers={**MERGE_PATCH, "Accept": "text/html"})
    assert r.status_code == 406
    assert api(emu, "PATCH", v2, tok, data="{}", headers={
        **MERGE_PATCH, "Accept": "application/problem+json"}).status_code == 204
    consents = f"/v2/audience/keyspaces/{EMAIL}/profiles/{key}/sections/{emu.section}/consents"
    r = api(emu, "POST", consents, tok, json={"type": "opt-in",
                                               "channel_discriminator": "x"})
    assert r.status_code == 400 and "topic_discriminator" in r.json()["detail"]
    r = api(emu, "POST", consents, tok, data="{}", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    r = requests.post(f"{emu.url}/oauth/token", json={"grant_type": "client_credentials",
                      "client_id": emu.client_id}, timeout=5)
    assert r.status_code == 400 and "client_secret" in r.json()["detail"]
