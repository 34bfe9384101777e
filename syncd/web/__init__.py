"""The web edge: the WSGI plumbing and the webhook receiver."""
