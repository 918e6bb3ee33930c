#!/bin/sh
# Installs what the integration tests drive, from the package registries only: Debian packages
# through apt-get, and the aws CLI and boto3 from PyPI into a virtual environment. Idempotent:
# what is there already is left alone. The test harness (tests/common/setup.rs) runs it once
# when a tool is missing, and .ci/run runs it before the suite.
#
#   install.sh           install what is missing (as root)
#   install.sh --check   exit 1, naming them, if any are missing; install nothing
set -eu

# One line a Debian package: its name, then a command that succeeds once it is installed.
# Adding a package the tests need is one line here.
PACKAGES='
wrk              command -v wrk
nginx            command -v nginx || test -x /usr/sbin/nginx
haproxy          command -v haproxy || test -x /usr/sbin/haproxy
curl             command -v curl
chromium         command -v chromium
chromium-driver  command -v chromedriver
iproute2         command -v ip || test -x /usr/sbin/ip
etcd-server      command -v etcd
tmux             command -v tmux
busybox-static   test -x /bin/busybox
python3-venv     python3 -c "import ensurepip, venv"
redis-server     command -v redis-server
docker-registry  command -v docker-registry
apache2-utils    command -v htpasswd
pebble           command -v pebble || test -x /usr/bin/pebble
'
# The aws CLI and boto3, for the ECS and ELBv2 API tests, in the venv they find through
# BERTH_AWS_VENV (tests/common/aws.rs).
VENV="${BERTH_AWS_VENV:-/var/tmp/berth-venv}"
PIP_PACKAGES='awscli boto3'
# Real ECS clients the tests drive against `berth dev`: ecs-deploy's `ecs` and Ansible's
# community.aws ECS modules (bundled in the `ansible` package).
PIP_PACKAGES="$PIP_PACKAGES ecs-deploy ansible"
venv_ready() {
  "$VENV/bin/aws" --version >/dev/null 2>&1 && "$VENV/bin/python3" -c 'import boto3' >/dev/null 2>&1 &&
    test -x "$VENV/bin/ecs" && test -x "$VENV/bin/ansible-playbook"
}

missing_packages() {
  echo "$PACKAGES" | while read -r pkg check; do
    [ -n "$pkg" ] || continue
    sh -c "$check" >/dev/null 2>&1 || printf '%s ' "$pkg"
  done
}

if [ "${1:-}" = "--check" ]; then
  missing=$(missing_packages)
  venv_ready || missing="$missing$PIP_PACKAGES (pip, in $VENV)"
  [ -z "$missing" ] && exit 0
  echo "missing for the tests: $missing" >&2
  exit 1
fi

# Several test processes may start at once: one installs, the others wait and then find it done.
LOCK="${TMPDIR:-/tmp}/berth-test-setup.lock"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$LOCK"
  flock 9
fi

missing=$(missing_packages)
if [ -n "$missing" ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing for the tests: $missing(Debian package names; this machine has no apt-get)" >&2
    exit 1
  fi
  echo "berth tests: installing $missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086 # one word a package
  apt-get install -y -qq $missing >/dev/null
  case " $missing " in
    # The package may start a system etcd on 2379; the tests start their own.
    *" etcd-server "*) (systemctl stop etcd || service etcd stop || true) >/dev/null 2>&1 ;;
  esac
fi

if ! venv_ready; then
  echo "berth tests: installing $PIP_PACKAGES into $VENV" >&2
  python3 -m venv "$VENV"
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install -q $PIP_PACKAGES
fi
