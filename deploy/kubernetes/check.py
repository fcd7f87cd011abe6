"""What the Kubernetes schemas cannot know about deploy/kubernetes/: that the
pieces refer to each other correctly and keep the promises README.md makes.

Run by validate.sh with the venv's Python (PyYAML comes with
kubernetes-validate). Prints each failure and exits 1 if there is any.
"""

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)
failures = []


def fail(message):
    failures.append(message)


def load_all():
    docs = []
    for path in sorted(ROOT.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path, doc))
    return docs


docs = load_all()
resources = [(p, d) for p, d in docs if d.get("kind") != "Kustomization"]
by_kind = {}
for path, doc in resources:
    by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc

# Every manifest is applied: each kustomization lists every file and
# directory beside it.
for path, doc in docs:
    if doc.get("kind") != "Kustomization":
        continue
    listed = set(doc.get("resources", []))
    here = path.parent
    present = {p.name for p in here.glob("*.yaml") if p.name != "kustomization.yaml"}
    present |= {p.name for p in here.iterdir() if (p / "kustomization.yaml").exists()}
    for missing in sorted(present - listed):
        fail(f"{path.relative_to(ROOT)}: does not list {missing}")
    for extra in sorted(listed - present):
        fail(f"{path.relative_to(ROOT)}: lists {extra}, which does not exist")

workloads = {**by_kind.get("Deployment", {}), **by_kind.get("StatefulSet", {})}
config_maps = by_kind.get("ConfigMap", {})
secrets = by_kind.get("Secret", {})


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


for name, w in workloads.items():
    pod = w["spec"]["template"]
    labels = pod["metadata"].get("labels", {})
    if not matches(w["spec"]["selector"]["matchLabels"], labels):
        fail(f"{name}: selector does not match its pod labels")
    volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
    for c in pod["spec"]["containers"]:
        where = f"{name}/{c['name']}"
        ports = {p.get("name") for p in c.get("ports", [])}
        for probe in ("readinessProbe", "livenessProbe"):
            if probe not in c:
                fail(f"{where}: no {probe}")
                continue
            action = c[probe].get("httpGet") or c[probe].get("tcpSocket") or {}
            port = action.get("port")
            if isinstance(port, str) and port not in ports:
                fail(f"{where}: {probe} names port {port}, which the container lacks")
        for env in c.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref and ref["key"] not in secrets.get(ref["name"], {}).get("stringData", {}):
                fail(f"{where}: env {env['name']} reads {ref['name']}/{ref['key']}, which no Secret here has")
        for mount in c.get("volumeMounts", []):
            volume = volumes.get(mount["name"])
            if volume is None:
                if not any(t["metadata"]["name"] == mount["name"] for t in w["spec"].get("volumeClaimTemplates", [])):
                    fail(f"{where}: mounts {mount['name']}, which is no volume")
                continue
            cm = volume.get("configMap")
            if cm:
                data = config_maps.get(cm["name"], {}).get("data", {})
                keys = [i["key"] for i in cm.get("items", [])] or list(data)
                if "subPath" in mount:
                    keys = [mount["subPath"]]
                for key in keys:
                    if key not in data:
                        fail(f"{where}: mounts {cm['name']}/{key}, which does not exist")

# Each PodDisruptionBudget and Service selects the pods of a workload.
for kind in ("PodDisruptionBudget", "Service"):
    for name, obj in by_kind.get(kind, {}).items():
        selector = obj["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        if not any(matches(selector, w["spec"]["template"]["metadata"].get("labels", {})) for w in workloads.values()):
            fail(f"{kind} {name}: selects no workload's pods")

# The PHP side: stickless as the save handler, the save_path and the
# password from the environment, the password passed through php-fpm.
php = config_maps.get("php-config", {}).get("data", {})
ini = php.get("zz-sessions.ini", "")
if not re.search(r"^session\.save_handler\s*=\s*stickless\s*$", ini, re.M):
    fail("php-config: zz-sessions.ini does not set session.save_handler = stickless")
if '"${STICKLESS_SAVE_PATH}"' not in ini:
    fail("php-config: session.save_path does not come from STICKLESS_SAVE_PATH")
if 'stickless.password = "env:STICKLESS_PASSWORD"' not in ini:
    fail("php-config: stickless.password does not come from env:STICKLESS_PASSWORD")
if "env[STICKLESS_PASSWORD] = $STICKLESS_PASSWORD" not in php.get("zz-pool.conf", ""):
    fail("php-config: the pool does not pass STICKLESS_PASSWORD to its workers (php-fpm clears their environment)")

app = workloads.get("php-app")
if app is None:
    fail("no Deployment php-app")
else:
    pod = app["spec"]["template"]
    fpm = next((c for c in pod["spec"]["containers"] if c["name"] == "php-fpm"), {})
    env = {e["name"]: e for e in fpm.get("env", [])}
    if not env.get("STICKLESS_SAVE_PATH", {}).get("value", "").startswith(("redis", "unix")):
        fail("php-app: STICKLESS_SAVE_PATH is not a save_path URL")
    if "valueFrom" not in env.get("STICKLESS_PASSWORD", {}):
        fail("php-app: STICKLESS_PASSWORD does not come from a Secret")
    notes = pod["metadata"].get("annotations", {})
    nginx_ports = [
        str(p["containerPort"]) for c in pod["spec"]["containers"] for p in c.get("ports", []) if c["name"] == "nginx"
    ]
    if notes.get("prometheus.io/scrape") != "true" or notes.get("prometheus.io/path") != "/metrics.php":
        fail("php-app: the pods lack the /metrics.php scrape annotations")
    if notes.get("prometheus.io/port") not in nginx_ports:
        fail("php-app: prometheus.io/port is not nginx's port")

for message in failures:
    print(f"deploy/kubernetes: {message}", file=sys.stderr)
if failures:
    sys.exit(1)
print(f"deploy/kubernetes: {len(resources)} resources consistent")
