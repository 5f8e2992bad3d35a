"""What the runtime image holds: a numeric non-root user, a HEALTHCHECK that
can fail, the two binaries with every library they load, and nothing it does
not need (no compiler or build tools, no apt lists or caches, no docs or man
pages, no package outside allowed-packages.txt).

One container of the image (entrypoint bash, the image's own user) lists
everything at once; each test reads its part."""
import json
import re

import pytest

from conftest import HERE, UID, docker

# A section per check; "== name" starts one.
INVENTORY = r"""
echo "== id"; id
echo "== usr-local-bin"; ls -A /usr/local/bin
echo "== packages"; dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n'
echo "== tools"
for t in cc gcc g++ c++ cpp clang ld as make cmake ninja protoc pkg-config strip \
         curl wget apt-file; do command -v "$t" || true; done
echo "== apt-files"
find /var/lib/apt/lists -type f ! -name lock 2>/dev/null
find /var/cache/apt -type f 2>/dev/null
ls -d /var/log/apt /var/log/dpkg.log /var/log/alternatives.log 2>/dev/null
echo "== doc-files"
find /usr/share/doc -type f ! -name copyright 2>/dev/null
find /usr/share/man /usr/share/info /usr/share/groff /usr/share/lintian \
     /usr/share/locale -type f 2>/dev/null
echo "== ldd"; ldd /usr/local/bin/memquorum /usr/local/bin/mqctl
echo "== end"
"""

# Package names that would mean a toolchain or build input in the image.
BUILD_PACKAGE = re.compile(
    r"^(gcc(-\d+)?|g\+\+(-\d+)?|cpp(-\d+)?|clang.*|binutils.*|make|cmake.*|"
    r"ninja-build|pkg-config|pkgconf.*|build-essential|libc6-dev|linux-libc-dev|"
    r".*-dev|protobuf-compiler.*|protobuf-c-compiler|libgcc-\d+-dev|"
    r"libstdc\+\+-\d+-dev|curl|wget)$")


@pytest.fixture(scope="module")
def inventory(image):
    r = docker("run", "--rm", "--entrypoint", "bash", image, "-c", INVENTORY, timeout=60)
    sections, cur = {}, None
    for line in r.stdout.splitlines():
        if line.startswith("== "):
            cur = line[3:].strip()
            sections[cur] = []
        elif cur is not None and line.strip():
            sections[cur].append(line.rstrip())
    assert "end" in sections, f"inventory script did not finish:\n{r.stdout}\n{r.stderr}"
    return sections


@pytest.fixture(scope="module")
def config(image):
    return json.loads(docker("image", "inspect", "-f", "{{json .Config}}", image).stdout)


def allowed_packages():
    names = set()
    for line in (HERE / "allowed-packages.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(line)
    return names


def test_user_is_numeric_and_not_root(config, inventory):
    assert config["User"] == f"{UID}:{UID}", (
        f"USER is {config['User']!r}; Kubernetes' runAsNonRoot needs a numeric "
        f"non-zero uid, expected {UID}:{UID}")
    ident = inventory["id"][0]
    assert ident.startswith(f"uid={UID}(") and f" gid={UID}(" in ident, ident


def test_healthcheck_is_declared_without_curl(config, inventory):
    hc = config.get("Healthcheck") or {}
    test = hc.get("Test") or []
    assert test and test[0] in ("CMD", "CMD-SHELL"), f"no HEALTHCHECK: {hc}"
    assert "/healthz" in " ".join(test), f"HEALTHCHECK does not ask /healthz: {test}"
    assert hc.get("Interval", 0) > 0 and hc.get("Timeout", 0) > 0, hc
    assert not any("curl" in t for t in inventory["tools"]), inventory["tools"]


def test_healthcheck_fails_when_no_agent_answers(image, config):
    """The check must be able to fail: run it where no agent listens."""
    test = config["Healthcheck"]["Test"]
    if test[0] == "CMD":
        entry, args = test[1], test[2:]
    else:
        entry, args = "/bin/sh", ["-c", test[1]]
    r = docker("run", "--rm", "--entrypoint", entry, image, *args, check=False, timeout=60)
    assert r.returncode != 0, (
        f"the HEALTHCHECK command succeeded with no agent running: {test}")


def test_usr_local_bin_holds_the_two_binaries(inventory):
    assert sorted(inventory["usr-local-bin"]) == ["memquorum", "mqctl"], (
        f"/usr/local/bin holds {inventory['usr-local-bin']}")


def test_every_library_is_found(inventory):
    missing = [l for l in inventory["ldd"] if "not found" in l]
    assert not missing, f"ldd: {missing}"


def test_no_compiler_or_build_tools(inventory):
    assert not inventory["tools"], f"build or download tools on PATH: {inventory['tools']}"
    installed = [l.split()[-1] for l in inventory["packages"] if l.startswith("ii")]
    build = sorted(p for p in installed if BUILD_PACKAGE.match(p.split(":")[0]))
    assert not build, f"build-time packages installed: {build}"


def test_installed_packages_are_allowed(inventory):
    rows = [l.split() for l in inventory["packages"]]
    half = [r for r in rows if r[0] != "ii"]
    assert not half, f"packages not cleanly installed (dpkg status): {half}"
    installed = {r[-1].split(":")[0] for r in rows}
    extra = sorted(installed - allowed_packages())
    assert not extra, (
        f"packages outside tests/image/allowed-packages.txt: {extra} "
        "(add them there, with the reason, if the image needs them)")
    for need in ("libgrpc29", "libprotobuf-c1", "libwebsockets17", "libmimalloc2.0"):
        assert need in installed, f"runtime library package {need} is not installed"


def test_no_apt_lists_caches_or_logs(inventory):
    assert not inventory["apt-files"], f"apt leftovers: {inventory['apt-files'][:20]}"


def test_no_docs_or_man_pages(inventory):
    files = inventory["doc-files"]
    assert not files, (f"{len(files)} doc, man, info or locale files "
                       f"(copyright notices are allowed): {files[:20]}")
