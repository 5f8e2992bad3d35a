#!/usr/bin/env bash
# Builds the Debian 12 base image the Dockerfile starts from, locally: no
# image registry is reachable here, so nothing can be pulled.
#
#   scripts/docker/base-image.sh [--force]
#
# Skips all work when the image ($MQ_BASE_IMAGE, default debian:12-slim, the
# name the Dockerfile's DEBIAN_IMAGE argument expects) already exists on the
# engine, unless --force. Otherwise it runs
#   debootstrap --variant=minbase bookworm ROOTFS MIRROR
# with MIRROR read from this machine's apt sources (never a host written here),
# trims the tree the way Debian's own slim images are trimmed, and
# `docker import`s it. Needs root and a running engine
# (scripts/docker/engine.sh start).
#
# What goes into the image besides debootstrap's packages:
#   /etc/apt/sources.list.d/debian.sources  this machine's bookworm entries
#       (main, updates, security), so the image's apt sees what the host's sees
#   /etc/apt/apt.conf.d/50host-mirror   the host's Acquire::Check-Valid-Until,
#       Check-Date and proxy settings, which its mirror may need (a snapshot
#       mirror serves Release files whose Valid-Until has passed)
#   /etc/dpkg/dpkg.cfg.d/docker-slim    path-excludes for docs, man pages,
#       info and locales, so packages installed later leave none behind
#   /etc/apt/apt.conf.d/docker-*        no package cache, no translations, as
#       in Debian's published images
# and nothing of the host besides: no resolv.conf, hostname, apt lists or logs.
set -euo pipefail

image=${MQ_BASE_IMAGE:-debian:12-slim}
suite=bookworm
force=0
case ${1:-} in
--force) force=1 ;;
"") ;;
*) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

say() { echo "base-image: $*"; }
die() { echo "base-image: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap)"
docker info >/dev/null 2>&1 || die "no Docker engine answers; run scripts/docker/engine.sh start"

if ((!force)) && docker image inspect "$image" >/dev/null 2>&1; then
  say "$image exists ($(docker image inspect -f '{{index .Config.Labels "org.memquorum.base"}}' "$image" 2>/dev/null || true)); skipped"
  exit 0
fi

# ----------------------------------------------------------- apt sources ----
# Prints one line per enabled deb entry of this machine's apt sources:
#   URI SUITE COMPONENTS...
# from deb822 files (*.sources) and one-line files (sources.list, *.list).
apt_entries() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && enabled != "no")
          for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) print u[i], s[j], comps
        types = ""; enabled = ""; comps = ""; nu = 0; ns = 0
      }
      /^#/ { next }
      /^[ \t]*$/ { flush(); next }
      {
        key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "")
        if (key == "types") types = $0
        else if (key == "uris") nu = split($0, u, " ")
        else if (key == "suites") ns = split($0, s, " ")
        else if (key == "components") comps = $0
        else if (key == "enabled") enabled = tolower($0)
      }
      END { flush() }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 == "deb" {
      i = 2
      if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      line = $i " " $(i + 1)
      for (k = i + 2; k <= NF; k++) line = line " " $k
      print line
    }' "$f"
  done
}

entries=$(apt_entries | awk -v s="$suite" '$1 ~ /^https?:/ && ($2 == s || index($2, s "-") == 1)')
mirror=$(awk -v s="$suite" '$2 == s { print $1; exit }' <<<"$entries")
[ -n "$mirror" ] || die "no '$suite' entry in this machine's apt sources (/etc/apt/sources.list{,.d})"

# ------------------------------------------------------------ debootstrap ----
command -v debootstrap >/dev/null || {
  say "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
}

work=$(mktemp -d /var/tmp/mq-base-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
t0=$SECONDS
say "debootstrap --variant=minbase $suite from $mirror"
if ! debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 30 "$work/debootstrap.log" >&2
  tail -n 30 "$root/debootstrap/debootstrap.log" >&2 2>/dev/null || true
  die "debootstrap failed"
fi
t_boot=$((SECONDS - t0))

# ---------------------------------------------------------- trim and set ----
rm -f "$root/etc/apt/sources.list"
awk '{
  printf "Types: deb\nURIs: %s\nSuites: %s\nComponents:", $1, $2
  for (k = 3; k <= NF; k++) printf " %s", $k
  printf "\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
}' <<<"$entries" >"$root/etc/apt/sources.list.d/debian.sources"

apt-config dump | grep -E '^Acquire::(Check-Valid-Until|Check-Date|https?::Proxy) ' \
  >"$root/etc/apt/apt.conf.d/50host-mirror" || true

cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
# No documentation, man pages or translations in images; copyright notices stay.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
printf 'Acquire::GzipIndexes "true";\nAcquire::CompressionTypes::Order:: "gz";\n' \
  >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"

# What debootstrap installed before the excludes existed.
find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root"/usr/share/{man,groff,info,lintian,linda,locale}/*
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
find "$root/var/log" -type f -delete
rm -rf "$root/debootstrap"
# Docker provides these at run time; the host's must not be baked in.
: >"$root/etc/resolv.conf"
rm -f "$root/etc/hostname"

# ----------------------------------------------------------------- import ----
label="debootstrap --variant=minbase $suite, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
t1=$SECONDS
tar --numeric-owner -C "$root" -c . |
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --change "LABEL org.memquorum.base=\"$label\"" \
    - "$image" >/dev/null
size=$(docker image inspect -f '{{.Size}}' "$image")
say "imported $image: $((size / 1000000)) MB; debootstrap ${t_boot}s, import $((SECONDS - t1))s, total $((SECONDS - t0))s"
