#!/usr/bin/env bash
# Validate deploy/ offline: every manifest against the Kubernetes JSON
# schemas of kubernetes-validate --strict (unknown fields are errors), for
# each version in K8S_VERSIONS; and, when kubectl is there, the kustomize
# rendering of the base, and that `kubectl apply -f deploy/` would read the
# same objects as `kubectl apply -k deploy/`. Fails on any error or warning.
#
# kubernetes-validate is installed, when missing, into a venv under
# target/ (Debian 12's pip refuses system-wide installs, PEP 668).
set -euo pipefail
cd "$(dirname "$0")/.."

KV_VERSION=1.37.0
K8S_VERSIONS=${K8S_VERSIONS:-"1.30.0 1.37.0"}
venv=target/deploy-venv
kv=$venv/bin/kubernetes-validate

# The system interpreter: a pyenv shim on PATH may lack venv/ensurepip.
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3)

if ! { [ -x "$kv" ] && "$kv" --version 2>/dev/null | grep -q "$KV_VERSION"; }; then
  echo "validate: installing kubernetes-validate $KV_VERSION into $venv"
  rm -rf "$venv"
  if ! "$py" -m venv "$venv" 2>/dev/null; then
    # Debian ships venv's ensurepip separately.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq
      pyver=$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${pyver}-venv" >/dev/null
      rm -rf "$venv"
      "$py" -m venv "$venv"
    else
      echo "validate: $py -m venv failed; install python3-venv" >&2
      exit 1
    fi
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$KV_VERSION"
fi

manifests=(deploy/*.yaml)
fail=0

# check LABEL FILE...: run kubernetes-validate for every version; any
# ERROR or WARN line (e.g. a kind it has no schema for) fails.
check() {
  local label=$1 v out rc
  shift
  for v in $K8S_VERSIONS; do
    rc=0
    out=$("$kv" --strict -k "$v" "$@" 2>&1) || rc=$?
    printf '%s\n' "$out" | sed 's/^/  /'
    if [ "$rc" != 0 ] || printf '%s\n' "$out" | grep -Eq '^(ERROR|WARN)'; then
      echo "validate: FAILED: $label against Kubernetes $v" >&2
      fail=1
    fi
  done
}

echo "validate: ${#manifests[@]} files, strict, Kubernetes $K8S_VERSIONS"
check "deploy/*.yaml" "${manifests[@]}"

if command -v kubectl >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  if kubectl kustomize deploy/ >"$tmp/rendered.yaml"; then
    check "kubectl kustomize deploy/" "$tmp/rendered.yaml"
    # The objects `apply -f deploy/` reads (kubectl's own directory
    # reader, offline) must be those of the kustomization: nothing
    # missing from it, and no kustomization file read as a resource.
    kubectl label --local -f deploy/ -o name tabby.validate/x=y | sort >"$tmp/dir.txt"
    kubectl label --local -f "$tmp/rendered.yaml" -o name tabby.validate/x=y | sort >"$tmp/kust.txt"
    if ! diff -u "$tmp/kust.txt" "$tmp/dir.txt"; then
      echo "validate: FAILED: kubectl apply -f deploy/ and -k deploy/ read different objects" >&2
      fail=1
    else
      echo "validate: apply -f deploy/ and -k deploy/ read the same $(wc -l <"$tmp/dir.txt") objects"
    fi
  else
    echo "validate: FAILED: kubectl kustomize deploy/" >&2
    fail=1
  fi
else
  echo "validate: kubectl not found: the kustomization is not rendered (optional)"
fi

if [ "$fail" != 0 ]; then
  exit 1
fi
echo "validate: deploy/ passed"
