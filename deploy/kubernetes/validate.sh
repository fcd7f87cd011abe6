#!/usr/bin/env bash
# Checks deploy/kubernetes/ offline, as `make test` does:
#   1. every manifest against the Kubernetes API schemas of the oldest and the
#      newest version we target (kubernetes-validate --strict: unknown fields
#      are errors too);
#   2. that the validator refuses a broken manifest (or a pass proves nothing);
#   3. what schemas cannot see (check.py): kustomizations list every file,
#      probes, selectors, Secret and ConfigMap references, the session settings.
# kubernetes-validate is pinned in requirements.txt and installed, on first use
# or when that file changes, into a venv under target/ (PyPI only; python3-venv
# comes from scripts/install-deps.sh). Knob: PYTHON (default python3).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
venv="$root/target/k8s-validate"
versions=(1.30.0 1.37.0)

if ! cmp -s "$here/requirements.txt" "$venv/requirements.txt" 2>/dev/null; then
  echo "k8s-validate: installing kubernetes-validate into $venv"
  rm -rf "$venv"
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$venv/requirements.txt"
fi

mapfile -t manifests < <(find "$here" -name '*.yaml' ! -name kustomization.yaml | sort)
for version in "${versions[@]}"; do
  "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "${manifests[@]}"
  echo "k8s-validate: ${#manifests[@]} manifests valid for Kubernetes $version"
done

broken=$(mktemp --suffix=.yaml)
trap 'rm -f "$broken"' EXIT
sed 's/^  replicas: 3$/  replicas: three/' "$here/app/deployment.yaml" >"$broken"
if "$venv/bin/kubernetes-validate" --strict --quiet "$broken" >/dev/null 2>&1; then
  echo "k8s-validate: a Deployment with replicas: three passed; the validator checks nothing" >&2
  exit 1
fi

"$venv/bin/python" "$here/check.py" "$here"
