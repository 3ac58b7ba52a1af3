"""``takt demo``: the whole pipeline on one machine, stopped cleanly with Ctrl-C."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import click

from takt.devstack.stack import DevStack
from takt.logs import configure_logging

logger = logging.getLogger(__name__)


@click.command()
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".takt"),
    show_default=True,
    help="Where the demo keeps its broker, database and buffers.",
)
@click.option(
    "--duration",
    type=float,
    default=None,
    help="Stop by itself after this many seconds (default: run until Ctrl-C).",
)
def demo(state_dir: Path, duration: float | None) -> None:
    """Start broker and database on loopback and run every role on demo footage."""
    configure_logging()
    stack = DevStack(state_dir)
    stack.up()
    click.echo(f"broker:   {stack.mosquitto.host}:{stack.mosquitto.port}")
    click.echo(f"database: {stack.postgres.host}:{stack.postgres.port}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait(duration)
    except KeyboardInterrupt:
        pass
    finally:
        stack.down()
        click.echo("demo stopped")
