"""The keys of a ``[connections.NAME]`` section of kind ``tribe``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncd.plugin import Option, Secret
from syncd_tribe.activities import OPTIONS as ACTIVITY_OPTIONS
from syncd_tribe.client import as_secret

OPTIONS: tuple[Option, ...] = (
    Option("base_url", str, "https://api.tribecrm.nl", "Base URL of the Tribe CRM API."),
    Option("token_url", str, "https://auth.tribecrm.nl/oauth2/token",
           "The OAuth2 token endpoint."),
    Option("auth", str, "client_credentials",
           'How syncd authenticates: "client_credentials" or "token" (a fixed bearer token).',
           choices=("client_credentials", "token")),
    Option("client_id", str, "", "OAuth2 client id of the Tribe API application."),
    Option("client_secret", Secret, None, "OAuth2 client secret (with client_credentials)."),
    Option("token", Secret, None, 'A fixed bearer token (with auth = "token").'),
    Option("scope", str, "read write", "OAuth2 scopes, space-separated."),
    Option("webhook_secret", Secret, None,
           "The secret Tribe signs webhooks with (base64 HMAC-SHA512 of the body)."),
    Option("signature_header", str, "X-Tribe-Signature",
           "The header carrying the webhook signature (Tribe's docs do not name it: "
           "configurable)."),
    Option("timeout", float, 30.0, "Seconds before an API request times out.", minimum=0.1),
    Option("max_attempts", int, 6, "Attempts of one API request (429, 5xx are retried).",
           minimum=1),
    Option("requests_per_second", float, 20.0,
           "Most API requests per second (0: no client-side limit).", minimum=0),
    Option("concurrency", int, 4, "API requests in flight at once.", minimum=1, maximum=64),
    Option("person_set", str, "Relation_Person", "The OData entity set of persons."),
    Option("contact_set", str, "Relationship_Person_Contact_Standard",
           "The OData entity set of contacts (a person at an organisation)."),
    Option("email_fields", list, ["Contact.EmailAddress", "EmailAddress"],
           "Field paths tried in order for the record's e-mail; the first non-empty wins.",
           item_type=str),
    Option("webhook_entity_types", list, ["Relation.Person", "Relationship.Person.Contact.Standard"],
           "Entity types webhooks are registered and accepted for (others are ignored).",
           item_type=str),
    Option("labels_nav", str, "LabelAssignments",
           "The navigation from a person to its (opt-in) labels: to label *links* that say "
           "when each label was set (the emulator's LabelAssignments), or straight to the "
           'labels (e.g. "Labels", with label_link_label_nav = ""; no label times then). '
           'The real name is not documented: check $metadata. "" for no labels.'),
    Option("label_link_label_nav", str, "Label",
           "The navigation from a label link to its label; \"\" when labels_nav leads "
           "straight to the labels."),
    Option("label_link_owner_nav", str, "Relation",
           "The navigation from a label link to the person it labels (set when "
           "write_consents creates a link)."),
    Option("label_link_time_field", str, "CreationDate",
           "The label link's field that says when the label was set (Record.label_times: "
           "a label set after an opt-out in the destination is a newer opt-in)."),
    Option("label_link_set", str, "LabelAssignment",
           "The entity set of label links: write_consents POSTs one to set a label and "
           "DELETEs it to remove the label."),
    Option("label_set", str, "Label",
           "The entity set of labels, where write_consents looks label names up."),
    Option("former_field", str, "IsFormer",
           "The contact field that marks a former contact (the API name is not documented)."),
    Option("groups", dict, {},
           "Overviews and selections by name, each an OData $filter on persons (Tribe "
           "publishes no API for saved overviews, so they are reproduced as filters), e.g. "
           "{ \"Jansens\" = \"LastName eq 'Jansen'\" }."),
    *ACTIVITY_OPTIONS,  # response data and tasks: syncd_tribe.activities
)


def resolve_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """The options with defaults filled and secrets wrapped (the loader does both, but the
    sandbox and tests may pass a plain dict)."""
    out = {o.name: o.default for o in OPTIONS}
    out.update({k: v for k, v in config.items() if k != "kind"})
    for option in OPTIONS:
        if option.type is Secret:
            out[option.name] = as_secret(out.get(option.name))
    return out
