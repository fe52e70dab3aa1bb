"""Load and validate ``hypercare.toml`` into frozen settings objects.

Why a package with one entry point: every error a user can make in the config file
must end as one line naming the key to fix (``ConfigError``), so the parsing of
every section lives in ``config.sections`` and nowhere else.  Nothing here is
global: ``load_config`` returns a ``Config`` that the service passes to each
component.  ``config.settings`` holds the dataclasses.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from config.sections import SECTIONS, Reader, parse_date, parse_time, parse_weekday, parse_weekdays
from config.settings import (
    DAY_NAMES,
    ROLES,
    SEVERITIES,
    Config,
    ConfigError,
    DashboardSettings,
    DatabaseSettings,
    ExitSettings,
    HypercareSettings,
    ImapSettings,
    IncidentSettings,
    IntakeSettings,
    NotifierSettings,
    ReplySettings,
    RulesSettings,
    SlaSettings,
    SmtpInSettings,
    SmtpOutSettings,
    StakeholderSettings,
    SupportSettings,
    TeamMember,
    TriageSettings,
)

__all__ = [
    "DAY_NAMES", "ROLES", "SEVERITIES", "Config", "ConfigError", "DashboardSettings", "DatabaseSettings",
    "ExitSettings", "HypercareSettings", "ImapSettings", "IncidentSettings", "IntakeSettings", "NotifierSettings",
    "ReplySettings",
    "RulesSettings",
    "SlaSettings", "SmtpInSettings", "SmtpOutSettings", "StakeholderSettings", "SupportSettings", "TeamMember",
    "TriageSettings",
    "find_config_path", "load_config", "parse_config", "parse_date", "parse_time", "parse_weekday",
    "parse_weekdays",
]


def find_config_path(explicit: str | None, environ: dict[str, str] | None = None) -> Path | None:
    """``--config``, else ``$HYPERCARE_CONFIG``, else ``./hypercare.toml`` if present, else None."""
    environ = os.environ if environ is None else environ
    if explicit:
        return Path(explicit)
    if environ.get("HYPERCARE_CONFIG"):
        return Path(environ["HYPERCARE_CONFIG"])
    local = Path("hypercare.toml")
    return local if local.exists() else None


def load_config(path: Path | None) -> Config:
    """Read *path* (or return the embedded defaults when None); raise ConfigError on any mistake."""
    if path is None:
        return Config()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found; create it or drop --config") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc}); fix the syntax") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config file is not UTF-8; save it as UTF-8") from None
    return parse_config(data, base_dir=path.resolve().parent, source=str(path))


def parse_config(data: dict[str, Any], base_dir: Path, source: str = "config") -> Config:
    reader = Reader(source)
    unknown = set(data) - set(SECTIONS)
    if unknown:
        raise ConfigError(
            f"{source}: unknown section [{sorted(unknown)[0]}]; known: {', '.join(sorted(SECTIONS))}"
        )
    values: dict[str, Any] = {"base_dir": base_dir, "source": source}
    for name, build in SECTIONS.items():
        if name in data:
            values[name] = build(reader, data[name])
    return Config(**values)
