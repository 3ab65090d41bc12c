"""Options that several commands share: where the alias records are, and which environment.

``--aliases DIR`` defaults to ``$FLOWRUN_ALIASES``, else ``./aliases`` (the same rule as
``Registry.load``). ``--env NAME`` picks the connection of an alias that has one per environment.
"""

from __future__ import annotations

import argparse
import math
import os
from datetime import UTC, datetime
from pathlib import Path

from flowrun._registry import ALIASES_ENV, DEFAULT_ALIAS_DIR, Registry

__all__ = ["add_aliases_option", "add_env_option", "aliases_dir", "days_left", "iso_utc", "load_registry",
           "non_negative_days"]


def add_aliases_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--aliases", metavar="DIR", type=Path, default=None,
        help=f"the alias directory (or one alias file); default ${ALIASES_ENV}, else ./{DEFAULT_ALIAS_DIR}",
    )


def add_env_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--env", metavar="NAME", default=None,
        help="the environment whose connection to use, for aliases with one connection per environment "
        "(default: the alias's default_env)",
    )


def aliases_dir(args: argparse.Namespace) -> Path:
    given: Path | None = getattr(args, "aliases", None)
    if given is not None:
        return given
    return Path(os.environ.get(ALIASES_ENV) or DEFAULT_ALIAS_DIR)


def load_registry(args: argparse.Namespace) -> Registry:
    from flowrun._cli._flow_options import connect_to_mapping

    return Registry.load(aliases_dir(args), connect_to=connect_to_mapping(getattr(args, "connect_to", None) or []))


def non_negative_days(text: str) -> int:
    """argparse type for ``--within DAYS``."""
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of days: {text!r}") from None
    if days < 0:
        raise argparse.ArgumentTypeError("days cannot be negative")
    return days


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def days_left(not_after: datetime, now: datetime) -> int:
    """Whole days until ``not_after`` (negative once it has passed)."""
    return math.floor((not_after - now).total_seconds() / 86400)
