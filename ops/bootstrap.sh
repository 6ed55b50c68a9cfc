# shellcheck shell=bash
# Installs what the project needs on a fresh Debian 12 machine (root): system packages and .venv.
# Sourced by .ci/run and ops/demo after ops/lib.sh; run from the repository root.

pick_python() { # print the first Python >= 3.11 found
  local candidate
  for candidate in "${PYTHON:-}" python3.11 python3 /usr/bin/python3; do
    if [[ -z "$candidate" ]] || ! command -v "$candidate" >/dev/null 2>&1; then
      continue
    fi
    if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

system_packages() {
  need java openjdk-17-jre-headless
  need mvn maven
  need psql postgresql-client
  need openssl openssl
  [[ -n "$(find /usr/lib/postgresql -maxdepth 3 -path '*/bin/initdb' 2>/dev/null)" ]] ||
    apt_install postgresql
  pick_python >/dev/null || apt_install python3 python3-venv
  log "java: $(java -version 2>&1 | head -n 1)"
  log "python: $("$(pick_python)" --version)"
}

# The dashboard's browser test (tests/e2e/test_dashboard_browser.py) drives Debian's headless
# Chromium through its WebDriver; only the tests need them.
browser_packages() {
  need chromium chromium
  need chromedriver chromium-driver
  log "browser: $(chromium --version 2>/dev/null | head -n 1)"
}

python_env() {
  local python
  python="$(pick_python)" || die "no Python >= 3.11"
  if [[ ! -x .venv/bin/python ]]; then
    rm -rf .venv
    if ! "$python" -m venv .venv; then
      apt_install python3-venv
      rm -rf .venv
      "$python" -m venv .venv
    fi
  fi
  .venv/bin/python -m pip install -q --upgrade pip
  if [[ -f constraints.txt ]]; then
    .venv/bin/python -m pip install -q -c constraints.txt -e '.[test]'
  else
    log "constraints.txt not found; installing unpinned versions"
    .venv/bin/python -m pip install -q -e '.[test]'
  fi
}
