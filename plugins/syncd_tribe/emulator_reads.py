"""The reads of the Tribe emulator's store (:class:`StoreReads`, a base of
:class:`~syncd_tribe.emulator_store.Store`): OData queries over the entity sets (``$filter``
through the reverse indexes where it can, ``$orderby``, the sorted id list cached until the
next write), the checks a real server makes of a query's navigation paths, and an entity
rendered with its ``$select`` and ``$expand`` as the API answers it.

Like the store, not thread-safe by itself: the emulator holds its lock around every call.
"""

from __future__ import annotations

from typing import Any

from syncd_tribe import odata
from syncd_tribe.emulator_model import SETS, concrete_sets, sort_key
from syncd_tribe.odata import ODataError


class StoreReads:
    """The read half of :class:`~syncd_tribe.emulator_store.Store`, which holds the data."""

    entities: dict[str, dict[str, Any]]  # id -> fields
    navs: dict[str, dict[str, Any]]  # id -> nav name -> id | [ids]
    set_of: dict[str, str]  # id -> concrete set
    members: dict[str, dict[str, None]]  # set -> its ids, in order
    reverse: dict[tuple[str, str], dict[str, set[str]]]  # (set, nav) -> target -> ids
    _cache: dict[tuple, list[str]]  # (set, filter, orderby) -> ids
    omit_navs: set[str]
    model: dict[str, tuple[str, dict[str, tuple[str, bool]]]]

    def get_path(self, eid: str, path: tuple[str, ...]) -> Any:
        for segment in path[:-1]:
            target = self.navs.get(eid, {}).get(segment)
            if not isinstance(target, str):
                return None
            eid = target
        entity = self.entities.get(eid)
        return None if entity is None else entity.get(path[-1])

    def find(self, set_name: str, eid: str) -> str | None:
        eid = eid.strip("'").lower()
        if eid in self.set_of and self.set_of[eid] in concrete_sets(set_name):
            return eid
        return None

    def query(self, set_name: str, filter_text: str | None, orderby: str | None) -> list[str]:
        """The ids of ``set_name`` that match, in order (cached until the next write)."""
        key = (set_name, filter_text or "", orderby or "")
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        sets = concrete_sets(set_name)
        ids: list[str]
        predicate = None
        candidates = None
        if filter_text:
            ast = odata.parse_filter(filter_text)
            self._check_paths(ast, sets)
            predicate = odata.compile_filter(ast, self.get_path)
            candidates = self._candidates(ast, sets)
        if candidates is not None:
            ids = candidates
        else:
            ids = [eid for s in sets for eid in self.members[s]]
        if predicate is not None:
            ids = [eid for eid in ids if predicate(eid)]
        for path, desc in reversed(odata.parse_orderby(orderby)):
            self._check_path(path, sets)

            def by_path(eid: str, p: tuple[str, ...] = path) -> tuple:
                return sort_key(self.get_path(eid, p))

            ids.sort(key=by_path, reverse=desc)
        if len(self._cache) > 64:
            self._cache.clear()
        self._cache[key] = ids
        return ids

    def _candidates(self, ast: tuple, sets: list[str]) -> list[str] | None:
        found = odata.eq_candidates(ast)
        if found is None:
            return None
        path, values = found
        values = {v for v in values if isinstance(v, str)}
        if path == ("ID",):
            return [v for v in sorted(values) if self.set_of.get(v) in sets]
        if len(path) == 2 and path[1] == "ID" and all(
                path[0] in SETS[s][1] and not SETS[s][1][path[0]][1] for s in sets):
            out: set[str] = set()
            for s in sets:
                index = self.reverse.get((s, path[0]), {})
                for v in values:
                    out |= index.get(v, set())
            return sorted(out)
        return None

    def _check_paths(self, node: tuple, sets: list[str]) -> None:
        tag = node[0]
        if tag == "path":
            self._check_path(node[1], sets)
        elif tag in ("or", "and"):
            self._check_paths(node[1], sets)
            self._check_paths(node[2], sets)
        elif tag == "not":
            self._check_paths(node[1], sets)
        elif tag == "cmp":
            self._check_paths(node[2], sets)
            self._check_paths(node[3], sets)
        elif tag == "fn":
            for arg in node[2]:
                self._check_paths(arg, sets)

    def _check_path(self, path: tuple[str, ...], sets: list[str]) -> None:
        """Navigation segments must exist (the real server answers 400 otherwise)."""
        for s in sets:
            current = s
            for segment in path[:-1]:
                navs = {n: t for c in concrete_sets(current)
                        for n, t in self.model[c][1].items()}
                if segment not in navs:
                    raise ODataError(f"Could not find a navigation property named '{segment}'")
                current = navs[segment][0]

    def render(self, eid: str, select: list[str] | None, expand: dict[str, dict],
               api: bool = True) -> dict:
        """An entity as the API answers it (``api``: the account's model, ``omit_navs``
        applied), or as it is (``api=False``: the tests' and the sandbox's view)."""
        entity = self.entities[eid]
        if select is None:
            out = dict(entity)
        else:
            out = {"ID": entity["ID"]}
            for name in select:
                if name in entity:
                    out[name] = entity[name]
        set_name = self.set_of[eid]
        navs = (self.model if api else SETS)[set_name][1]
        for nav, options in expand.items():
            if nav not in navs:
                raise ODataError(f"Could not find a property named '{nav}' on "
                                 f"'{SETS[set_name][0]}'")
            if api and nav in self.omit_navs:
                continue
            target = self.navs[eid].get(nav)
            sel, exp = options.get("select"), options.get("expand") or {}
            if navs[nav][1]:
                out[nav] = [self.render(t, sel, exp, api) for t in (target or [])
                            if t in self.entities]
            else:
                out[nav] = self.render(target, sel, exp, api) if target in self.entities \
                    else None
        return out

    def ids_of(self, set_name: str) -> list[str]:
        return list(self.members[set_name])
