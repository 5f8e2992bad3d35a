#!/usr/bin/env bash
# Installs the tools k8s/validate.sh runs, into one cache folder, and prints
# that folder's bin/ (the last line of output):
#
#   helm v4.3.2   built from its Go module (go install)
#   promtool      extracted from Debian's prometheus package (only the binary:
#                 installing the package would also start a Prometheus server
#                 on port 9090, the agent's HTTP port, where an init system runs)
#   ShellCheck    from Debian's shellcheck package
#   mqcheck       k8s/check, the strict Kubernetes API type checker
#
# Idempotent: each tool is checked first, so a warm run takes about a second.
# mqcheck is rebuilt only when a file of k8s/check changed (the build is keyed
# by their sha256). Needs go (1.26+) and apt-get; run as root for apt.
#
#   scripts/install-k8s-tools.sh            # install what is missing
#   MQ_K8S_TOOLS=/opt/mq-tools scripts/install-k8s-tools.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HELM_VERSION=v4.3.2
tools=${MQ_K8S_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/memquorum/k8s-tools}
bin=$tools/bin
mkdir -p "$bin"

say() { echo "install-k8s-tools: $*" >&2; }
die() { say "$*"; exit 1; }

command -v go >/dev/null || die "go is not installed (the Go toolchain builds helm and mqcheck)"

# ---- helm -------------------------------------------------------------------
# A go-installed helm reports only "v4.3" itself (its release builds stamp the
# full version with -ldflags); the module version is in the build info.
helm_version() {
  [[ -x $bin/helm ]] && go version -m "$bin/helm" | awk '$1 == "mod" && $2 == "helm.sh/helm/v4" { print $3 }'
}
if [[ $(helm_version) != "$HELM_VERSION" ]]; then
  say "building helm $HELM_VERSION (go install; a few minutes when the module cache is cold)"
  GOBIN=$bin GOFLAGS=-mod=mod go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
fi

# ---- apt: refresh the package lists once, only when something is missing -----
apt_ready=0
apt_prepare() {
  ((apt_ready)) && return
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt_ready=1
}

# ---- promtool ---------------------------------------------------------------
if ! "$bin/promtool" --version >/dev/null 2>&1; then
  say "extracting promtool from Debian's prometheus package"
  apt_prepare
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # apt fetches as its own user _apt when it can write the folder.
  chown _apt "$work" 2>/dev/null || true
  (cd "$work" && apt-get download -qq prometheus >/dev/null)
  dpkg-deb -x "$work"/prometheus_*.deb "$work/x"
  install -m 0755 "$work/x/usr/bin/promtool" "$bin/promtool"
  rm -rf "$work"
  trap - EXIT
fi

# ---- shellcheck -------------------------------------------------------------
if ! command -v shellcheck >/dev/null; then
  say "installing shellcheck"
  apt_prepare
  apt-get install -y -qq --no-install-recommends shellcheck >/dev/null
fi
ln -sf "$(command -v shellcheck)" "$bin/shellcheck"

# ---- mqcheck ----------------------------------------------------------------
src=$root/k8s/check
key=$(cd "$src" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) \
        -not -path './testdata/*' | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1)
if [[ ! -x $bin/mqcheck || $(cat "$tools/mqcheck.key" 2>/dev/null) != "$key" ]]; then
  say "building mqcheck (k8s/check)"
  # -mod=readonly: the committed go.sum must already pin every module.
  (cd "$src" && GOFLAGS=-mod=readonly go build -trimpath -o "$bin/mqcheck" .)
  echo "$key" >"$tools/mqcheck.key"
fi

say "helm $(helm_version), $("$bin/promtool" --version 2>&1 | head -1)," \
  "shellcheck $(shellcheck --version | sed -n 's/^version: //p'), mqcheck $key"
echo "$bin"
