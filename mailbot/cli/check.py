"""`mailbot check`: config, database, IMAP and SMTP, one line per finding."""

from __future__ import annotations

import typer

from mailbot.cli.base import app, config_path, out


@app.command()
def check() -> None:
    """Validate config, database schema, IMAP and SMTP login and TLS; exit 1 on any problem."""
    from mailbot.service.checks import run_checks

    findings = run_checks(config_path())
    for f in findings:
        out.print(f.line(), highlight=False, markup=False, soft_wrap=True)
    if not all(f.ok for f in findings):
        raise typer.Exit(1)
