#!/bin/sh
# rootfs.sh base|systemd OUT.tar - a Debian 12 root file system from the Debian mirror, no
# container registry involved (mmdebstrap, ~1-3 min). The scripts cache the result.
#   base:    like the official debian:bookworm-slim (container.sh imports it under that name)
#   systemd: a bootable tree for systemd-nspawn, with meshd's runtime libraries (nspawn.sh)
set -eu
kind=${1:?usage: rootfs.sh base|systemd OUT.tar}
out=${2:?usage: rootfs.sh base|systemd OUT.tar}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
case $kind in
  base) include= ;;
  systemd) include=systemd,systemd-sysv,dbus,procps,tzdata,libuv1,libpq5,libyaml-0-2,libcjson1,libcurl4,libhttp-parser2.9 ;;
  *) echo "rootfs.sh: unknown kind '$kind'" >&2; exit 2 ;;
esac
# Docker's debian images ship these apt settings: no caches or docs left by apt-get install.
clean='DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";'
mkdir -p "$(dirname "$out")"
# merged-usr hook: without it the usrmerge package pulls in perl (+50 MB).
# shellcheck disable=SC2016  # "$1" in the hooks is expanded by mmdebstrap
mmdebstrap --variant=minbase --mode=root --format=tar \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  ${include:+--include="$include"} \
  --aptopt='APT::Install-Recommends "false"' --aptopt='Acquire::Languages "none"' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --customize-hook="printf '%s\n' '$clean' > \"\$1/etc/apt/apt.conf.d/docker-clean\"" \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/archives/*.deb "$1"/var/cache/apt/*.bin "$1"/var/log/*.log "$1"/var/log/apt/*' \
  bookworm "$out.part" \
  "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
  "deb ${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security} bookworm-security main"
mv "$out.part" "$out"
