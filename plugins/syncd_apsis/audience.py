"""The in-memory audience behind :class:`syncd_apsis.emulator.ApsisEmulator`.

A profile is ONE object reachable through each of its keys, one per keyspace
(``apis.md`` 3.2). The key of the crm-id, e-mail and mobile keyspaces *is* the value of the
crmid, email and mobile attribute: writing such an attribute re-keys the profile. When the new
key belongs to another profile, the two are merged if they cannot disagree, and the write is
refused with a conflict (409) when both hold a different key of the same keyspace (e.g. two
different CRM ids). The same rule decides ``PUT /audience/profiles/merges``.

Attributes, consents and tags live per section. Not thread-safe by itself: the emulator calls
it under its lock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

CRM_ID = "com.apsis1.keyspaces.crm-id"
EMAIL = "com.apsis1.keyspaces.email"
MOBILE = "com.apsis1.keyspaces.mobile"
#: keyspace -> the attribute whose value is the key
KEY_ATTRIBUTES = {
    CRM_ID: "com.apsis1.attributes.crmid",
    EMAIL: "com.apsis1.attributes.email",
    MOBILE: "com.apsis1.attributes.mobile",
}
ATTRIBUTE_KEYSPACES = {attr: ks for ks, attr in KEY_ATTRIBUTES.items()}


class NotFound(Exception):
    pass


class Conflict(Exception):
    pass


@dataclass
class StoredProfile:
    pid: int
    keys: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)  # section -> attrs
    #: section -> (topic, channel) -> consent record
    consents: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(default_factory=dict)
    tags: dict[str, dict[str, bool]] = field(default_factory=dict)  # section -> tag -> on


class Audience:
    def __init__(self) -> None:
        self.profiles: dict[int, StoredProfile] = {}
        self.index: dict[tuple[str, str], int] = {}
        self._next = 1

    # -- lookups -----------------------------------------------------------------------------

    def find(self, keyspace: str, key: str) -> StoredProfile | None:
        pid = self.index.get((keyspace, key))
        return self.profiles.get(pid) if pid is not None else None

    def get(self, keyspace: str, key: str) -> StoredProfile:
        profile = self.find(keyspace, key)
        if profile is None:
            raise NotFound(f"no profile with key {key!r} in keyspace {keyspace}")
        return profile

    # -- writes ------------------------------------------------------------------------------

    def write(self, keyspace: str, key: str, section: str, changes: dict[str, Any], *,
              create: bool) -> tuple[StoredProfile, bool]:
        """Merge ``changes`` (``None`` clears) into the profile at ``(keyspace, key)``;
        ``create`` makes it when missing. Returns ``(profile, created)``; raises NotFound or
        Conflict, and changes nothing when it raises."""
        profile = self.find(keyspace, key)
        created = profile is None
        if profile is None:
            if not create:
                raise NotFound(f"no profile with key {key!r} in keyspace {keyspace}")
            keys = {keyspace: key}
        else:
            keys = dict(profile.keys)
        absorb = self._plan_rekey(profile, keys, changes)  # raises Conflict, mutates nothing
        if profile is None:
            profile = StoredProfile(self._next)
            self._next += 1
            self.profiles[profile.pid] = profile
            self._set_key(profile, keyspace, key)
            if keyspace in KEY_ATTRIBUTES:
                profile.attributes.setdefault(section, {})[KEY_ATTRIBUTES[keyspace]] = key
        for other in absorb:
            self._absorb(profile, other)
        attrs = profile.attributes.setdefault(section, {})
        for name, value in changes.items():
            if name in ATTRIBUTE_KEYSPACES:
                ks = ATTRIBUTE_KEYSPACES[name]
                old = profile.keys.get(ks)
                if old is not None:
                    self.index.pop((ks, old), None)
                    profile.keys.pop(ks, None)
                if value is not None:
                    self._set_key(profile, ks, str(value))
            if value is None:
                attrs.pop(name, None)
            else:
                attrs[name] = value
        return profile, created

    def _plan_rekey(self, profile: StoredProfile | None, keys: dict[str, str],
                    changes: dict[str, Any]) -> list[StoredProfile]:
        """The profiles the re-keys in ``changes`` would absorb; Conflict if one cannot be."""
        absorb: list[StoredProfile] = []
        for name, value in changes.items():
            ks = ATTRIBUTE_KEYSPACES.get(name)
            if ks is None:
                continue
            if value is None:
                keys.pop(ks, None)
                continue
            other = self.find(ks, str(value))
            keys[ks] = str(value)
            if other is None or other is profile or other in absorb:
                continue
            clash = [k for k, v in other.keys.items() if k != ks and keys.get(k) not in (None, v)]
            if clash:
                raise Conflict(f"key {value!r} of keyspace {ks} belongs to another profile "
                               f"with a different {', '.join(clash)} key")
            absorb.append(other)
            for k, v in other.keys.items():
                keys.setdefault(k, v)
        if not keys:
            raise Conflict("the change would leave the profile without any key")
        return absorb

    def _set_key(self, profile: StoredProfile, keyspace: str, key: str) -> None:
        profile.keys[keyspace] = key
        self.index[(keyspace, key)] = profile.pid

    def _absorb(self, into: StoredProfile, other: StoredProfile) -> None:
        """Merge ``other`` into ``into``; ``into``'s values win."""
        for ks, key in other.keys.items():
            self.index[(ks, key)] = into.pid
            into.keys.setdefault(ks, key)
        for section, attrs in other.attributes.items():
            into.attributes[section] = {**attrs, **into.attributes.get(section, {})}
        for section, consents in other.consents.items():
            into.consents[section] = {**consents, **into.consents.get(section, {})}
        for section, tags in other.tags.items():
            into.tags[section] = {**tags, **into.tags.get(section, {})}
        self.profiles.pop(other.pid, None)

    def delete(self, keyspace: str, key: str) -> bool:
        profile = self.find(keyspace, key)
        if profile is None:
            return False
        for ks, k in profile.keys.items():
            self.index.pop((ks, k), None)
        self.profiles.pop(profile.pid, None)
        return True

    def merge(self, first: tuple[str, str], second: tuple[str, str],
              section: str) -> StoredProfile:
        """Both keys on one profile; missing profiles are created. Conflict when the two
        profiles hold different keys of one keyspace."""
        a, b = self.find(*first), self.find(*second)
        if a is None and b is None:
            profile, _ = self.write(first[0], first[1], section, {}, create=True)
            a = profile
        if a is None:
            a, first, second, b = b, second, first, None
        assert a is not None
        if b is None:
            other_ks, other_key = second
            if other_ks in a.keys and a.keys[other_ks] != other_key:
                raise Conflict(f"the profile already has a different {other_ks} key")
            self._set_key(a, other_ks, other_key)
            if other_ks in KEY_ATTRIBUTES:
                a.attributes.setdefault(section, {})[KEY_ATTRIBUTES[other_ks]] = other_key
            return a
        if a is b:
            return a
        clash = [k for k, v in b.keys.items() if a.keys.get(k) not in (None, v)]
        if clash:
            raise Conflict(f"the two profiles hold different {', '.join(clash)} keys")
        self._absorb(a, b)
        return a

    def set_consent(self, profile: StoredProfile, section: str, topic: str, channel: str,
                    body: dict[str, Any]) -> int:
        """201 new, 204 changed, 409 the same type is already set."""
        consents = profile.consents.setdefault(section, {})
        old = consents.get((topic, channel))
        if old is not None and old["type"] == body["type"]:
            return 409
        consents[(topic, channel)] = {
            "topic_discriminator": topic, "channel_discriminator": channel,
            "type": body["type"], "reason": body.get("reason") or "",
            "source": body.get("source") or "", "created_at": _now_iso(),
        }
        return 201 if old is None else 204

    # -- views -------------------------------------------------------------------------------

    def snapshot(self, section: str) -> dict[str, dict[str, Any]]:
        out = {}
        for profile in self.profiles.values():
            key = profile.keys.get(CRM_ID)
            if key is not None:
                attrs = profile.attributes.get(section, {})
                out[key] = {k: v for k, v in attrs.items() if v is not None}
        return out


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
