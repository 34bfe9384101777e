"""All of syncd's own errors. User-facing ones carry the fix, so they need no traceback."""

from __future__ import annotations


class SyncdError(Exception):
    """Base class of every error syncd raises on purpose."""


class ConfigError(SyncdError):
    """One problem in a config file: where it is, what is wrong, and how to fix it."""

    def __init__(self, key: str, message: str, fix: str = "", file: str | None = None):
        self.key = key
        self.message = message
        self.fix = fix
        self.file = file
        #: Where in the file, when known (a TOML syntax error).
        self.line: int | None = None
        self.column: int | None = None
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}: " if self.file else ""
        text = f"{where}{self.key}: {self.message}"
        if self.fix:
            text += f" (fix: {self.fix})"
        return text


class ConfigErrors(SyncdError):
    """Every problem found in one config, reported together."""

    def __init__(self, errors: list[ConfigError]):
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class PluginError(SyncdError):
    """A connector plugin could not be loaded or does not honour the connector API."""


class WebhookRejected(SyncdError):
    """A webhook that must not be queued; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str):
        self.status = status
        self.reason = reason
        super().__init__(f"{status}: {reason}")


class RemoteError(SyncdError):
    """A partner's API answered with an error that retrying did not (or cannot) fix."""

    def __init__(self, message: str, status: int | None = None, retryable: bool = False, *,
                 endpoint: str | None = None, detail: str | None = None):
        self.status = status
        self.retryable = retryable
        #: The request as ``METHOD /path/{template}`` (no key, no secret), when known.
        self.endpoint = endpoint
        #: The partner's own message (e.g. problem+json title - detail), when it sent one.
        self.detail = detail
        super().__init__(message)


class AuthError(RemoteError):
    """A partner refused our credentials."""


class NeedsConfirmation(SyncdError):
    """A run would change more than the configured share of profiles; it waits for --confirm."""


class AdminError(SyncdError):
    """The CLI could not talk to the running daemon, or the daemon refused a command."""

    #: The HTTP status the daemon answered with (None: it did not answer).
    status: int | None = None


class PreflightFailed(SyncdError):
    """A full sync refused: the accounts lack names its config uses (the preflight's
    problems, each with its config key)."""

    def __init__(self, integration: str, problems: list):
        self.integration = integration
        self.problems = problems
        lines = "; ".join(str(p) for p in problems)
        super().__init__(
            f"full sync of {integration} refused: the accounts lack {len(problems)} name(s) "
            f"its config uses: {lines} (fix: correct the config or the account, check with "
            f"`syncd check-config --online`, then `syncd reload`)")
