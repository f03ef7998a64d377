#!/usr/bin/env python3
"""Structural checks behind scripts/chart-check (run with its venv's Python: PyYAML).

`manifests`: one `helm template` output, checked against the values that produced it
(what each toggle must create, the security properties the chart promises, and that every
name one object uses is an object the chart renders or one the values say exists). It
writes the manifests minus CRD kinds (ServiceMonitor) for kubernetes-validate.
`docs`: every value in values.yaml has a row in the chart README.
`dockerfile`: the Dockerfile's stages, COPY sources and binaries exist in the checkout.
`agent`: the real shakeout-agent accepts the rendered tokens, policy and TLS material.
Each failure is one line `chart-check: FAIL: ...`; the exit code is the number of them.
"""

import argparse
import base64
import copy
import fnmatch
import json
import os
import re
import sys

import yaml

FAILURES = []

# Kinds kubernetes-validate has no schema for; checked here instead.
CRD_KINDS = {"ServiceMonitor"}
AGENT_CAPS = {"NET_ADMIN", "SYS_ADMIN", "KILL", "SYS_PTRACE"}
POLICY_KEYS = {"protectedNames", "protectedNamespaces", "tokens", "default"}
TOKEN_POLICY_KEYS = {"faultKinds", "maxDuration", "protectedNames"}
FAULT_KINDS = {"process", "network"}
# The controller's permissions, as `shakeout preflight` asks for them: in the agents'
# (release) namespace, and in each target namespace (or cluster-wide).
AGENT_RULES = {
    ("", "pods"): {"list"},
    ("", "pods/portforward"): {"get", "create"},
    ("apps", "daemonsets"): {"list"},
    ("", "events"): {"list"},
}
TARGET_RULES = {
    ("", "pods"): {"list", "watch", "delete"},
    ("", "pods/eviction"): {"create"},
    ("policy", "poddisruptionbudgets"): {"list"},
}
# The labels in-cluster controllers are told to carry (README, NOTES.txt).
CONTROLLER_PEER = {"app.kubernetes.io/part-of": "shakeout", "app.kubernetes.io/component": "controller"}


def fail(where, message):
    FAILURES.append(f"{where}: {message}")


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; Kubernetes' decoder rejects them."""


def _mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def merge(base, override):
    """Helm's merge of a values file over the defaults: maps merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def pod_spec(obj):
    kind = obj["kind"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind in ("DaemonSet", "Deployment", "StatefulSet", "Job"):
        return obj["spec"]["template"]["spec"]
    return None


def pod_labels(obj):
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["metadata"].get("labels", {})
    return obj["spec"]["template"]["metadata"].get("labels", {})


def selected(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def check_manifests(args):
    chart = args.chart
    with open(os.path.join(chart, "values.yaml")) as f:
        values = yaml.safe_load(f)
    if args.values:
        with open(args.values) as f:
            values = merge(values, yaml.safe_load(f))
    where = os.path.basename(args.manifests)
    with open(args.manifests) as f:
        try:
            docs = [d for d in yaml.load_all(f, Loader=UniqueKeyLoader) if d]
        except yaml.YAMLError as e:
            fail(where, f"rendered YAML does not parse: {e}")
            return
    ns = args.namespace
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
        d["metadata"].setdefault("namespace", None)

    def named(kind, name, namespace=ns):
        return [
            d for d in by_kind.get(kind, [])
            if d["metadata"]["name"] == name and d["metadata"]["namespace"] in (namespace, None)
        ]

    agent, ctl = values["agent"], values["controller"]
    tls, auth = agent["tls"], agent["auth"]
    sm_enabled = values["metrics"]["serviceMonitor"]["enabled"]
    # The ServiceMonitor (and its Service) render only where the cluster serves the CRD.
    sm = sm_enabled and args.monitoring_api
    pvc = values["gameDayReports"]["persistentVolumeClaim"]
    external = {  # objects the values say exist already: (kind, name)
        ("Secret", auth["existingSecret"]),
        ("Secret", tls["existingSecret"]),
        ("PersistentVolumeClaim", pvc["existingClaim"]),
        ("ServiceAccount", "" if ctl["serviceAccount"]["create"] else ctl["serviceAccount"]["name"]),
    }

    def exists(kind, name, namespace=ns):
        return bool(named(kind, name, namespace)) or (kind, name) in external

    # What each toggle must create.
    def count(kind, want, why):
        got = len(by_kind.get(kind, []))
        if got != want:
            fail(where, f"expected {want} {kind} ({why}), rendered {got}")

    count("DaemonSet", 1, "the agent")
    count("CronJob", len(values["gameDays"]), "one per game day")
    count("ServiceMonitor", 1 if sm else 0,
          "metrics.serviceMonitor.enabled, when the API has monitoring.coreos.com/v1/ServiceMonitor")
    count("Service", 1 if sm else 0, "the headless Service goes with the ServiceMonitor")
    count("NetworkPolicy", 1 if values["networkPolicy"]["enabled"] else 0, "networkPolicy.enabled")
    count("PersistentVolumeClaim", 1 if pvc["enabled"] and not pvc["existingClaim"] else 0,
          "gameDayReports.persistentVolumeClaim")
    targets = ctl["targetNamespaces"]
    if ctl["rbac"]["create"]:
        count("Role", 1 + len(targets), "agents Role + one per target namespace")
        count("ClusterRole", 0 if targets else 1, "ClusterRole only without targetNamespaces")
    secrets = {d["metadata"]["name"]: d for d in by_kind.get("Secret", [])}
    want_secrets = (0 if auth["existingSecret"] else 1) + (
        1 if tls["enabled"] and not tls["existingSecret"] else 0)
    if len(secrets) != want_secrets:
        fail(where, f"expected {want_secrets} Secret(s), rendered {sorted(secrets)}")

    # Token Secret: a tokens file the agent accepts, holding the controller's token.
    for s in secrets.values():
        data = s.get("data", {})
        if "tokens" not in data:
            continue
        text = base64.b64decode(data["tokens"]).decode()
        entries = dict(line.split(":", 1) for line in text.splitlines() if line.strip())
        if any(len(v) < 16 for v in entries.values()):
            fail(where, "a token in the tokens file is shorter than the agent's 16 characters")
        if entries.get("controller") != base64.b64decode(data.get("token", "")).decode():
            fail(where, "Secret key `token` is not the `controller` line of `tokens`")
        if sm_enabled and entries.get("metrics") != base64.b64decode(data.get("metrics-token", "")).decode():
            fail(where, "Secret key `metrics-token` is not the `metrics` line of `tokens`")

    # Policy: the agent's schema (serde deny_unknown_fields) and the chart's additions.
    policy_cms = [c for c in by_kind.get("ConfigMap", []) if "policy.yaml" in c.get("data", {})]
    if len(policy_cms) != 1:
        fail(where, "expected one policy ConfigMap")
    for cm in policy_cms:
        policy = yaml.safe_load(cm["data"]["policy.yaml"]) or {}
        if set(policy) - POLICY_KEYS:
            fail(where, f"policy has keys the agent rejects: {sorted(set(policy) - POLICY_KEYS)}")
        token_policies = dict(policy.get("tokens", {}))
        if "default" in policy:
            token_policies["(default)"] = policy["default"]
        for name, tp in token_policies.items():
            if set(tp) - TOKEN_POLICY_KEYS:
                fail(where, f"policy token {name}: unknown keys {sorted(set(tp) - TOKEN_POLICY_KEYS)}")
            if set(tp.get("faultKinds", [])) - FAULT_KINDS:
                fail(where, f"policy token {name}: unknown fault kinds")
        if not agent["hostNetwork"] and "host" not in policy.get("protectedNamespaces", []):
            fail(where, "without hostNetwork the policy must protect the `host` namespace")
        if sm_enabled and policy.get("tokens", {}).get("metrics", {}).get("faultKinds") != []:
            fail(where, "the metrics token must be allowed no fault kind")

    # Every container: resources with requests and a memory limit.
    for kind in ("DaemonSet", "CronJob"):
        for obj in by_kind.get(kind, []):
            spec = pod_spec(obj)
            for c in spec.get("initContainers", []) + spec["containers"]:
                r = c.get("resources") or {}
                if not r.get("requests") or "memory" not in r.get("limits", {}):
                    fail(where, f"{kind}/{obj['metadata']['name']} container {c['name']}: "
                                "needs resources.requests and limits.memory")

    # The agent DaemonSet.
    for ds in by_kind.get("DaemonSet", []):
        name = f"DaemonSet/{ds['metadata']['name']}"
        spec = pod_spec(ds)
        labels = pod_labels(ds)
        c = spec["containers"][0]
        sc = c.get("securityContext", {})
        if spec.get("hostPID") is not True:
            fail(where, f"{name}: hostPID must be true (pod processes and namespaces)")
        if spec.get("hostNetwork", False) != agent["hostNetwork"]:
            fail(where, f"{name}: hostNetwork does not follow agent.hostNetwork")
        if labels.get("app.kubernetes.io/name") != "shakeout-agent":
            fail(where, f"{name}: pods lack app.kubernetes.io/name=shakeout-agent (controller discovery)")
        if spec.get("automountServiceAccountToken") is not False:
            fail(where, f"{name}: the agent must not mount an API token")
        flags = dict(a.split("=", 1) for a in c["args"])
        grace = flags.get("--shutdown-grace", "")
        if not re.fullmatch(r"\d+s", grace) or spec["terminationGracePeriodSeconds"] <= int(grace[:-1]):
            fail(where, f"{name}: terminationGracePeriodSeconds must exceed --shutdown-grace ({grace})")
        if not flags.get("--listen", "").endswith(f":{agent['port']}"):
            fail(where, f"{name}: --listen is not on agent.port")
        for flag in ("--tokens", "--state-dir", "--policy", "--log-format"):
            if flag not in flags:
                fail(where, f"{name}: missing {flag}")
        if tls["enabled"] != ("--tls-cert" in flags and "--tls-key" in flags):
            fail(where, f"{name}: --tls-cert/--tls-key do not follow agent.tls.enabled")
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe in ("readinessProbe", "livenessProbe"):
            get = c.get(probe, {}).get("httpGet", {})
            if get.get("path") != "/v1/health" or ports.get(get.get("port")) != agent["port"]:
                fail(where, f"{name}: {probe} must GET /v1/health on the agent port")
            if get.get("scheme") != ("HTTPS" if tls["enabled"] else "HTTP"):
                fail(where, f"{name}: {probe} scheme does not follow agent.tls.enabled")
        if agent["privileged"]:
            if sc.get("privileged") is not True:
                fail(where, f"{name}: agent.privileged but the container is not privileged")
        else:
            caps = sc.get("capabilities", {})
            if sc.get("privileged") or caps.get("drop") != ["ALL"]:
                fail(where, f"{name}: must drop ALL capabilities and not be privileged")
            added = set(caps.get("add", []))
            if added != AGENT_CAPS | set(agent["extraCapabilities"]):
                fail(where, f"{name}: capabilities {sorted(added)}, expected {sorted(AGENT_CAPS)} + extras")
        state = [v for v in spec["volumes"] if v["name"] == "state"]
        if not state or state[0].get("hostPath", {}).get("type") != "DirectoryOrCreate":
            fail(where, f"{name}: the state directory must be a DirectoryOrCreate hostPath")
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        if mounts.get("state") != flags.get("--state-dir"):
            fail(where, f"{name}: --state-dir is not the hostPath mount")
        check_pod_refs(where, name, spec, exists)
        if spec["serviceAccountName"] and not exists("ServiceAccount", spec["serviceAccountName"]):
            fail(where, f"{name}: ServiceAccount {spec['serviceAccountName']} is not rendered")

    # Game days.
    experiments = {}
    for cm in by_kind.get("ConfigMap", []):
        if cm["metadata"]["name"].endswith("-experiments"):
            experiments = cm.get("data", {})
    for gd in values["gameDays"]:
        key = f"{gd['name']}.yaml"
        try:
            if not isinstance(yaml.safe_load(experiments.get(key, "")), dict):
                fail(where, f"game day {gd['name']}: {key} is missing or not a YAML map")
        except yaml.YAMLError as e:
            fail(where, f"game day {gd['name']}: {key} does not parse: {e}")
    peer = None
    for np in by_kind.get("NetworkPolicy", []):
        ds_labels = pod_labels(by_kind["DaemonSet"][0])
        if not selected(np["spec"]["podSelector"].get("matchLabels"), ds_labels):
            fail(where, "NetworkPolicy does not select the agent pods")
        rule = np["spec"]["ingress"][0]
        peer = rule["from"][0]["podSelector"]["matchLabels"]
        if peer != CONTROLLER_PEER:
            fail(where, f"NetworkPolicy admits {peer}; the documented controller labels are {CONTROLLER_PEER}")
        if [p["port"] for p in rule["ports"]] != [agent["port"]]:
            fail(where, "NetworkPolicy must admit the agent port only")
        if len(rule["from"]) != 1 + len(values["networkPolicy"]["extraFrom"]):
            fail(where, "NetworkPolicy peers do not follow networkPolicy.extraFrom")
    for cj in by_kind.get("CronJob", []):
        name = f"CronJob/{cj['metadata']['name']}"
        spec = pod_spec(cj)
        job = cj["spec"]["jobTemplate"]["spec"]
        psc = spec.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True or psc.get("runAsUser") != 65532:
            fail(where, f"{name}: the game-day pod must run as non-root uid 65532")
        if cj["spec"].get("concurrencyPolicy") != "Forbid" or job.get("backoffLimit") != 0:
            fail(where, f"{name}: needs concurrencyPolicy Forbid and backoffLimit 0")
        if not job.get("activeDeadlineSeconds"):
            fail(where, f"{name}: needs activeDeadlineSeconds")
        for c in spec["containers"]:
            sc = c.get("securityContext", {})
            if not (sc.get("runAsNonRoot") and sc.get("readOnlyRootFilesystem")
                    and sc.get("allowPrivilegeEscalation") is False
                    and sc.get("capabilities", {}).get("drop") == ["ALL"]):
                fail(where, f"{name}: container {c['name']} must be non-root, read-only, drop ALL")
            env = {e["name"]: e for e in c.get("env", [])}
            ref = env.get("SHAKEOUT_TOKEN", {}).get("valueFrom", {}).get("secretKeyRef", {})
            if ref.get("key") != "token":
                fail(where, f"{name}: SHAKEOUT_TOKEN must come from the token Secret's `token`")
            script = " ".join(c.get("args", []))
            for flag in ("--json", "--junit", "--markdown"):
                if flag not in script:
                    fail(where, f"{name}: shakeout run lacks {flag}")
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            if tls["enabled"] and "/etc/shakeout/ca" not in mounts:
                fail(where, f"{name}: with TLS the CA must be mounted at /etc/shakeout/ca")
            if not {"/experiments", "/reports", "/tmp"} <= mounts:
                fail(where, f"{name}: needs /experiments, /reports and /tmp mounted")
        if peer is not None and not selected(peer, pod_labels(cj)):
            fail(where, f"{name}: pods do not carry the labels the NetworkPolicy admits")
        check_pod_refs(where, name, spec, exists)
        if not exists("ServiceAccount", spec["serviceAccountName"]):
            fail(where, f"{name}: ServiceAccount {spec['serviceAccountName']} is neither rendered nor external")
        reports = [v for v in spec["volumes"] if v["name"] == "reports"][0]
        if bool(pvc["enabled"] or pvc["existingClaim"]) != ("persistentVolumeClaim" in reports):
            fail(where, f"{name}: the reports volume does not follow gameDayReports.persistentVolumeClaim")

    # RBAC: bindings point at rendered roles; no wildcards; port-forward only next to the agents.
    for kind in ("Role", "ClusterRole"):
        for role in by_kind.get(kind, []):
            for rule in role.get("rules", []):
                for field in ("apiGroups", "resources", "verbs"):
                    if "*" in rule.get(field, []):
                        fail(where, f"{kind}/{role['metadata']['name']}: wildcard in {field}")
                if "secrets" in rule.get("resources", []):
                    fail(where, f"{kind}/{role['metadata']['name']}: the controller needs no Secret access")
                if "pods/portforward" in rule.get("resources", []) and role["metadata"]["namespace"] != ns:
                    fail(where, f"{kind}/{role['metadata']['name']}: pods/portforward outside the agents' namespace")
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        for rb in by_kind.get(kind, []):
            ref = rb["roleRef"]
            if not named(ref["kind"], ref["name"], rb["metadata"]["namespace"]):
                fail(where, f"{kind}/{rb['metadata']['name']}: {ref['kind']} {ref['name']} not rendered")
            for s in rb["subjects"]:
                if not exists("ServiceAccount", s["name"], s["namespace"]):
                    fail(where, f"{kind}/{rb['metadata']['name']}: ServiceAccount {s['name']} unknown")
    # Every permission the controller asks for before a run (src/fault/preflight/cluster.rs)
    # or uses when no agent is Ready (src/kube/daemonset.rs) is granted where it is used.
    if ctl["rbac"]["create"]:
        for role in by_kind.get("Role", []) + by_kind.get("ClusterRole", []):
            agents_role = role["kind"] == "Role" and role["metadata"]["namespace"] == ns
            need = AGENT_RULES if agents_role else TARGET_RULES
            got = granted(role)
            for (group, resource), verbs in need.items():
                missing = verbs - got.get((group, resource), set())
                if missing:
                    scope = role["metadata"]["namespace"] or "the cluster"
                    fail(where, f"{role['kind']}/{role['metadata']['name']} in {scope}: "
                                f"{resource} ({group or 'core'}) lacks {sorted(missing)}")
    got_ns = sorted(r["metadata"]["namespace"] for r in by_kind.get("Role", []) if r["metadata"]["namespace"] != ns)
    if ctl["rbac"]["create"] and got_ns != sorted(targets):
        fail(where, f"target Roles in {got_ns}, expected {sorted(targets)}")

    # ServiceMonitor (a CRD kubernetes-validate has no schema for): a minimal check of
    # its shape and of what it points at.
    for mon in by_kind.get("ServiceMonitor", []):
        name = f"ServiceMonitor/{mon['metadata']['name']}"
        if mon["apiVersion"] != "monitoring.coreos.com/v1":
            fail(where, f"{name}: apiVersion must be monitoring.coreos.com/v1")
        if set(mon) - {"apiVersion", "kind", "metadata", "spec"}:
            fail(where, f"{name}: unexpected top-level keys")
        svcs = [s for s in by_kind.get("Service", []) if selected(mon["spec"]["selector"]["matchLabels"], s["metadata"].get("labels", {}))]
        if len(svcs) != 1:
            fail(where, f"{name}: selects {len(svcs)} Services, expected 1")
            continue
        svc = svcs[0]
        if svc["spec"].get("clusterIP") != "None":
            fail(where, f"{name}: the Service must be headless (scrape every agent)")
        if not selected(svc["spec"]["selector"], pod_labels(by_kind["DaemonSet"][0])):
            fail(where, f"{name}: the Service does not select the agent pods")
        for ep in mon["spec"]["endpoints"]:
            if ep["port"] not in [p["name"] for p in svc["spec"]["ports"]]:
                fail(where, f"{name}: endpoint port {ep['port']} is not a Service port")
            if ep.get("path") != "/metrics":
                fail(where, f"{name}: endpoint path must be /metrics")
            cred = ep.get("authorization", {}).get("credentials", {})
            sec = secrets.get(cred.get("name"))
            if not ((sec and cred.get("key") in sec.get("data", {})) or ("Secret", cred.get("name")) in external):
                fail(where, f"{name}: bearer credentials {cred} are not a rendered Secret key")
            if ep.get("scheme") != ("https" if tls["enabled"] else "http"):
                fail(where, f"{name}: scheme does not follow agent.tls.enabled")
            if tls["enabled"] and not ep.get("tlsConfig", {}).get("ca"):
                fail(where, f"{name}: with TLS it needs tlsConfig.ca")

    with open(args.out, "w") as f:
        yaml.safe_dump_all([d for d in docs if d["kind"] not in CRD_KINDS], f, sort_keys=False)


def granted(role):
    """(apiGroup, resource) -> verbs a Role or ClusterRole grants."""
    out = {}
    for rule in role.get("rules", []):
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                out.setdefault((group, resource), set()).update(rule.get("verbs", []))
    return out


def check_pod_refs(where, name, spec, exists):
    """Every ConfigMap/Secret/PVC a pod mounts or reads is rendered or external."""
    for v in spec.get("volumes", []):
        for key, kind, field in (("configMap", "ConfigMap", "name"), ("secret", "Secret", "secretName"),
                                 ("persistentVolumeClaim", "PersistentVolumeClaim", "claimName")):
            if key in v and not exists(kind, v[key][field]):
                fail(where, f"{name}: volume {v['name']} uses {kind} {v[key][field]}, which is not rendered")
    for c in spec["containers"]:
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref and not exists("Secret", ref["name"]):
                fail(where, f"{name}: env {e['name']} uses Secret {ref['name']}, which is not rendered")


def check_docs(args):
    with open(os.path.join(args.chart, "values.yaml")) as f:
        values = yaml.safe_load(f)
    with open(os.path.join(args.chart, "README.md")) as f:
        readme = f.read()
    documented = set(re.findall(r"^\|\s*`([^`]+)`", readme, re.M))

    def walk(node, path):
        if isinstance(node, dict) and node:
            for k, v in node.items():
                yield from walk(v, f"{path}.{k}" if path else k)
        else:
            yield path

    for path in walk(values, ""):
        parts = path.split(".")
        if not any(".".join(parts[:n]) in documented for n in range(1, len(parts) + 1)):
            fail("charts/shakeout/README.md", f"value `{path}` has no row in the values table")


def dockerignored(path, patterns):
    """Docker's rule: the last matching pattern wins; `!` re-includes; a match of a
    parent directory covers what is under it."""
    ignored = False
    parts = path.split("/")
    for neg, pat in patterns:
        for n in range(1, len(parts) + 1):
            if fnmatch.fnmatchcase("/".join(parts[:n]), pat):
                ignored = not neg
                break
    return ignored


def check_dockerfile(args):
    root = args.root
    where = "Dockerfile"
    with open(os.path.join(root, "Dockerfile")) as f:
        lines = f.read().replace("\\\n", " ").splitlines()
    patterns = []
    with open(os.path.join(root, ".dockerignore")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                neg = line.startswith("!")
                patterns.append((neg, line.lstrip("!").strip("/")))
    stages, copies, user = [], [], {}
    for line in lines:
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        op = words[0].upper()
        if op == "FROM":
            stages.append(words[3] if len(words) > 3 and words[2].upper() == "AS" else None)
        elif op == "COPY":
            opts = [w for w in words[1:] if w.startswith("--")]
            srcs = [w for w in words[1:] if not w.startswith("--")][:-1]
            copies.append((stages[-1], opts, srcs))
        elif op == "USER":
            user[stages[-1]] = words[1]
    for target in ("build", "agent", "controller"):
        if target not in stages:
            fail(where, f"no stage `{target}` (docker build --target {target})")
    if user.get("controller", "").split(":")[0] != "65532":
        fail(where, "the controller stage must run as USER 65532 (the chart's runAsUser)")
    bins = set(re.findall(r'^\[\[bin\]\]\s*\nname\s*=\s*"([^"]+)"', open(os.path.join(root, "Cargo.toml")).read()
                          + open(os.path.join(root, "agent/Cargo.toml")).read(), re.M))
    for stage, opts, srcs in copies:
        from_stage = [o.split("=", 1)[1] for o in opts if o.startswith("--from=")]
        for src in srcs:
            if from_stage:
                if from_stage[0] not in stages[: stages.index(stage)]:
                    fail(where, f"COPY --from={from_stage[0]} in stage {stage}: no earlier stage of that name")
                b = os.path.basename(src)
                if "/out/" in src and b not in bins:
                    fail(where, f"COPY {src}: `{b}` is not a [[bin]] of the workspace ({sorted(bins)})")
                continue
            path = os.path.normpath(src)
            if not os.path.exists(os.path.join(root, path)):
                fail(where, f"COPY {src} in stage {stage}: no such file in the checkout")
            elif dockerignored(path, patterns):
                fail(where, f"COPY {src}: excluded by .dockerignore")
    # What the build needs must be in the context: every include_str! of non-test code
    # and every target Cargo manifests declare explicitly.
    needed = ["Cargo.toml", "Cargo.lock", "src/main.rs", "agent/Cargo.toml", "agent/src/main.rs",
              "agent/api/Cargo.toml", "agent/api/src/lib.rs", "agent/benches/agent.rs"]
    for dirpath, _, files in os.walk(os.path.join(root, "src")):
        for name in files:
            if not name.endswith(".rs") or name == "tests.rs":
                continue
            p = os.path.join(dirpath, name)
            for inc in re.findall(r'include_str!\("([^"]+)"\)', open(p).read()):
                needed.append(os.path.relpath(os.path.normpath(os.path.join(dirpath, inc)), root))
    copied = {os.path.normpath(s) for _, o, srcs in copies for s in srcs if not o}
    for path in needed:
        if dockerignored(path, patterns):
            fail(".dockerignore", f"{path} is needed by cargo build but excluded from the context")
        elif not any(path == c or path.startswith(c + "/") for c in copied):
            fail(where, f"{path} is needed by cargo build but no COPY brings it in")


def check_agent(args):
    """Start the real agent on the tokens, policy and TLS material the chart rendered,
    on 127.0.0.1, and check it accepts them and enforces what the chart promises."""
    import http.client
    import shutil
    import signal
    import socket
    import ssl
    import subprocess
    import tempfile

    where = f"agent on {os.path.basename(args.manifests)}"
    with open(args.manifests) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    secrets = [d for d in docs if d["kind"] == "Secret"]
    auth = next((s for s in secrets if "tokens" in s.get("data", {})), None)
    if auth is None:
        print(f"   {where}: skipped (tokens come from an existing Secret)")
        return
    tls = next((s for s in secrets if s.get("type") == "kubernetes.io/tls"), None)
    policy = next(d for d in docs if d["kind"] == "ConfigMap" and "policy.yaml" in d.get("data", {}))
    ds = next(d for d in docs if d["kind"] == "DaemonSet")
    host_network = pod_spec(ds).get("hostNetwork", False)
    dec = lambda s, k: base64.b64decode(s["data"][k]).decode()
    tmp = tempfile.mkdtemp(prefix="chart-check-agent-")

    def write(name, text):
        path = os.path.join(tmp, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        return path

    cmd = [args.agent, "--listen", "127.0.0.1:0", "--tokens", write("tokens", dec(auth, "tokens")),
           "--state-dir", os.path.join(tmp, "state"), "--policy", write("policy.yaml", policy["data"]["policy.yaml"]),
           "--log-format", "json", "--shutdown-grace", "5s"]
    ctx = None
    if tls:
        cmd += ["--tls-cert", write("tls.crt", dec(tls, "tls.crt")), "--tls-key", write("tls.key", dec(tls, "tls.key"))]
        ctx = ssl.create_default_context(cafile=write("ca.crt", dec(tls, "ca.crt")))
    log = open(os.path.join(tmp, "agent.log"), "w")
    agent = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        line = agent.stdout.readline().strip()
        if not line.startswith("listening "):
            fail(where, f"the agent did not start on the rendered files: {open(log.name).read()[-800:]}")
            return
        port = int(line.rsplit(":", 1)[1])

        def call(method, path, token=None, body=None, server_name="shakeout-agent"):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.sock = ctx.wrap_socket(sock, server_hostname=server_name) if ctx else sock
            headers = {"Content-Type": "application/json"}
            if token:
                headers["Authorization"] = "Bearer " + token
            conn.request(method, path, body=json.dumps(body) if body else None, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read().decode(errors="replace")[:200]

        def expect(what, got, want):
            if got[0] != want:
                fail(where, f"{what}: HTTP {got[0]} {got[1]!r}, expected {want}")

        def dry_run(spec):
            return {"experiment": "chart-check", "fault": "f", "duration": "1s", "dryRun": True, "spec": spec}

        controller = dec(auth, "token")
        pause = {"process": {"target": {"pid": sleeper.pid}, "action": "pause"}}
        expect("GET /v1/health without a token (the probes)", call("GET", "/v1/health"), 200)
        expect("GET /metrics without a token", call("GET", "/metrics"), 401)
        expect("GET /v1/capabilities with the controller token", call("GET", "/v1/capabilities", controller), 200)
        expect("dry-run pause with the controller token", call("POST", "/v1/faults", controller, dry_run(pause)), 201)
        expect(f"dry-run host-namespace loss (hostNetwork {host_network})",
               call("POST", "/v1/faults", controller, dry_run({"network": {"loss": "10%"}})),
               201 if host_network else 403)
        if "metrics-token" in auth["data"]:
            metrics = dec(auth, "metrics-token")
            expect("GET /metrics with the metrics token", call("GET", "/metrics", metrics), 200)
            expect("dry-run pause with the metrics token", call("POST", "/v1/faults", metrics, dry_run(pause)), 403)
        if ctx:
            expect("TLS as localhost", call("GET", "/v1/health", server_name="localhost"), 200)
            try:
                call("GET", "/v1/health", server_name="not-shakeout")
                fail(where, "TLS: a wrong server name was accepted")
            except ssl.SSLCertVerificationError:
                pass
        agent.send_signal(signal.SIGTERM)
        if agent.wait(timeout=15) != 0:
            fail(where, f"exit {agent.returncode} after SIGTERM")
        print(f"   {where}: tokens, policy{' and TLS' if tls else ''} accepted and enforced")
    except Exception as e:  # a crash of the check is a failure of the check, with its reason
        fail(where, f"{type(e).__name__}: {e}")
    finally:
        for p in (sleeper, agent):
            if p.poll() is None:
                p.kill()
                p.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("manifests")
    m.add_argument("manifests")
    m.add_argument("--chart", required=True)
    m.add_argument("--values")
    m.add_argument("--namespace", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--monitoring-api", action="store_true",
                   help="rendered with --api-versions monitoring.coreos.com/v1/ServiceMonitor")
    d = sub.add_parser("docs")
    d.add_argument("--chart", required=True)
    k = sub.add_parser("dockerfile")
    k.add_argument("--root", required=True)
    a = sub.add_parser("agent")
    a.add_argument("manifests")
    a.add_argument("--agent", required=True, help="the shakeout-agent binary")
    args = p.parse_args()
    {"manifests": check_manifests, "docs": check_docs, "dockerfile": check_dockerfile,
     "agent": check_agent}[args.cmd](args)
    for f in FAILURES:
        print(f"chart-check: FAIL: {f}", file=sys.stderr)
    sys.exit(min(len(FAILURES), 100))


if __name__ == "__main__":
    main()
