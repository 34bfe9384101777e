"""Secrets in the config: inline, ``{ env = "NAME" }``, ``{ file = "/path" }`` or
``{ credential = "NAME" }``.

A credential is systemd's way (``LoadCredential=NAME:/path`` in the unit): the file
``$CREDENTIALS_DIRECTORY/NAME``, readable by the service only, never in its environment.

A secret goes into HTTP headers, so one holding a line break or white space at either end is
rejected when the config is loaded (naming the key, never the value): sent, it would make the
HTTP library raise with the header's value in its message, which reaches logs and status.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from syncd.config.schema import Secret

if TYPE_CHECKING:
    from syncd.config.problems import Problems

ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CREDENTIAL_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$")


def resolve_secret(value: Any, key: str, problems: Problems, *, base_dir: str,
                   environ: Mapping[str, str], env_hint: str = "SYNCD_SECRET") -> Secret | None:
    """A :class:`Secret` from an inline string, ``{ env = "NAME" }`` or ``{ file = "PATH" }``.

    No message ever shows the value given, since it may be the secret itself.
    """
    from syncd.config.sections import kind_of, resolve_path  # sections imports this module

    forms = (f'write `{key.rsplit(".", 1)[-1]} = {{ env = "{env_hint}" }}` '
             '(or { file = "/path" } or { credential = "NAME" })')
    if isinstance(value, str):
        problems.secrets.append(value)
        return _clean(value, "inline", key, problems)
    if not isinstance(value, dict):
        problems.add(key, f'must be a secret: a string, {{ env = "NAME" }} or '
                          f'{{ file = "/path" }}, got {kind_of(value)}', forms)
        return None
    if set(value) not in ({"env"}, {"file"}, {"credential"}):  # it may hold the secret
        problems.secrets.extend(v for v in value.values() if isinstance(v, str))
    if set(value) == {"env"}:
        name = value["env"]
        if not isinstance(name, str) or not ENV_RE.match(name):
            if isinstance(name, str):  # perhaps the secret itself, pasted in the wrong place
                problems.secrets.append(name)
            problems.add(key, "`env` must be the name of an environment variable "
                              "(letters, digits and _, not starting with a digit)", forms)
            return None
        if name not in environ:
            problems.add(key, f"environment variable {name} is not set",
                         f"set {name} in the service's environment (e.g. an EnvironmentFile= "
                         "of the systemd unit), or give the secret another way")
            return None
        secret = environ[name]
        if not secret:
            problems.add(key, f"environment variable {name} is empty", f"give {name} a value")
            return None
        problems.secrets.append(secret)
        return _clean(secret, f"env:{name}", key, problems)
    if set(value) == {"credential"}:
        return _credential(value["credential"], key, problems, environ, forms)
    if set(value) == {"file"}:
        path = value["file"]
        if not isinstance(path, str) or not path:
            problems.add(key, "`file` must be a path", forms)
            return None
        try:
            path = resolve_path(path, base_dir)
        except ValueError:
            problems.add(key, "`file` must be a path", forms)
            return None
        return _read_file(path, f"file:{path}", key, problems)
    given = ", ".join(f"`{k}`" for k in sorted(value)) or "nothing"
    problems.add(key, "a secret table takes exactly one of `env`, `file` or `credential`, "
                      f"got {given}", forms)
    return None


def _credential(name: Any, key: str, problems: Problems, environ: Mapping[str, str],
                forms: str) -> Secret | None:
    """``$CREDENTIALS_DIRECTORY/NAME``: what ``LoadCredential=NAME:...`` gives the service."""
    if not isinstance(name, str) or not CREDENTIAL_RE.match(name):
        if isinstance(name, str):
            problems.secrets.append(name)
        problems.add(key, "`credential` must be the name of a systemd credential "
                          "(letters, digits, _ - . and :, as in LoadCredential=NAME:/path)", forms)
        return None
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        problems.add(key, f"credential {name} is asked for, but $CREDENTIALS_DIRECTORY is not "
                          "set (syncd is not running under systemd with LoadCredential=)",
                     f"add `LoadCredential={name}:/etc/syncd/{name}` to the unit, or give the "
                     "secret another way outside systemd")
        return None
    return _read_file(os.path.join(directory, name), f"credential:{name}", key, problems)


def _read_file(path: str, source: str, key: str, problems: Problems) -> Secret | None:
    """The secret in the file at ``path`` (a secret file or a credential)."""
    what = "credential" if source.startswith("credential:") else "secret file"
    try:
        with open(path, encoding="utf-8", newline="") as f:  # CRs as they are
            secret = f.read()
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        problems.add(key, f"cannot read {what} {path}: {reason}",
                     "check the path and that the syncd user may read the file")
        return None
    # a file ends in one newline (editors add it): strip exactly one, reject what remains
    secret = secret[:-2] if secret.endswith("\r\n") else secret.removesuffix("\n")
    if not secret:
        problems.add(key, f"{what} {path} is empty", "write the secret into the file")
        return None
    problems.secrets.append(secret)
    return _clean(secret, source, key, problems)


def _clean(secret: str, source: str, key: str, problems: Problems) -> Secret | None:
    """``secret`` as a :class:`Secret`, or ``None`` with a problem when it holds a line break
    or starts or ends with white space: sent in a header it would make the HTTP library raise
    with the header's value in its message. The message names the key and where the secret
    came from, never the value."""
    kind, _, name = source.partition(":")
    where = {"inline": "the value", "env": f"environment variable {name}",
             "file": f"secret file {name}", "credential": f"credential {name}"}[kind]
    if "\r" in secret or "\n" in secret:
        problems.add(key, f"{where} holds a line break (CR or LF), which no token contains",
                     "remove the line breaks; a secret file may end in one newline, not more")
        return None
    if secret != secret.strip():
        problems.add(key, f"{where} starts or ends with white space, which no token contains",
                     "remove the spaces, tabs or blank lines around the secret")
        return None
    return Secret(secret, source)
