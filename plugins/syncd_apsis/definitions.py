"""APSIS One's definitions checked against the config (the connector's ``check_schema``).

Read per ``apis.md`` 3.2: keyspaces, sections, the section's attributes, its topics (consent
2.0, ``/v2/.../topics``; an account that answers 404 there is read through its consent 1.0
lists, and reported: syncd writes consent 2.0) and its tags. Checked, each problem with its
config key and a "did you mean":

- ``keyspace`` (and, when consents are mapped, that it may manage subscriptions);
- ``section``; without it nothing else of the section can be checked;
- every mapped attribute, and the e-mail and CRM id attributes syncd writes itself;
- every consent topic, and each consent's channel (``email_channel`` / ``sms_channel``)
  among the channels its topic offers, where the topics say;
- every tag; a tag the section lacks is a warning only (how tags come to exist is a GAP:
  APSIS may define them on first use).

Names under ``com.apsis1.attributes.`` are shown and suggested short (``firstname``), as the
config may write them.

The requests (all GETs, ``shared/apis.md`` 3.2 unless said): ``/audience/keyspaces``,
``/audience/sections``, ``/audience/sections/{section}/attributes``,
``/v2/audience/sections/{section}/topics``, on its 404 ``.../consent-lists`` and
``.../consent-lists/{list}/topics``; ``/audience/sections/{section}/tags`` (3.5: "Get all
tags" exists, its path is inferred in :mod:`syncd_apsis.client`). Answer shapes are GAPs:
``{"items": [...]}`` or a bare list is read (:func:`~syncd_apsis.client.items_of`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd.plugin import NeedKind, RemoteError, SchemaNeeds, SchemaProblem, connection_key, missing
from syncd_apsis.client import items_of, segment

if TYPE_CHECKING:
    from syncd_apsis.connector import ApsisConnector

ATTRIBUTE_PREFIX = "com.apsis1.attributes."


def short(name: str) -> str:
    return name[len(ATTRIBUTE_PREFIX):] if name.startswith(ATTRIBUTE_PREFIX) else name


def _discriminators(items: list[dict]) -> list[str]:
    return [str(i["discriminator"]) for i in items if i.get("discriminator")]


def topics(connector: ApsisConnector, section: str) -> tuple[list[dict], bool]:
    """The section's topics and whether they came from consent 2.0."""
    client = connector.client
    try:
        return client.topics(section), True
    except RemoteError as exc:
        if exc.status != 404:
            raise
    base = f"/audience/sections/{segment(section)}/consent-lists"
    found: list[dict] = []
    for item in items_of(client.request("GET", base).json()):
        name = item.get("discriminator")
        if name:
            path = f"{base}/{segment(str(name))}/topics"
            found.extend(items_of(client.request("GET", path).json()))
    return found, False


def check(connector: ApsisConnector, needs: SchemaNeeds) -> list[SchemaProblem]:
    """See the module's docstring."""
    client = connector.client
    problems: list[SchemaProblem] = []

    def key(*parts: str) -> str:
        return connection_key(connector.name, *parts)

    consents = needs.of(NeedKind.TOPIC)
    keyspaces = {str(k.get("discriminator")): k for k in client.keyspaces()}
    ks = keyspaces.get(connector.keyspace)
    if ks is None:
        problems.append(missing(key("keyspace"), f"APSIS One has no keyspace "
                                f"{connector.keyspace!r}", connector.keyspace, keyspaces))
    elif consents and ks.get("manage_subscriptions") is False:
        problems.append(SchemaProblem(
            key("keyspace"), f"keyspace {connector.keyspace!r} may not manage subscriptions, "
            f"but consents are mapped ({consents[0].key})",
            have=tuple(k for k, v in keyspaces.items() if v.get("manage_subscriptions")),
            fix="use a keyspace with manage_subscriptions"))
    sections = _discriminators(client.sections())
    section = connector.section
    if section not in sections:
        problems.append(missing(key("section"), f"APSIS One has no section {section!r}",
                                section, sections))
        return problems  # its attributes, topics and tags cannot be read
    problems += _attributes(connector, needs, key)
    if consents or needs.of(NeedKind.CHANNEL):
        problems += _consents(connector, needs, key)
    tags = _discriminators(client.tags(section))
    for need in needs.of(NeedKind.TAG):
        if need.name not in tags:
            problems.append(missing(need.key, f"section {section!r} has no tag {need.name!r} "
                                    "(yet)", need.name, tags, severity="warning",
                                    fix="create it in APSIS One if the first write does not"))
    return problems


def _attributes(connector: ApsisConnector, needs: SchemaNeeds, key) -> list[SchemaProblem]:
    section = connector.section
    defined = set(_discriminators(connector.client.attributes(section)))
    names = sorted(short(d) for d in defined)
    wanted = [(n.name, n.key, "") for n in needs.of(NeedKind.ATTRIBUTE)]
    if needs.as_destination:
        for attr, why in ((connector.email_attribute, "the e-mail address"),
                          (connector.id_attribute, "the CRM record id")):
            if attr:
                wanted.append((attr, key("section"), f", which syncd writes {why} to"))
    problems = []
    for name, where, why in wanted:
        if name not in defined:
            problems.append(missing(where, f"section {section!r} has no attribute "
                                    f"{short(name)!r}{why}", short(name), names,
                                    fix="create the attribute in APSIS One"))
    return problems


def _consents(connector: ApsisConnector, needs: SchemaNeeds, key) -> list[SchemaProblem]:
    section = connector.section
    found, v2 = topics(connector, section)
    by_name = {str(t["discriminator"]): t for t in found if t.get("discriminator")}
    problems = []
    topic_needs = needs.of(NeedKind.TOPIC)
    if not v2 and topic_needs:
        problems.append(SchemaProblem(
            topic_needs[0].key, "the account does not answer consent 2.0 (GET /v2/audience/"
            f"sections/{section}/topics: 404); syncd writes consents with consent 2.0",
            fix="have the account migrated to consent 2.0"))
    for need in topic_needs:
        if need.name not in by_name:
            problems.append(missing(need.key, f"section {section!r} has no topic "
                                    f"{need.name!r}", need.name, by_name,
                                    fix="create the topic in APSIS One"))
    topic_of = {n.key.rsplit(".", 1)[0]: n.name for n in topic_needs}
    offered = {d for t in found for d in t.get("channel_discriminators") or ()}
    for need in needs.of(NeedKind.CHANNEL):
        channel = connector.channels.get(need.name, need.name)
        option = key(f"{need.name}_channel")
        if offered and channel not in offered:
            problems.append(missing(option, f"no topic of section {section!r} offers the "
                                    f"channel {channel!r}", channel, offered))
            continue
        topic = by_name.get(topic_of.get(need.key.rsplit(".", 1)[0], ""))
        channels = (topic or {}).get("channel_discriminators")
        if topic is not None and channels and channel not in channels:
            problems.append(SchemaProblem(
                need.key, f"topic {topic['discriminator']!r} does not offer the channel "
                f"{channel!r} ({option})", have=tuple(channels),
                fix="map this topic on a channel it offers, or another topic"))
    return problems
