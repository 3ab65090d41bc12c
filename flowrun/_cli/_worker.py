"""``flowrun worker --broker URL``: a Celery worker that runs the data rows ``flowrun run --broker`` sends.

It resolves aliases and secrets from its own alias directory and environment, checks them before
taking any task (a broken alias directory is exit 2 at start, not a failure per row), and runs with
the delivery settings of ``flowrun.celery.create_app`` (acks late, redelivery when a worker is
lost, one task prefetched per process, JSON only).
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Any

from flowrun._cli._common import add_aliases_option, aliases_dir
from flowrun._cli._output import Console
from flowrun._errors import UsageError

__all__ = ["register", "worker_command"]


def register(subparsers: Any, name: str, summary: str) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=summary,
        description="Start a Celery worker that runs flows and data rows sent by `flowrun run --broker`. "
        "Aliases and secrets come from this machine, never from the broker.",
        epilog="Example: flowrun worker --broker redis://127.0.0.1:6379/0 --concurrency 4 --aliases aliases "
        "(needs pip install 'flowrun[celery]'; see docs/scale.md)",
    )
    parser.add_argument("--broker", metavar="URL", required=True, help="the Redis broker, redis://host:6379/0")
    parser.add_argument("--concurrency", metavar="N", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: the number of CPUs)")
    add_aliases_option(parser)
    parser.add_argument("--visibility-timeout", metavar="SECONDS", type=float, default=3600.0,
                        help="redeliver a task not acknowledged after this long (a worker that vanished); must "
                        "exceed the longest data row (default 3600)")
    parser.add_argument("--limits-namespace", metavar="NAME", default="default",
                        help="the namespace of the aliases' shared rate and concurrency limits in Redis: workers "
                        "with the same one share them (default: default)")
    parser.add_argument("--loglevel", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="Celery's log level (default WARNING)")
    parser.set_defaults(handler=worker_command)


def worker_command(args: argparse.Namespace, console: Console) -> int:
    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    if args.visibility_timeout <= 0:
        raise UsageError("--visibility-timeout must be a positive number of seconds")
    try:
        from flowrun.celery._app import create_app
    except ImportError:
        raise UsageError("flowrun worker needs Celery and redis, which are not installed",
                         hint="pip install 'flowrun[celery]'") from None
    from flowrun._registry import Registry

    aliases = aliases_dir(args).resolve()
    Registry.load(aliases)  # a broken alias directory stops here with its own error (exit 2)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", args.limits_namespace):
        raise UsageError(f"--limits-namespace must be letters, digits, '_', '.' or '-'; got {args.limits_namespace!r}")
    app = create_app(args.broker, aliases=aliases, visibility_timeout_s=args.visibility_timeout,
                     limits_namespace=args.limits_namespace)
    argv = ["worker", f"--concurrency={args.concurrency}", f"--loglevel={args.loglevel}", "--without-gossip",
            "--without-mingle", f"--hostname=flowrun-{os.getpid()}@%h", "--queues=flowrun"]
    try:
        app.worker_main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0) if isinstance(exit_.code, int | None) else 1
    return 0
