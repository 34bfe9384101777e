"""Secrets: inline, { env }, { file }; their values never reach an error, a repr or describe()."""

from __future__ import annotations

import json

import pytest
from config_support import INLINE, SECRET, VALID

from syncd.config import Secret, check, describe, load

LEAK = "s3cr3t-L3AK-value"


def edit(old: str, new: str, text: str = VALID) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def test_env_inline_and_file_secrets(files, tmp_path):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "token").write_text("file-token-value\n")
    text = edit('kind = "crm"', 'kind = "crm"\ntoken = { file = "secrets/token" }')
    config = files.load(text)
    options = config.connections["crm"].options
    assert options["client_secret"] == Secret(SECRET)
    assert options["client_secret"].reveal() == SECRET
    assert options["client_secret"].source == "env:CRM_SECRET"
    # the file's one trailing newline is stripped; the relative path is resolved
    assert options["token"].reveal() == "file-token-value"
    assert options["token"].source == f"file:{tmp_path / 'secrets' / 'token'}"
    inline = config.connections["mkt"].options["client_secret"]
    assert inline.reveal() == INLINE and inline.source == "inline"


def test_secret_file_with_crlf(files, tmp_path):
    (tmp_path / "tok").write_text("abc-token\r\n", newline="")
    config = files.load(edit('kind = "crm"', 'kind = "crm"\ntoken = { file = "tok" }'))
    assert config.connections["crm"].options["token"].reveal() == "abc-token"


def test_missing_env_variable_is_named(files):
    files.environ.clear()
    error = files.error(VALID, "connections.crm.client_secret")
    assert "CRM_SECRET" in error.message and "not set" in error.message
    assert "CRM_SECRET" in error.fix


def test_empty_env_variable(files):
    files.environ["CRM_SECRET"] = ""
    error = files.error(VALID, "connections.crm.client_secret")
    assert "empty" in error.message


def test_unreadable_or_empty_secret_file(files, tmp_path):
    error = files.error(edit('kind = "crm"', 'kind = "crm"\ntoken = { file = "missing" }'),
                        "connections.crm.token")
    assert str(tmp_path / "missing") in error.message and "cannot read" in error.message
    (tmp_path / "empty").write_text("\n")
    error = files.error(edit('kind = "crm"', 'kind = "crm"\ntoken = { file = "empty" }'),
                        "connections.crm.token")
    assert "empty" in error.message


@pytest.mark.parametrize("value", [
    f'{{ env = "{LEAK}" }}',                       # a secret pasted where a variable name goes
    f'{{ value = "{LEAK}" }}',                     # a table of the wrong shape
    f'{{ env = "CRM_SECRET", file = "{LEAK}" }}',  # both forms
    "12345",                                      # wrong type
    f'["{LEAK}"]',                                # wrong type holding the secret
])
def test_secret_never_in_error_text(files, value):
    text = edit('client_secret = { env = "CRM_SECRET" }', f"client_secret = {value}")
    errors = files.errors(text)
    assert any(e.key == "connections.crm.client_secret" for e in errors)
    assert all(LEAK not in str(e) and LEAK not in repr(e) for e in errors)
    fixes = " ".join(e.fix for e in errors)
    assert 'env = "SYNCD_CRM_CLIENT_SECRET"' in fixes
    assert all(LEAK not in line for line in check(files.write(text), files.registry,
                                                   environ=files.environ))


def test_misspelt_secret_key_does_not_show_its_value(files):
    text = edit('client_secret = { env = "CRM_SECRET" }',
                f'client_secret = {{ env = "CRM_SECRET" }}\nclient_secert = "{LEAK}"')
    error = files.error(text, "connections.crm.client_secert")
    assert "did you mean `client_secret`?" in error.fix
    assert LEAK not in str(error)


def test_wrong_type_of_a_table_holding_a_secret_does_not_show_it(files):
    # base_url is a string option; a table given instead may hold anything
    text = edit('kind = "crm"', f'kind = "crm"\nbase_url = {{ token = "{LEAK}" }}')
    error = files.error(text, "connections.crm.base_url")
    assert "a table" in error.message and LEAK not in str(error)
    error = files.error(f'[connections]\ncrm = "{LEAK}"\n', "connections.crm")
    assert LEAK not in str(error)


def test_secret_quoted_by_a_connector_is_scrubbed(files):
    text = edit('kind = "crm"', 'kind = "crm"\nbase_url = "https://leak.example"')
    error = files.error(text, "connections.crm.client_secret")
    assert SECRET not in str(error) and "***" in error.message


def test_secret_not_in_repr_or_describe(files):
    config = files.load(VALID)
    assert SECRET not in repr(config) and INLINE not in repr(config)
    assert SECRET not in str(config.connections["crm"])
    data = describe(config)
    text = json.dumps(data)  # plain data: serialisable
    assert SECRET not in text and INLINE not in text
    assert data["connections"]["crm"]["client_secret"] == "***"
    assert data["connections"]["mkt"]["client_secret"] == "***"
    assert data["connections"]["crm"]["token"] is None
    assert data["connections"]["crm"]["kind"] == "crm"
    assert data["integrations"]["crm-mkt"]["conditions"] == {"Contact.Type": "A"}
    assert data["integrations"]["crm-mkt"]["consents"] == [
        {"label": "News", "topic": "news", "channel": "email"}]
    assert data["daemon"]["state_dir"].endswith("state")


def test_load_error_text_never_holds_env_secret(files):
    # an env secret is fine, another key fails: the whole ConfigErrors text is clean
    text = edit('kind = "crm"', 'kind = "crm"\nmode = "x"')
    with pytest.raises(Exception) as info:
        load(files.write(text), files.registry, environ=files.environ)
    assert SECRET not in str(info.value)


def _all_output(files, text: str) -> str:
    """Everything a bad config makes syncd say: the errors' str and repr, check()'s lines."""
    errors = files.errors(text)
    lines = check(files.write(text), files.registry, environ=files.environ)
    return "\n".join([*map(str, errors), *map(repr, errors), *lines])


@pytest.mark.parametrize("content", [
    f"{LEAK}\n\n",        # a secret file ending in two newlines
    f"{LEAK}\r\n\r\n",
    f"{LEAK} \n",          # a trailing space before the newline
    f" {LEAK}\n",          # a leading space
    f"{LEAK}\nsecond-line\n",
    f"{LEAK}\r",
])
def test_secret_file_with_stray_white_space_is_rejected(files, tmp_path, content):
    (tmp_path / "tok").write_text(content, newline="")
    text = edit('kind = "crm"', 'kind = "crm"\ntoken = { file = "tok" }')
    error = files.error(text, "connections.crm.token")
    assert str(tmp_path / "tok") in error.message
    assert "line break" in error.message or "white space" in error.message
    out = _all_output(files, text)
    assert LEAK not in out and "second-line" not in out
    assert "connections.crm.token" in out


@pytest.mark.parametrize("value", [f"{LEAK}\n", f" {LEAK}", f"{LEAK}\t", f"{LEAK}\r\nx"])
def test_env_and_inline_secrets_with_stray_white_space_are_rejected(files, value):
    files.environ["CRM_SECRET"] = value
    error = files.error(VALID, "connections.crm.client_secret")
    assert "CRM_SECRET" in error.message
    assert LEAK not in _all_output(files, VALID)
    files.environ["CRM_SECRET"] = SECRET
    inline = edit(f'client_secret = "{INLINE}"', f"client_secret = {json.dumps(value)}")
    error = files.error(inline, "connections.mkt.client_secret")
    assert "the value" in error.message
    assert LEAK not in _all_output(files, inline)


def test_secret_inner_space_is_kept(files):
    files.environ["CRM_SECRET"] = "two words"
    config = files.load(VALID)
    assert config.connections["crm"].options["client_secret"].reveal() == "two words"


def test_credential_is_read_from_the_credentials_directory(files, tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "crm-token").write_text(LEAK + "\n")
    files.environ["CREDENTIALS_DIRECTORY"] = str(creds)
    config = files.load(edit('kind = "crm"', 'kind = "crm"\ntoken = { credential = "crm-token" }'))
    token = config.connections["crm"].options["token"]
    assert token.reveal() == LEAK and token.source == "credential:crm-token"
    assert LEAK not in json.dumps(describe(config)) and LEAK not in repr(token)


def test_credential_without_systemd_names_load_credential(files):
    files.environ.pop("CREDENTIALS_DIRECTORY", None)
    error = files.error(edit('kind = "crm"', 'kind = "crm"\ntoken = { credential = "tok" }'),
                        "connections.crm.token")
    assert "CREDENTIALS_DIRECTORY" in error.message and "LoadCredential=tok:" in error.fix


def test_missing_or_malformed_credential(files, tmp_path):
    files.environ["CREDENTIALS_DIRECTORY"] = str(tmp_path)
    error = files.error(edit('kind = "crm"', 'kind = "crm"\ntoken = { credential = "absent" }'),
                        "connections.crm.token")
    assert "cannot read credential" in error.message and "absent" in error.message
    # a path is not a credential name (no escaping the credentials directory); the value,
    # perhaps a pasted secret, is never echoed
    error = files.error(edit('kind = "crm"',
                             f'kind = "crm"\ntoken = {{ credential = "../{LEAK}" }}'),
                        "connections.crm.token")
    assert "credential" in error.message and LEAK not in error.message + error.fix
