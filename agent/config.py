"""Settings: one object, from LABLOOP_* environment variables and an optional labloop.toml.

Precedence (highest first): explicit keyword arguments, environment variables,
the TOML file (``LABLOOP_CONFIG`` or ``./labloop.toml``), the defaults below.
Every folder defaults to a place under ``home`` so that one variable moves a
whole installation.
"""

from __future__ import annotations

import os
from dataclasses import fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from agent.protocol import Protocol

EMBEDDED_BROKER = "filesystem://localhost//"
_PROTOCOL = Protocol()  # its defaults are the settings' defaults
# the same code paths on small learning and swarm budgets, as environment variables: the
# demo's --fast (a quick look) and the tests
FAST_BUDGET = {
    "LABLOOP_SEARCH_ITERATIONS": "3",
    "LABLOOP_CV_FOLDS": "3",
    "LABLOOP_ENSEMBLE_SIZE": "3",
    "LABLOOP_COMPARE_MODELS": "false",
    "LABLOOP_PSO_PARTICLES": "20",
    "LABLOOP_PSO_ITERATIONS": "40",
}


def _config_file() -> Path:
    return Path(os.environ.get("LABLOOP_CONFIG", "labloop.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LABLOOP_", extra="forbid")

    home: Path = Field(default_factory=Path.cwd, description="root of every default folder")
    inbox: Path | None = None
    archive: Path | None = None
    quarantine: Path | None = None
    recipes: Path | None = None
    models: Path | None = None
    # runtime state: the SQLite database and the embedded broker's folders
    state: Path | None = None

    database_url: str | None = None
    # Redis URL (redis://127.0.0.1:6379/0) for a lab deployment; the default needs no server
    broker_url: str = EMBEDDED_BROKER

    batch_size: int = Field(default=10, ge=1)
    # "required": a proposed batch waits for `labloop batch approve N` before its recipe
    # file is released to the lab; "none": released at once
    approval: Literal["none", "required"] = "none"
    # the status page's write actions (approving a batch) need this token; unset: read-only
    web_token: SecretStr | None = None
    # reading the status page (every route but /healthz) needs this token as the password of
    # HTTP Basic auth, any user name; unset: anyone who can reach the page reads it
    web_read_token: SecretStr | None = None
    # a campaign's budget: no batch is proposed past this number (None: no limit)
    max_batches: int | None = Field(default=None, ge=1)
    # used when neither the export nor masses.csv gives the active mass of a cell
    default_active_mass_mg: float | None = Field(default=None, gt=0)
    # name of the sidecar in the inbox that maps sample_id -> active_mass_mg
    masses_file: str = "masses.csv"

    # the lab's test protocol (PAPER.md: 0.1C, 4.25-2.75 V); a test is judged against it.
    # The defaults are the protocol's own (agent.protocol.Protocol, where each is
    # explained); ingest builds a Protocol from these once.
    charge_cutoff_v: float = _PROTOCOL.charge_cutoff_v
    discharge_cutoff_v: float = _PROTOCOL.discharge_cutoff_v
    cutoff_tolerance_v: float = Field(default=_PROTOCOL.cutoff_tolerance_v, ge=0)
    plausible_min_mah_g: float = _PROTOCOL.plausible_min_mah_g
    plausible_max_mah_g: float = _PROTOCOL.plausible_max_mah_g
    plausible_max_ce: float = Field(default=_PROTOCOL.plausible_max_ce, gt=0)
    discharge_end_margin_v: float = Field(default=_PROTOCOL.discharge_end_margin_v, ge=0)
    min_charge_mah_g: float = Field(default=_PROTOCOL.min_charge_mah_g, ge=0)
    conditioning_max_fraction: float = Field(default=_PROTOCOL.conditioning_max_fraction, ge=0)
    cathode_min_v: float = _PROTOCOL.cathode_min_v

    # A worker holds a file for this long and renews the hold every third of it while it
    # works, so a slow file is never taken from a live worker; one that dies (kill -9,
    # power cut) lets go within this long and the file's next hand-on takes it over.
    # Short: recovery after a kill is about this plus resubmit_after_seconds' wait.
    ingest_lease_seconds: float = Field(default=20.0, gt=0)
    # a file written to less than this long ago that stops mid-line or inside its first cycle
    # is tried again later instead of judged (its writer may not be done); default: six
    # settle times (60 s)
    cut_short_grace_seconds: float | None = Field(default=None, ge=0)
    # Redis: a task whose worker died unacknowledged is delivered again after this long.
    # Longer than any task runs (a retrain at full budgets takes minutes): Redis cannot tell
    # a dead worker from a slow one, so a shorter one would start a running retrain again,
    # and one timeout applies to every queue of a Redis database. Recovery does not wait
    # for it: the watcher hands a file still in the inbox on again (resubmit_after_seconds)
    # and a learning worker re-queues unfinished batches when it starts.
    broker_visibility_timeout_seconds: float = Field(default=3600.0, gt=0)

    # every service (watcher, workers) writes a heartbeat this often; three missed beats
    # and the page, `labloop status` and `labloop health` call it stale
    heartbeat_seconds: float = Field(default=10.0, gt=0)

    # watcher: where no close-write is seen (polling, files found by a scan, empty files) a
    # file is complete once its size and mtime have not changed for this long; a network
    # copy pauses for seconds between chunks (on inotify, closed files go in 0.2 s)
    settle_seconds: float = Field(default=10.0, ge=0)
    # watcher: use polling instead of inotify (network shares where events do not arrive)
    polling: bool = False
    poll_interval_seconds: float = Field(default=1.0, gt=0)
    # watcher: a file still in the inbox this long after it was handed on is handed on
    # again, and again every this long while it stays: the bound on how long a file waits
    # after its task was lost (worker killed, database down past the task's retries). A
    # hand-on of a file another worker holds costs one hash and a look at the database.
    resubmit_after_seconds: float = Field(default=20.0, gt=0)

    # the design space (default: agent/data/design_space.toml) and this campaign's pins / ranges:
    # {"atmosphere": "air", "ni_fraction": [0.94, 0.96]} (a value pins, a pair narrows)
    design_space: Path | None = None
    campaign: dict[str, Any] = Field(default_factory=dict)

    # learning (agent.learning.model): random-search candidates, CV folds, bootstrap members
    search_iterations: int = Field(default=20, ge=1)
    cv_folds: int = Field(default=5, ge=2)
    ensemble_size: int = Field(default=8, ge=1)
    compare_models: bool = True
    # the uncertainty the acquisition reads: "gp" grows away from tried recipes,
    # "bootstrap" is the spread of the GBM's bootstrap ensemble (agent.learning.uncertainty)
    uncertainty: Literal["gp", "bootstrap"] = "gp"
    # P(success) where nothing was tried nearby; unset: the classifier alone
    # (agent.learning.feasibility)
    feasibility_prior: float | None = Field(default=0.5, ge=0, le=1)
    # failed syntheses teach the success model (the paper's point); false leaves them out
    train_on_failures: bool = True

    # proposing: "trust-ei" (agent.learning.acquisition) or "paper" (mean + kappa * std, top ten)
    strategy: Literal["trust-ei", "paper"] = "trust-ei"
    # the swarm (agent.learning.swarm): the paper's 100 particles x 1000 iterations
    pso_particles: int = Field(default=100, ge=1)
    pso_iterations: int = Field(default=1000, ge=1)
    # trust-ei: recipes per batch that try a value no tried recipe used, and how many tried
    # recipes make a value known; the share of the batch searched outside the trust region
    max_probes: int = Field(default=2, ge=0)
    probe_until: int = Field(default=3, ge=1)
    # 0 by default: on every lab of the benchmark a global pick cost calibration (BENCHMARKS.md)
    global_share: float = Field(default=0.0, ge=0, le=1)
    trust_region: bool = True
    # paper: objective = (predicted mean + kappa * uncertainty) * P(success), ten best picks
    # at least min_distance grid steps apart
    min_distance: float = Field(default=3.0, ge=0)
    kappa: float = Field(default=0.5, ge=0)
    use_success_probability: bool = True
    seed: int | None = None

    @field_validator("web_token", "web_read_token", mode="before")
    @classmethod
    def _empty_token_is_unset(cls, value: Any) -> Any:
        # LABLOOP_WEB_READ_TOKEN= (as compose passes an unset variable) must not mean
        # "the empty password opens the page"
        return None if value == "" else value

    @model_validator(mode="after")
    def _fill_folders(self) -> Settings:
        self.home = self.home.expanduser().resolve()
        for name in ("inbox", "archive", "quarantine", "recipes", "models"):
            if getattr(self, name) is None:
                setattr(self, name, self.home / name)
        if self.state is None:
            self.state = self.home / "var"
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.state / 'labloop.db'}"
        return self

    @property
    def cut_short_grace(self) -> float:
        """Seconds a file that looks cut off is given before it is judged as it stands."""
        if self.cut_short_grace_seconds is not None:
            return self.cut_short_grace_seconds
        return 6 * self.settle_seconds

    def protocol(self) -> Protocol:
        """The test protocol these settings set: each field is the setting of its name."""
        return Protocol(**{f.name: getattr(self, f.name) for f in fields(Protocol)})

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url.startswith("filesystem")

    def ensure_folders(self) -> None:
        """Create the working folders (idempotent)."""
        for folder in (self.inbox, self.archive, self.quarantine, self.recipes, self.models):
            folder.mkdir(parents=True, exist_ok=True)
        self.state.mkdir(parents=True, exist_ok=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return (init_settings, env_settings, toml)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
