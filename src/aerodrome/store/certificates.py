"""Queries for custom hostnames and their certificates. A hostname belongs to one app at a time."""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from aerodrome.core import AlreadyExistsError, Certificate
from aerodrome.store import mapping
from aerodrome.store.schema import certificates


def _taken(hostname: str, app_name: str) -> AlreadyExistsError:
    return AlreadyExistsError(f"hostname {hostname!r} already belongs to app {app_name!r}")


def put_certificate(conn: Connection, certificate: Certificate) -> None:
    owner = conn.execute(
        select(certificates.c.app_name).where(certificates.c.hostname == certificate.hostname)
    ).scalar()
    row = mapping.certificate_to_row(certificate)
    if owner is None:
        try:
            conn.execute(insert(certificates).values(**row))
        except IntegrityError as exc:  # a concurrent writer on an engine that does not serialise (PostgreSQL)
            raise _taken(certificate.hostname, "another app") from exc
        return
    if owner != certificate.app_name:
        raise _taken(certificate.hostname, owner)
    # The app filter makes the update a no-op if the hostname changed hands since the read above.
    changed = conn.execute(
        update(certificates)
        .where(certificates.c.hostname == certificate.hostname, certificates.c.app_name == certificate.app_name)
        .values(**row)
    )
    if changed.rowcount == 0:
        raise _taken(certificate.hostname, "another app")


def get_certificate(conn: Connection, hostname: str) -> Certificate | None:
    row = conn.execute(select(certificates).where(certificates.c.hostname == hostname)).first()
    return None if row is None else mapping.certificate_from_row(row)


def list_certificates(conn: Connection, app_name: str | None) -> list[Certificate]:
    query = select(certificates).order_by(certificates.c.hostname)
    if app_name is not None:
        query = query.where(certificates.c.app_name == app_name)
    return [mapping.certificate_from_row(row) for row in conn.execute(query)]


def delete_certificate(conn: Connection, hostname: str) -> None:
    conn.execute(delete(certificates).where(certificates.c.hostname == hostname))
