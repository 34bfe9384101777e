"""The keys of a ``[connections.NAME]`` section of kind ``lime``.

Limetype and property names are the Lime application's own (apis.md 2.2: the data model
differs per customer; 2.4: the consent add-on's names are configurable in Lime Admin), so
each is an option; ``syncd check-config --online`` checks them against the limetype API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncd.plugin import Option, Secret
from syncd_lime.engagement import OPTIONS as ENGAGEMENT_OPTIONS

OPTIONS: tuple[Option, ...] = (
    Option("base_url", str, doc="The Lime application's URL, without /api/v1 (e.g. "
                                "https://instance.lime-crm.com/instance-name)."),
    Option("api_key", Secret, doc="The API key of a Lime API user (LISA > Databases > "
                                  "Security > Users; it inherits that user's policies)."),
    Option("key_prefix", str, None,
           "What a person's key in the destination (APSIS' crm-id keyspace, and the crm-id "
           "attribute) starts with, before its Lime id: Lime ids are unique only within one "
           "instance. Not set: derived from base_url (host and application path, e.g. "
           "\"acme.lime-crm.com-acme-app:\"); \"\": the plain id. A person keeps the key it "
           "was first written with (persons synced before keep their plain ids), so changing "
           "it duplicates no profile; two connections to different instances into one "
           "destination must not have prefixes that could give one key."),
    Option("webhook_secret", Secret, None,
           "The secret syncd registers its webhook subscription with; Lime signs each "
           "delivery with it (X-Lime-Signature: sha256=<hex HMAC-SHA256 of the body>)."),
    Option("subscription_name", str, "syncd",
           "The name of syncd's webhook subscription in Lime (found and updated by it)."),
    Option("timeout", float, 30.0, "Seconds before an API request times out.", minimum=0.1),
    Option("max_attempts", int, 6, "Attempts of one API request (429, 5xx are retried).",
           minimum=1),
    Option("requests_per_second", float, 9.0,
           "Most API requests per second (Lime Cloud allows 3,000 per 5 minutes per IP, "
           "i.e. 10/s, shared by everything on this host; 0: no client-side limit).",
           minimum=0),
    Option("concurrency", int, 4, "API requests in flight at once.", minimum=1, maximum=64),
    Option("person_limetype", str, "person", "The limetype of persons (the records)."),
    Option("email_property", str, "email", "The person's e-mail property."),
    Option("company_relation", str, "company",
           "The person's relation to its company: field paths \"<relation>.<property>\" "
           "(e.g. company.name) read the company's properties."),
    Option("company_limetype", str, "company", "The limetype of companies."),
    Option("company_cache_seconds", float, 60.0,
           "Seconds a company read for one page of persons is reused for the next ones (a "
           "company webhook drops it at once).", minimum=0),
    Option("changed_since_property", str, "_timestamp",
           "The person property a daily creation filters on with min- (when it last "
           "changed)."),
    Option("consent_limetype", str, "consent",
           "The consent add-on's consent limetype (one object per person and consent type)."),
    Option("consenttype_limetype", str, "consenttype",
           "The consent add-on's consent type limetype."),
    Option("consent_approved_property", str, "approved",
           "The consent's yes/no property: approved (an opt-out is approved = false; "
           "consents are never deleted)."),
    Option("consent_date_property", str, "date",
           "The consent's date: the newest consent per type wins."),
    Option("consent_time_property", str, "",
           "When an approved consent was given (Record.label_times: an opt-in given after an "
           "unsubscribe in APSIS is kept, not withdrawn). \"\": consent_date_property. "
           "Whether the consent add-on sets the date again when a consent is re-approved is "
           "not documented: \"_timestamp\" (the last change of the consent, any change) if "
           "it does not; \"none\": no time (a change of the person waiting in the inbox then "
           "holds the write-back until it is applied)."),
    Option("consent_person_relation", str, "person", "The consent's relation to its person."),
    Option("consent_type_relation", str, "consenttype",
           "The consent's relation to its consent type."),
    Option("consenttype_title_property", str, "title",
           "The consent type's title: the name consent mappings use (label = \"...\")."),
    Option("consent_source", str, "",
           "The value syncd writes into the consent's source option when it creates or "
           "changes a consent (\"\": leave it alone)."),
    Option("consent_source_property", str, "source", "The consent's source property."),
    Option("groups", dict, {},
           "Overviews by name, each a Lime filter on persons as a query string of the "
           "limeobject API (Lime's saved lists have no public API), e.g. "
           "{ \"Key customers\" = \"customertype=A&not-position=\" }."),
    *ENGAGEMENT_OPTIONS,  # response data and tasks: syncd_lime.engagement
)


def resolve_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """The options with defaults filled and secrets wrapped (the loader does both, but the
    sandbox and tests may pass a plain dict)."""
    out = {o.name: o.default for o in OPTIONS if not o.required}
    out.update({k: v for k, v in config.items() if k != "kind"})
    for option in OPTIONS:
        value = out.get(option.name)
        if option.type is Secret and value is not None and not isinstance(value, Secret):
            out[option.name] = Secret(str(value))
    return out
