"""The same full sync as a plain sequential loop, for comparison: a requests session pages
through Tribe (``$top``/``$skip``), joins each person with a contact (all contacts are read
first, the simplest way), applies the sandbox conditions and mapping, and writes each profile
with one v1 PATCH by version id (which creates it); with consents on, it also posts the
opt-in consents and patches the set tags, as syncd does for a new profile, so both do the
same work. A 429 is retried after
its ``Retry-After``. No concurrency, no client-side budget, no state.

    python -m bench naive [--contacts 5000] [--latency 0] [--budget documented|unlimited]
                          [--no-consents]
"""

from __future__ import annotations

import argparse
import time
from urllib.parse import quote

import requests

from bench.common import apsis_budget, emulator_process, emulator_stats, sync_rules

PAGE = 500
CRM_ID = "com.apsis1.keyspaces.crm-id"
ATTR = "com.apsis1.attributes."


def _send(session: requests.Session, method: str, url: str, **kwargs) -> requests.Response:
    while True:
        response = session.request(method, url, timeout=30, **kwargs)
        if response.status_code == 429:
            time.sleep(float(response.headers.get("Retry-After") or 0.1))
            continue
        if response.status_code >= 400 and response.status_code != 409:
            response.raise_for_status()
        return response


def _pages(session: requests.Session, url: str, params: dict) -> list[dict]:
    out, skip = [], 0
    while True:
        data = _send(session, "GET", url, params={**params, "$top": PAGE, "$skip": skip}).json()
        values = data.get("value") or []
        out.extend(values)
        if len(values) < PAGE:
            return out
        skip += len(values)


def run(tribe_url: str, tribe_id: str, tribe_secret: str, apsis_url: str, apsis_id: str,
        apsis_secret: str, section: str, rules: dict) -> dict:
    started = time.monotonic()
    tribe = requests.Session()
    token = tribe.post(f"{tribe_url}/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": tribe_id,
        "client_secret": tribe_secret}, timeout=30).json()["access_token"]
    tribe.headers["Authorization"] = f"Bearer {token}"
    apsis, sec, version = apsis_session(apsis_url, apsis_id, apsis_secret, section)

    contact_of: dict[str, dict] = {}
    for c in _pages(tribe, f"{tribe_url}/v1/odata/Relationship_Person_Contact_Standard",
                    {"$orderby": "ID", "$expand": "Relation,Person($select=ID)"}):
        contact_of[str((c.get("Person") or {}).get("ID", "")).lower()] = c
    conditions = {k.removeprefix("Contact."): v for k, v in rules.get("conditions", {}).items()}
    fields = rules.get("fields", {})
    consents = rules.get("consents", [])
    selections = rules.get("selections", {})
    processed = written = 0
    skip = 0
    while True:
        data = _send(tribe, "GET", f"{tribe_url}/v1/odata/Relation_Person", params={
            "$orderby": "ID", "$top": PAGE, "$skip": skip,
            "$expand": "Labels($select=ID,Name)"}).json()
        persons = data.get("value") or []
        for person in persons:
            processed += 1
            pid = str(person["ID"]).lower()
            contact = contact_of.get(pid) or {}
            if any(str(contact.get(k) or "").casefold() != str(v).casefold()
                   for k, v in conditions.items()):
                continue
            flat = dict(person)
            flat.update({f"Contact.{k}": v for k, v in contact.items()})
            flat.update({f"Contact.Organization.{k}": v
                         for k, v in (contact.get("Relation") or {}).items()})
            values = {ATTR + dst: flat.get(src) for src, dst in fields.items()}
            values[ATTR + "email"] = contact.get("EmailAddress") or person.get("EmailAddress")
            values[ATTR + "crmid"] = pid
            labels = {lab["Name"] for lab in person.get("Labels") or []}
            write_profile(apsis, apsis_url, sec, version, pid, values, labels, consents,
                          selections)
            written += 1
        if len(persons) < PAGE:
            break
        skip += len(persons)
    return {"seconds": time.monotonic() - started, "processed": processed,
            "written": written}


def apsis_session(apsis_url: str, apsis_id: str, apsis_secret: str, section: str
                  ) -> tuple[requests.Session, str, dict[str, str]]:
    """An authenticated APSIS session, the quoted section and the attributes' version ids."""
    apsis = requests.Session()
    token = apsis.post(f"{apsis_url}/oauth/token", json={
        "grant_type": "client_credentials", "client_id": apsis_id,
        "client_secret": apsis_secret}, timeout=30).json()["access_token"]
    apsis.headers["Authorization"] = f"Bearer {token}"
    sec = quote(section, safe="")
    attrs = _send(apsis, "GET", f"{apsis_url}/audience/sections/{sec}/attributes").json()
    return apsis, sec, {a["discriminator"]: a["version_id"] for a in attrs["items"]}


def write_profile(apsis: requests.Session, apsis_url: str, sec: str, version: dict, pid: str,
                  values: dict, labels: set, consents: list, selections: dict) -> None:
    """A new profile as syncd writes it: the v1 attribute PATCH (creates it), the opt-in
    consents, the set tags."""
    body = {version[k]: v for k, v in values.items() if v not in (None, "")}
    profile = f"{apsis_url}/audience/keyspaces/{quote(CRM_ID, safe='')}/profiles/{pid}"
    _send(apsis, "PATCH", f"{profile}/sections/{sec}/attributes", data=_json(body),
          headers={"Content-Type": "application/merge-patch+json"})
    v2 = profile.replace("/audience/", "/v2/audience/", 1)
    for m in consents:  # a new profile: opt-ins only (opt-out is the default state)
        if m["label"] not in labels:
            continue
        _send(apsis, "POST", f"{v2}/sections/{sec}/consents", json={
            "topic_discriminator": m["topic"],
            "channel_discriminator": "com.apsis1.channels." + m["channel"],
            "type": "opt-in", "reason": "naive", "source": "naive"})
    tags = {tag: True for sel, tag in selections.items() if sel in labels}
    if tags:  # a new profile: set tags only
        _send(apsis, "PATCH", f"{profile}/sections/{sec}/tags", data=_json(tags),
              headers={"Content-Type": "application/merge-patch+json"})


def _json(value) -> bytes:
    import json

    return json.dumps(value).encode()


def measure(contacts: int, latency: float = 0.0, budget: str = "documented",
            consents: bool = True, source: str = "tribe") -> dict:
    from bench.fullsync import summarize

    if source == "lime":
        from bench.naive_lime import measure as measure_lime

        return measure_lime(contacts, latency, budget, consents)
    with emulator_process("tribe", contacts=contacts, latency=latency) as (src_cls, src, _, _), \
            emulator_process("apsis", latency=latency, settings=apsis_budget(budget)) as (
                _, dst, dst_url, _):
        before = emulator_stats(dst_url)
        result = run(src.url, src.client_id, src.client_secret, dst.url, dst.client_id,
                     dst.client_secret, dst.section, sync_rules(src_cls, consents=consents))
        after = emulator_stats(dst_url)
    return summarize("naive", contacts, budget, result["seconds"], result["processed"],
                     result["written"], 0, before, after, latency=latency, consents=consents)


def main(argv=None) -> dict:
    from bench.fullsync import DEFAULT_CONTACTS, report

    parser = argparse.ArgumentParser(prog="python -m bench naive")
    parser.add_argument("--contacts", type=int, default=DEFAULT_CONTACTS)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--budget", choices=("documented", "unlimited"), default="documented")
    parser.add_argument("--no-consents", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args.contacts, args.latency, args.budget, not args.no_consents)
    report(result)
    return result


if __name__ == "__main__":
    main()
