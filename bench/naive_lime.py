"""The naive loop for a Lime source (``python -m bench fullsync --source lime``): a requests
session reads every company and every consent type and consent of Lime first (the simplest
way), then pages through the persons following ``_links.next``, applies the sandbox
conditions and mapping (``company.name`` through the person's company, the newest consent
per type), and writes each profile as :mod:`bench.naive` does for Tribe. No concurrency, no
client-side budget, no state.
"""

from __future__ import annotations

import time

import requests

from bench.common import apsis_budget, emulator_process, emulator_stats, sync_rules
from bench.naive import ATTR, _send, apsis_session, write_profile

PAGE = 200


def _all(session: requests.Session, url: str) -> list[dict]:
    out: list[dict] = []
    next_url: str | None = f"{url}?_limit={PAGE}&_sort=_id"
    while next_url:
        data = _send(session, "GET", next_url).json()
        out.extend((data.get("_embedded") or {}).get("limeobjects") or [])
        next_url = ((data.get("_links") or {}).get("next") or {}).get("href")
    return out


def run(lime_url: str, api_key: str, apsis_url: str, apsis_id: str, apsis_secret: str,
        section: str, rules: dict) -> dict:
    started = time.monotonic()
    lime = requests.Session()
    lime.headers["X-API-Key"] = api_key
    base = f"{lime_url}/api/v1/limeobject"
    apsis, sec, version = apsis_session(apsis_url, apsis_id, apsis_secret, section)
    companies = {c["_id"]: c for c in _all(lime, f"{base}/company/")}
    consents = rules.get("consents", [])
    labels_of: dict[int, set[str]] = {}
    if consents:
        titles = {t["_id"]: t["title"] for t in _all(lime, f"{base}/consenttype/")}
        newest: dict[tuple[int, int], dict] = {}
        for c in _all(lime, f"{base}/consent/"):
            key = (c.get("person"), c.get("consenttype"))
            if None not in key and (key not in newest or c["date"] > newest[key]["date"]):
                newest[key] = c
        for (pid, tid), c in newest.items():
            if c.get("approved"):
                labels_of.setdefault(pid, set()).add(titles[tid])
    conditions = rules.get("conditions", {})
    fields = rules.get("fields", {})
    processed = written = 0
    for person in _all(lime, f"{base}/person/"):
        processed += 1
        if any(str(person.get(k) or "").casefold() != str(v).casefold()
               for k, v in conditions.items()):
            continue
        flat = dict(person)
        flat.update({f"company.{k}": v
                     for k, v in (companies.get(person.get("company")) or {}).items()})
        pid = str(person["_id"])
        values = {ATTR + dst: flat.get(src) for src, dst in fields.items()}
        values[ATTR + "email"] = person.get("email")
        values[ATTR + "crmid"] = pid
        write_profile(apsis, apsis_url, sec, version, pid, values,
                      labels_of.get(person["_id"], set()), consents, {})
        written += 1
    return {"seconds": time.monotonic() - started, "processed": processed,
            "written": written}


def measure(contacts: int, latency: float = 0.0, budget: str = "documented",
            consents: bool = True) -> dict:
    from bench.fullsync import summarize

    with emulator_process("lime", contacts=contacts, latency=latency) as (src_cls, src, _, _), \
            emulator_process("apsis", latency=latency, settings=apsis_budget(budget)) as (
                _, dst, dst_url, _):
        before = emulator_stats(dst_url)
        result = run(src.url, src.api_key, dst.url, dst.client_id, dst.client_secret,
                     dst.section, sync_rules(src_cls, consents=consents))
        after = emulator_stats(dst_url)
    return summarize("naive", contacts, budget, result["seconds"], result["processed"],
                     result["written"], 0, before, after, latency=latency, consents=consents)
