"""The Microsoft 365 (Outlook contacts) connector for syncd, with emulators of Microsoft
Graph (:mod:`.emulator_graph`) and of the identity platform for MSAL
(:mod:`.emulator_identity`, served over TLS by :mod:`.tls`)."""
