"""Reading profiles back from APSIS One (READ_PROFILES, for dry runs), a mixin of
:class:`~syncd_apsis.connector.ApsisConnector`.

Per key, through the crm-id keyspace (the keys are CRM ids, as ``delete_profiles`` takes
them), each request spending the account budget and the per-profile-key budget (10/s) of the
shared client, ``Retry-After`` honoured (``apis.md`` 3.8):

1. ``GET /v2/audience/keyspaces/{ks}/profiles/{key}/sections/{section}/consents`` (3.4
   [DOC]): the consents; a **404 means "not in APSIS"** (a write would create it), and nothing
   more is asked for that key;
2. ``GET`` of ``profile_attributes_path`` (default the v2 attributes path): reading one
   profile's attributes is a [GAP] (no public client calls it; the documented single-profile
   export is asynchronous through a callback URL, unusable here). The answer is taken as a
   map by discriminator, or ``{"items": [...]}`` of ``discriminator`` (or ``version_id``)
   with ``value``. A 404 here, for a profile the consents read found, is a wrong path: the
   key's state carries an error naming the option;
3. ``GET`` of ``profile_tags_path`` (default inferred from the tags PATCH, 3.5 [INFER]), a
   map ``{tag: bool}`` or ``{"items": [{"discriminator", "value"}]}``; empty option or a 404:
   the tags are unknown.

An attribute, consent or tag the answers do not name is **unknown** (left out of the
:class:`ProfileState`), never empty. Consent types ``opt-in`` and ``confirmed-opt-in`` read
as opted in, ``opt-out`` as opted out; others (``pending-opt-in``) are unknown. Keys are read
concurrently (``concurrency``), one key's requests one after another.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from syncd.plugin import ProfileState, RemoteError, Scalar
from syncd_apsis.client import ApsisClient, items_of, segment
from syncd_apsis.options import CRM_ID_KEYSPACE, EMAIL_KEYSPACE

OPTED_IN = {"opt-in": True, "confirmed-opt-in": True, "opt-out": False}
CONSENTS_PATH = "/v2/audience/keyspaces/{keyspace}/profiles/{key}/sections/{section}/consents"


class ProfileReads:
    """The reads of one connection: ``client`` gives its (started) client; the paths are
    the connection's options (``profile_attributes_path``, ``profile_tags_path``)."""

    def __init__(self, client: Callable[[], ApsisClient], *, section: str, keyspace: str,
                 channels: dict[str, str], email_attribute: str, id_attribute: str,
                 attributes_path: str, tags_path: str, log: Any):
        self._client = client
        self.section = section
        self.keyspace = CRM_ID_KEYSPACE if keyspace == EMAIL_KEYSPACE else keyspace
        self.by_channel = {d: name for name, d in channels.items()}
        self.email_attribute, self.id_attribute = email_attribute, id_attribute
        self.attributes_path, self.tags_path = attributes_path, tags_path
        self.log = log

    def read(self, keys: list[str], pool: Executor) -> list[ProfileState]:
        """One state per key, in input order, the keys read concurrently in ``pool``."""
        return list(pool.map(self._read_safely, keys)) if keys else []

    def _read_safely(self, key: str) -> ProfileState:
        try:
            return self._read_one(key)
        except RemoteError as exc:
            return ProfileState(key, found=False, error=str(exc))
        except Exception as exc:  # an odd answer: this key is unknown, the batch goes on
            self.log.exception("apsis.read_failed", key=key)
            return ProfileState(key, found=False, error=f"{type(exc).__name__}: {exc}")

    def _path(self, template: str, key: str) -> str:
        return template.format(keyspace=segment(self.keyspace), key=segment(key),
                               section=segment(self.section))

    def _read_one(self, key: str) -> ProfileState:
        client = self._client()
        rate_key = client.rate_key(self.keyspace, key)
        answer = client.request("GET", self._path(CONSENTS_PATH, key), rate_key=rate_key,
                                ok=(404,))
        if answer.status_code == 404:
            return ProfileState(key, found=False)
        consents = self._consents_of(answer.json())
        answer = client.request("GET", self._path(self.attributes_path, key),
                                rate_key=rate_key, ok=(404,))
        if answer.status_code == 404:
            return ProfileState(key, found=False, error=(
                "the attribute read answered 404 after the consents read found the profile: "
                "`profile_attributes_path` is not a path your APSIS One account serves (fix: "
                "set it), or the profile is gone"))
        attributes = self._attributes_of(client, answer.json())
        email = attributes.pop(self.email_attribute, None)
        attributes.pop(self.id_attribute, None)
        tags: dict[str, bool] = {}
        if self.tags_path:
            answer = client.request("GET", self._path(self.tags_path, key),
                                    rate_key=rate_key, ok=(404,))
            if answer.status_code != 404:
                tags = self._tags_of(answer.json())
        return ProfileState(key, found=True, attributes=attributes,
                            email=email if isinstance(email, str) else None,
                            consents=consents, tags=tags)

    def _consents_of(self, payload: Any) -> dict[str, bool]:
        out: dict[str, bool] = {}
        for item in items_of(payload):
            channel = self.by_channel.get(str(item.get("channel_discriminator")))
            topic, kind = item.get("topic_discriminator"), str(item.get("type"))
            if channel and topic and kind in OPTED_IN:
                out[f"{topic}|{channel}"] = OPTED_IN[kind]
        return out

    def _attributes_of(self, client: ApsisClient, payload: Any) -> dict[str, Scalar]:
        if isinstance(payload, dict) and isinstance(payload.get("attributes"), dict):
            payload = payload["attributes"]
        if isinstance(payload, dict) and not isinstance(payload.get("items"), list):
            return {str(k): v for k, v in payload.items()
                    if v is None or isinstance(v, str | int | float | bool)}
        by_version: dict[str, str] = {}
        out: dict[str, Scalar] = {}
        for item in items_of(payload):
            if "value" not in item:
                continue  # named without a value: unknown
            name = item.get("discriminator")
            if name is None and item.get("version_id") is not None:
                if not by_version:
                    by_version = {v: d for d, v in
                                  client.attribute_versions(self.section).items()}
                name = by_version.get(str(item["version_id"]))
            if name is not None:
                out[str(name)] = item["value"]
        return out

    @staticmethod
    def _tags_of(payload: Any) -> dict[str, bool]:
        if isinstance(payload, dict) and not isinstance(payload.get("items"), list):
            return {str(k): v for k, v in payload.items() if isinstance(v, bool)}
        return {str(i["discriminator"]): i["value"] for i in items_of(payload)
                if i.get("discriminator") and isinstance(i.get("value"), bool)}
