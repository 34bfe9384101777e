"""How a dry run's plan reads (``syncd runs show``), and the check that refuses a planned
record whose destination profile moved since the dry run read it. Pure functions."""

from __future__ import annotations

from typing import Any

from syncd.engine import livediff
from syncd.engine import rules as R
from syncd.records import ProfileState


def destination_moved(rules: R.Rules, planned: dict[str, Any], state: ProfileState,
                      plan_run: int) -> str | None:
    """Why a planned entry made from a live read is refused now (None: it stands): the
    profile could not be read again, or differs from what the dry run read."""
    if state.error is not None:
        return (f"the destination could not be read again to check the plan (run "
                f"#{plan_run}): {state.error}")
    moved = livediff.moved(planned.get("read", {}), livediff.snapshot(rules, state))
    if moved:
        return (f"the destination changed since the dry run read it (run #{plan_run}): "
                + "; ".join(moved) + "; make a new plan with --dry-run")
    return None


def _value(change: dict[str, Any]) -> str:
    if change.get("unknown"):
        return f"? -> {change['new']!r} (not known before)"
    return f"{change.get('old')!r} -> {change['new']!r}"


def _lines_of(e: dict[str, Any]) -> list[str]:
    changes = []
    for k, v in e.get("attributes", {}).items():
        if not isinstance(v, dict):
            changes.append(f"{k} = {v!r}")
        elif "old" in v or v.get("unknown"):
            changes.append(f"{k}: {_value(v)}")
        else:
            changes.append(f"{k} = {v['new']!r}")
    if "email" in e:
        changes.append(f"email: {_value(e['email'])}")
    if "consent_changes" in e:
        for k, v in e["consent_changes"].items():
            if v.get("unknown"):
                changes.append(f"consent {k}: opt-in (not known before)")
            else:
                word = {True: "opted in", False: "opted out"}
                changes.append(f"consent {k} flips: {word[v['old']]} -> {word[v['new']]}"
                               + (f" ({v['why']})" if v.get("why") else ""))
    else:
        changes += [f"consent {k} flips" for k in e.get("flips", [])]
    changes += [f"tag {k}: {_value(v)}" for k, v in e.get("tag_changes", {}).items()]
    changes += [f"consent {k} opt-out kept ({why})" for k, why in e.get("kept", {}).items()]
    return changes


def render(found: dict[str, Any], limit: int = 50) -> list[str]:
    """``syncd runs show`` lines for a plan (:func:`syncd.engine.dryrun.plan`)."""
    how = found.get("basis", "known")
    lines = [f"  compared with: {found.get('note', '')}" if how == "live" else
             f"  compared with: NOT A LIVE READ: {found.get('note', '')}"]
    lines.append("  plan: " + (", ".join(f"{k} {v}" for k, v in sorted(found["summary"].items()))
                               or "no change"))
    for e in found["entries"][:limit]:
        if e["action"] == "delete":
            lines.append(f"  delete {e['record_id']}: {e['reason']}")
            continue
        label = ""
        if how == "live" and e.get("basis") == "known":
            label = (" [not read live: " + (e.get("read_error") or "no read") +
                     "; decided on what syncd knows]")
        note = f" ({e['note']})" if e.get("note") else ""
        lines.append(f"  {e['action']} {e['record_id']}{note}: " + (
            "; ".join(_lines_of(e)) or "consents or tags only") + label)
    if found.get("listed", found["total"]) > limit:
        lines.append(f"  ... and {found.get('listed', found['total']) - limit} more "
                     "(--json for all)")
    return lines
