"""The ``sanyu`` command line: transcribe, batch, serve, eval, models.

One spelling everywhere: ``-o/--output`` and ``-f/--format`` on ``transcribe`` and ``batch``
(which list and name their INPUTS the same way, `sanyu.inputs`), the model and transcription
options on every command that transcribes, ``--log-level`` on each, and every option also read
from ``SANYU_<COMMAND>_<OPTION>`` or ``SANYU_<OPTION>`` (shown in ``--help``).
"""

from __future__ import annotations

import click

from sanyu import runtime
from sanyu.cli.batch import batch_command
from sanyu.cli.evaluate import eval_command
from sanyu.cli.models import models_group
from sanyu.cli.options import ENV_PREFIX
from sanyu.cli.serve import serve_command
from sanyu.cli.transcribe import transcribe_command


@click.group(context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": ENV_PREFIX})
@click.version_option(package_name="sanyu")
def main() -> None:
    """Sanyu (三語): transcripts of Cantonese, Mandarin and English meetings, with speakers."""
    # Before any command loads Ray or pyannote; the loopback defaults of a Ray started here
    # follow in sanyu.cluster, and a value set in the environment wins.
    runtime.set_defaults(runtime.TELEMETRY_OFF)


for command in (transcribe_command, batch_command, serve_command, eval_command, models_group):
    main.add_command(command)

__all__ = ["main"]
