"""``syncd explain INTEGRATION RECORD``: one contact's story, newest last, on one screen."""

from __future__ import annotations

import json
import time
from typing import Any


def cmd_explain(args, client) -> int:
    story = client.explain(args.integration, args.record)
    if args.json:
        print(json.dumps(story, indent=2, default=str))
        return 0
    print("\n".join(render(story)))
    return 0


def render(story: dict[str, Any]) -> list[str]:
    link = story.get("link")
    head = f"{story['integration']} / {story['record']}: "
    head += (f"written as {link['destination_key']}" if link and link["written"]
             else f"linked to {link['destination_key']}, not up to date (a change was held, "
             "failed or is being written)" if link else "never written to the destination")
    lines = [head]
    if not story["entries"]:
        lines.append("  nothing recorded (the journal keeps [daemon] journal_days days)")
    for entry in story["entries"]:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["at"]))
        lines += [f"{at}  {text}" if i == 0 else f"{'':21}{text}"
                  for i, text in enumerate(_entry(entry["kind"], entry["data"]))]
    return lines


def _entry(kind: str, d: dict[str, Any]) -> list[str]:
    if kind == "event":
        line = f"event    {d['event']} from {d['connection']}: {d['status']}"
        if d.get("attempts"):
            line += f" after {d['attempts']} attempt(s)"
        return [line + (f" ({d['error']})" if d.get("error") else "")]
    if kind == "guard":
        return [f"guard    held {d['held']} (not sent; the rest of the write went)",
                f"         {d['reason'] or 'the guard holds'}"]
    if kind == "writeback":
        return [f"writeback opt-out {d.get('topic')}/{d.get('channel')}: {d['action']}",
                f"         {d['reason']}"]
    if kind == "answer":
        line = f"answer   {d['request']}: {d['outcome']}"
        if d.get("status"):
            line += f" (HTTP {d['status']} {d.get('endpoint') or ''})".rstrip()
        return [line + (f": {d['reason']}" if d.get("reason") else "")] + \
            [f"         call {_call(c)}" for c in d.get("calls") or ()]
    return _decision(d)


def _call(c: dict[str, Any]) -> str:
    """``PATCH /path: 429 in 3 ms (attempt 1; Retry-After 1 s): Too many requests``."""
    line = f"{c['method']} {c['path']}: {c.get('status') or 'no answer'} in {c['ms']} ms"
    notes = []
    if c.get("attempt", 1) > 1:
        notes.append(f"attempt {c['attempt']}, after waiting {c.get('waited', 0):.1f} s")
    if c.get("retry_after") is not None:
        notes.append(f"Retry-After {c['retry_after']:g} s")
    line += f" ({'; '.join(notes)})" if notes else ""
    return line + (f": {c['error']}" if c.get("error") else "")


def _decision(d: dict[str, Any]) -> list[str]:
    outcome = d["outcome"]
    out = [f"decision {outcome} ({d.get('path', '')})"
           + (f": {d['reason']}" if d.get("reason") else "")]
    for c in d.get("conditions", []):
        mark = "held" if c["held"] else "FAILED"
        out.append(f"         condition {c['field']} = {json.dumps(c['wanted'])} {mark} "
                   f"(found {json.dumps(c['found'])})")
    if outcome in ("skip", "delete"):
        return out
    for dest, f in d.get("fields", {}).items():
        out.append(f"         field {f['from']} -> {dest} = {json.dumps(f['value'])}")
    for c in d.get("consents", []):
        state = "opted in" if c["opted_in"] else "opted out"
        out.append(f"         consent {c['topic']}/{c['channel']}: {state}: {c['why']}")
    for tag, on in (d.get("tags") or {}).items():
        out.append(f"         tag {tag}: {'set' if on else 'not set'}")
    sends = d.get("sends")
    if sends:
        what = [f"{len(sends['attributes'])} attribute(s)"]
        if sends["consents"]:
            what.append("consents " + ", ".join(f"{k}={'in' if v else 'out'}"
                                                for k, v in sends["consents"].items()))
        if sends["tags"]:
            what.append("tags " + ", ".join(f"{k}={'on' if v else 'off'}"
                                            for k, v in sends["tags"].items()))
        out.append(f"         sends {'(new profile) ' if sends['new'] else ''}"
                   + "; ".join(what))
    return out
