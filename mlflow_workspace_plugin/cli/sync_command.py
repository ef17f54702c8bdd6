"""``mlflow-workspace sync``: send logged data still in local journals."""

from __future__ import annotations

import click

from mlflow_workspace_plugin import local_workspace


@click.command()
@click.option("--tracking-uri", default=None,
              help="only this azureml:// workspace (default: every workspace with journals)")
@click.option("--timeout", default=60.0, show_default=True, type=click.FloatRange(min=0),
              help="seconds to keep retrying an unreachable workspace before giving up")
def sync(tracking_uri: str | None, timeout: float) -> None:
    """Send logged data still in local journals (left by processes that ended before the
    workspace acknowledged it). Exits 1 if something could not be sent (it stays journaled)."""
    from mlflow_workspace_plugin.reliable.replay import sync as replay_sync

    reports = replay_sync(local_workspace.default_home(), tracking_uri, timeout)
    if not reports:
        click.echo("nothing to sync: no journals left by ended processes")
        return
    remaining = 0
    for directory, report in reports.items():
        for message in report.quarantined:
            click.echo(f"mlflow-workspace: {message}", err=True)
        click.echo(f"{directory}: {report.sent} sent, {len(report.rejected)} rejected, "
                   f"{report.remaining} still journaled ({report.journals} journal(s); "
                   f"{report.skipped} in use by running processes or the background sender, left to them)")
        for error in report.rejected:
            click.echo(f"  rejected: {error.message}", err=True)
        for problem in report.problems:
            click.echo(f"  problem: {problem}", err=True)
        if report.remaining and report.auth_error is None:
            click.echo(f"  not everything could be sent within --timeout {timeout:g} s; run "
                       "`mlflow-workspace sync` again later (nothing is lost).", err=True)
        remaining += report.remaining + len(report.problems)
    if remaining:
        raise SystemExit(1)


COMMANDS = (sync,)
