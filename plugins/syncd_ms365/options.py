"""The keys of a ``[connections.NAME]`` section of kind ``ms365``."""

from __future__ import annotations

from syncd.plugin import Option, Secret

#: apis.md 4.3: a single-value extended property, ``String {<propset GUID>} Name <name>``.
DEFAULT_PROPERTY = "String {0b1e2c8e-6f1d-4d5a-9a63-7f3c1a2b9d41} Name TribeRelationId"
FLOWS = ("device_code", "auth_code", "application")

OPTIONS: tuple[Option, ...] = (
    Option("authority", str, "https://login.microsoftonline.com/organizations",
           "The Microsoft identity authority, https://login.microsoftonline.com/<tenant id> "
           "(the application flow needs the tenant id)."),
    Option("client_id", str, doc="Application (client) id of the app registered in Entra ID."),
    Option("client_secret", Secret, None,
           "Client secret of the app (a secret): needed for flow = \"application\" and for a "
           "web app's auth-code flow; none for a public client."),
    Option("flow", str, "device_code",
           "How a user links a mailbox: \"device_code\" (headless: the user enters a code at "
           "microsoft.com/devicelogin), \"auth_code\" (a browser redirect to redirect_uri), or "
           "\"application\" (application permissions granted by an admin; only the users "
           "in allowed_users are synced).", choices=FLOWS),
    Option("redirect_uri", str, "",
           "The redirect URL registered for the app (flow = \"auth_code\")."),
    Option("allowed_users", list, [],
           "flow = \"application\": the users (e-mail) whose mailboxes syncd may write; no "
           "other mailbox is touched.", item_type=str),
    Option("scopes", list, ["Contacts.ReadWrite"],
           "Delegated permissions asked for (flows device_code and auth_code).",
           item_type=str),
    Option("ca_bundle", str, "",
           "A PEM file of the certificate authorities trusted for the authority and Graph "
           "(\"\": the system's)."),
    Option("graph_url", str, "https://graph.microsoft.com/v1.0",
           "Base URL of Microsoft Graph."),
    Option("timeout", float, 30.0, "Seconds before a request times out.", minimum=1),
    Option("max_attempts", int, 6, "Attempts of one request (429, 5xx and timeouts are "
           "retried, 429 after its Retry-After).", minimum=1),
    Option("concurrency", int, 4, "Requests in flight at once per mailbox (Outlook allows "
           "4).", minimum=1, maximum=4),
    Option("request_budget", int, 10000, "Requests per mailbox per budget_window (Outlook "
           "allows 10000 per 10 minutes).", minimum=1),
    Option("budget_window", float, 600.0, "Seconds of the request budget's window.",
           minimum=1),
    Option("extended_property", str, DEFAULT_PROPERTY,
           "The single-value extended property that holds the Tribe relationship id on an "
           "Outlook contact (\"String {<guid>} Name <name>\")."),
    Option("subscription_minutes", int, 4200, "Lifetime asked for a change-notification "
           "subscription (Graph allows at most 4230 for contacts).", minimum=5,
           maximum=4230),
    Option("renew_before", int, 60, "Minutes before a subscription expires when it is "
           "renewed.", minimum=1),
    Option("tribe_connection", str, "",
           "The Tribe connection whose relationships each linked user's Outlook follows "
           "(seed 002); \"\": no link runs."),
    Option("poll_interval", float, 60.0,
           "Seconds between two rounds of the link: new users' initial sync, Tribe changes, "
           "and a delta round per mailbox (a change notification starts one at once, and a "
           "Tribe webhook, routed to the link too, sends what it names at once: the poll is "
           "the fallback).",
           minimum=1),
    Option("confirm_share", float, 0.1,
           "The guard of each user's link: a round that would update more than this share "
           "of the user's linked Outlook contacts or Tribe relationships at once (at least "
           "10) writes nothing and waits for `syncd confirm CONNECTION:USER`. 1: off.",
           minimum=0),
    Option("fail_fast", int, 20,
           "When the first this many writes of a user's round all fail with the same "
           "non-retryable status (e.g. 403), that user's link stops with one error (the "
           "others go on) until `syncd sync start CONNECTION:USER` or a restart. 0: off.",
           minimum=0),
    Option("manager_nav", str, "AccountManager",
           "Tribe's navigation from a relationship to its relationship manager (an "
           "employee; apis.md 1.4 [INFER])."),
    Option("owners_nav", str, "Owners",
           "Tribe's navigation from a relationship to its owners (employees; not documented "
           "[GAP]: check $metadata)."),
    Option("former_field", str, "IsFormer",
           "Tribe's field that marks a relationship former (not documented [GAP])."),
    Option("function_field", str, "Role",
           "Tribe's contact field with the function on the business card (apis.md 1.4: "
           "Role is the documented candidate)."),
    Option("employee_email_field", str, "EmailAddress",
           "The employee field matched with a linked user's e-mail address."),
    Option("client_state", Secret, None,
           "The clientState sent with subscriptions and checked (in constant time) on every "
           "change notification (a secret); without it no subscription is made and changes "
           "are read by delta rounds only."),
)
