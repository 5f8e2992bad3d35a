#!/usr/bin/env bash
# Checks the deployment files with the real tools:
#   helm v4.3.2    lint --strict and template of helm/memquorum for several
#                  value sets, and renders the chart must refuse
#   mqcheck        every rendered object, k8s/*.yaml and e2e/kind/*.yaml
#                  decoded strictly into the Kubernetes API types (k8s/check),
#                  plus MemQuorum's own rules; its negative tests (go test)
#   promtool       config/prometheus: the Prometheus config and alert rules
#   ShellCheck     every script in scripts/, k8s/, e2e/ and the e2e Job's
#   python3        what no tool covers (k8s/validate_files.py): k8s/ equals
#                  the chart's render, value sets render what they promise,
#                  docker-compose.yml, the Grafana dashboard, the Dockerfile
#
# A missing tool is a failure, not a skip: scripts/install-k8s-tools.sh
# installs them all (scripts/test.sh runs it first).
#
#   bash scripts/install-k8s-tools.sh && bash k8s/validate.sh
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 2
tools=${MQ_K8S_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/memquorum/k8s-tools}
export PATH="$tools/bin:$PATH"
HELM_VERSION=v4.3.2
NS=memquorum
# Env names the chart sets before the agent reads them: a warning, not an
# error (the agent warns about and ignores an unknown MEMQUORUM_* variable).

failed=0
t0=$SECONDS
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ok()  { echo "validate: ok    $*"; }
bad() { echo "validate: FAIL  $*" >&2; failed=1; }
show() { sed 's/^/    /' "$1" >&2; }

# ---- the tools ---------------------------------------------------------------
missing=()
helm_v=$(command -v helm >/dev/null && command -v go >/dev/null &&
  go version -m "$(command -v helm)" 2>/dev/null | awk '$1 == "mod" && $2 == "helm.sh/helm/v4" { print $3 }')
[[ $helm_v == "$HELM_VERSION" ]] || missing+=("helm $HELM_VERSION (found: ${helm_v:-none})")
command -v promtool >/dev/null || missing+=(promtool)
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v mqcheck >/dev/null || missing+=(mqcheck)
python3 -c 'import yaml' 2>/dev/null || missing+=("python3 with PyYAML")
if ((${#missing[@]})); then
  for m in "${missing[@]}"; do bad "missing tool: $m"; done
  echo "validate: run scripts/install-k8s-tools.sh first (it installs them into $tools)" >&2
  exit 1
fi
# mqcheck must be built from the k8s/check in this tree.
key=$(cd k8s/check && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) \
        -not -path './testdata/*' | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1)
if [[ $(cat "$tools/mqcheck.key" 2>/dev/null) != "$key" ]]; then
  bad "mqcheck in $tools is older than k8s/check: run scripts/install-k8s-tools.sh"
  exit 1
fi
ok "tools: helm $helm_v, $(promtool --version 2>&1 | head -1 | cut -d' ' -f1-3), shellcheck $(shellcheck --version | sed -n 's/^version: //p'), mqcheck"

mqcheck_args=(-namespace "$NS" -agent-config agent/config/config.c)

# ---- mqcheck's own negative tests ---------------------------------------------
# The bad fixtures are made from good/minimal.yaml, one change each.
python3 k8s/check/testdata/make-bad.py >"$tmp/make-bad.log" 2>&1 || { show "$tmp/make-bad.log"; bad "k8s/check/testdata/make-bad.py"; }
if (cd k8s/check && GOFLAGS=-mod=readonly go test -count=1 ./...) >"$tmp/gotest.log" 2>&1; then
  ok "mqcheck tests: $(find k8s/check/testdata/bad -name '*.yaml' | wc -l) bad fixtures rejected with their messages, good ones pass"
else
  show "$tmp/gotest.log"; bad "go test k8s/check"
fi

# ---- helm: value sets ---------------------------------------------------------
# name | helm flags | expectations (Python expressions over the render r, see
# k8s/validate_files.py). Every set is linted, rendered and checked.
CRDS="--api-versions monitoring.coreos.com/v1/ServiceMonitor --api-versions monitoring.coreos.com/v1/PrometheusRule"
sets=(
  "defaults||r.pod()['terminationGracePeriodSeconds'] == 40 and r.env('MEMQUORUM_DRAIN_TIMEOUT') == '30s' and not r.native() and r.one('PodDisruptionBudget')['spec'] == {'minAvailable': 2, 'selector': r.one('PodDisruptionBudget')['spec']['selector']} and r.env('MEMQUORUM_DNS_NAME') == 'memquorum-peers.memquorum.svc.cluster.local' and r.env('MEMQUORUM_FEED_TOKEN') == 'secret:memquorum-feed:token' and not r.kinds('ServiceMonitor') and 'preferredDuringSchedulingIgnoredDuringExecution' in r.pod()['affinity']['podAntiAffinity']"
  "with-prometheus-operator|$CRDS --set grafanaDashboard.enabled=true --set feed.token.create=true --set feed.token.value=t0ken|len(r.kinds('ServiceMonitor')) == 1 and len(r.kinds('PrometheusRule')) == 1 and len(r.kinds('ConfigMap')) == 2 and r.secret('memquorum-feed', 'token') == 't0ken'"
  "nacos-secret|--set nacos.enabled=true --set nacos.namespace=prod --set nacos.group=MQ --set nacos.auth.enabled=true --set nacos.auth.username=mq --set nacos.auth.password=s3cret|r.env('NACOS_SERVER_ADDR') == 'nacos.nacos.svc.cluster.local:8848' and r.env('NACOS_NAMESPACE') == 'prod' and r.env('NACOS_GROUP') == 'MQ' and r.env('NACOS_USERNAME') == 'secret:memquorum-nacos:username' and r.env('NACOS_PASSWORD') == 'secret:memquorum-nacos:password' and r.secret('memquorum-nacos', 'password') == 's3cret' and r.env('MEMQUORUM_DNS_NAME') is not None"
  "nacos-existing-secret|--set nacos.enabled=true --set nacos.auth.enabled=true --set nacos.auth.existingSecret=nacos-creds --set dnsDiscovery.enabled=false|r.env('NACOS_PASSWORD') == 'secret:nacos-creds:password' and not r.kinds('Secret') and r.env('MEMQUORUM_DNS_NAME') is None"
  "dns-only|--set nacos.enabled=false --set dnsDiscovery.clusterDomain=k8s.internal|r.env('MEMQUORUM_DNS_NAME') == 'memquorum-peers.memquorum.svc.k8s.internal' and r.env('NACOS_SERVER_ADDR') is None and r.env('MEMQUORUM_PEERS') is None"
  "static-peers|--set dnsDiscovery.enabled=false --set staticPeers=true|r.env('MEMQUORUM_PEERS').count('.memquorum-peers.memquorum.svc.cluster.local:7070') == 3"
  "kafka|--set kafka.enabled=true --set kafka.bootstrapServers=kafka-0.kafka:9092 --set kafka.topic=events --set kafka.group=mq|r.env('MEMQUORUM_KAFKA_ENABLED') == 'true' and r.env('KAFKA_BOOTSTRAP_SERVERS') == 'kafka-0.kafka:9092' and r.env('MEMQUORUM_KAFKA_TOPIC') == 'events' and r.env('MEMQUORUM_KAFKA_GROUP') == 'mq' and r.prop('memquorum.kafka.session-timeout') == '30s'"
  "native-sidecar|--set sidecar.native=true|r.native() and [c['name'] for c in r.pod()['containers']] == ['app'] and r.pod()['terminationGracePeriodSeconds'] == 40"
  "classic-prestop|--set sidecar.preStopSleepSeconds=5 --set drainTimeoutSeconds=45|r.agent()['lifecycle']['preStop']['sleep']['seconds'] == 5 and r.pod()['terminationGracePeriodSeconds'] == 60 and r.env('MEMQUORUM_DRAIN_TIMEOUT') == '45s'"
  "replicas-5|--set replicas=5 --set podAntiAffinity=hard|r.one('StatefulSet')['spec']['replicas'] == 5 and r.one('PodDisruptionBudget')['spec']['minAvailable'] == 4 and r.prop('memquorum.bootstrap.expect') == '5' and 'requiredDuringSchedulingIgnoredDuringExecution' in r.pod()['affinity']['podAntiAffinity']"
  "peer-tls|--set peerTls.secretName=mq-peer-tls|r.env('MEMQUORUM_PEER_TLS_CERT') == '/etc/memquorum-peer-tls/tls.crt' and r.env('MEMQUORUM_PEER_TLS_CA') == '/etc/memquorum-peer-tls/ca.crt' and {'name': 'peer-tls', 'secret': {'secretName': 'mq-peer-tls'}} in r.pod()['volumes'] and any(m['name'] == 'peer-tls' and m['readOnly'] for m in r.agent()['volumeMounts']) and r.env('MEMQUORUM_PEER_TLS_KEY') is not None"
  "e2e-kind|-f e2e/kind/values-e2e.yaml|r.prop('memquorum.api.bind') == '0.0.0.0' and r.agent()['image'] == 'memquorum:e2e'"
  "e2e-kind-native-static|-f e2e/kind/values-e2e.yaml --set sidecar.native=true --set dnsDiscovery.enabled=false --set staticPeers=true|r.native() and r.env('MEMQUORUM_PEERS') is not None"
)
for s in "${sets[@]}"; do
  IFS='|' read -r name flags expect <<<"$s"
  read -ra args <<<"$flags"
  out=$tmp/render-$name.yaml
  lint_args=()   # helm lint takes the values, not --api-versions
  for ((i = 0; i < ${#args[@]}; i++)); do
    if [[ ${args[i]} == --api-versions ]]; then i=$((i + 1)); else lint_args+=("${args[i]}"); fi
  done
  if ! helm lint --strict helm/memquorum -n "$NS" "${lint_args[@]}" >"$tmp/lint.log" 2>&1; then
    show "$tmp/lint.log"; bad "helm lint --strict ($name)"; continue
  fi
  if ! helm template memquorum helm/memquorum -n "$NS" "${args[@]}" >"$out" 2>"$tmp/template.err"; then
    show "$tmp/template.err"; bad "helm template ($name)"; continue
  fi
  if ! mqcheck -q "${mqcheck_args[@]}" "$out" 2>"$tmp/mqcheck.log"; then
    show "$tmp/mqcheck.log"; bad "mqcheck of the render ($name)"; continue
  fi
  if ! python3 k8s/validate_files.py expect "$out" "$expect"; then
    bad "render ($name) lacks what its values promise"; continue
  fi
  ok "helm lint --strict, helm template, mqcheck: $name ($(grep -c '^kind:' "$out") objects)"
done

# ---- helm: renders the chart must refuse ---------------------------------------
refusals=(
  "replicas below replicationFactor|--set replicas=2|replicas (2) < replicationFactor (3)"
  "no discovery|--set dnsDiscovery.enabled=false|the agents could not find each other"
  "grace period below drain + 10 s|--set terminationGracePeriodSeconds=35|terminationGracePeriodSeconds 35 is below drainTimeoutSeconds 30"
  "native sidecar before 1.29|--set sidecar.native=true --kube-version 1.28.0|sidecar.native needs Kubernetes >= 1.29"
  "a PDB maxUnavailable|--set podDisruptionBudget.maxUnavailable=1|additional properties 'maxUnavailable' not allowed"
  "a misspelt value|--set replica=5|additional properties 'replica' not allowed"
  "a string for replicas|--set replicas=three|want integer"
  "Nacos auth without credentials|--set nacos.enabled=true --set nacos.auth.enabled=true|nacos.auth.username is required"
)
for s in "${refusals[@]}"; do
  IFS='|' read -r name flags want <<<"$s"
  read -ra args <<<"$flags"
  if helm template memquorum helm/memquorum -n "$NS" "${args[@]}" >/dev/null 2>"$tmp/refuse.err"; then
    bad "helm template accepted $name ($flags)"
  elif ! grep -qF -- "$want" "$tmp/refuse.err"; then
    show "$tmp/refuse.err"; bad "helm template refused $name, but without \"$want\""
  else
    ok "helm template refuses $name"
  fi
done

# ---- k8s/*.yaml ------------------------------------------------------------------
k8s_files=(k8s/namespace.yaml k8s/configmap.yaml k8s/statefulset.yaml k8s/monitoring.yaml)
if mqcheck "${mqcheck_args[@]}" "${k8s_files[@]}" >"$tmp/k8s.log" 2>&1; then
  ok "$(grep '^mqcheck: ok' "$tmp/k8s.log" | sed 's/^mqcheck: ok: //')"
else
  show "$tmp/k8s.log"; bad "mqcheck k8s/*.yaml"
fi
# k8s/ is the chart's default render for release and namespace memquorum,
# with the image the README builds and the prometheus-operator present.
if helm template memquorum helm/memquorum -n "$NS" --set image.tag=latest \
     --api-versions monitoring.coreos.com/v1/ServiceMonitor \
     --api-versions monitoring.coreos.com/v1/PrometheusRule >"$tmp/k8s-render.yaml" 2>"$tmp/k8s-render.err"; then
  python3 k8s/validate_files.py same "$tmp/k8s-render.yaml" "${k8s_files[@]}" || failed=1
else
  show "$tmp/k8s-render.err"; bad "helm template for the k8s/ comparison"
fi
# k8s/patches/peer-tls.yaml turns k8s/statefulset.yaml into the chart's
# render with peer TLS from a Secret.
if helm template memquorum helm/memquorum -n "$NS" --set image.tag=latest \
     --set peerTls.secretName=memquorum-peer-tls >"$tmp/tls-render.yaml" 2>"$tmp/tls-render.err"; then
  python3 k8s/validate_files.py patched "$tmp/tls-render.yaml" k8s/statefulset.yaml \
    k8s/patches/peer-tls.yaml || failed=1
else
  show "$tmp/tls-render.err"; bad "helm template for the k8s/patches comparison"
fi

# ---- e2e/kind ---------------------------------------------------------------------
if mqcheck "${mqcheck_args[@]}" e2e/kind/kind.yaml e2e/kind/job.yaml >"$tmp/kind.log" 2>&1; then
  ok "e2e/kind: kind.yaml (kind's v1alpha4 types) and job.yaml (batch/v1 Job)"
else
  show "$tmp/kind.log"; bad "mqcheck e2e/kind"
fi
if python3 k8s/validate_files.py job-script e2e/kind/job.yaml "$tmp/job.sh" &&
   shellcheck -s sh "$tmp/job.sh" >"$tmp/job-sc.log" 2>&1; then
  ok "shellcheck of the e2e Job's script"
else
  show "$tmp/job-sc.log"; bad "shellcheck of the e2e Job's script (e2e/kind/job.yaml)"
fi

# ---- Prometheus -------------------------------------------------------------------
for f in config/prometheus/*.yml; do
  if grep -q '^groups:' "$f"; then
    what="check rules" && promtool check rules "$f" >"$tmp/prom.log" 2>&1
  else
    what="check config" && promtool check config "$f" >"$tmp/prom.log" 2>&1
  fi
  # shellcheck disable=SC2181 # the status of the branch's promtool
  if (($? == 0)); then ok "promtool $what $f"; else show "$tmp/prom.log"; bad "promtool $what $f"; fi
done

# ---- shellcheck -------------------------------------------------------------------
mapfile -t scripts < <(find scripts k8s e2e -type f \( -name '*.sh' -o -path 'e2e/*/run' \) | LC_ALL=C sort)
if shellcheck -x -P SCRIPTDIR "${scripts[@]}" >"$tmp/sc.log" 2>&1; then
  ok "shellcheck: ${#scripts[@]} scripts in scripts/ k8s/ e2e/"
else
  show "$tmp/sc.log"; bad "shellcheck"
fi

# ---- what no tool covers ----------------------------------------------------------
python3 k8s/validate_files.py repo || failed=1

if ((failed)); then
  echo "validate: problems found ($((SECONDS - t0)) s)" >&2
  exit 1
fi
echo "validate: all checks passed ($((SECONDS - t0)) s)"
