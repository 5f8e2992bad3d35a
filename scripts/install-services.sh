#!/usr/bin/env bash
# Installs the real external services the integration tests start (see
# scripts/services/README.md): a Java runtime and the Kafka broker jars,
# r-nacos, dnsmasq and dig. Idempotent: when everything is present it only
# checks, in a few seconds, without touching the network.
set -euo pipefail
cd "$(dirname "$0")/.."

have_java17() {
  local j v
  for j in "${JAVA:-}" "$(command -v java || true)" /usr/lib/jvm/*/bin/java; do
    [[ -n $j && -x $j ]] || continue
    v=$("$j" -XshowSettings:properties -version 2>&1 |
      sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p')
    [[ -n $v ]] && ((v >= 17)) && return 0
  done
  return 1
}

pkgs=(dnsmasq-base bind9-dnsutils iproute2 curl util-linux)
# dnsmasq-base is the dnsmasq binary without Debian's system service, which
# would start at install and take port 53 on every interface.
command -v mvn >/dev/null || pkgs+=(maven)
# Debian 12's default Java is 17, what Kafka 4.x brokers need at least.
have_java17 || pkgs+=(default-jre-headless)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-services: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

py=${PYTHON:-python3}
if ! "$py" -c 'import confluent_kafka' 2>/dev/null; then
  echo "install-services: installing confluent-kafka (librdkafka for Python)"
  "$py" -m pip install -q --disable-pip-version-check 'confluent-kafka==2.16.1'
fi

bash scripts/services/kafka.sh fetch
bash scripts/services/nacos.sh install
echo "install-services: ok"
