#!/usr/bin/env bash
# Run ebb's whole test suite. Installs what the tests need (nginx, GNOME Keyring, ...) when it
# is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
command -v unshare >/dev/null 2>&1 && command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v curl >/dev/null 2>&1 || need+=(curl)
# ebb-server's sessions on PostgreSQL: its tests start their own server with initdb + postgres.
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
# ebb-server's object storage: its tests start moto's S3 server from a private venv.
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3 python3-venv)
# tus: ebb's client is tested against the reference server, @tus/server on Node.js.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
# The platform secret store's test: a private session bus with GNOME Keyring on it.
command -v dbus-run-session >/dev/null 2>&1 || need+=(dbus)
command -v gnome-keyring-daemon >/dev/null 2>&1 || need+=(gnome-keyring)
if ((${#need[@]})); then
  echo "installing test dependencies: ${need[*]}" >&2
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# moto, pinned, in target/test-tools/moto (made again when its requirements change).
moto=target/test-tools/moto
pins=$(sha256sum tests/tools/moto-requirements.txt | cut -c1-16)
if [[ ! -f $moto/.pins-$pins ]]; then
  echo "installing moto (S3 server for the tests) into $moto" >&2
  rm -rf "$moto"
  python3 -m venv "$moto"
  "$moto/bin/pip" install -q --disable-pip-version-check -r tests/tools/moto-requirements.txt
  touch "$moto/.pins-$pins"
fi

# @tus/server, pinned by its lockfile (installed again when the lockfile changes).
tus=tests/tools/tus
if [[ ! -f $tus/node_modules/.package-lock.json || $tus/package-lock.json -nt $tus/node_modules/.package-lock.json ]]; then
  echo "installing @tus/server (the reference tus server for the tests)" >&2
  npm ci --prefix "$tus" --no-audit --no-fund --omit=optional >/dev/null
fi

# The CLI tests run the real `ebb` binary, which `cargo test` alone does not build.
cargo build --workspace --locked --bins
cargo test --workspace --locked "$@"
