"""What the CLI's commands share: the config path, the admin client built from the config,
JSON and time output."""

from __future__ import annotations

import json
import os
import time
import tomllib
from typing import Any

DEFAULT_CONFIG = "/etc/syncd/syncd.toml"


def _config_path(args) -> str:
    return args.config or os.environ.get("SYNCD_CONFIG") or DEFAULT_CONFIG


# -- talking to the daemon ----------------------------------------------------------------------


def admin_client(args):
    """An AdminClient from the config's [daemon] and [admin] sections. Read leniently: a
    daemon may be running on an older, valid config while the file has errors."""
    from syncd.app.admin import AdminClient
    from syncd.config.sections import is_loopback_host
    from syncd.exceptions import AdminError

    path = _config_path(args)
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except OSError as exc:
        raise AdminError(f"cannot read {path}: {exc.strerror} (fix: pass -c FILE or set "
                         f"SYNCD_CONFIG)") from None
    except tomllib.TOMLDecodeError as exc:
        raise AdminError(f"{path}: {exc}") from None
    base = os.path.dirname(os.path.abspath(path))
    daemon = raw.get("daemon", {}) if isinstance(raw.get("daemon"), dict) else {}
    admin = raw.get("admin", {}) if isinstance(raw.get("admin"), dict) else {}
    host = str(admin.get("host", "127.0.0.1"))
    if not is_loopback_host(host):  # the same check as the daemon's, before the token is read
        raise AdminError(f"{path}: [admin] host = {json.dumps(host)} is not a loopback address; "
                         f"the admin token is sent only to this machine (fix: write "
                         f'`host = "127.0.0.1"` in [admin]; reach a remote syncd through ssh)')
    state_dir = os.path.join(base, str(daemon.get("state_dir", "/var/lib/syncd")))
    token_file = admin.get("token_file") or os.path.join(state_dir, "admin.token")
    token_file = os.path.join(base, str(token_file))
    try:
        with open(token_file) as fh:
            token = fh.read().strip()
    except OSError as exc:
        raise AdminError(f"cannot read the admin token {token_file}: {exc.strerror} (is syncd "
                         f"running with this config, and are you its user or root?)") from None
    return AdminClient(host, int(admin.get("port", 8471)), token,
                       token_file=token_file)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _fmt_time(ts: float | None) -> str:
    if not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
