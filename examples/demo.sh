#!/usr/bin/env bash
# tagpromoter in one command, on this machine: a registry on 127.0.0.1 with three tags of
# an image, a GitOps repository (a local bare repository), and a worker that walks the
# newest tag dev -> staging -> prod with short soaks. Ends with the bot's commits and
# `tagpromoter status`, and stops everything it started (also on Ctrl-C).
#
#   ./examples/demo.sh
#
# Needs: cargo (or TAGPROMOTER_BIN=/path/to/tagpromoter), curl, python3; installs
# docker-registry and git with apt-get when they are missing and it may.
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d -t tagpromoter-demo.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

need() {
  command -v "$1" >/dev/null 2>&1 && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing $2"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
  else
    echo "this demo needs $1 (Debian: apt-get install $2)" >&2
    exit 1
  fi
}
need docker-registry docker-registry
need git git
for tool in curl python3; do command -v "$tool" >/dev/null || { echo "this demo needs $tool" >&2; exit 1; }; done

bin="${TAGPROMOTER_BIN:-}"
if [ -z "$bin" ]; then
  say "building tagpromoter"
  cargo build --release --locked --quiet
  bin="$PWD/target/release/tagpromoter"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

say "starting a registry on 127.0.0.1"
port="$(free_port)"
reg="127.0.0.1:$port"
cat > "$work/registry.yml" <<YAML
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage: {inmemory: {}, maintenance: {uploadpurging: {enabled: false}}}
http: {addr: $reg, secret: demo}
YAML
docker-registry serve "$work/registry.yml" </dev/null >"$work/registry.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fsS "http://$reg/v2/" >/dev/null 2>&1 && break; sleep 0.1; done

push_blob() { # repo file -> digest
  local digest location sep
  digest="sha256:$(sha256sum "$2" | cut -d' ' -f1)"
  location="$(curl -fsS -X POST -D - -o /dev/null "http://$reg/v2/$1/blobs/uploads/" \
    | awk 'tolower($1)=="location:" {print $2}' | tr -d '\r')"
  case "$location" in http*) ;; *) location="http://$reg$location" ;; esac
  sep='?'; case "$location" in *\?*) sep='&' ;; esac
  curl -fsS -X PUT -H 'Content-Type: application/octet-stream' --data-binary @"$2" \
    "$location${sep}digest=$digest" >/dev/null
  echo "$digest"
}

say "pushing demo/app 1.0.0, 1.1.0 and 1.2.0 through the registry API"
printf 'tagpromoter demo layer' > "$work/layer"
layer="$(push_blob demo/app "$work/layer")"
layer_size="$(wc -c < "$work/layer")"
for tag in 1.0.0 1.1.0 1.2.0; do
  printf '{"created":"2026-11-0%sT00:00:00Z","os":"linux","architecture":"amd64","rootfs":{"type":"layers","diff_ids":["%s"]},"config":{}}' \
    "${tag:2:1}" "$layer" > "$work/config-$tag"
  config="$(push_blob demo/app "$work/config-$tag")"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%s}]}' \
    "$config" "$(wc -c < "$work/config-$tag")" "$layer" "$layer_size" > "$work/manifest-$tag"
  curl -fsS -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary @"$work/manifest-$tag" "http://$reg/v2/demo/app/manifests/$tag" >/dev/null
done
curl -fsS "http://$reg/v2/demo/app/tags/list"
echo

say "creating a GitOps repository (a local bare repository)"
git init -q -b main "$work/checkout"
for env in dev staging prod; do
  mkdir -p "$work/checkout/apps/app/$env"
  cat > "$work/checkout/apps/app/$env/kustomization.yaml" <<YAML
# $env overlay of the demo app
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../base
images:
  - name: $reg/demo/app
    newTag: 1.0.0 # tagpromoter keeps this line
YAML
done
git -C "$work/checkout" add -A
git -C "$work/checkout" -c user.name=demo -c user.email=demo@example.com commit -q -m "the demo app at 1.0.0"
git clone -q --bare "$work/checkout" "$work/gitops.git"

mkdir -p "$work/rules"
cat > "$work/rules/settings.yaml" <<YAML
apiVersion: tagpromoter.io/v1alpha1
kind: Settings
spec:
  git: { url: "file://$work/gitops.git", author: { name: tagpromoter, email: tagpromoter@example.com } }
  registries: [{ host: "$reg", insecure: true }]
  interval: 2s
YAML
cat > "$work/rules/app.yaml" <<YAML
apiVersion: tagpromoter.io/v1alpha1
kind: Promotion
metadata: { name: app }
spec:
  image: $reg/demo/app
  environments:
    - { name: dev, policy: { semver: ">=1.0.0" }, target: { kustomize: { file: apps/app/dev/kustomization.yaml } } }
    - { name: staging, from: dev, soak: 4s, policy: { semver: ">=1.0.0" }, target: { kustomize: { file: apps/app/staging/kustomization.yaml } } }
    - { name: prod, from: staging, soak: 4s, policy: { semver: ">=1.0.0" }, target: { kustomize: { file: apps/app/prod/kustomization.yaml } } }
YAML
"$bin" check --rules "$work/rules"

say "running the worker until 1.2.0 reaches prod (soaks of 4s)"
export TAGPROMOTER_RULES="$work/rules" TAGPROMOTER_CACHE_DIR="$work/cache"
port=$(free_port)
"$bin" --log-format text run --listen "127.0.0.1:$port" 2>"$work/worker.log" &
worker=$!
echo "meanwhile, the promotion board is at http://127.0.0.1:$port/"
pids+=("$worker")
for _ in $(seq 60); do
  git -C "$work/gitops.git" show main:apps/app/prod/kustomization.yaml 2>/dev/null | grep -q 'newTag: 1.2.0' && break
  sleep 0.5
done
kill -TERM "$worker"
wait "$worker" || true

say "the bot's commits"
git -C "$work/gitops.git" log --format='%h %s%n%(trailers:key=Tagpromoter-Actor,key=Tagpromoter-From,key=Tagpromoter-To,separator=%x2C )' main

say "tagpromoter status"
"$bin" status
