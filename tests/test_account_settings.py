"""The settings of issue 12 and their older names: REGISTRATION_MODE (REGISTRATION_OPEN
still read when it is not set) and DEFAULT_USER_QUOTA_MB (MAX_USER_STORAGE_MB likewise)."""

from __future__ import annotations

import pytest

from imagehost.config import ConfigError, load_settings

SECRET = "s" * 40
MB = 1024 * 1024


def settings(monkeypatch, **env: str):
    for name in ("REGISTRATION_MODE", "REGISTRATION_OPEN", "DEFAULT_USER_QUOTA_MB", "MAX_USER_STORAGE_MB"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings(_env_file=None, secret_key=SECRET)


def test_defaults_are_invites_and_a_gigabyte(monkeypatch):
    s = settings(monkeypatch)
    assert s.registration == "invite"
    assert s.default_quota_bytes == 1024 * MB


@pytest.mark.parametrize(
    ("env", "mode"),
    [
        ({"REGISTRATION_OPEN": "true"}, "open"),
        ({"REGISTRATION_OPEN": "false"}, "closed"),
        ({"REGISTRATION_MODE": "closed"}, "closed"),
        ({"REGISTRATION_MODE": "open", "REGISTRATION_OPEN": "false"}, "open"),  # the new name wins
        ({"REGISTRATION_MODE": "invite"}, "invite"),
    ],
)
def test_registration_open_is_an_alias_of_the_mode(monkeypatch, env, mode):
    assert settings(monkeypatch, **env).registration == mode


def test_a_bad_registration_mode_fails_at_start_naming_the_variable(monkeypatch):
    with pytest.raises(ConfigError, match=r"^REGISTRATION_MODE"):
        settings(monkeypatch, REGISTRATION_MODE="sometimes")


@pytest.mark.parametrize(
    ("env", "quota"),
    [
        ({"MAX_USER_STORAGE_MB": "5"}, 5 * MB),
        ({"MAX_USER_STORAGE_MB": "0"}, 0),  # set to its old default: unlimited, as before
        ({"DEFAULT_USER_QUOTA_MB": "0"}, 0),
        ({"DEFAULT_USER_QUOTA_MB": "10", "MAX_USER_STORAGE_MB": "5"}, 10 * MB),
    ],
)
def test_max_user_storage_is_an_alias_of_the_default_quota(monkeypatch, env, quota):
    assert settings(monkeypatch, **env).default_quota_bytes == quota


def test_a_negative_quota_fails_at_start(monkeypatch):
    with pytest.raises(ConfigError, match=r"^DEFAULT_USER_QUOTA_MB"):
        settings(monkeypatch, DEFAULT_USER_QUOTA_MB="-1")
