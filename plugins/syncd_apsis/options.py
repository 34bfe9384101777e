"""The keys of a ``[connections.NAME]`` section of kind ``apsis``."""

from __future__ import annotations

from syncd.plugin import Option, Secret

CRM_ID_KEYSPACE = "com.apsis1.keyspaces.crm-id"
EMAIL_KEYSPACE = "com.apsis1.keyspaces.email"

OPTIONS: tuple[Option, ...] = (
    Option("base_url", str, "https://api.apsis.one",
           "Base URL of the APSIS One API (APAC: https://api-apac.apsis.one)."),
    Option("client_id", str, doc="API client id (APSIS One > Settings > API keys)."),
    Option("client_secret", Secret, doc="API client secret (a secret)."),
    Option("section", str, doc="The section discriminator the profiles' attributes, "
                               "consents and tags live in."),
    Option("keyspace", str, CRM_ID_KEYSPACE,
           "Keyspace of the profile key. With the crm-id keyspace the key is the CRM id, "
           "so a changed e-mail address updates the same profile instead of creating a "
           "second one; the e-mail keyspace keys profiles by address."),
    Option("requests_per_second", float, 100.0,
           "Account budget of API requests per second (APSIS allows 100).", minimum=0.1),
    Option("per_profile_per_second", float, 10.0,
           "Requests per second to one profile key (APSIS allows 10).", minimum=0.1),
    Option("concurrency", int, 8, "Concurrent requests while writing one batch.",
           minimum=1, maximum=64),
    Option("timeout", float, 30.0, "Seconds before an API request times out.", minimum=1),
    Option("max_attempts", int, 6,
           "Attempts of one API request (429, 5xx and timeouts are retried).", minimum=1),
    Option("email_channel", str, "com.apsis1.channels.email",
           "Channel discriminator of e-mail consents (verify in your account)."),
    Option("sms_channel", str, "com.apsis1.channels.sms",
           "Channel discriminator of SMS consents (verify in your account)."),
    Option("consent_poll_overlap", float, 120.0,
           "Seconds each read of consent changes (unsubscribes, from the e-mail event "
           "export) reaches back before its cursor, for events APSIS records late. Rows "
           "the previous read returned are not returned again.", minimum=0),
    Option("consent_export_timeout", float, 120.0,
           "Most seconds one read of consent changes waits for its export (polling, and "
           "a 429's Retry-After: APSIS allows 1 export request a minute); past it the "
           "read returns nothing and the next one resumes the same export.", minimum=1),
    Option("export_poll_interval", float, 1.0,
           "Seconds before the first status poll of an export (doubling up to 10).",
           minimum=0.01),
    Option("import_poll_interval", float, 1.0,
           "Seconds before the first status poll of a bulk import (each next poll waits "
           "half as long again, up to 10).", minimum=0.01),
    Option("import_timeout", float, 480.0,
           "Most seconds one bulk write (full syncs) waits for its imports, 429 waits "
           "(APSIS allows 10 import requests a minute and 3 pending imports) and polling "
           "included; past it its profiles fail as retryable. Keep it under the core's "
           "600 s call timeout.", minimum=1, maximum=590),
    Option("export_crm_id_column", str, "com.apsis1.attributes.crmid",
           "The attribute that decorates e-mail event export rows with the CRM id, and "
           "the column it comes back as (the column name is not documented: the "
           "attribute's discriminator and its short name are read too)."),
    Option("export_topic_column", str, "topic_discriminator",
           "The export column naming an UNSUBSCRIBED row's topic (not documented); rows "
           "without it are resolved through the profile's current opt-outs, except those "
           "syncd wrote (they stay unresolved)."),
    Option("export_header_auth", bool, False,
           "Request event exports with header_auth: the download's credential comes in the "
           "x-apsis-auth header of the status answer and is sent back on the download."),
    Option("responses_overlap", float, 300.0,
           "Seconds each response-data export reaches back before its cursor, for events "
           "APSIS records late (rows seen before are not written twice).", minimum=0),
    Option("sms_export_path", str, "/sms/reports",
           "Path of the SMS event export (not in the public docs: verify with APSIS; the "
           "emulator serves this one). Empty: no SMS response data."),
    Option("sms_columns", dict, {},
           "Column names of the SMS export file, where they differ from the e-mail "
           "export's: any of type, correlation_id, address, event_time, server_time, "
           "campaign (default: the same names, campaign = activity_name)."),
    Option("profile_attributes_path", str,
           "/v2/audience/keyspaces/{keyspace}/profiles/{key}/sections/{section}/attributes",
           "Path of the read of one profile's attributes (dry runs; not in the public docs: "
           "verify with APSIS). {keyspace}, {key} and {section} are filled in, URL-encoded. "
           "The answer may be a map by attribute discriminator, or {\"items\": [...]} of "
           "discriminator or version_id with value; an attribute it does not name is "
           "unknown."),
    Option("profile_tags_path", str,
           "/audience/keyspaces/{keyspace}/profiles/{key}/sections/{section}/tags",
           "Path of the read of one profile's tags (dry runs; not in the public docs: "
           "verify with APSIS). Empty: tags are not read (unknown)."),
    Option("sms_type_names", dict, {},
           "The SMS export's type values, as { VALUE = \"delivered\" | \"undelivered\" | "
           "\"opened\" | \"clicked\" } (default: DELIVERED, UNDELIVERED, OPENED, CLICKED)."),
)
