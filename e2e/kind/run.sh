#!/usr/bin/env bash
# End-to-end test of the Helm chart on a kind cluster: creates the cluster
# (e2e/kind/kind.yaml), builds the image and loads it into the nodes,
# installs helm/memquorum, runs the e2e checks as a Kubernetes Job
# (e2e/kind/job.yaml), collects logs and deletes the cluster.
#
# Runs where kind runs: Docker (or podman) able to start kind's node image,
# plus kind, kubectl and helm (scripts/install-k8s-tools.sh brings helm).
# It cannot run on the project's own machines, which have no node image.
#
#   e2e/kind/run.sh                       # classic sidecar, DNS discovery
#   SIDECAR_NATIVE=true e2e/kind/run.sh   # the agent as a native sidecar
#   DISCOVERY=static e2e/kind/run.sh      # MEMQUORUM_PEERS with the pods' DNS names
#   KEEP_CLUSTER=1 e2e/kind/run.sh        # leave the cluster up afterwards
#
# Logs go to run-logs/kind/ (KIND_LOGS to change). Exit status: 0 when the
# Job succeeded, 1 when a step or the Job failed, 2 when a tool is missing.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$root/e2e/kind
cluster=${KIND_CLUSTER:-memquorum-e2e}
ns=memquorum          # job.yaml and the agents' DNS names assume these two
release=memquorum
image=memquorum:e2e   # values-e2e.yaml and job.yaml name this tag
native=${SIDECAR_NATIVE:-false}
discovery=${DISCOVERY:-dns}
replicas=3            # job.yaml's REPLICAS
logs=${KIND_LOGS:-$root/run-logs/kind}
timeout=${E2E_TIMEOUT:-300s}

say() { echo "kind-e2e: $*"; }
for t in docker kind kubectl helm; do
  command -v "$t" >/dev/null || { say "$t is not installed"; exit 2; }
done
case $discovery in dns | static) ;; *) say "DISCOVERY must be dns or static"; exit 2 ;; esac

ctx=kind-$cluster
kc() { kubectl --context "$ctx" "$@"; }

collect() {
  mkdir -p "$logs"
  say "collecting logs in $logs"
  kc -n "$ns" get all,pdb,endpoints -o wide >"$logs/objects.txt" 2>&1 || true
  kc -n "$ns" get events --sort-by=.lastTimestamp >"$logs/events.txt" 2>&1 || true
  kc -n "$ns" describe pods >"$logs/pods-describe.txt" 2>&1 || true
  kc -n "$ns" logs job/memquorum-e2e >"$logs/job.log" 2>&1 || true
  local pod
  for pod in $(kc -n "$ns" get pods -l app.kubernetes.io/instance=$release -o name 2>/dev/null); do
    kc -n "$ns" logs "$pod" -c memquorum >"$logs/${pod#pod/}.memquorum.log" 2>&1 || true
    kc -n "$ns" logs "$pod" -c memquorum --previous >"$logs/${pod#pod/}.memquorum.previous.log" 2>/dev/null || true
    kc -n "$ns" logs "$pod" -c app >"$logs/${pod#pod/}.app.log" 2>&1 || true
  done
  kind export logs "$logs/kind" --name "$cluster" >/dev/null 2>&1 || true
}

teardown() {
  local rc=$?
  collect
  if [[ ${KEEP_CLUSTER:-0} == 1 ]]; then
    say "cluster $cluster kept (kind delete cluster --name $cluster)"
  else
    kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
  fi
  exit "$rc"
}

say "creating cluster $cluster"
kind create cluster --name "$cluster" --config "$here/kind.yaml" --wait 180s
trap teardown EXIT

say "building $image"
docker build -t "$image" "$root"
kind load docker-image "$image" --name "$cluster"

# The namespace enforces the restricted Pod Security profile, as
# k8s/namespace.yaml does: the agent, the app and the Job must all pass it.
kc create namespace "$ns"
kc label namespace "$ns" pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/warn=restricted

extra=()
if [[ $discovery == static ]]; then
  extra+=(--set dnsDiscovery.enabled=false --set staticPeers=true)
fi

say "installing the chart (sidecar.native=$native, discovery=$discovery)"
helm --kube-context "$ctx" install "$release" "$root/helm/memquorum" -n "$ns" \
  -f "$here/values-e2e.yaml" --set replicas=$replicas --set sidecar.native="$native" \
  "${extra[@]}" --wait --timeout "$timeout"
kc -n "$ns" rollout status statefulset/$release --timeout "$timeout"

say "running the e2e Job"
kc apply -f "$here/job.yaml"
if kc -n "$ns" wait --for=condition=complete job/memquorum-e2e --timeout "$timeout"; then
  kc -n "$ns" logs job/memquorum-e2e | tail -n 1
  say "passed"
else
  kc -n "$ns" logs job/memquorum-e2e || true
  say "FAILED"
  exit 1
fi
