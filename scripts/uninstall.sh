#!/usr/bin/env bash
# Removes keelson from this host, as root: stops and disables the service (pods are not touched by
# that: containers belong to the runtime), removes every rule the service proxy wrote (keelson
# cleanup), then keelson's files and unit. Configuration, credentials and state stay unless --purge:
#   uninstall.sh [--purge] [--dry-run]
#   --purge   also remove /etc/keelson (config, kubeconfig, static pods) and /var/lib/keelson (state)
set -euo pipefail
purge=0
dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --purge) purge=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "uninstall.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
say() { echo "keelson uninstall: $*"; }
act() {
  if [ "$dry_run" = 1 ]; then echo "[dry-run] $*"; else echo "+ $*"; "$@"; fi
}
if [ "$(id -u)" != 0 ] && [ "$dry_run" = 0 ]; then echo "keelson uninstall: run as root" >&2; exit 1; fi
if dpkg-query -W -f='${Status}' keelson 2>/dev/null | grep -q 'ok installed'; then
  echo "keelson uninstall: keelson is installed as a Debian package: use dpkg -r keelson (or dpkg -P keelson to purge)" >&2
  exit 1
fi

if [ -d /run/systemd/system ] && [ -f /lib/systemd/system/keelson.service ]; then
  act systemctl disable --now keelson.service
fi
if [ -x /usr/bin/keelson ]; then
  # Removes only the chains, tables and sets keelson wrote (all proxy modes).
  act /usr/bin/keelson cleanup --mode all || say "keelson cleanup failed; remove its rules by hand (nft list ruleset | grep keelson)"
fi
act rm -f /lib/systemd/system/keelson.service /usr/bin/keelson
act rm -rf /usr/lib/keelson /usr/lib/keelson.new /usr/lib/keelson.old /usr/share/keelson
[ -d /run/systemd/system ] && act systemctl daemon-reload
if [ "$purge" = 1 ]; then
  act rm -rf /etc/keelson /var/lib/keelson /etc/default/keelson
  say "purged configuration, credentials and state"
else
  say "kept /etc/keelson, /etc/default/keelson and /var/lib/keelson (--purge removes them)"
fi
say "done$([ "$dry_run" = 1 ] && echo ' (dry run: nothing was changed)')"
