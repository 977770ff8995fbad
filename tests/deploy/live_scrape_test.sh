#!/usr/bin/env bash
# Live test: a real Prometheus scrapes a running front and worker while real generations run;
# then every PromQL expression of the rules, the KEDA trigger and the dashboard is evaluated
# through Prometheus' HTTP API and must return data, and both /metrics outputs must pass
# `promtool check metrics`. Everything listens on 127.0.0.1, in a temp folder, and every
# process is bounded in time. The front and the worker bind port 0 and log the ports they got
# (no window between picking a free port and binding it); only Prometheus gets a picked one.
# Without a model package in MODELS_DIR, MAKE_PACKAGE writes an untrained tiny one.
#   live_scrape_test.sh SERVER WORKER CLI VALIDATOR_DIR REPO_ROOT [MODELS_DIR [MAKE_PACKAGE]]
set -euo pipefail
. "$(dirname "$0")/require_kustomize_v5.sh"   # before starting any process
server=$1 worker=$2 cli=$3 validator=$4 root=$5 models=${6:-$5/models} make_package=${7:-}
limit=240 # seconds any one process of this test may live

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ ${keep_logs:-0} == 1 ]]; then tail -n 40 "$tmp"/*.log >&2 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
keep_logs=1 # until the end: on failure the logs are printed

free_port() {
  node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}
wait_http() { # URL SECONDS
  for _ in $(seq $(($2 * 5))); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.2; done
  echo "timed out waiting for $1" >&2
  return 1
}

log_port() { # LOG SED_PATTERN SECONDS PID: the port process PID wrote to its log
  local port
  for _ in $(seq $(($3 * 5))); do
    port=$(sed -n "s/$2/\\1/p" "$1" | head -n 1)
    [[ -n $port ]] && { echo "$port"; return 0; }
    kill -0 "$4" 2>/dev/null || { echo "process $4 exited; see $1" >&2; return 1; }
    sleep 0.2
  done
  echo "timed out waiting for a port in $1" >&2
  return 1
}

if ! compgen -G "$models/*/model.json" >/dev/null; then
  [[ -n $make_package ]] || { echo "no model package in $models and no MAKE_PACKAGE" >&2; exit 1; }
  models=$tmp/models
  "$make_package" --out="$models/live-tiny" --network=tiny --stage_steps=2,2,2
fi
prom_port=$(free_port)

timeout "$limit" "$server" --insecure --auth=none --listen=127.0.0.1:0 --metrics-listen=127.0.0.1:0 \
  --models-dir="$models" --local-workers=0 >"$tmp/front.log" 2>&1 &
front_pid=$!
pids+=($front_pid)
grpc_port=$(log_port "$tmp/front.log" '.*serving on port \([0-9]*\).*' 30 $front_pid)
front_metrics=$(log_port "$tmp/front.log" '.*\/metrics on port \([0-9]*\).*' 30 $front_pid)
wait_http "http://127.0.0.1:$front_metrics/metrics" 30
# The worker runs as its own process (as in Kubernetes) with its own /metrics.
timeout "$limit" "$worker" --insecure --server=127.0.0.1:"$grpc_port" --models-dir="$models" --threads=1 \
  --device=cpu --metrics-listen=127.0.0.1:0 >"$tmp/worker.log" 2>&1 &
worker_pid=$!
pids+=($worker_pid)
worker_metrics=$(log_port "$tmp/worker.log" '.*\/metrics on port \([0-9]*\).*' 60 $worker_pid)
wait_http "http://127.0.0.1:$worker_metrics/metrics" 60

# The rules under test are the ones the gpu overlay deploys; targets carry the labels the
# Prometheus-operator would add, so namespace-scoped queries (KEDA) match too.
kubectl kustomize "$root/deploy/k8s/overlays/gpu" >"$tmp/rendered.yaml" 2>/dev/null
node "$validator/validate.mjs" extract-rules "$tmp/rendered.yaml" >"$tmp/rules.yaml"
# Rule groups evaluate every second here (the extracted YAML may write "- interval: 30s").
sed -i 's/^\( *\(- \)\?interval:\) 30s/\1 1s/' "$tmp/rules.yaml"
grep -q 'interval: 30s' "$tmp/rules.yaml" && { echo "a rule group kept its 30 s interval" >&2; exit 1; }
cat >"$tmp/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [rules.yaml]
scrape_configs:
  - job_name: tpdiff-front
    static_configs:
      - targets: ["127.0.0.1:$front_metrics"]
        labels: {namespace: tpdiff}
  - job_name: tpdiff/tpdiff-worker
    static_configs:
      - targets: ["127.0.0.1:$worker_metrics"]
        labels: {namespace: tpdiff}
YAML
timeout "$limit" prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
  --web.listen-address=127.0.0.1:"$prom_port" --log.level=warn >"$tmp/prometheus.log" 2>&1 &
pids+=($!)
prom=http://127.0.0.1:$prom_port
wait_http "$prom/-/ready" 30
prom_has() { # PROMQL SECONDS: waits until the query returns a series
  for _ in $(seq $(($2 * 5))); do
    curl -fsS "$prom/api/v1/query" --data-urlencode "query=$1" 2>/dev/null | grep -q '"result":\[{' && return 0
    sleep 0.2
  done
  echo "timed out waiting for Prometheus to return data for $1" >&2
  return 1
}
# Prometheus applies static targets some seconds after it is ready: the jobs must run while
# both targets are scraped, or their series never reach it.
prom_has 'sum(up{namespace="tpdiff"}) == 2' 60

# Real generations: two one after the other, then two at once (so the queue is used).
gen() { timeout 180 "$cli" generate --insecure --server=127.0.0.1:"$grpc_port" --prompt "a red circle moving right" --out "$tmp/$1.mp4" >"$tmp/gen-$1.log" 2>&1; }
gen v1
gen v2
gen v3 & g3=$!
gen v4 & g4=$!
wait "$g3"; wait "$g4"
for v in v1 v2 v3 v4; do [[ -s $tmp/$v.mp4 ]] || { echo "generation $v wrote no video" >&2; exit 1; }; done

# Let Prometheus scrape the final state (several samples of it, so rate() has two points
# after the last job) and evaluate the rules on it.
prom_has 'sum(tpdiff_jobs_total{outcome="completed"}) >= 4' 60
prom_has 'min(count_over_time(tpdiff_jobs_total{outcome="completed"}[1m])) >= 3' 60
# Every recording rule has recorded a series (the alerts are queried through them).
records=$(grep -c 'record: ' "$tmp/rules.yaml")
prom_has "count(count by (__name__) ({__name__=~\"tpdiff:.+\"})) >= $records" 60

curl -fsS "http://127.0.0.1:$front_metrics/metrics" >"$tmp/front.prom"
curl -fsS "http://127.0.0.1:$worker_metrics/metrics" >"$tmp/worker.prom"
status=0
for f in front worker; do
  echo "promtool check metrics ($f)"
  promtool check metrics <"$tmp/$f.prom" || status=1
done
# Every metric of the contract is exported (a labelled counter may have no series yet).
for m in tpdiff_requests_total tpdiff_jobs_total tpdiff_queue_depth tpdiff_queue_wait_seconds \
  tpdiff_time_to_first_preview_seconds tpdiff_job_duration_seconds tpdiff_stage_duration_seconds \
  tpdiff_workers tpdiff_job_requeues_total tpdiff_frames_generated_total tpdiff_active_streams; do
  grep -q "^# TYPE $m " "$tmp/front.prom" || { echo "front does not export $m" >&2; status=1; }
done
for m in tpdiff_worker_step_seconds tpdiff_worker_encode_seconds tpdiff_worker_model_load_seconds; do
  grep -q "^# TYPE $m " "$tmp/worker.prom" || { echo "worker does not export $m" >&2; status=1; }
done
# Histograms use the video-sized buckets (0.05 s .. 1200 s).
grep -q '^tpdiff_stage_duration_seconds_bucket{.*le="1200"' "$tmp/front.prom" || { echo "stage histogram lacks the 1200 s bucket" >&2; status=1; }
grep -q '^tpdiff_queue_wait_seconds_bucket{.*le="0.05"' "$tmp/front.prom" || { echo "queue wait histogram lacks the 0.05 s bucket" >&2; status=1; }

node "$validator/validate.mjs" live "$tmp/rendered.yaml" "$root/deploy/grafana/tpdiff-dashboard.json" "$prom" || status=1
# The per-model ScaledObjects' queries (overlays/multi-model) must return data too.
kubectl kustomize "$root/deploy/k8s/overlays/multi-model" >"$tmp/rendered-models.yaml" 2>/dev/null
node "$validator/validate.mjs" live "$tmp/rendered-models.yaml" "$root/deploy/grafana/tpdiff-dashboard.json" "$prom" || status=1
[[ $status == 0 ]] && keep_logs=0
exit $status
