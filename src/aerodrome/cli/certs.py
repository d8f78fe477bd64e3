"""`aerodrome certs`: an app's own hostnames, with certificates from aerodrome's CA (Fly's ACME form)."""

from __future__ import annotations

from typing import Annotated

import typer

from aerodrome.cli.machines import AppOption
from aerodrome.cli.session import Session, api_command
from aerodrome.client import Certificate

app = typer.Typer(help="Certificates for an app's own hostnames.", no_args_is_help=True)

Hostname = Annotated[str, typer.Argument(help="The hostname, e.g. www.example.com.")]


def _show(session: Session, cert: Certificate) -> None:
    session.console.print(f"[bold]{cert.hostname}[/bold]  {cert.status}  configured: {cert.configured}")
    session.table(
        ("SOURCE", "STATUS", "ISSUER", "EXPIRES"),
        [(c.source, c.status, c.issuer, c.expires_at) for c in cert.certificates],
    )
    for error in cert.validation_errors:
        session.console.print(f"[red]{error.code}[/red]: {error.message}")


@api_command(app, "add")
def add(session: Session, hostname: Hostname, app_name: AppOption) -> None:
    """Add a hostname to the app, with a certificate from aerodrome's CA."""
    cert = session.client.add_certificate(app_name, hostname)
    session.emit(cert, lambda: _show(session, cert))


@api_command(app, "list")
def list_(session: Session, app_name: AppOption) -> None:
    """The app's hostnames."""
    certs = session.client.list_certificates(app_name)
    session.emit(
        certs,
        lambda: session.table(
            ("HOSTNAME", "STATUS", "CUSTOM", "CREATED"),
            [(c.hostname, c.status, c.has_custom_certificate, c.created_at) for c in certs],
            empty="no certificates",
        ),
    )


@api_command(app, "show")
def show(session: Session, hostname: Hostname, app_name: AppOption) -> None:
    """A hostname's certificates and what it needs in DNS."""
    cert = session.client.get_certificate(app_name, hostname)
    session.emit(cert, lambda: _show(session, cert))


@api_command(app, "check")
def check(session: Session, hostname: Hostname, app_name: AppOption) -> None:
    """Ask the edge for the hostname over TLS: does it route to the app with the stored certificate?"""
    cert = session.client.check_certificate(app_name, hostname)
    session.emit(cert, lambda: _show(session, cert))


@api_command(app, "remove")
def remove(session: Session, hostname: Hostname, app_name: AppOption) -> None:
    """Remove the hostname and its certificates: it stops routing to the app."""
    session.client.remove_certificate(app_name, hostname)
    session.emit({"removed": hostname}, f"removed {hostname}")
