"""`aerodrome images push|import|list|rm`: an app's images in the embedded registry, moved by skopeo.

Each command logs in with the organisation token as password (in a temporary 0600 auth file, never on the
command line); skopeo then takes the registry's token flow itself: the registry's 401 names the API's
`/v2/token` as realm, which grants the app's organisation pull, push and delete on `<app>` and `<app>/…`. The app
is asked for first, so another organisation's (or no) app is a 404 (exit 3) rather than the registry's 401.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated

import typer

from aerodrome.cli.images import app

__all__ = ["app"]
from aerodrome.cli.machines import AppOption
from aerodrome.cli.progress import CopyProgress, shown
from aerodrome.cli.session import Session, UsageError, api_command
from aerodrome.cli.skopeo import blob_count, skopeo
from aerodrome.client import NotFoundError

TRANSPORTS = ("oci:", "oci-archive:", "docker-archive:", "dir:", "docker://")

RegistryOption = Annotated[
    str, typer.Option("--registry", envvar="AERODROME_REGISTRY", help="The embedded registry (serve's --registry).")
]
RepositoryOption = Annotated[str, typer.Option("--repository", help="<app>/NAME instead of <app> itself.")]
Tag = Annotated[str, typer.Option("--tag", "-t", help="The tag to write.")]


def repository(app_name: str, suffix: str) -> str:
    return f"{app_name}/{suffix.strip('/')}" if suffix else app_name


def local_source(value: str) -> str:
    """skopeo's name for a local image: as given with a transport; a directory is an OCI layout; a tar file an
    `oci-archive` when it holds `oci-layout`, else a `docker-archive` (`docker save`'s)."""
    if value.startswith(TRANSPORTS):
        return value
    path = Path(value)
    if path.is_dir():
        return f"oci:{path}"
    if not path.is_file():
        raise UsageError(f"{value}: no such OCI layout directory or image archive")
    try:
        with tarfile.open(path) as archive:
            names = {name.lstrip("./") for name in archive.getnames()}
    except (tarfile.TarError, OSError) as exc:
        raise UsageError(f"{value}: not a tar archive ({exc})") from None
    return f"{'oci-archive' if 'oci-layout' in names else 'docker-archive'}:{path}"


def loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0].strip("[]") if host.count(":") <= 1 or host.startswith("[") else host
    return name in ("localhost", "::1") or name.startswith("127.")


@contextlib.contextmanager
def authfile(registry: str, token: str) -> Iterator[str]:
    """containers-auth.json for `registry`, with the token as password: 0600, removed afterwards."""
    auths = {"auths": {registry: {"auth": base64.b64encode(f"x:{token}".encode()).decode()}}}
    fd, path = tempfile.mkstemp(prefix="aerodrome-auth-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(auths, out)
        yield path
    finally:
        os.unlink(path)


def copy(session: Session, source: str, reference: str, extra: Sequence[str], description: str) -> str:
    """Copy to `docker://reference`; the manifest digest written."""
    with tempfile.TemporaryDirectory(prefix="aerodrome-push-") as scratch:
        digestfile = Path(scratch) / "digest"
        argv = [
            "copy",
            "--dest-tls-verify=false",
            f"--digestfile={digestfile}",
            *extra,
            source,
            f"docker://{reference}",
        ]
        enabled = shown(session.status_console, session.json)
        blobs = blob_count(source, [a.replace("--src-", "--") for a in extra if a.startswith("--src-")])
        with CopyProgress(session.status_console, enabled, description, blobs) as progress:
            skopeo(argv, progress)
        return digestfile.read_text().strip()


@api_command(app, "push")
def push(
    session: Session,
    source: Annotated[str, typer.Argument(help="An OCI layout directory, an OCI or docker archive (.tar).")],
    app_name: AppOption,
    registry: RegistryOption = "127.0.0.1:5000",
    tag: Tag = "latest",
    suffix: RepositoryOption = "",
) -> None:
    """Push a local image to the app's repository, `<registry>/<app>:<tag>`, for its machines."""
    session.client.get_app(app_name)
    name = local_source(source)
    reference = f"{registry}/{repository(app_name, suffix)}:{tag}"
    with authfile(registry, session.credentials.token) as auth:
        digest = copy(session, name, reference, [f"--dest-authfile={auth}"], f"pushing {reference}")
    session.emit({"image": reference, "digest": digest, "source": name}, reference)


@api_command(app, "import")
def import_(
    session: Session,
    source: Annotated[str, typer.Argument(help="An image in a registry: HOST/NAME:TAG (a mirror's, an allowed one).")],
    app_name: AppOption,
    registry: RegistryOption = "127.0.0.1:5000",
    tag: Annotated[str, typer.Option("--tag", "-t", help="The tag to write (else the source's).")] = "",
    suffix: RepositoryOption = "",
) -> None:
    """Copy an image from another registry (or another repository of this one) into the app's repository."""
    session.client.get_app(app_name)
    name = source.removeprefix("docker://")
    last = name.rsplit("/", 1)[-1]
    source_tag = last.split(":", 1)[1] if ":" in last and "@" not in last else "latest"
    reference = f"{registry}/{repository(app_name, suffix)}:{tag or source_tag}"
    source_host = name.split("/", 1)[0]
    extra = [] if not loopback(source_host) else ["--src-tls-verify=false"]
    with authfile(registry, session.credentials.token) as auth:
        extra += [f"--dest-authfile={auth}"] + ([f"--src-authfile={auth}"] if source_host == registry else [])
        digest = copy(session, f"docker://{name}", reference, extra, f"importing {name}")
    session.emit({"image": reference, "digest": digest, "source": name}, reference)


def _tls(registry: str) -> list[str]:
    return ["--tls-verify=false"] if loopback(registry) else []


@api_command(app, "list")
def list_(
    session: Session, app_name: AppOption, registry: RegistryOption = "127.0.0.1:5000", suffix: RepositoryOption = ""
) -> None:
    """The tags of the app's repository, each with its digest."""
    session.client.get_app(app_name)
    repo = f"{registry}/{repository(app_name, suffix)}"
    with authfile(registry, session.credentials.token) as auth:
        try:
            tags = json.loads(skopeo(["list-tags", *_tls(registry), f"--authfile={auth}", f"docker://{repo}"]))
        except NotFoundError:
            tags = {}
        images = []
        for tag in sorted(tags.get("Tags") or []):
            argv = ["inspect", *_tls(registry), f"--authfile={auth}", "--no-tags", "--format", "{{.Digest}}"]
            images.append({"image": f"{repo}:{tag}", "tag": tag, "digest": skopeo([*argv, f"docker://{repo}:{tag}"])})
    for image in images:
        image["digest"] = image["digest"].strip()
    session.emit(
        images,
        lambda: session.table(("IMAGE", "TAG", "DIGEST"), [(i["image"], i["tag"], i["digest"]) for i in images],
                              empty="no images"),
    )  # fmt: skip


@api_command(app, "rm")
def rm(
    session: Session,
    tag: Annotated[str, typer.Argument(help="The tag (or sha256:… digest) to delete.")],
    app_name: AppOption,
    registry: RegistryOption = "127.0.0.1:5000",
    suffix: RepositoryOption = "",
) -> None:
    """Delete an image of the app's repository: its manifest, with every tag of it (machines made from it keep
    running; its layers go at the registry's next garbage collection)."""
    session.client.get_app(app_name)
    separator = "@" if tag.startswith("sha256:") else ":"
    reference = f"{registry}/{repository(app_name, suffix)}{separator}{tag}"
    with authfile(registry, session.credentials.token) as auth:
        skopeo(["delete", *_tls(registry), f"--authfile={auth}", f"docker://{reference}"])
    session.emit({"deleted": reference}, f"deleted {reference}")
