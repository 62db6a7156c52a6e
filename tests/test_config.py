"""Tests for mailbot.config: pure, files in tmp_path, no network."""

from __future__ import annotations

import dataclasses
import tomllib
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailbot import config
from mailbot.config import (
    DigestSettings,
    DraftingSettings,
    ImapSettings,
    IngestSettings,
    OwnerSettings,
    RankSettings,
    Secret,
    SendSettings,
    ServerSettings,
    Settings,
    SettingsError,
    default_config_path,
    load_settings,
)
from mailbot.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config.example.toml"
SECRET = "s3cr3t-Pa55word"

# DESIGN section 8 (values verbatim, one comment shortened): the config contract.
CONTRACT = """\
[owner]
name = "Olivia Owner"
addresses = ["olivia@linen.example"]      # every address the owner sends from
internal_domains = []                      # colleagues, never customers
timezone = "Europe/Berlin"
signature = "Olivia\\nOlivia's Linen"

[imap]
host = "imap.linen.example"
port = 993
security = "tls"                           # tls | starttls | none (none: loopback only)
username = "olivia@linen.example"
password = ""                              # or password_env = "VAR", or password_command = "..."
ca_file = ""                               # extra CA bundle, for self-signed servers

[smtp]
host = "smtp.linen.example"
port = 465
security = "tls"
username = "olivia@linen.example"
password = ""
ca_file = ""

[data]
dir = "~/.local/share/mailbot"

[ingest]
history_days = 730

[digest]
time = "07:30"
days = "mon-fri"
size = 5

[send]
undo_seconds = 120                         # delay before a note leaves; 0 sends at once
"""

# The smallest config that loads; tests override keys of it.
BASE: dict[str, dict[str, str]] = {
    "owner": {
        "name": '"Olivia Owner"',
        "addresses": '["olivia@linen.example"]',
        "timezone": '"Europe/Berlin"',
    },
    "imap": {"host": '"imap.linen.example"'},
    "smtp": {"host": '"smtp.linen.example"'},
}

ENV = {"HOME": "/home/olivia"}


def render(overrides: dict[str, dict[str, str | None]] | None = None) -> str:
    """BASE with ``overrides`` (TOML literals; None deletes a key) as TOML text."""
    sections: dict[str, dict[str, str]] = {k: dict(v) for k, v in BASE.items()}
    for section, keys in (overrides or {}).items():
        table = sections.setdefault(section, {})
        for key, literal in keys.items():
            if literal is None:
                table.pop(key, None)
            else:
                table[key] = literal
    out: list[str] = []
    for name, table in sections.items():
        out.append(f"[{name}]")
        out.extend(f"{k} = {v}" for k, v in table.items())
        out.append("")
    return "\n".join(out)


def lit(text: str) -> str:
    """A TOML multi-line literal string: no escapes needed inside."""
    return f"'''{text}'''"


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load(
    tmp_path: Path,
    overrides: dict[str, dict[str, str | None]] | None = None,
    env: dict[str, str] | None = None,
) -> Settings:
    return load_settings(write(tmp_path, render(overrides)), ENV if env is None else env)


def problem(
    tmp_path: Path,
    overrides: dict[str, dict[str, str | None]] | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """The message of the ConfigError that loading ``overrides`` raises."""
    with pytest.raises(ConfigError) as info:
        load(tmp_path, overrides, env)
    return str(info.value)


# --------------------------------------------------------------------------- examples


def test_example_loads_with_design_values() -> None:
    s = load_settings(EXAMPLE, ENV)
    assert s.path == EXAMPLE
    assert s.owner.name == "Olivia Owner"
    assert s.owner.addresses == ("olivia@linen.example",)
    assert s.owner.internal_domains == ()
    assert s.owner.timezone == "Europe/Berlin"
    assert s.owner.signature == "Olivia\nOlivia's Linen"
    assert (s.imap.host, s.imap.port, s.imap.security) == ("imap.linen.example", 993, "tls")
    assert (s.smtp.host, s.smtp.port, s.smtp.security) == ("smtp.linen.example", 465, "tls")
    assert s.imap.username == s.smtp.username == "olivia@linen.example"
    assert s.imap.ca_file is None and s.smtp.ca_file is None
    assert not s.imap.password.is_set
    assert s.data.dir == Path("/home/olivia/.local/share/mailbot")
    assert s.ingest == IngestSettings()
    assert (s.digest.time, s.digest.days, s.digest.size) == ("07:30", "mon-fri", 5)
    assert s.digest.to == "olivia@linen.example"
    assert s.send.undo_seconds == 120
    assert s.rank == RankSettings()
    assert s.drafting == DraftingSettings()
    assert (s.imap.inbox, s.imap.sent, s.imap.extra_folders) == ("INBOX", "", ())


def test_example_documents_every_setting() -> None:
    doc = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    text = EXAMPLE.read_text(encoding="utf-8")
    # password: four alternative keys; oauth2: the [oauth2] section, attached at load
    server_keys = {f.name for f in dataclasses.fields(ServerSettings)} - {"password", "oauth2"}
    expected: dict[str, set[str]] = {
        "owner": {f.name for f in dataclasses.fields(OwnerSettings)},
        "imap": {f.name for f in dataclasses.fields(ImapSettings)} - {"password", "oauth2"},
        "smtp": server_keys,
        "data": {"dir"},
        "ingest": {f.name for f in dataclasses.fields(IngestSettings)},
        "digest": {f.name for f in dataclasses.fields(DigestSettings)},
        "send": {f.name for f in dataclasses.fields(SendSettings)},
        "rank": {f.name for f in dataclasses.fields(RankSettings)},
        "drafting": {f.name for f in dataclasses.fields(DraftingSettings)},
    }
    for section, keys in expected.items():
        missing = keys - set(doc[section])
        assert not missing, f"[{section}] keys not in config.example.toml: {missing}"
    for alternative in ("password_env", "password_command"):
        assert f"# {alternative} = " in text


def test_design_contract_block_loads(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, CONTRACT), ENV)
    assert s.owner.signature == "Olivia\nOlivia's Linen"
    assert (s.imap.port, s.smtp.port) == (993, 465)
    assert s.ingest.history_days == 730
    assert (s.digest.hour, s.digest.minute) == (7, 30)
    assert s.send.undo_seconds == 120


def test_minimal_config_gets_defaults(tmp_path: Path) -> None:
    s = load(tmp_path)
    assert s.owner.signature == "Olivia Owner"  # defaults to the name
    assert s.owner.tone == "warm, brief, personal"
    assert s.owner.business == ""
    assert s.imap.port == 993 and s.smtp.port == 465
    assert s.imap.timeout_seconds == 60.0
    assert s.digest == DigestSettings(to="olivia@linen.example")
    assert isinstance(s.imap, ImapSettings) and isinstance(s.imap, ServerSettings)


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = load(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.imap.port = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.owner = s.owner  # type: ignore[misc]


def test_timezone_property(tmp_path: Path) -> None:
    s = load(tmp_path, {"owner": {"timezone": '"America/New_York"'}})
    assert s.owner.tz == ZoneInfo("America/New_York")
    assert datetime(2024, 7, 1, 12, tzinfo=s.owner.tz).utcoffset() is not None


# --------------------------------------------------------------------------- file errors


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(path, ENV)
    message = str(info.value)
    assert str(path) in message
    assert "no such config file" in message
    assert "mailbot init" in message


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[owner]\nname = "Olivia"\ntimezone = Europe/Berlin\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, ENV)
    message = str(info.value)
    assert message.startswith(f"{path}: is not valid TOML: ")
    assert "(at line 3, column 12)" in message
    assert message.endswith("check the quotes, brackets and '=' on that line")


def test_toml_unclosed_bracket(tmp_path: Path) -> None:
    path = write(tmp_path, '[owner]\naddresses = ["a@b.example"\n[imap]\nhost = "x"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, ENV)
    assert "is not valid TOML" in str(info.value)
    assert "line" in str(info.value)
    path = write(tmp_path, '[owner]\naddresses = ["a@b.example"\n')
    with pytest.raises(ConfigError, match="a quote or bracket opened earlier is never closed"):
        load_settings(path, ENV)


def test_toml_duplicate_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, '[owner]\nname = "A"\nname = "B"\n')
    with pytest.raises(ConfigError, match="line 3"):
        load_settings(path, ENV)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'[owner]\nname = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings(path, ENV)


# --------------------------------------------------------------------------- unknown keys


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    text = render({"imap": {"hots": '"x"'}})
    with pytest.raises(SettingsError) as info:
        load_settings(write(tmp_path, text), ENV)
    assert "unknown key [imap] hots; did you mean 'host'?" in info.value.problems


def test_unknown_key_without_a_close_match(tmp_path: Path) -> None:
    message = problem(tmp_path, {"digest": {"zzzzzz": "1"}})
    assert "unknown key [digest] zzzzzz" in message
    assert "did you mean" not in message


def test_key_in_the_wrong_section(tmp_path: Path) -> None:
    message = problem(tmp_path, {"imap": {"history_days": "10"}})
    assert "unknown key [imap] history_days; it belongs in [ingest]" in message


def test_unknown_section_suggestion(tmp_path: Path) -> None:
    message = problem(tmp_path, {"rnak": {"x": "1"}})
    assert "unknown section [rnak]; did you mean [rank]?" in message


def test_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path, 'timezone = "UTC"\n' + render())
    with pytest.raises(ConfigError) as info:
        load_settings(path, ENV)
    assert "unknown key 'timezone' at the top of the file; it belongs in [owner]" in str(info.value)


def test_section_that_is_not_a_table_is_reported_once(tmp_path: Path) -> None:
    text = 'smtp = "x"\n' + render().replace('[smtp]\nhost = "smtp.linen.example"\n', "")
    with pytest.raises(SettingsError) as info:
        load_settings(write(tmp_path, text), ENV)
    not_table = [p for p in info.value.problems if p.startswith("smtp must be a section")]
    assert len(not_table) == 1


# --------------------------------------------------------------------------- values


def test_port_not_a_number(tmp_path: Path) -> None:
    message = problem(tmp_path, {"imap": {"port": '"abc"'}})
    assert message.startswith(f"{tmp_path / 'config.toml'}: ")
    assert "[imap] port must be a whole number between 1 and 65535, got 'abc'" in message


def test_port_quoted_number_hints_to_unquote(tmp_path: Path) -> None:
    message = problem(tmp_path, {"smtp": {"port": '"587"'}})
    assert "[smtp] port must be a whole number" in message
    assert "write it without quotes: port = 587" in message


@pytest.mark.parametrize("literal", ["0", "65536", "true", "99.5"])
def test_port_out_of_range_or_wrong_type(tmp_path: Path, literal: str) -> None:
    assert "[imap] port must be a whole number between 1 and 65535" in problem(
        tmp_path, {"imap": {"port": literal}}
    )


def test_text_with_wrong_type(tmp_path: Path) -> None:
    message = problem(tmp_path, {"owner": {"name": "5"}})
    assert "[owner] name must be text in quotes, got 5" in message


def test_bool_with_wrong_type(tmp_path: Path) -> None:
    message = problem(tmp_path, {"digest": {"send_when_empty": '"yes"'}})
    assert "[digest] send_when_empty must be true or false (without quotes), got 'yes'" in message


def test_missing_required_keys(tmp_path: Path) -> None:
    message = problem(tmp_path, {"imap": {"host": None}, "owner": {"timezone": None}})
    assert "[imap] host is missing" in message
    assert "[owner] timezone is missing" in message
    assert "has 2 problems" in message


def test_all_problems_listed_at_once(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        load(tmp_path, {"imap": {"port": '"x"'}, "digest": {"size": "9"}, "send": {"zz": "1"}})
    assert len(info.value.problems) == 3
    message = str(info.value)
    assert all(p in message for p in info.value.problems)
    assert message.splitlines()[1].startswith("  - unknown key [send] zz")  # typos first


def test_bad_timezone_suggests(tmp_path: Path) -> None:
    message = problem(tmp_path, {"owner": {"timezone": '"Europe/Berln"'}})
    assert "[owner] timezone 'Europe/Berln' is not a known time zone" in message
    assert "did you mean 'Europe/Berlin'?" in message


def test_path_like_timezone_is_rejected(tmp_path: Path) -> None:
    assert "[owner] timezone" in problem(tmp_path, {"owner": {"timezone": '"../../etc/passwd"'}})


def test_addresses_normalised(tmp_path: Path) -> None:
    s = load(
        tmp_path,
        {
            "owner": {
                "addresses": '[" Olivia@Linen.Example ", "olivia@linen.example", "o@shop.example"]',
                "internal_domains": '["@Linen.Example", "team.example."]',
            }
        },
    )
    assert s.owner.addresses == ("olivia@linen.example", "o@shop.example")
    assert s.owner.address == "olivia@linen.example"
    assert s.owner.internal_domains == ("linen.example", "team.example")
    assert s.imap.username == "olivia@linen.example"


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("[]", "[owner] addresses must list at least one address"),
        ('"olivia@linen.example"', "[owner] addresses must be a list of quoted addresses"),
        ('["Olivia <olivia@linen.example>"]', "give the bare address"),
        ('["olivia"]', "'olivia' is not usable"),
        ('["a@b@c.example"]', "does not look like an email address"),
    ],
)
def test_bad_addresses(tmp_path: Path, literal: str, expected: str) -> None:
    assert expected in problem(tmp_path, {"owner": {"addresses": literal}})


def test_bad_internal_domain(tmp_path: Path) -> None:
    message = problem(tmp_path, {"owner": {"internal_domains": '["not a domain"]'}})
    assert "[owner] internal_domains: 'not a domain' is not a domain name" in message


@pytest.mark.parametrize(
    ("literal", "expected"),
    [('"07:30"', (7, 30)), ('"7:05"', (7, 5)), ('"00:00"', (0, 0)), ("23:59:00", (23, 59))],
)
def test_digest_time_ok(tmp_path: Path, literal: str, expected: tuple[int, int]) -> None:
    d = load(tmp_path, {"digest": {"time": literal}}).digest
    assert (d.hour, d.minute) == expected
    assert d.time == f"{expected[0]:02d}:{expected[1]:02d}"


@pytest.mark.parametrize("literal", ['"25:00"', '"07:60"', '"7.30"', '"0730"', "730", '"7:5"'])
def test_digest_time_bad(tmp_path: Path, literal: str) -> None:
    message = problem(tmp_path, {"digest": {"time": literal}})
    assert '[digest] time must be a 24-hour time "HH:MM"' in message
    assert 'time = "07:30"' in message


GOOD_DAYS = ["mon-fri", "*", "mon,wed,fri", "sat-sun", "mon-wed,fri", "sun", "MON-FRI"]
BAD_DAYS = ["mon-fir", "fri-mon", "monday", "", "mon--fri", "mon,", "0-4", "1st mon"]


@pytest.mark.parametrize("days", GOOD_DAYS)
def test_digest_days_ok_and_accepted_by_apscheduler(tmp_path: Path, days: str) -> None:
    from apscheduler.triggers.cron import CronTrigger

    d = load(tmp_path, {"digest": {"days": f'"{days}"'}}).digest
    assert d.days == days.lower()
    CronTrigger(day_of_week=d.days, hour=d.hour, minute=d.minute, timezone="UTC")


@pytest.mark.parametrize("days", BAD_DAYS)
def test_digest_days_bad(tmp_path: Path, days: str) -> None:
    message = problem(tmp_path, {"digest": {"days": f'"{days}"'}})
    assert f"[digest] days {days!r} is not a list of days" in message


def test_digest_days_typo_suggestion(tmp_path: Path) -> None:
    assert "'fir' is not a day name (did you mean 'fri'?)" in problem(
        tmp_path, {"digest": {"days": '"mon-fir"'}}
    )


def test_digest_days_backwards_range_explained(tmp_path: Path) -> None:
    assert "runs backwards" in problem(tmp_path, {"digest": {"days": '"fri-mon"'}})


def test_digest_size_and_to(tmp_path: Path) -> None:
    assert "[digest] size must be a whole number between 3 and 7" in problem(
        tmp_path, {"digest": {"size": "9"}}
    )
    assert "[digest] size" in problem(tmp_path, {"digest": {"size": "2"}})
    d = load(tmp_path, {"digest": {"to": '"Boss@Linen.Example"'}}).digest
    assert d.to == "boss@linen.example"
    assert "[digest] to 'nobody' is not usable" in problem(tmp_path, {"digest": {"to": '"nobody"'}})


def test_ingest_limits(tmp_path: Path) -> None:
    assert "[ingest] idle_renew_seconds must be a whole number between 10 and 600" in problem(
        tmp_path, {"ingest": {"idle_renew_seconds": "601"}}
    )
    assert (
        load(tmp_path, {"ingest": {"idle_renew_seconds": "600"}}).ingest.idle_renew_seconds == 600
    )
    assert "[imap] timeout_seconds must be a number greater than 0" in problem(
        tmp_path, {"imap": {"timeout_seconds": "0"}}
    )
    assert load(tmp_path, {"ingest": {"body_bytes": "4096"}}).ingest == IngestSettings(
        body_bytes=4096
    )
    assert "[ingest] history_days" in problem(tmp_path, {"ingest": {"history_days": "-1"}})


def test_send_undo(tmp_path: Path) -> None:
    assert load(tmp_path, {"send": {"undo_seconds": "0"}}).send.undo_seconds == 0
    assert "[send] undo_seconds must be a whole number between 0" in problem(
        tmp_path, {"send": {"undo_seconds": "-5"}}
    )


def test_rank_values_and_cross_checks(tmp_path: Path) -> None:
    r = load(tmp_path, {"rank": {"lapse_factor": "3", "max_per_reason": "1"}}).rank
    assert r.lapse_factor == 3.0 and isinstance(r.lapse_factor, float)
    assert r.max_per_reason == 1
    assert "[rank] lapse_factor must be a number at least 1" in problem(
        tmp_path, {"rank": {"lapse_factor": "0.5"}}
    )
    assert "[rank] welcome_min_days must not be greater than welcome_max_days" in problem(
        tmp_path, {"rank": {"welcome_min_days": "40"}}
    )
    assert "[rank] gone_after_factor must be greater than lapse_factor" in problem(
        tmp_path, {"rank": {"gone_after_factor": "2.0"}}
    )
    assert "[rank] contact_cooldown_days must be a whole number" in problem(
        tmp_path, {"rank": {"contact_cooldown_days": "1.5"}}
    )


# --------------------------------------------------------------------------- servers


@pytest.mark.parametrize(
    ("section", "security", "port"),
    [
        ("imap", "tls", 993),
        ("imap", "starttls", 143),
        ("imap", "none", 143),
        ("smtp", "tls", 465),
        ("smtp", "starttls", 587),
        ("smtp", "none", 25),
    ],
)
def test_default_ports(tmp_path: Path, section: str, security: str, port: int) -> None:
    s = load(tmp_path, {section: {"host": '"127.0.0.1"', "security": f'"{security}"'}})
    server = s.imap if section == "imap" else s.smtp
    assert (server.security, server.port) == (security, port)


def test_security_none_rejected_for_remote_host(tmp_path: Path) -> None:
    message = problem(tmp_path, {"imap": {"security": '"none"'}})
    assert '[imap] security = "none" (no encryption) is allowed only for a loopback host' in message
    assert "'imap.linen.example'" in message
    assert 'use security = "tls" or "starttls"' in message


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]"])
def test_security_none_allowed_for_loopback(tmp_path: Path, host: str) -> None:
    s = load(tmp_path, {"smtp": {"host": f'"{host}"', "security": '"none"', "port": "2525"}})
    assert (s.smtp.security, s.smtp.port) == ("none", 2525)


@pytest.mark.parametrize("host", ["10.0.0.1", "localhost.example.com", "0.0.0.0"])
def test_security_none_rejected_for_lookalikes(tmp_path: Path, host: str) -> None:
    assert '[smtp] security = "none"' in problem(
        tmp_path, {"smtp": {"host": f'"{host}"', "security": '"none"'}}
    )


def test_unknown_security(tmp_path: Path) -> None:
    message = problem(tmp_path, {"imap": {"security": '"ssl"'}})
    assert "[imap] security must be one of tls, starttls, none, got 'ssl'" in message


def test_username_and_folders(tmp_path: Path) -> None:
    s = load(
        tmp_path,
        {
            "imap": {
                "username": '"login-name"',
                "sent": '"Sent Messages"',
                "extra_folders": '["[Gmail]/All Mail"]',
                "timeout_seconds": "12.5",
            }
        },
    )
    assert s.imap.username == "login-name"
    assert s.smtp.username == "olivia@linen.example"
    assert s.imap.sent == "Sent Messages"
    assert s.imap.extra_folders == ("[Gmail]/All Mail",)
    assert s.imap.timeout_seconds == 12.5
    assert "[imap] extra_folders must be a list of quoted texts" in problem(
        tmp_path, {"imap": {"extra_folders": '"[Gmail]/All Mail"'}}
    )


def test_ca_file_relative_and_missing(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_text("x")
    s = load(tmp_path, {"imap": {"ca_file": '"certs/ca.pem"'}})
    assert s.imap.ca_file == tmp_path / "certs" / "ca.pem"
    message = problem(tmp_path, {"smtp": {"ca_file": '"certs/missing.pem"'}})
    assert "[smtp] ca_file" in message and "does not exist" in message


# --------------------------------------------------------------------------- secrets


def all_text(s: Settings) -> str:
    return "\n".join(
        [repr(s), str(s), repr(s.imap), str(s.imap.password), repr(s.smtp.password), *s.describe()]
    )


def test_inline_password_never_shown(tmp_path: Path) -> None:
    s = load(tmp_path, {"imap": {"password": f'"{SECRET}"'}})
    assert s.imap.password.reveal() == SECRET
    assert SECRET not in all_text(s)
    assert repr(s.imap.password) == "Secret(<set in config>)"
    assert any("password set in the config file" in line for line in s.describe())
    assert SECRET not in repr(dataclasses.asdict(s))


def test_password_env(tmp_path: Path) -> None:
    env = {**ENV, "MAILBOT_IMAP_PASSWORD": SECRET}
    s = load(tmp_path, {"imap": {"password_env": '"MAILBOT_IMAP_PASSWORD"'}}, env)
    assert s.imap.password.reveal() == SECRET
    assert repr(s.imap.password) == "Secret(<from env MAILBOT_IMAP_PASSWORD>)"
    assert str(s.imap.password) == "Secret(<from env MAILBOT_IMAP_PASSWORD>)"
    assert SECRET not in all_text(s)
    assert any("password from env MAILBOT_IMAP_PASSWORD (set)" in ln for ln in s.describe())


def test_password_env_is_read_at_load_from_the_mapping(tmp_path: Path) -> None:
    env = {**ENV, "PW": "first"}
    s = load(tmp_path, {"imap": {"password_env": '"PW"'}}, env)
    env["PW"] = "changed later"
    assert s.imap.password.reveal() == "first"


def test_password_env_unset_loads_but_reveal_fails(tmp_path: Path) -> None:
    s = load(tmp_path, {"smtp": {"password_env": '"NOPE_PW"'}}, dict(ENV))
    assert any("from env NOPE_PW (NOT SET)" in line for line in s.describe())
    with pytest.raises(ConfigError, match=r"\[smtp\] password_env names NOPE_PW, which is not set"):
        s.smtp.password.reveal()


def test_password_env_bad_name(tmp_path: Path) -> None:
    assert "[imap] password_env must be the name of an environment variable" in problem(
        tmp_path, {"imap": {"password_env": '"$PW"'}}
    )


def test_password_command(tmp_path: Path) -> None:
    s = load(tmp_path, {"imap": {"password_command": f"\"printf '%s\\\\n' {SECRET}\""}})
    assert repr(s.imap.password) == "Secret(<from command 'printf'>)"
    assert SECRET not in all_text(s)
    assert s.imap.password.reveal() == SECRET


def test_password_command_first_line_and_cached(tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    command = f"sh -c \"echo run >> {counter}; printf 'line-one\\nurl: x\\n'\""
    s = load(tmp_path, {"imap": {"password_command": lit(command)}})
    assert s.imap.password.reveal() == "line-one"
    assert s.imap.password.reveal() == "line-one"
    assert counter.read_text().count("run") == 1


def test_password_command_failure_hides_output(tmp_path: Path) -> None:
    cmd = "sh -c 'echo LEAKED-STDOUT; echo LEAKED-STDERR >&2; exit 3'"
    s = load(tmp_path, {"imap": {"password_command": lit(cmd)}})
    with pytest.raises(ConfigError) as info:
        s.imap.password.reveal()
    message = str(info.value)
    assert message.startswith("[imap] password_command ('sh') failed with exit status 3")
    assert "LEAKED" not in message
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_password_command_not_found(tmp_path: Path) -> None:
    s = load(tmp_path, {"smtp": {"password_command": '"/nonexistent/pw-tool show"'}})
    with pytest.raises(ConfigError, match=r"\[smtp\] password_command .* not found"):
        s.smtp.password.reveal()


def test_password_command_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "PASSWORD_COMMAND_TIMEOUT", 0.2)
    s = load(tmp_path, {"imap": {"password_command": '"sleep 5"'}})
    with pytest.raises(ConfigError, match=r"did not finish within 0\.2 seconds"):
        s.imap.password.reveal()


def test_password_command_empty_output(tmp_path: Path) -> None:
    s = load(tmp_path, {"imap": {"password_command": '"true"'}})
    with pytest.raises(ConfigError, match="printed an empty password"):
        s.imap.password.reveal()


def test_password_command_bad_quotes(tmp_path: Path) -> None:
    message = problem(tmp_path, {"imap": {"password_command": '"pass show \'mail"'}})
    assert "[imap] password_command is not a valid command line" in message


def test_several_password_sources_rejected(tmp_path: Path) -> None:
    message = problem(
        tmp_path, {"imap": {"password": '"x"', "password_command": '"pass show mail"'}}
    )
    assert "[imap] sets password and password_command: keep exactly one" in message


def test_empty_password_plus_another_source_is_fine(tmp_path: Path) -> None:
    s = load(tmp_path, {"imap": {"password": '""', "password_env": '"PW"'}}, {"PW": "pw"})
    assert s.imap.password.reveal() == "pw"


@pytest.mark.parametrize("section", ["imap", "smtp"])
def test_no_password_loads_but_reveal_fails(tmp_path: Path, section: str) -> None:
    s = load(tmp_path)
    server = s.imap if section == "imap" else s.smtp
    assert not server.password.is_set
    with pytest.raises(ConfigError) as info:
        server.password.reveal()
    assert str(info.value) == (
        f"[{section}] has no password: set password, password_env, password_command "
        "or password_keyring"
    )


def test_secret_equality_and_hash_do_not_need_the_value() -> None:
    a = Secret("[imap]", "env", "PW", "one")
    assert a == Secret("[imap]", "env", "PW", "one")
    assert a != Secret("[imap]", "env", "PW", "two")
    assert hash(a) == hash(Secret("[imap]", "env", "PW", "two"))
    assert Secret.literal("") == Secret.empty()


# --------------------------------------------------------------------------- paths


def test_data_dir_relative_to_config_file(tmp_path: Path) -> None:
    path = write(tmp_path, render({"data": {"dir": '"state/db"'}}), "etc/mailbot/config.toml")
    s = load_settings(path, ENV)
    assert s.data.dir == tmp_path / "etc" / "mailbot" / "state" / "db"
    assert s.path == path


def test_data_dir_relative_when_config_path_is_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, render({"data": {"dir": '"../data"'}}), "conf/config.toml")
    monkeypatch.chdir(tmp_path)
    s = load_settings(Path("conf/config.toml"), ENV)
    assert s.data.dir == tmp_path / "data"
    assert s.path.is_absolute()


def test_data_dir_home_and_absolute(tmp_path: Path) -> None:
    assert load(tmp_path, {"data": {"dir": '"~/mb"'}}).data.dir == Path("/home/olivia/mb")
    assert load(tmp_path).data.dir == Path("/home/olivia/.local/share/mailbot")
    assert load(tmp_path, {"data": {"dir": '"/srv/mailbot/"'}}).data.dir == Path("/srv/mailbot")


# --------------------------------------------------------------------------- drafting


def test_drafting_llm_requires_url_and_model(tmp_path: Path) -> None:
    message = problem(tmp_path, {"drafting": {"engine": '"llm"', "llm_model": '"m"'}})
    assert '[drafting] engine = "llm" needs llm_base_url: set llm_base_url, or use' in message


def test_drafting_llm_ok(tmp_path: Path) -> None:
    (tmp_path / "my-prompts").mkdir()
    d = load(
        tmp_path,
        {
            "drafting": {
                "engine": '"llm"',
                "llm_base_url": '"http://127.0.0.1:11434/v1/"',
                "llm_model": '"llama3.1:8b"',
                "llm_api_key_env": '"OPENAI_API_KEY"',
                "llm_timeout_seconds": "5",
                "prompts_dir": '"my-prompts"',
            }
        },
    ).drafting
    assert d.engine == "llm"
    assert d.llm_base_url == "http://127.0.0.1:11434/v1"
    assert d.llm_timeout_seconds == 5.0
    assert d.prompts_dir == tmp_path / "my-prompts"


def test_drafting_bad_values(tmp_path: Path) -> None:
    assert "[drafting] engine must be one of template, llm, got 'gpt'" in problem(
        tmp_path, {"drafting": {"engine": '"gpt"'}}
    )
    assert "[drafting] llm_base_url must start with http:// or https://" in problem(
        tmp_path, {"drafting": {"llm_base_url": '"localhost:11434"'}}
    )
    assert "[drafting] prompts_dir" in problem(tmp_path, {"drafting": {"prompts_dir": '"nope"'}})


# --------------------------------------------------------------------------- describe & path


def test_describe_lines(tmp_path: Path) -> None:
    lines = load(tmp_path).describe()
    assert lines[0] == f"config: {tmp_path / 'config.toml'}"
    text = "\n".join(lines)
    assert "imap: imap.linen.example:993 (tls), user olivia@linen.example" in text
    assert "digest: 07:30 Europe/Berlin on mon-fri, 5 picks" in text
    assert "drafting: templates, bundled prompts" in text


def test_default_config_path() -> None:
    assert default_config_path({}) == Path("config.toml")
    assert default_config_path({"MAILBOT_CONFIG": ""}) == Path("config.toml")
    assert default_config_path({"MAILBOT_CONFIG": "/etc/mb.toml"}) == Path("/etc/mb.toml")
