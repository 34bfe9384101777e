"""The rows of a profile import of the APSIS One emulator (``apis.md`` 3.7): how an
uploaded CSV file is applied to the audience (see :mod:`syncd_apsis.emulator_imports` for
the endpoints, the limits and what a row may hold)."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

from syncd_apsis.audience import Audience, Conflict, NotFound

TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")


class RowError(Exception):
    """A row (or the whole file) that cannot be applied, with the reason."""


def apply_rows(imp: dict[str, Any], definitions: dict[str, Any], audience: Audience,
               modified: dict[int, float]) -> dict[str, Any]:
    """Apply an uploaded import's file (``imp["file"]``, its mappings and options) to the
    ``audience``, row by row, into its section (whose ``definitions`` it reads and whose
    tags it defines on first use); the time of each profile written goes into
    ``modified``. Returns the import's result; :class:`RowError` when the file as a whole
    is unusable (not UTF-8, no header, a mapped column missing)."""
    try:
        text = imp["file"].decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RowError("the file is not UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        raise RowError("the file is empty (no header row)")
    columns = {name: i for i, name in enumerate(header)}
    mappings = [imp["keyspace"], *imp["attributes"], *imp["tags"], *imp["consents"]]
    missing = sorted({m["field_selector"] for m in mappings} - set(columns))
    if missing:
        raise RowError(f"column {', '.join(missing)} not in the file's header")
    section, options = imp["section"], imp["options"]
    defined = definitions["attributes"]
    known_tags = definitions["tags"]
    ks = imp["keyspace"]["keyspace_discriminator"]
    key_col = columns[imp["keyspace"]["field_selector"]]
    created = updated = 0
    errors: list[dict[str, Any]] = []
    for number, cells in enumerate(reader, start=1):
        key = cells[key_col] if key_col < len(cells) else ""
        try:
            if len(cells) != len(header):
                raise RowError(f"the row has {len(cells)} cells, the header {len(header)}")
            if not key:
                raise RowError(f"empty profile key in column "
                               f"{imp['keyspace']['field_selector']}")
            changes: dict[str, Any] = {}
            for m in imp["attributes"]:
                name, cell = m["attribute_discriminator"], cells[columns[m["field_selector"]]]
                if cell != "":
                    changes[name] = typed(name, defined[name].get("type"), cell)
                elif options["clear_existing_attributes"]:
                    changes[name] = None
            tags: dict[str, bool] = {}
            for m in imp["tags"]:
                cell = cells[columns[m["field_selector"]]].strip().lower()
                if cell in TRUE or cell in FALSE:
                    tags[m["tag_discriminator"]] = cell in TRUE
                elif cell:
                    raise RowError(f"tag {m['tag_discriminator']}: {cell!r} is not true "
                                   f"or false")
            consents = []
            for m in imp["consents"]:
                cell = cells[columns[m["field_selector"]]].strip().lower()
                if cell in ("opt-in", "opt-out"):
                    consents.append((m["topic_discriminator"], m["channel_discriminator"],
                                     cell))
                elif cell:
                    raise RowError(f"consent {m['topic_discriminator']} on "
                                   f"{m['channel_discriminator']}: {cell!r} is not opt-in "
                                   f"or opt-out")
            exists = audience.find(ks, key) is not None
            if exists and not options["update_existing_profiles"]:
                raise RowError("the profile exists and update_existing_profiles is false")
            if not exists and not options["create_new_profiles"]:
                raise RowError(f"no profile with key {key!r} in keyspace {ks}")
            profile, new = audience.write(ks, key, section, changes, create=True)
        except (RowError, Conflict, NotFound) as exc:
            errors.append({"row": number, "profile_key": key, "reason": str(exc)})
            continue
        for topic, channel, kind in consents:
            audience.set_consent(profile, section, topic, channel, {
                "type": kind, "reason": "import", "source": "import"})
        for tag in tags:  # GAP: tags are defined on first use here, as in PATCH tags
            known_tags.setdefault(tag, {"discriminator": tag,
                                        "name": tag.rsplit(".", 1)[-1]})
        if tags:
            profile.tags.setdefault(section, {}).update(tags)
        modified[profile.pid] = time.time()
        created += new
        updated += not new
    return {"created": created, "updated": updated, "failed": len(errors),
            "errors": errors}


def typed(name: str, kind: str | None, cell: str) -> Any:
    """A cell as the attribute's type says (GAP: APSIS' type names are not public)."""
    try:
        if kind in ("integer", "int"):
            return int(cell)
        if kind in ("number", "float", "double", "decimal"):
            return float(cell)
        if kind in ("boolean", "bool"):
            low = cell.strip().lower()
            if low not in TRUE + FALSE:
                raise ValueError(cell)
            return low in TRUE
    except ValueError:
        raise RowError(f"attribute {name}: {cell!r} is not a(n) {kind}") from None
    return cell
