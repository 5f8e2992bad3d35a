"""Builds the MemQuorum image on the local Docker engine, once per set of inputs.

    python3 tests/image/imagebuild.py      build if needed; print the tag

With MQ_IMAGE_REPORT set, the build time goes into that JSON file too
(scripts/docker/test-image.sh prints it in its summary).

The tag is memquorum:test-KEY, where KEY hashes everything the build reads:
the Dockerfile, .dockerignore, every file the Dockerfile's COPY lines name
(read from the Dockerfile itself, so the two cannot drift), the base image's
id and the build arguments. An image with that tag was built from exactly
these inputs and is reused; the engine's layer cache makes a rebuild after a
small change cheap. The build stage is tagged too (memquorum:build-KEY):
the legacy builder would otherwise leave it behind untagged, some 600 MB per
change of the sources with nothing to tell whose it is. Older
memquorum:test-* and memquorum:build-* images are removed after a new one is
built, so the engine keeps one of each, not one per commit.

Build network: RUN steps need the Debian mirror. The default bridge is tried
first (a container on it reaches the mirror when the host NATs for it); if a
probe container cannot open a TCP connection to the mirror named in the base
image's apt sources, the build runs with --network host. MQ_DOCKER_BUILD_NETWORK
(host or default) skips the probe.

The legacy builder is used (DOCKER_BUILDKIT=0): Debian 12's docker.io has no
buildx, and newer clients without buildx fall back to it anyway.
"""
import fnmatch
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
REPOSITORY = "memquorum"
TAG_PREFIX = "test-"
BUILD_TAG_PREFIX = "build-"
BASE_DEFAULT = "debian:12-slim"
BUILD_TIMEOUT = 1800


class BuildError(Exception):
    pass


def docker(*args, timeout=120, check=True, env=None):
    r = subprocess.run(["docker", *args], capture_output=True, text=True,
                       timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise BuildError(f"docker {' '.join(args)}: exit {r.returncode}: "
                         f"{(r.stderr or r.stdout).strip()[-2000:]}")
    return r


def image_exists(ref):
    return docker("image", "inspect", ref, check=False).returncode == 0


# ---------------------------------------------------------------------------
# The inputs


def dockerfile_lines(dockerfile):
    """Logical lines: continuations joined, comments dropped."""
    out, cur = [], ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not cur and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        out.append(cur + line)
        cur = ""
    if cur:
        out.append(cur)
    return out


def copy_sources(dockerfile):
    """Paths in the build context that COPY/ADD lines name (not --from)."""
    srcs = []
    for line in dockerfile_lines(dockerfile):
        words = line.split()
        if not words or words[0].upper() not in ("COPY", "ADD"):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        if any(w.startswith("--from") for w in words[1:]):
            continue
        if args and args[0].startswith("["):
            args = json.loads(" ".join(args))
        srcs.extend(args[:-1])
    return srcs


def base_image(dockerfile):
    """The default of the ARG the first FROM names, or debian:12-slim."""
    for line in dockerfile_lines(dockerfile):
        words = line.split(None, 1)
        if words[0].upper() == "ARG" and len(words) > 1 and "=" in words[1]:
            name, _, value = words[1].partition("=")
            if name.strip() == "DEBIAN_IMAGE":
                return value.strip()
    return BASE_DEFAULT


def _ignore_patterns(repo):
    path = repo / ".dockerignore"
    if not path.exists():
        return []
    pats = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and not line.startswith("!"):
            pats.append(line.rstrip("/"))
    return pats


def _ignored(rel, pats):
    """True for paths .dockerignore surely excludes. Anything in doubt is
    kept: hashing a file Docker skips only costs a needless rebuild."""
    parts = rel.split("/")
    for i in range(1, len(parts) + 1):
        prefix = "/".join(parts[:i])
        for p in pats:
            if fnmatch.fnmatchcase(prefix, p):
                return True
            if p.startswith("**/") and fnmatch.fnmatchcase(parts[i - 1], p[3:]):
                return True
    return False


def input_files(repo=REPO, dockerfile=None):
    dockerfile = dockerfile or repo / "Dockerfile"
    pats = _ignore_patterns(repo)
    files = {dockerfile.relative_to(repo).as_posix(), ".dockerignore"}
    for src in copy_sources(dockerfile):
        top = repo / src
        if not top.exists():
            raise BuildError(f"the Dockerfile copies {src}, which does not exist")
        paths = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for p in paths:
            rel = p.relative_to(repo).as_posix()
            if not _ignored(rel, pats):
                files.add(rel)
    return sorted(f for f in files if (repo / f).exists())


def image_key(repo=REPO, build_args=()):
    dockerfile = repo / "Dockerfile"
    base = base_image(dockerfile)
    r = docker("image", "inspect", "-f", "{{.Id}}", base, check=False)
    if r.returncode != 0:
        raise BuildError(f"base image {base} is missing: run scripts/docker/base-image.sh")
    h = hashlib.sha256()
    h.update(f"base {r.stdout.strip()}\n".encode())
    for a in build_args:
        h.update(f"arg {a}\n".encode())
    for rel in input_files(repo, dockerfile):
        p = repo / rel
        h.update(f"file {rel} {oct(p.stat().st_mode & 0o111)}\n".encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


# ---------------------------------------------------------------------------
# The build


_PROBE = r"""
set -e
uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$uri" ] || uri=$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$uri" ] || exit 3
hp=${uri#*://}; hp=${hp%%/*}
host=${hp%:*}; port=80
case $uri in https:*) port=443 ;; esac
[ "$host" = "$hp" ] || port=${hp##*:}
timeout 10 bash -c "exec 3<>/dev/tcp/$host/$port"
"""


def build_network(base):
    """'default' when a container on the default bridge reaches the mirror,
    else 'host'."""
    choice = os.environ.get("MQ_DOCKER_BUILD_NETWORK", "").strip()
    if choice in ("host", "default"):
        return choice
    r = docker("run", "--rm", "--entrypoint", "bash", base, "-c", _PROBE,
               timeout=60, check=False)
    return "default" if r.returncode == 0 else "host"


def prune_old(keep):
    r = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", REPOSITORY, check=False)
    for ref in r.stdout.split():
        ours = (ref.startswith(f"{REPOSITORY}:{TAG_PREFIX}")
                or ref.startswith(f"{REPOSITORY}:{BUILD_TAG_PREFIX}"))
        if ours and ref not in keep:
            docker("image", "rm", ref, check=False)


def ensure_image(repo=REPO, log=None, build_args=()):
    """Returns (tag, seconds spent building or None if reused, network)."""
    key = image_key(repo, build_args)
    tag = f"{REPOSITORY}:{TAG_PREFIX}{key[:16]}"
    if image_exists(tag):
        return tag, None, None
    build_tag = f"{REPOSITORY}:{BUILD_TAG_PREFIX}{key[:16]}"
    base = base_image(repo / "Dockerfile")
    net = build_network(base)
    common = ["--network", net]
    for a in build_args:
        common += ["--build-arg", a]
    env = dict(os.environ, DOCKER_BUILDKIT="0")
    t0 = time.monotonic()
    out = open(log, "w") if log else subprocess.DEVNULL
    try:
        # The second build finds every step of the build stage in the cache.
        for cmd in (["docker", "build", *common, "--target", "build", "-t", build_tag, str(repo)],
                    ["docker", "build", *common, "-t", tag,
                     "--label", f"org.memquorum.inputs={key}", str(repo)]):
            r = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                               timeout=BUILD_TIMEOUT)
            if r.returncode != 0:
                break
    finally:
        if log:
            out.close()
    secs = time.monotonic() - t0
    if r.returncode != 0:
        tail = pathlib.Path(log).read_text()[-4000:] if log else ""
        raise BuildError(f"{' '.join(cmd[:-1])} . failed with {r.returncode} "
                         f"after {secs:.0f}s\n{tail}")
    prune_old({tag, build_tag})
    return tag, secs, net


def merge_report(path, figures):
    """Adds figures to the JSON object in `path` (created if missing)."""
    p = pathlib.Path(path)
    try:
        old = json.loads(p.read_text())
    except (OSError, ValueError):
        old = {}
    old.update(figures)
    p.write_text(json.dumps(old, indent=2) + "\n")


def main():
    log = os.environ.get("MQ_IMAGE_BUILD_LOG")
    try:
        tag, secs, net = ensure_image(log=log)
    except BuildError as e:
        print(f"imagebuild: {e}", file=sys.stderr)
        return 1
    size = docker("image", "inspect", "-f", "{{.Size}}", tag).stdout.strip()
    how = "reused" if secs is None else f"built in {secs:.1f}s (network {net})"
    if os.environ.get("MQ_IMAGE_REPORT") and secs is not None:
        merge_report(os.environ["MQ_IMAGE_REPORT"],
                     {"build_seconds": round(secs, 1), "build_network": net})
    print(f"imagebuild: {tag} {how}, {int(size) / 1e6:.1f} MB")
    print(tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
