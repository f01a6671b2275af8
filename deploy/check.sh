#!/usr/bin/env bash
# Syntax checks of deploy/ without a cluster: each systemd unit through `systemd-analyze verify` (with stand-ins
# for the binaries it starts, which are not installed here), each Kubernetes manifest parsed as YAML and checked
# for apiVersion, kind, metadata.name, and a pod template's containers with an image.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if command -v systemd-analyze > /dev/null; then
  mkdir -p "$tmp/bin" "$tmp/units"
  for exe in kvsharp garnet-server; do printf '#!/bin/sh\n' > "$tmp/bin/$exe"; chmod +x "$tmp/bin/$exe"; done
  for unit in "$here"/systemd/*.service; do
    sed -e "s|/opt/kvsharp/kvsharp|$tmp/bin/kvsharp|" -e "s|/opt/garnet/garnet-server|$tmp/bin/garnet-server|" "$unit" > "$tmp/units/$(basename "$unit")"
  done
  # verify exits 0 on a line it ignores ("Failed to parse ..., ignoring"), so any output is a failure.
  out=$(systemd-analyze verify "$tmp"/units/*.service 2>&1) || { echo "$out"; exit 1; }
  if [ -n "$out" ]; then echo "$out"; exit 1; fi
  echo "systemd units: ok ($(ls "$here"/systemd/*.service | wc -l))"
else
  echo "systemd-analyze not found: units not checked"
fi

python3 - "$here"/kubernetes/*.yaml <<'PY'
import sys, yaml
count = 0
for path in sys.argv[1:]:
    for i, doc in enumerate(yaml.safe_load_all(open(path))):
        where = f"{path} document {i + 1}"
        for field in ("apiVersion", "kind"):
            assert doc.get(field), f"{where}: no {field}"
        assert doc.get("metadata", {}).get("name"), f"{where}: no metadata.name"
        spec = doc.get("spec", {})
        template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template")
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            containers = template["spec"]["containers"]
            assert containers and all(c.get("image") for c in containers), f"{where}: a container without an image"
            if doc["kind"] != "Job":
                labels = template["metadata"]["labels"]
                assert all(labels.get(k) == v for k, v in spec["selector"]["matchLabels"].items()), f"{where}: selector does not match the template's labels"
        count += 1
print(f"kubernetes manifests: ok ({count} objects)")
PY
