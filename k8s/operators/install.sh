#!/usr/bin/env bash
# Installs the operators and CRDs pinned in k8s/operators/versions.env (once per cluster):
#   k8s/operators/install.sh                       # CloudNativePG and the RabbitMQ cluster operator
#   k8s/operators/install.sh cert-manager gateway-api prometheus-crds   # and the optional ones you use
# Manifests are downloaded, checked against their sha256 in versions.env, and the checked file is applied.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch_checked() {  # NAME URL SHA256 -> path of the checked file
  local name=$1 url=$2 sum=$3 file="$work/$1.yaml"
  curl -fsSL --retry 3 -o "$file" "$url"
  local got
  got=$(sha256sum "$file" | cut -d' ' -f1)
  if [[ -z "$sum" ]]; then
    echo "$name: no sha256 recorded in versions.env; this download's is $got" >&2
    if [[ "${ERP_ACCEPT_UNPINNED:-}" != 1 ]]; then
      echo "$name: refusing an unchecked manifest (record the sum, or ERP_ACCEPT_UNPINNED=1)" >&2
      exit 1
    fi
  elif [[ "$got" != "$sum" ]]; then
    echo "$name: sha256 $got does not match versions.env's $sum" >&2
    exit 1
  fi
  echo "$file"
}

install() {
  local file
  case $1 in
    cloudnative-pg)
      helm repo add cnpg "$CNPG_CHART_REPO" --force-update >/dev/null
      helm upgrade --install cnpg cnpg/cloudnative-pg --version "$CNPG_CHART_VERSION" \
        --namespace cnpg-system --create-namespace --wait
      ;;
    rabbitmq)
      file=$(fetch_checked rabbitmq "$RABBITMQ_OPERATOR_URL" "$RABBITMQ_OPERATOR_SHA256")
      kubectl apply -f "$file"
      kubectl -n rabbitmq-system rollout status deploy/rabbitmq-cluster-operator
      ;;
    cert-manager)
      helm repo add jetstack "$CERT_MANAGER_CHART_REPO" --force-update >/dev/null
      helm upgrade --install cert-manager jetstack/cert-manager --version "$CERT_MANAGER_VERSION" \
        --namespace cert-manager --create-namespace --set crds.enabled=true --wait
      ;;
    gateway-api)
      file=$(fetch_checked gateway-api "$GATEWAY_API_URL" "$GATEWAY_API_SHA256")
      kubectl apply --server-side -f "$file"
      ;;
    prometheus-crds)
      file=$(fetch_checked prometheus-crds "$PROMETHEUS_OPERATOR_CRDS_URL" "$PROMETHEUS_OPERATOR_CRDS_SHA256")
      kubectl apply --server-side -f "$file"
      ;;
    *)
      echo "unknown: $1 (cloudnative-pg, rabbitmq, cert-manager, gateway-api, prometheus-crds)" >&2
      exit 2
      ;;
  esac
}

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(cloudnative-pg rabbitmq)
fi
for target in "${targets[@]}"; do
  install "$target"
done
