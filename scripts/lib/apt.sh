# shellcheck shell=bash
# Sourced by scripts/install-deps.sh and scripts/install-test-deps.sh: Debian packages installed without
# starting any service, and the services they bring turned off again. Nothing here kills a process, by name or
# otherwise, or stops a service that this run did not install.
#
#   apt_install PKG...                       install those not installed yet (none: one dpkg-query, no apt)
#   apt_service_off OWNER NAME UNITS [WHY]   disable NAME if this run installed OWNER; else, if NAME is
#                                            enabled or running and WHY is given, say so in one line

APT_POLICY_RC_D=/usr/sbin/policy-rc.d
APT_POLICY_MARK="# aerodrome: no service starts while its scripts install packages (removed when they end)"
APT_NEW=() # every package (asked for, or pulled in) that this run installed
_apt_policy_ours=0

# The packages among the arguments that are not fully installed, one a line.
apt_missing() {
  dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null | awk -v want="$*" '
    $2 == "install" && $3 == "ok" && $4 == "installed" { ok[$1] = 1 }
    END { n = split(want, w, " "); for (i = 1; i <= n; i++) if (!(w[i] in ok)) print w[i] }'
}

apt_install() {
  local missing before
  mapfile -t missing < <(apt_missing "$@")
  [ ${#missing[@]} -gt 0 ] || return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "aerodrome: missing packages ${missing[*]}; run this script as root" >&2
    exit 2
  fi
  before=$(_apt_installed_all)
  _apt_policy_on
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # confold: a package left with configuration files (removed, not purged) keeps the user's.
  apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
  _apt_policy_off
  mapfile -t APT_NEW < <(comm -13 <(echo "$before") <(_apt_installed_all))
}

# A Debian service that aerodrome does not want: OWNER is the package that ships it, NAME its init script,
# UNITS its systemd units (one word, space-separated). Installed by this run: disabled at boot (and stopped,
# had anything started it). Installed before: the user's, left as it is, and said in one line when WHY is given.
apt_service_off() {
  local owner=$1 name=$2 why=${4:-} units state
  read -r -a units <<<"$3"
  if _apt_is_new "$owner"; then
    _apt_disable "$name" "${units[@]}"
    echo "aerodrome: Debian's $name service came with $owner just now and is disabled${why:+ ($why)}"
  elif [ -n "$why" ] && state=$(_apt_service_state "$name" "${units[@]}"); then
    echo "aerodrome: Debian's $name service is $state, left as it is ($why);" \
      "to turn it off: $(_apt_disable_hint "$state" "$name" "${units[@]}")"
  fi
}

_apt_installed_all() {
  dpkg-query -W -f='${Package} ${Status}\n' |
    awk '$2 == "install" && $3 == "ok" && $4 == "installed" { print $1 }' | sort -u
}

_apt_is_new() {
  local pkg
  for pkg in "${APT_NEW[@]}"; do [ "$pkg" != "$1" ] || return 0; done
  return 1
}

_apt_systemd_running() { [ -d /run/systemd/system ]; }

# Debian's own way to keep services from starting while packages install (invoke-rc.d and deb-systemd-invoke
# ask /usr/sbin/policy-rc.d; 101: action forbidden). One already there is the machine's: it is never replaced.
_apt_policy_on() {
  if [ -e "$APT_POLICY_RC_D" ] || [ -L "$APT_POLICY_RC_D" ]; then
    if [ ! -x "$APT_POLICY_RC_D" ]; then
      echo "aerodrome: $APT_POLICY_RC_D exists but is not executable, so it cannot keep the new packages'" \
        "services from starting; make it executable or move it away, then run this again" >&2
      exit 2
    fi
    echo "aerodrome: $APT_POLICY_RC_D is already there and left as it is:" \
      "it decides which services may start during this install"
    return 0
  fi
  trap _apt_policy_off EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
  (set -C && printf '#!/bin/sh\n%s\nexit 101\n' "$APT_POLICY_MARK" >"$APT_POLICY_RC_D") # never over another
  _apt_policy_ours=1
  chmod 755 "$APT_POLICY_RC_D"
}

_apt_policy_off() {
  if [ "$_apt_policy_ours" = 1 ] && grep -qxF "$APT_POLICY_MARK" "$APT_POLICY_RC_D" 2>/dev/null; then
    rm -f "$APT_POLICY_RC_D"
  fi
  _apt_policy_ours=0
  trap - EXIT HUP INT TERM
}

# "enabled at boot", "running", or both; fails when neither.
_apt_service_state() {
  local name=$1 enabled='' running=''
  shift
  if _apt_systemd_running; then
    systemctl is-enabled -q "$@" 2>/dev/null && enabled=1
    systemctl is-active -q "$@" 2>/dev/null && running=1
  else
    compgen -G "/etc/rc[2345].d/S[0-9][0-9]$name" >/dev/null && enabled=1
    [ -x "/etc/init.d/$name" ] && "/etc/init.d/$name" status >/dev/null 2>&1 && running=1
  fi
  if [ -n "$enabled" ] && [ -n "$running" ]; then echo "enabled at boot and running"
  elif [ -n "$enabled" ]; then echo "enabled at boot"
  elif [ -n "$running" ]; then echo "running"
  else return 1
  fi
}

_apt_disable() {
  local name=$1
  shift
  if _apt_systemd_running; then
    systemctl disable --now --quiet "$@" # and its SysV links, through systemd-sysv-install
    return 0
  fi
  if [ -e "/etc/init.d/$name" ]; then
    # Not started through policy-rc.d above; one already there may have let it start.
    if "/etc/init.d/$name" status >/dev/null 2>&1; then invoke-rc.d "$name" stop || true; fi
    # disable, not remove: remove's links come back with the package's next upgrade (update-rc.d defaults).
    update-rc.d "$name" disable >/dev/null
  fi
  # The units' links too, for a later boot under systemd (changes files only: no systemd runs here).
  if command -v systemctl >/dev/null; then systemctl --root=/ --quiet disable "$@" >/dev/null 2>&1 || true; fi
}

_apt_disable_hint() {
  local state=$1 name=$2
  shift 2
  if _apt_systemd_running; then
    echo "systemctl disable --now $*"
  elif [ "$state" = "enabled at boot" ]; then
    echo "update-rc.d $name disable"
  else
    echo "invoke-rc.d $name stop; update-rc.d $name disable"
  fi
}
