"""load(): a valid file becomes the frozen Config; every problem names its key and its fix."""

from __future__ import annotations

import os

import pytest
from config_support import SECRET, VALID

from syncd.config import Condition, ConsentMapping, Secret, check, load


def edit(old: str, new: str, text: str = VALID) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def test_valid_config_loads_with_defaults_filled(files, tmp_path):
    config = files.load(VALID)
    assert config.path == str(tmp_path / "syncd.toml")
    assert config.daemon.log_level == "info" and config.receiver.port == 8470
    crm = config.connections["crm"]
    assert crm.kind == "crm"
    assert crm.options["timeout"] == 30.0 and crm.options["email_fields"] == ["Email"]
    assert crm.options["token"] is None
    assert isinstance(crm.options["client_secret"], Secret)
    integration = config.integrations["crm-mkt"]
    assert (integration.source, integration.destination) == ("crm", "mkt")
    assert integration.conditions == (Condition("Contact.Type", "A"),)
    assert integration.fields == {"Contact.Organization.Name": "company"}
    assert integration.consents == (ConsentMapping("News", "news", "email"),)
    assert integration.selections == {"Readers": "reader"}
    assert integration.page_size == 200 and integration.enabled is True
    assert config.integrations_from("crm") == [integration]
    assert check(config.path, files.registry, environ=files.environ) == []


def test_int_given_for_float_becomes_float(files):
    config = files.load(edit('kind = "crm"', 'kind = "crm"\ntimeout = 5'))
    assert config.connections["crm"].options["timeout"] == 5.0
    assert isinstance(config.connections["crm"].options["timeout"], float)


def test_relative_paths_resolve_against_the_config_directory(files, tmp_path):
    text = edit('state_dir = "state"',
                'state_dir = "state"\n[admin]\ntoken_file = "../t/admin.token"')
    sub = tmp_path / "etc"
    sub.mkdir()
    config = load(files.write(text, "etc/syncd.toml"), files.registry, environ=files.environ)
    assert config.daemon.state_dir == str(sub / "state")
    assert config.admin.token_file == str(tmp_path / "t" / "admin.token")
    absolute = load(files.write(edit('"state"', '"/srv/syncd"', text), "etc/b.toml"),
                    files.registry, environ=files.environ)
    assert absolute.daemon.state_dir == "/srv/syncd"
    assert absolute.admin.token_file == str(tmp_path / "t" / "admin.token")


@pytest.mark.parametrize("old,new,key,guess", [
    ('state_dir = "state"', 'state_dir = "state"\nlog_levl = "info"', "daemon.log_levl", "log_level"),
    ('kind = "crm"', 'kind = "crm"\ntimeuot = 3.0', "connections.crm.timeuot", "timeout"),
    ('destination = "mkt"', 'destination = "mkt"\npage_sise = 10', "integrations.crm-mkt.page_sise",
     "page_size"),
    ('channel = "email"', 'channel = "email"\ntopics = "x"', "integrations.crm-mkt.consents[0].topics",
     "topic"),
    ("[daemon]", "[deamon]\n[daemon]", "deamon", "daemon"),
])
def test_unknown_key_says_did_you_mean(files, old, new, key, guess):
    error = files.error(edit(old, new), key)
    assert "unknown" in error.message
    assert f"did you mean `{guess}`?" in error.fix


def test_unknown_key_without_a_close_match_lists_the_known_keys(files):
    error = files.error(edit('state_dir = "state"', 'state_dir = "state"\nzzz = 1'), "daemon.zzz")
    assert "log_format" in error.fix and "state_dir" in error.fix


def test_every_problem_is_reported_at_once(files):
    text = edit('state_dir = "state"', 'state_dir = "state"\nlog_level = "loud"\nbogus = 1')
    text = edit('section = "main"', "", text)
    text = edit('destination = "mkt"', 'destination = "mkt"\nbatch_size = 0', text)
    keys = {e.key for e in files.errors(text)}
    assert {"daemon.log_level", "daemon.bogus", "connections.mkt.section",
            "integrations.crm-mkt.batch_size"} <= keys
    assert all(e.file.endswith("syncd.toml") for e in files.errors(text))


def test_missing_required_key_shows_an_example(files):
    error = files.error(edit('section = "main"', ""), "connections.mkt.section")
    assert "required" in error.message and "a string" in error.message
    assert 'section = "..."' in error.fix and "[connections.mkt]" in error.fix
    error = files.error(edit('source = "crm"', ""), "integrations.crm-mkt.source")
    assert "required" in error.message and "source = " in error.fix


def test_missing_required_secret_suggests_an_env_table(files):
    error = files.error(edit('client_secret = "inline-mkt-secret-456"', ""),
                        "connections.mkt.client_secret")
    assert 'client_secret = { env = "SYNCD_MKT_CLIENT_SECRET" }' in error.fix


@pytest.mark.parametrize("old,new,key,expected,fix", [
    ("[daemon]", '[receiver]\nport = "80"\n[daemon]', "receiver.port", "an integer",
     "port = 8470"),
    ("[daemon]", "[receiver]\nthreads = 2.5\n[daemon]", "receiver.threads", "an integer",
     "threads = 8"),
    ("[daemon]", '[integrations.x]\nsource = "crm"\ndestination = "mkt"\nenabled = "yes"\n[daemon]',
     "integrations.x.enabled", "true or false", "enabled = true"),
    ('kind = "crm"', 'kind = "crm"\nemail_fields = "Email"', "connections.crm.email_fields",
     "an array of strings", 'email_fields = ["Email"]'),
    ('kind = "crm"', 'kind = "crm"\nemail_fields = ["Email", 3]',
     "connections.crm.email_fields[1]", "a string", 'email_fields = ["Email"]'),
    ('destination = "mkt"', 'destination = "mkt"\nfields = "company"',
     "integrations.crm-mkt.fields", "a table", "fields = "),
])
def test_wrong_type_says_what_is_expected(files, old, new, key, expected, fix):
    text = edit(old, new)
    if "[integrations.crm-mkt.fields]" in text and "fields = " in new:
        text = text.replace('[integrations.crm-mkt.fields]\n"Contact.Organization.Name" = "company"',
                            "")
    error = files.error(text, key)
    assert expected in error.message
    assert fix in error.fix


@pytest.mark.parametrize("value,fix", [('"verbose"', 'log_level = "debug"'),
                                       ('"warn"', 'did you mean "warning"?'),
                                       ('"INFO"', 'did you mean "info"?')])
def test_bad_choice_lists_the_choices(files, value, fix):
    error = files.error(edit('state_dir = "state"', f'state_dir = "state"\nlog_level = {value}'),
                        "daemon.log_level")
    assert '"debug", "info", "warning", "error"' in error.message
    assert fix in error.fix


@pytest.mark.parametrize("key,value,message,fix", [
    ("page_size", "10000", "between 1 and 5000", "page_size = 5000"),
    ("batch_size", "0", "between 1 and 1000", "batch_size = 1"),
    ("confirm_share", "1.5", "between 0 and 1", "confirm_share = 1.0"),
    ("max_attempts", "0", "at least 1", "max_attempts = 1"),
])
def test_out_of_bounds(files, key, value, message, fix):
    error = files.error(edit('destination = "mkt"', f'destination = "mkt"\n{key} = {value}'),
                        f"integrations.crm-mkt.{key}")
    assert message in error.message and fix in error.fix


def test_unknown_kind_lists_available_kinds(files):
    error = files.error(edit('kind = "crm"', 'kind = "crn"'), "connections.crm.kind")
    assert "available kinds: crm, mkt" in error.message
    assert 'did you mean `kind = "crm"`?' in error.fix
    error = files.error(edit('kind = "crm"', 'kind = "hubspot"'), "connections.crm.kind")
    assert "crm, mkt" in error.message and "lime" in error.fix  # the failed plugin is named


def test_kind_of_a_plugin_that_failed_to_load_says_so(files):
    error = files.error(edit('kind = "crm"', 'kind = "lime"'), "connections.crm.kind")
    assert "failed to load" in error.message and "ModuleNotFoundError" in error.message
    assert "crm, mkt" in error.fix


def test_missing_kind(files):
    error = files.error(edit('kind = "crm"\n', ""), "connections.crm.kind")
    assert "required" in error.message


def test_integration_naming_a_missing_connection(files):
    error = files.error(edit('destination = "mkt"', 'destination = "mtk"'),
                        "integrations.crm-mkt.destination")
    assert '"mtk"' in error.message and "crm, mkt" in error.message
    assert 'did you mean `destination = "mkt"`?' in error.fix
    error = files.error(edit('source = "crm"', 'source = "lime"'), "integrations.crm-mkt.source")
    assert "[connections.lime]" in error.fix


def test_capability_mismatch_names_the_capability(files):
    text = edit('source = "crm"\ndestination = "mkt"', 'source = "mkt"\ndestination = "crm"')
    source = files.error(text, "integrations.crm-mkt.source")
    assert "read_records" in source.message and "mkt" in source.message
    destination = files.error(text, "integrations.crm-mkt.destination")
    assert "write_profiles" in destination.message and "read_records" not in destination.message


def test_source_and_destination_must_differ(files):
    error = files.error(edit('destination = "mkt"', 'destination = "crm"'),
                        "integrations.crm-mkt.destination")
    assert "same connection" in error.message


@pytest.mark.parametrize("channel", ['["email", "sms"]', '"both"', '"email+sms"'])
def test_consent_mapping_with_both_channels_is_rejected(files, channel):
    error = files.error(edit('channel = "email"', f"channel = {channel}"),
                        "integrations.crm-mkt.consents[0].channel")
    assert "exactly one channel" in error.message
    assert "two mappings" in error.fix
    assert 'channel = "email"' in error.fix and 'channel = "sms"' in error.fix


def test_consent_mapping_bad_channel_and_missing_topic(files):
    error = files.error(edit('channel = "email"', 'channel = "fax"'),
                        "integrations.crm-mkt.consents[0].channel")
    assert '"email", "sms"' in error.message
    error = files.error(edit('topic = "news"\n', ""), "integrations.crm-mkt.consents[0].topic")
    assert "required" in error.message


def test_conditions_fields_selections_contents(files):
    text = edit('"Contact.Type" = "A"', '"Contact.Type" = { any = 1 }')
    text = edit('"Contact.Organization.Name" = "company"',
                '"Contact.Organization.Name" = 3\n"FirstName" = "first"\n"Name" = "first"', text)
    text = edit('"Readers" = "reader"', '"Readers" = ""', text)
    errors = {e.key: e for e in files.errors(text)}
    assert 'integrations.crm-mkt.conditions."Contact.Type"' in errors
    assert 'integrations.crm-mkt.fields."Contact.Organization.Name"' in errors
    assert "FirstName" in errors["integrations.crm-mkt.fields.Name"].message
    assert "integrations.crm-mkt.selections.Readers" in errors


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])
def test_admin_host_must_be_loopback(files, host):
    error = files.error(edit("[daemon]", f'[admin]\nhost = "{host}"\n[daemon]'), "admin.host")
    assert "loopback" in error.message and '"127.0.0.1"' in error.fix


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_admin_host_loopback_accepted(files, host):
    assert files.load(edit("[daemon]", f'[admin]\nhost = "{host}"\n[daemon]')).admin.host == host


def test_bad_names(files):
    text = edit("[connections.mkt]", '[connections."my mkt"]\nkind = "mkt"\n\n[connections.mkt]')
    error = files.error(text, 'connections."my mkt"')
    assert "letters, digits" in error.message and "[connections.my-mkt]" in error.fix


def test_section_that_is_not_a_table(files):
    error = files.error('daemon = "x"\n', "daemon")
    assert "must be a table" in error.message and "[daemon]" in error.fix


def test_connector_validate_problems_become_errors(files):
    error = files.error(edit('kind = "crm"', 'kind = "crm"\nmode = "b"'), "connections.crm.token")
    assert error.message == 'is required with mode = "b"'
    assert error.fix == 'add token = { env = "X" }'


def test_connector_validate_that_raises_is_an_error_not_a_crash(files):
    error = files.error(edit('kind = "crm"', 'kind = "crm"\nbase_url = "https://crash.example"'),
                        "connections.crm")
    assert "RuntimeError" in error.message and "crm plugin" in error.message


def test_toml_syntax_error_names_file_line_and_column(files):
    text = '[daemon]\nstate_dir = "x"\nlog_level = \n'
    errors = files.errors(text)
    assert len(errors) == 1
    error = errors[0]
    assert error.key == "line 3, column 13" and (error.line, error.column) == (3, 13)
    assert "invalid TOML" in error.message and error.fix
    assert str(error).startswith(f"{files.tmp_path / 'syncd.toml'}: line 3, column 13: ")


def test_toml_error_at_end_of_document_still_has_a_line(files):
    error = files.errors("[daemon]\nstate_dir = 1\nstate_dir = 2")[0]
    assert error.key.startswith("line ") and "end of document" not in error.message


def test_missing_file(files, tmp_path):
    lines = check(str(tmp_path / "nope.toml"), files.registry)
    assert len(lines) == 1 and "nope.toml" in lines[0] and "cannot read" in lines[0]


def test_check_returns_readable_lines(files):
    path = files.write(edit('kind = "crm"', 'kind = "crn"'))
    lines = check(path, files.registry, environ=files.environ)
    assert lines and all(line.startswith(path + ": ") for line in lines)
    assert any("connections.crm.kind" in line and "(fix: " in line for line in lines)


def test_environ_defaults_to_os_environ(files, monkeypatch):
    monkeypatch.setenv("CRM_SECRET", SECRET)
    config = load(files.write(VALID), files.registry)
    assert config.connections["crm"].options["client_secret"].reveal() == SECRET
    assert os.environ["CRM_SECRET"] == SECRET
