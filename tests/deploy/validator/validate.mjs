// Offline checks of rendered Kubernetes manifests (the output of `kubectl kustomize`).
//
//   node validate.mjs check RENDERED.yaml [IMAGES.yaml KEY]
//                                              schema validation + cross-reference checks;
//                                              with IMAGES.yaml, every container must render
//                                              exactly the image listed under KEY
//   node validate.mjs extract-rules RENDERED.yaml
//                                              prints the PrometheusRule's spec (a plain
//                                              Prometheus rules file) for promtool
//   node validate.mjs promql RENDERED.yaml     prints every PromQL expression, one JSON
//                                              object per line (rules, KEDA triggers)
//   node validate.mjs live RENDERED.yaml DASHBOARD.json PROMETHEUS_URL
//                                              evaluates every rule, trigger and dashboard
//                                              query on a live Prometheus: each must return data
//   node validate.mjs dashboard DASHBOARD.json checks the Grafana dashboard's structure and
//                                              prints its queries as a Prometheus rules file
//                                              (Grafana macros replaced) for promtool
//
// Schemas: kubernetes-models (Kubernetes API, Kubernetes v1.36 API, see docs/deploy.md),
// @kubernetes-models/keda and @kubernetes-models/prometheus-operator. The cross-reference
// checks catch what a schema cannot: names and ports that must agree between objects.
// Exit status 1 and one line per problem on stderr when anything is wrong.
import { readFileSync } from "node:fs";
import yaml from "js-yaml";

// Maps apiVersion to the module that holds its model classes.
function modulePath(apiVersion) {
  if (apiVersion.startsWith("keda.sh/")) return `@kubernetes-models/keda/${apiVersion}`;
  if (apiVersion.startsWith("monitoring.coreos.com/")) {
    return `@kubernetes-models/prometheus-operator/${apiVersion}`;
  }
  return `kubernetes-models/${apiVersion}`;
}

function loadDocs(file) {
  return yaml.loadAll(readFileSync(file, "utf8")).filter((d) => d && typeof d === "object");
}

const id = (o) => `${o.kind}/${o.metadata?.namespace ?? "-"}/${o.metadata?.name ?? "?"}`;

async function validateSchemas(docs, problems) {
  for (const doc of docs) {
    if (!doc.apiVersion || !doc.kind) {
      problems.push(`object without apiVersion/kind: ${JSON.stringify(doc).slice(0, 80)}`);
      continue;
    }
    let mod;
    try {
      mod = await import(modulePath(doc.apiVersion));
    } catch (e) {
      problems.push(`${id(doc)}: no schema for apiVersion ${doc.apiVersion}`);
      continue;
    }
    const Model = mod[doc.kind];
    if (!Model) {
      problems.push(`${id(doc)}: no schema for kind ${doc.kind} in ${doc.apiVersion}`);
      continue;
    }
    try {
      new Model(doc).validate();
    } catch (e) {
      problems.push(`${id(doc)}: schema: ${String(e.message).split("\n").slice(0, 5).join("; ")}`);
    }
  }
}

const matches = (selector, labels) =>
  Object.entries(selector ?? {}).every(([k, v]) => (labels ?? {})[k] === v);

// Pod-owning workloads and their pod templates.
function podTemplates(docs) {
  return docs
    .filter((d) => ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"].includes(d.kind))
    .map((d) => ({ owner: d, ns: d.metadata?.namespace, template: d.spec?.template ?? {} }));
}

function containerPorts(template) {
  const out = [];
  for (const c of [...(template.spec?.containers ?? []), ...(template.spec?.initContainers ?? [])]) {
    for (const p of c.ports ?? []) out.push({ container: c.name, name: p.name, port: p.containerPort });
  }
  return out;
}

// A port reference (number or name) resolves against the given container ports.
const portResolves = (ref, ports) =>
  typeof ref === "number" ? ports.some((p) => p.port === ref) : ports.some((p) => p.name === ref);

function crossReferences(docs, problems) {
  const pods = podTemplates(docs);
  const byKind = (kind) => docs.filter((d) => d.kind === kind);
  const find = (kind, ns, name) =>
    docs.find((d) => d.kind === kind && d.metadata?.name === name && d.metadata?.namespace === ns);
  const selectedPods = (ns, selector) =>
    pods.filter((p) => p.ns === ns && matches(selector, p.template.metadata?.labels));

  for (const { owner, template } of pods) {
    const sel = owner.spec?.selector?.matchLabels;
    if (owner.kind !== "Job" && !matches(sel, template.metadata?.labels)) {
      problems.push(`${id(owner)}: selector ${JSON.stringify(sel)} does not match its pod template labels`);
    }
    const ns = owner.metadata?.namespace;
    const ports = containerPorts(template);
    const cms = [];
    for (const c of [...(template.spec?.containers ?? []), ...(template.spec?.initContainers ?? [])]) {
      for (const ef of c.envFrom ?? []) {
        if (ef.configMapRef && !ef.configMapRef.optional) cms.push([ef.configMapRef.name, null, c.name]);
      }
      for (const e of c.env ?? []) {
        const r = e.valueFrom?.configMapKeyRef;
        if (r && !r.optional) cms.push([r.name, r.key, c.name]);
      }
      for (const kind of ["startupProbe", "livenessProbe", "readinessProbe"]) {
        const probe = c[kind];
        if (!probe) continue;
        const ref = probe.httpGet?.port ?? probe.tcpSocket?.port ?? probe.grpc?.port;
        if (ref !== undefined && !portResolves(ref, ports)) {
          problems.push(`${id(owner)}: container ${c.name} ${kind} port ${ref} is not a container port`);
        }
      }
    }
    for (const v of template.spec?.volumes ?? []) {
      if (v.configMap && !v.configMap.optional) cms.push([v.configMap.name, null, `volume ${v.name}`]);
    }
    for (const [name, key, where] of cms) {
      const cm = find("ConfigMap", ns, name);
      if (!cm) problems.push(`${id(owner)}: ${where} references missing ConfigMap ${name}`);
      else if (key && !(key in (cm.data ?? {}))) {
        problems.push(`${id(owner)}: ${where} references missing key ${key} of ConfigMap ${name}`);
      }
    }
    // Arguments like --server=$(VAR) need VAR from the container's environment.
    for (const c of template.spec?.containers ?? []) {
      const env = new Set((c.env ?? []).map((e) => e.name));
      for (const ef of c.envFrom ?? []) {
        const cm = ef.configMapRef && find("ConfigMap", ns, ef.configMapRef.name);
        for (const k of Object.keys(cm?.data ?? {})) env.add(k);
      }
      for (const arg of [...(c.args ?? []), ...(c.command ?? [])]) {
        for (const m of String(arg).matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) {
          if (!env.has(m[1])) problems.push(`${id(owner)}: container ${c.name} argument uses undefined $(${m[1]})`);
        }
      }
    }
  }

  for (const svc of byKind("Service")) {
    const ns = svc.metadata?.namespace;
    const sel = svc.spec?.selector;
    if (!sel) continue;
    const targets = selectedPods(ns, sel);
    if (targets.length === 0) {
      problems.push(`${id(svc)}: selector ${JSON.stringify(sel)} matches no pod template`);
      continue;
    }
    for (const p of svc.spec?.ports ?? []) {
      const ref = p.targetPort ?? p.port;
      for (const t of targets) {
        if (!portResolves(ref, containerPorts(t.template))) {
          problems.push(`${id(svc)}: port ${p.name ?? p.port} targetPort ${ref} is not a container port of ${id(t.owner)}`);
        }
      }
    }
  }

  // Two controllers whose selectors take each other's pods fight over them (one worker
  // Deployment per model must carry the model in its selector), and the eviction API refuses to
  // evict a pod that more than one PodDisruptionBudget covers.
  for (const { owner, ns } of pods) {
    if (owner.kind === "Job") continue;
    for (const other of selectedPods(ns, owner.spec?.selector?.matchLabels)) {
      if (other.owner !== owner) problems.push(`${id(owner)}: selector also selects the pods of ${id(other.owner)}`);
    }
  }
  const pdbs = byKind("PodDisruptionBudget");
  for (const pdb of pdbs) {
    if (selectedPods(pdb.metadata?.namespace, pdb.spec?.selector?.matchLabels).length === 0) {
      problems.push(`${id(pdb)}: selector matches no pod template`);
    }
  }
  for (const p of pods) {
    const covering = pdbs.filter((b) => b.metadata?.namespace === p.ns &&
      matches(b.spec?.selector?.matchLabels, p.template.metadata?.labels));
    if (covering.length > 1) {
      problems.push(`${id(p.owner)}: pods covered by ${covering.length} PodDisruptionBudgets (${covering.map(id).join(", ")}); evictions would fail`);
    }
  }

  for (const sm of byKind("ServiceMonitor")) {
    const ns = sm.metadata?.namespace;
    const svcs = byKind("Service").filter(
      (s) => s.metadata?.namespace === ns && matches(sm.spec?.selector?.matchLabels, s.metadata?.labels));
    if (svcs.length === 0) problems.push(`${id(sm)}: selector matches no Service`);
    for (const ep of sm.spec?.endpoints ?? []) {
      for (const s of svcs) {
        if (ep.port && !(s.spec?.ports ?? []).some((p) => p.name === ep.port)) {
          problems.push(`${id(sm)}: endpoint port ${ep.port} is not a port name of ${id(s)}`);
        }
      }
    }
  }

  for (const pm of byKind("PodMonitor")) {
    const targets = selectedPods(pm.metadata?.namespace, pm.spec?.selector?.matchLabels);
    if (targets.length === 0) problems.push(`${id(pm)}: selector matches no pod template`);
    for (const ep of pm.spec?.podMetricsEndpoints ?? []) {
      for (const t of targets) {
        if (ep.port && !containerPorts(t.template).some((p) => p.name === ep.port)) {
          problems.push(`${id(pm)}: port ${ep.port} is not a container port name of ${id(t.owner)}`);
        }
      }
    }
  }

  for (const a of [...byKind("ScaledObject"), ...byKind("HorizontalPodAutoscaler")]) {
    const ref = a.spec?.scaleTargetRef ?? {};
    if (!find(ref.kind ?? "Deployment", a.metadata?.namespace, ref.name)) {
      problems.push(`${id(a)}: scaleTargetRef ${ref.kind ?? "Deployment"}/${ref.name} does not exist`);
    }
  }

  // Workers dial the front through an address in the ConfigMap: it must name a Service port.
  for (const cm of byKind("ConfigMap")) {
    const addr = cm.data?.TPDIFF_SERVER_ADDRESS;
    if (!addr) continue;
    const [host, port] = addr.split(":");
    const [svcName, svcNs] = host.split(".");
    const svc = find("Service", svcNs ?? cm.metadata?.namespace, svcName);
    if (!svc) problems.push(`${id(cm)}: TPDIFF_SERVER_ADDRESS ${addr} names no Service`);
    else if (!(svc.spec?.ports ?? []).some((p) => String(p.port) === port)) {
      problems.push(`${id(cm)}: TPDIFF_SERVER_ADDRESS ${addr}: ${id(svc)} has no port ${port}`);
    }
  }

  secretReferences(docs, pods, find, problems);
  securityFlags(docs, pods, find, problems);
}

// Secrets that hold keys are not part of any kustomization: the operator or cert-manager
// creates them (docs/deploy.md). The rule: every Secret a pod template needs (non-optional
// volume, projected source, env or envFrom reference) is either rendered or named in the
// workload's annotation OUT_OF_BAND (comma-separated); a name listed there that the workload
// does not use is reported too, so the list stays the documented truth. For rendered Secrets
// and ConfigMaps, the keys that volume items project must exist.
const OUT_OF_BAND = "tpdiff.io/secrets-created-out-of-band";

function secretReferences(docs, pods, find, problems) {
  for (const { owner, ns, template } of pods) {
    const listed = new Set(
      String(owner.metadata?.annotations?.[OUT_OF_BAND] ?? "").split(",").map((x) => x.trim()).filter(Boolean));
    const refs = []; // [secret name, key or null, where]
    const spec = template.spec ?? {};
    for (const v of spec.volumes ?? []) {
      if (v.secret && !v.secret.optional) {
        if (!(v.secret.items ?? []).length) refs.push([v.secret.secretName, null, `volume ${v.name}`]);
        for (const it of v.secret.items ?? []) refs.push([v.secret.secretName, it.key, `volume ${v.name}`]);
      }
      for (const src of v.projected?.sources ?? []) {
        if (src.secret && !src.secret.optional) refs.push([src.secret.name, null, `volume ${v.name}`]);
      }
      if (v.configMap && !v.configMap.optional) {
        const cm = find("ConfigMap", ns, v.configMap.name);
        for (const it of v.configMap.items ?? []) {
          if (cm && !(it.key in { ...(cm.data ?? {}), ...(cm.binaryData ?? {}) })) {
            problems.push(`${id(owner)}: volume ${v.name} projects missing key ${it.key} of ConfigMap ${cm.metadata.name}`);
          }
        }
      }
    }
    for (const c of [...(spec.containers ?? []), ...(spec.initContainers ?? [])]) {
      for (const ef of c.envFrom ?? []) {
        if (ef.secretRef && !ef.secretRef.optional) refs.push([ef.secretRef.name, null, `container ${c.name}`]);
      }
      for (const e of c.env ?? []) {
        const r = e.valueFrom?.secretKeyRef;
        if (r && !r.optional) refs.push([r.name, r.key, `container ${c.name}`]);
      }
    }
    for (const r of spec.imagePullSecrets ?? []) refs.push([r.name, null, "imagePullSecrets"]);

    // A StatefulSet's volumeClaimTemplates are volumes of its pods too.
    const volumeNames = new Set([...(spec.volumes ?? []), ...(owner.spec?.volumeClaimTemplates ?? [])]
      .map((v) => v.name ?? v.metadata?.name));
    for (const c of [...(spec.containers ?? []), ...(spec.initContainers ?? [])]) {
      for (const m of c.volumeMounts ?? []) {
        if (!volumeNames.has(m.name)) problems.push(`${id(owner)}: container ${c.name} mounts ${m.mountPath} from missing volume ${m.name}`);
      }
    }
    const used = new Set();
    for (const [name, key, where] of refs) {
      used.add(name);
      const secret = find("Secret", ns, name);
      if (secret) {
        if (key && !(key in { ...(secret.data ?? {}), ...(secret.stringData ?? {}) })) {
          problems.push(`${id(owner)}: ${where} references missing key ${key} of Secret ${name}`);
        }
      } else if (!listed.has(name)) {
        problems.push(`${id(owner)}: ${where} references Secret ${name}, which is neither rendered nor listed in ${OUT_OF_BAND}`);
      }
    }
    for (const name of listed) {
      if (!used.has(name)) problems.push(`${id(owner)}: ${OUT_OF_BAND} lists Secret ${name}, which the pod template does not use`);
      else if (find("Secret", ns, name)) problems.push(`${id(owner)}: ${OUT_OF_BAND} lists Secret ${name}, which is rendered too`);
    }
  }
}

// Flags of tpdiff-server / tpdiff-worker (docs/security.md), spelled --a-b or --a_b.
function flagValues(container) {
  const flags = new Map();
  for (const arg of [...(container.command ?? []), ...(container.args ?? [])]) {
    const m = String(arg).match(/^--([a-z0-9_-]+)(?:=(.*))?$/);
    if (m) flags.set(m[1].replaceAll("_", "-"), m[2] ?? "true");
  }
  return flags;
}

const imageIs = (c, name) => new RegExp(`(^|/)${name}(-[a-z0-9]+)?(:|@|$)`).test(c.image ?? "");
const FILE_FLAGS = ["tls-cert", "tls-key", "tls-ca", "tls-client-ca", "worker-secret-file", "tenants-file",
  "redis-password-file"];
const portOf = (hostPort) => Number(String(hostPort).slice(String(hostPort).lastIndexOf(":") + 1));

// What the binaries refuse at start, checked offline, plus what must agree between the
// front and its workers and between the front and its probes:
// - plaintext (--insecure) or API keys off (--auth=none) only in a workload that says why in
//   the annotation INSECURE (the laptop overlay), never by accident;
// - the front: TLS files unless --insecure, worker authentication with TLS, a tenants file
//   unless --auth=none; workers: TLS exactly when the front has it, the secret when the front
//   wants one, a client certificate when the front wants one;
// - every file a flag names lies in a mounted volume (and is one of its items, if it has any);
// - the kubelet's gRPC probes are plaintext, so with TLS they must dial --health-listen.
const INSECURE = "tpdiff.io/insecure";

function securityFlags(docs, pods, find, problems) {
  const containers = [];
  for (const { owner, ns, template } of pods) {
    for (const c of template.spec?.containers ?? []) {
      const role = imageIs(c, "tpdiff-server") ? "front" : imageIs(c, "tpdiff-worker") ? "worker" : null;
      if (role) containers.push({ owner, ns, template, c, role, flags: flagValues(c) });
    }
  }
  const fronts = containers.filter((x) => x.role === "front");
  for (const { owner, ns, template, c, role, flags } of containers) {
    const where = `${id(owner)}: container ${c.name}`;
    const insecure = flags.has("insecure") && flags.get("insecure") !== "false";
    const authNone = role === "front" && flags.get("auth") === "none";
    if ((insecure || authNone) && !String(owner.metadata?.annotations?.[INSECURE] ?? "").trim()) {
      problems.push(`${where} runs ${insecure ? "--insecure" : "--auth=none"} without the ${INSECURE} annotation saying why`);
    }
    const tlsFlags = ["tls-cert", "tls-key", role === "front" ? "tls-client-ca" : "tls-ca"].filter((f) => flags.has(f));
    if (insecure && tlsFlags.length) problems.push(`${where}: --insecure conflicts with --${tlsFlags.join(", --")}`);
    if (role === "front") {
      if (!insecure && !(flags.has("tls-cert") && flags.has("tls-key"))) {
        problems.push(`${where}: needs --tls-cert and --tls-key (or --insecure)`);
      }
      if (!insecure && !flags.has("tls-client-ca") && !flags.has("worker-secret-file")) {
        problems.push(`${where}: with TLS, needs --tls-client-ca and/or --worker-secret-file`);
      }
      if ((flags.get("auth") ?? "api-key") === "api-key" && !flags.has("tenants-file")) {
        problems.push(`${where}: --auth=api-key needs --tenants-file (or --auth=none)`);
      }
    } else {
      const env = new Set((c.env ?? []).map((e) => e.name));
      for (const front of fronts.filter((f) => f.ns === ns)) {
        const frontInsecure = front.flags.has("insecure") && front.flags.get("insecure") !== "false";
        const fid = `${id(front.owner)}`;
        if (frontInsecure !== insecure) {
          problems.push(`${where}: ${insecure ? "dials plaintext" : "dials TLS"} but ${fid} serves ${frontInsecure ? "plaintext" : "TLS"}`);
        }
        if (front.flags.has("worker-secret-file") && !flags.has("worker-secret-file") && !env.has("TPDIFF_WORKER_SECRET")) {
          problems.push(`${where}: ${fid} requires the worker secret, but the worker has neither --worker-secret-file nor TPDIFF_WORKER_SECRET`);
        }
        if (front.flags.has("tls-client-ca") && !(flags.has("tls-cert") && flags.has("tls-key"))) {
          problems.push(`${where}: ${fid} requires client certificates, but the worker has no --tls-cert/--tls-key`);
        }
      }
    }
    // --state=redis://HOST:PORT[/DB]: a HOST of the form <service>.<namespace>.svc names a
    // rendered Service with that port (an external Redis has another host name).
    const state = role === "front" ? flags.get("state") : undefined;
    if (state && state !== "memory") {
      const m = state.match(/^redis:\/\/([^:/]+):(\d+)(\/\d+)?$/);
      if (!m) {
        problems.push(`${where}: --state=${state} is neither memory nor redis://HOST:PORT[/DB]`);
      } else if (/^[a-z0-9-]+\.[a-z0-9-]+\.svc(\.cluster\.local)?$/.test(m[1])) {
        const [svcName, svcNs] = m[1].split(".");
        const svc = find("Service", svcNs, svcName);
        if (!svc) problems.push(`${where}: --state=${state} names no rendered Service`);
        else if (!(svc.spec?.ports ?? []).some((p) => String(p.port) === m[2])) {
          problems.push(`${where}: --state=${state}: ${id(svc)} has no port ${m[2]}`);
        }
      }
      if (!flags.has("redis-password-file") && !(c.env ?? []).some((e) => e.name === "TPDIFF_REDIS_PASSWORD")) {
        problems.push(`${where}: --state=${state} without --redis-password-file or TPDIFF_REDIS_PASSWORD`);
      }
    }
    // Files named by flags must be mounted.
    const volumes = new Map((template.spec?.volumes ?? []).map((v) => [v.name, v]));
    for (const f of FILE_FLAGS) {
      const path = flags.get(f);
      if (!path || !path.startsWith("/")) continue;
      const mount = (c.volumeMounts ?? [])
        .filter((m) => path.startsWith(m.mountPath.replace(/\/?$/, "/")))
        .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
      if (!mount) {
        problems.push(`${where}: --${f} ${path} is not in any mounted volume`);
        continue;
      }
      const v = volumes.get(mount.name);
      const items = v?.secret?.items ?? v?.configMap?.items;
      const rel = path.slice(mount.mountPath.replace(/\/?$/, "/").length);
      if (items && !mount.subPath && !items.some((it) => it.path === rel)) {
        problems.push(`${where}: --${f} ${path} is not an item of volume ${mount.name} (${items.map((it) => it.path).join(", ")})`);
      }
    }
    // gRPC probes cannot do TLS: with TLS they must dial the plaintext health port.
    if (role === "front" && !insecure) {
      const healthPort = flags.has("health-listen") ? portOf(flags.get("health-listen")) : null;
      for (const kind of ["startupProbe", "livenessProbe", "readinessProbe"]) {
        const port = c[kind]?.grpc?.port;
        if (port !== undefined && port !== healthPort) {
          problems.push(`${where} ${kind} is a gRPC probe on port ${port}, but kubelet gRPC probes are plaintext and ` +
            (healthPort ? `only the --health-listen port ${healthPort} is` : "the front has no --health-listen"));
        }
      }
    }
  }
}

// The exact image (name:tag) each container renders, per kustomization: IMAGES.yaml maps a
// key (the kustomization's path under deploy/k8s) to "Kind/name/container: image" entries,
// init containers included. A container that is not listed, an entry that renders nothing and
// any other image are errors: an overlay's `images:` entry that stops matching (because a
// lower layer renamed the image first) renders the wrong image without any other symptom.
function checkImages(docs, file, key, problems) {
  const all = yaml.load(readFileSync(file, "utf8")) ?? {};
  const expected = all[key];
  if (!expected) {
    problems.push(`${file} has no images for ${key}`);
    return;
  }
  const seen = new Set();
  for (const { owner, template } of podTemplates(docs)) {
    for (const c of [...(template.spec?.initContainers ?? []), ...(template.spec?.containers ?? [])]) {
      const where = `${owner.kind}/${owner.metadata?.name}/${c.name}`;
      seen.add(where);
      if (!(where in expected)) problems.push(`${where}: image ${c.image} is not listed for ${key} in ${file}`);
      else if (c.image !== expected[where]) problems.push(`${where}: renders image ${c.image}, expected ${expected[where]}`);
    }
  }
  for (const where of Object.keys(expected)) {
    if (!seen.has(where)) problems.push(`${where}: listed for ${key} in ${file}, but no such container is rendered`);
  }
}

function promqlExpressions(docs) {
  const out = [];
  for (const d of docs) {
    if (d.kind === "PrometheusRule") {
      for (const g of d.spec?.groups ?? []) {
        for (const r of g.rules ?? []) out.push({ source: `${id(d)} ${r.record ?? r.alert}`, expr: r.expr, alert: !!r.alert });
      }
    }
    if (d.kind === "ScaledObject") {
      for (const t of d.spec?.triggers ?? []) {
        if (t.type === "prometheus") out.push({ source: `${id(d)} trigger`, expr: t.metadata.query, alert: false });
      }
    }
  }
  return out;
}

// The metric names the service exports (server/src/metrics.cc, worker/src/metrics.cc); a
// dashboard or rule that names anything else is a typo.
const KNOWN_METRICS = new Set([
  "tpdiff_requests_total", "tpdiff_jobs_total", "tpdiff_queue_depth", "tpdiff_queue_wait_seconds",
  "tpdiff_time_to_first_preview_seconds", "tpdiff_job_duration_seconds", "tpdiff_stage_duration_seconds",
  "tpdiff_workers", "tpdiff_job_requeues_total", "tpdiff_frames_generated_total", "tpdiff_active_streams",
  "tpdiff_worker_step_seconds", "tpdiff_worker_encode_seconds", "tpdiff_worker_model_load_seconds",
]);
const baseMetric = (name) => name.replace(/_(bucket|sum|count)$/, "");

// Metric names (not recording rules, which contain ':') referenced by an expression.
function metricNames(expr) {
  return [...expr.matchAll(/\b(tpdiff_[a-z_]+)\b/g)].map((m) => m[1]);
}

export function grafanaToPromql(expr) {
  return expr.replaceAll("$__rate_interval", "1m").replaceAll("$__interval", "15s").replaceAll("$__range", "1h");
}

function checkDashboard(file) {
  const problems = [];
  const d = JSON.parse(readFileSync(file, "utf8"));
  if (!d.uid || !d.title) problems.push("dashboard needs uid and title");
  const ids = new Set();
  const exprs = [];
  const cells = new Set();
  for (const p of d.panels ?? []) {
    if (ids.has(p.id)) problems.push(`panel id ${p.id} used twice`);
    ids.add(p.id);
    const g = p.gridPos ?? {};
    for (let x = g.x; x < g.x + g.w; x++) {
      for (let y = g.y; y < g.y + g.h; y++) {
        if (cells.has(`${x},${y}`)) problems.push(`panel ${p.id} "${p.title}" overlaps another panel`);
        cells.add(`${x},${y}`);
      }
    }
    if (g.x + g.w > 24) problems.push(`panel ${p.id} is wider than the grid`);
    if (p.datasource?.uid !== "${datasource}") problems.push(`panel ${p.id} does not use the datasource variable`);
    if (!(p.targets ?? []).length) problems.push(`panel ${p.id} "${p.title}" has no queries`);
    for (const t of p.targets ?? []) {
      if (!t.expr) problems.push(`panel ${p.id} target ${t.refId} has no expr`);
      else exprs.push({ source: `panel ${p.id} "${p.title}" ${t.refId}`, expr: t.expr });
    }
  }
  if (!(d.templating?.list ?? []).some((v) => v.name === "datasource" && v.type === "datasource")) {
    problems.push("dashboard lacks the datasource variable");
  }
  return { problems, exprs };
}

async function main() {
  const [cmd, file] = process.argv.slice(2);
  if (!cmd || !file) {
    console.error("usage: validate.mjs check|extract-rules|promql RENDERED.yaml");
    process.exit(2);
  }
  const docs = cmd === "dashboard" ? [] : loadDocs(file);
  if (cmd === "live") {
    const [, , dashboard, url] = process.argv.slice(2);
    const queries = promqlExpressions(docs).map((e) => ({
      source: e.source,
      // An alert's condition is empty while all is well; `bool` keeps the compared series.
      expr: e.alert ? e.expr.replace(/\s(<=|>=|==|!=|<|>)\s/, " $1 bool ") : e.expr,
    }));
    const { problems, exprs } = checkDashboard(dashboard);
    for (const e of exprs) queries.push({ source: e.source, expr: grafanaToPromql(e.expr) });
    // The label values the rules rely on (see prometheusrule.yaml) must really occur.
    queries.push({ source: "contract: worker states", expr: 'tpdiff_workers{state="serving"}' });
    queries.push({ source: "contract: job outcomes", expr: 'tpdiff_jobs_total{outcome="completed"}' });
    for (const q of queries) {
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(q.expr)}`);
      const body = await res.json();
      if (body.status !== "success") problems.push(`${q.source}: ${q.expr}: ${body.error}`);
      else if (!body.data.result.length) problems.push(`${q.source}: ${q.expr}: no data`);
      else console.log(`ok ${q.source}: ${body.data.result.length} series`);
    }
    for (const p of problems) console.error(`FAIL ${p}`);
    if (problems.length) process.exit(1);
    console.log(`ok: ${queries.length} queries returned data`);
    return;
  }
  if (cmd === "extract-rules") {
    const rules = docs.filter((d) => d.kind === "PrometheusRule");
    if (rules.length !== 1) throw new Error(`expected one PrometheusRule, found ${rules.length}`);
    process.stdout.write(yaml.dump(rules[0].spec, { lineWidth: -1 }));
    return;
  }
  if (cmd === "dashboard") {
    const { problems, exprs } = checkDashboard(file);
    for (const e of exprs) {
      for (const m of metricNames(e.expr)) {
        if (!KNOWN_METRICS.has(baseMetric(m))) problems.push(`${e.source}: unknown metric ${m}`);
      }
    }
    for (const p of problems) console.error(`FAIL ${p}`);
    if (problems.length) process.exit(1);
    const rules = exprs.map((e, i) => ({ record: `tpdiff_dashboard_query_${i}`, expr: grafanaToPromql(e.expr) }));
    process.stdout.write(yaml.dump({ groups: [{ name: "dashboard", rules }] }, { lineWidth: -1 }));
    return;
  }
  if (cmd === "promql") {
    for (const e of promqlExpressions(docs)) console.log(JSON.stringify(e));
    return;
  }
  if (cmd !== "check") throw new Error(`unknown command ${cmd}`);
  const problems = [];
  if (docs.length === 0) problems.push("no objects rendered");
  const [, , imagesFile, imagesKey] = process.argv.slice(2);
  if (imagesFile) checkImages(docs, imagesFile, imagesKey, problems);
  await validateSchemas(docs, problems);
  crossReferences(docs, problems);
  for (const e of promqlExpressions(docs)) {
    for (const m of metricNames(e.expr)) {
      if (!KNOWN_METRICS.has(baseMetric(m))) problems.push(`${e.source}: unknown metric ${m}`);
    }
  }
  for (const p of problems) console.error(`FAIL ${p}`);
  if (problems.length) process.exit(1);
  console.log(`ok: ${docs.length} objects (${[...new Set(docs.map((d) => d.kind))].join(", ")})`);
}

main().catch((e) => {
  console.error(`FAIL ${e.stack ?? e}`);
  process.exit(1);
});
