"""The Tribe emulator's ``$metadata``: OData CSDL XML (``apis.md`` 1.3), derived from the
emulator's own model (:data:`~syncd_tribe.emulator_store.SETS`, ``FIELDS``, ``STANDARD``), so
that it describes exactly the entity sets, properties and navigations the emulator serves.

Every concrete set gets an entity type of the same name; the abstract sets the emulator
answers (``Relation``, ``Relationship``, ``Relationship_Person_Contact`` ... : every prefix of
a concrete set's name cut at ``_``) get abstract types, and each concrete type derives from
the longest abstract prefix of its name. The standard fields (``ID``, ``_Type`` ...) live on
the roots; a navigation to an abstract set (``Relation``) is typed with its abstract type.
"""

from __future__ import annotations

from collections.abc import Mapping
from xml.sax.saxutils import quoteattr

NAMESPACE = "Tribe"
EDMX = "http://docs.oasis-open.org/odata/ns/edmx"
EDM = "http://docs.oasis-open.org/odata/ns/edm"

#: Edm types of the properties that are not text (the rest are Edm.String).
TYPES = {
    "ID": "Edm.Guid", "SortIndex": "Edm.Int32", "CreationDate": "Edm.DateTimeOffset",
    "LastMutationDate": "Edm.DateTimeOffset", "StartDate": "Edm.DateTimeOffset",
    "EndDate": "Edm.DateTimeOffset", "BirthDate": "Edm.Date", "IsFormer": "Edm.Boolean",
}


def abstract_sets(sets: Mapping[str, object]) -> list[str]:
    """The abstract sets behind the concrete ones, parents first."""
    out: dict[str, None] = {}
    for name in sets:
        parts = name.split("_")
        for n in range(1, len(parts)):
            prefix = "_".join(parts[:n])
            if prefix not in sets:
                out[prefix] = None
    return sorted(out, key=lambda s: (s.count("_"), s))


def _base(name: str, abstract: list[str]) -> str | None:
    parts = name.split("_")
    for n in range(len(parts) - 1, 0, -1):
        prefix = "_".join(parts[:n])
        if prefix in abstract:
            return prefix
    return None


def csdl(sets: Mapping[str, tuple[str, Mapping[str, tuple[str, bool]]]],
         fields: Mapping[str, tuple[str, ...]], standard: tuple[str, ...],
         types: Mapping[str, str] | None = None) -> str:
    """The CSDL document of a model: ``sets`` as ``emulator_store.SETS``, ``fields`` the
    fields of each concrete set, ``standard`` those every entity has; ``types`` names the
    Edm type of a property that is not a string (custom fields included)."""
    types = {**TYPES, **(types or {})}
    abstract = abstract_sets(sets)
    lines = ['<?xml version="1.0" encoding="utf-8"?>',
             f'<edmx:Edmx xmlns:edmx="{EDMX}" Version="4.0">', "<edmx:DataServices>",
             f'<Schema xmlns="{EDM}" Namespace="{NAMESPACE}">']

    def prop(name: str) -> str:
        nullable = "" if name != "ID" else ' Nullable="false"'
        return f'<Property Name={quoteattr(name)} Type="{types.get(name, "Edm.String")}"' \
               f"{nullable}/>"

    def key_and_standard() -> list[str]:
        return ['<Key><PropertyRef Name="ID"/></Key>', *(prop(n) for n in standard)]

    for name in abstract:
        base = _base(name, abstract)
        head = f'<EntityType Name={quoteattr(name)} Abstract="true"'
        if base:
            lines += [head + f' BaseType="{NAMESPACE}.{base}">', "</EntityType>"]
        else:
            lines += [head + ">", *key_and_standard(), "</EntityType>"]
    for name, (_, navs) in sets.items():
        base = _base(name, abstract)
        head = f"<EntityType Name={quoteattr(name)}"
        body = [] if base else key_and_standard()
        body += [prop(f) for f in fields.get(name, ())]
        for nav, (target, many) in navs.items():
            kind = f"{NAMESPACE}.{target}"
            kind = f"Collection({kind})" if many else kind
            body.append(f'<NavigationProperty Name={quoteattr(nav)} Type="{kind}"/>')
        head += f' BaseType="{NAMESPACE}.{base}">' if base else ">"
        lines += [head, *body, "</EntityType>"]
    lines.append('<EntityContainer Name="Container">')
    for name in abstract:
        lines.append(f'<EntitySet Name={quoteattr(name)} EntityType="{NAMESPACE}.{name}"/>')
    for name, (_, navs) in sets.items():
        lines.append(f'<EntitySet Name={quoteattr(name)} EntityType="{NAMESPACE}.{name}">')
        lines += [f"<NavigationPropertyBinding Path={quoteattr(nav)} "
                  f"Target={quoteattr(target)}/>" for nav, (target, _) in navs.items()]
        lines.append("</EntitySet>")
    lines += ["</EntityContainer>", "</Schema>", "</edmx:DataServices>", "</edmx:Edmx>"]
    return "\n".join(lines) + "\n"
