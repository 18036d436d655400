"""agent.config: environment over labloop.toml over defaults; folders follow home."""

from __future__ import annotations

from agent.config import Settings


def test_defaults_follow_home(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings(home=tmp_path / "lab")
    assert settings.inbox == tmp_path / "lab" / "inbox"
    assert settings.quarantine == tmp_path / "lab" / "quarantine"
    assert settings.database_url == f"sqlite:///{tmp_path / 'lab' / 'var' / 'labloop.db'}"
    assert settings.embedded_broker
    assert settings.batch_size == 10


def test_toml_file_then_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "labloop.toml").write_text(
        'batch_size = 8\nbroker_url = "redis://127.0.0.1:6379/3"\ndefault_active_mass_mg = 14.9\n'
    )
    settings = Settings()
    assert settings.batch_size == 8
    assert settings.broker_url == "redis://127.0.0.1:6379/3"
    assert not settings.embedded_broker
    assert settings.default_active_mass_mg == 14.9
    monkeypatch.setenv("LABLOOP_BATCH_SIZE", "12")
    monkeypatch.setenv("LABLOOP_INBOX", str(tmp_path / "share"))
    settings = Settings()
    assert settings.batch_size == 12
    assert settings.inbox == tmp_path / "share"


def test_config_file_named_by_variable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    other = tmp_path / "site.toml"
    other.write_text('masses_file = "weights.csv"\n')
    monkeypatch.setenv("LABLOOP_CONFIG", str(other))
    assert Settings().masses_file == "weights.csv"
