"""Overviews and selections of Tribe CRM, for overview imports.

Tribe's public API documents no entity for saved overviews or selections (a GAP in the
public material), so a connection names them in its ``groups`` option, each as an OData
``$filter`` on persons; the members of a group are the persons that filter returns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syncd_tribe.client import TribeClient


class Groups:
    """Mixed into the Tribe connector (which provides ``opts`` and ``client``)."""

    opts: dict[str, Any]
    client: TribeClient

    def read_group(self, name: str) -> list[str]:
        """The ids of the persons in the overview or selection ``name``."""
        groups = self.opts.get("groups") or {}
        if name not in groups:
            known = ", ".join(sorted(groups)) or "none"
            raise ValueError(f"no group {name!r} in this connection's groups option "
                             f"(known: {known}); add it as an OData filter on persons")
        return [p["ID"] for p in self.client.iterate(
            self.opts["person_set"], filter=groups[name], select=["ID"], orderby="ID")]
