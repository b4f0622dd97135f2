#!/usr/bin/env bash
# `lstm-tch serve` against the server a PyTorch user would write (scripts/serve_peer.py: FastAPI,
# uvicorn, one forward pass per request), side by side in one run at the same thread count, under
# load from oha over loopback; then our server alone under overload, a soak, SIGTERM under load
# and model reloads under load. Prints one markdown report; every raw figure stays in
# target/serve-bench/runs/DATE/ (results.json, oha's JSON, /metrics snapshots, samples).
#
# Usage: scripts/serve_bench.sh [load|overload|soak|shutdown|reload|all]...   (default: load)
#   load      per language (English: SST-2 phrases; Chinese: waimai_10k reviews), the peer then
#             ours: a closed-loop concurrency sweep, a search for the best fixed rate with
#             p99 <= SERVE_BENCH_P99_MS, fixed rates (10, 200, 1000 req/s and the peer's
#             ceiling), our mean batch size, peak RSS; `predict --file` on 20,000 texts as the
#             ceiling; one text's forward pass in process
#   overload  2 x capacity for 60 s: 429s and their latency, accepted p99, RSS; a normal run after
#   soak      half capacity for 10 minutes: RSS and open file descriptors sampled, errors
#   shutdown  SIGTERM under load: answers, clean refusals and lost requests counted
#   reload    POST /admin/reload (and SIGHUP) repeatedly under load: zero errors
#   all       every one of them, in that order (the stress runs use load's capacity); about
#             30 minutes in full (load 13, overload 2, soak 11, shutdown and reload 2)
#
# SERVE_BENCH_QUICK=1 shortens every step (a minute or two per subcommand) to check the script;
# its figures are indicative only. Run the full benchmark with nothing else on the machine.
# Other knobs (environment): SERVE_BENCH_THREADS (1), SERVE_BENCH_LANGS ("en zh"),
# SERVE_BENCH_PLACEMENT (shared: every process on every CPU; split: the servers on T CPUs, oha
# on the others), SERVE_BENCH_OHA_NICE (0: oha's priority, as the servers'),
# SERVE_BENCH_CAPTURE (auto: latencies on the wire with tcpdump where it runs; 0: never; 1: must;
# SERVE_BENCH_KEEP_CAPTURES=1 keeps the .pcap files),
# SERVE_BENCH_STRESS_LANG (en), SERVE_BENCH_P99_MS (50), SERVE_BENCH_STEP_S (10; quick 1.5),
# SERVE_BENCH_SWEEP (concurrencies), SERVE_BENCH_BISECT (3: bisection steps of the capacity
# search), SERVE_BENCH_RATES ("10 200 1000"),
# SERVE_BENCH_OVERLOAD_S (60), SERVE_BENCH_SOAK_S (600), SERVE_BENCH_SOAK_EVERY_S (5),
# SERVE_BENCH_RELOAD_S (30), SERVE_BENCH_CAPACITY (our capacity in req/s, for the stress runs
# without a load run), SERVE_BENCH_SERVE_ARGS (extra `lstm-tch serve` flags),
# SERVE_BENCH_EPOCHS (1: the checkpoints' training; they are kept in SERVE_BENCH_DIR/ckpt-LANG,
# delete one to train it again), SERVE_BENCH_DIR (target/serve-bench),
# SERVE_BENCH_DATA (../shared/data), SERVE_BENCH_OHA (an oha binary; else .tools/bin/oha,
# installed with cargo on first use).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

# ---- knobs ------------------------------------------------------------------------------------
quick=${SERVE_BENCH_QUICK:-0}
[[ $quick == 0 ]] && quick=""
threads=${SERVE_BENCH_THREADS:-1}
langs=${SERVE_BENCH_LANGS:-en zh}
stress_lang=${SERVE_BENCH_STRESS_LANG:-en}
p99_ms=${SERVE_BENCH_P99_MS:-50}
rates=${SERVE_BENCH_RATES:-10 200 1000}
epochs=${SERVE_BENCH_EPOCHS:-1}
bench_dir=${SERVE_BENCH_DIR:-$root/target/serve-bench}
data_dir=${SERVE_BENCH_DATA:-$root/../shared/data}
read -r -a serve_args <<<"${SERVE_BENCH_SERVE_ARGS:-}"
# slow_s: the steps at a low rate (under 100 req/s), long enough for a p99; predict_n: the texts
# `predict --file` classifies; checks_n: texts both servers answer (label agreement).
if [[ -n $quick ]]; then
  step_s=${SERVE_BENCH_STEP_S:-1.5} slow_s=3 sweep=${SERVE_BENCH_SWEEP:-1 8 64}
  overload_s=${SERVE_BENCH_OVERLOAD_S:-6} soak_s=${SERVE_BENCH_SOAK_S:-10} soak_every=${SERVE_BENCH_SOAK_EVERY_S:-1}
  shutdown_before_s=2 reload_s=${SERVE_BENCH_RELOAD_S:-5} predict_n=5000 checks_n=50 reps=100
else
  step_s=${SERVE_BENCH_STEP_S:-10} slow_s=30 sweep=${SERVE_BENCH_SWEEP:-1 2 4 8 16 32 64 128}
  overload_s=${SERVE_BENCH_OVERLOAD_S:-60} soak_s=${SERVE_BENCH_SOAK_S:-600} soak_every=${SERVE_BENCH_SOAK_EVERY_S:-5}
  shutdown_before_s=10 reload_s=${SERVE_BENCH_RELOAD_S:-30} predict_n=20000 checks_n=200 reps=200
fi
# The capacity search: fixed rates at these fractions of the sweep's best throughput, until one
# keeps p99 within the limit with no error.
search_factors="1.0 0.85 0.7 0.55 0.4 0.25 0.1"
bisect_steps=${SERVE_BENCH_BISECT:-3} # then halvings of the gap between the last failing and passing rates
rate_connections=128     # oha's connections at a fixed rate: the most requests in flight
overload_connections=1024 # past --max-concurrent-requests (512), so that 429s can happen

commands=("$@")
[[ ${#commands[@]} -eq 0 ]] && commands=(load)
[[ " ${commands[*]} " == *" all "* ]] && commands=(load overload soak shutdown reload)
for c in "${commands[@]}"; do
  case $c in
    load | overload | soak | shutdown | reload) ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "usage: scripts/serve_bench.sh [load|overload|soak|shutdown|reload|all]... (got '$c')" >&2
      exit 2
      ;;
  esac
done

say() { echo "serve_bench: $*" >&2; }
die() {
  say "error: $*"
  exit 1
}

# ---- everything started here is stopped on exit --------------------------------------------
started=()
cleanup() { # each process, and its children (a backgrounded oha_run's `timeout`, which passes
  local pid  # the signal on to oha)
  for pid in "${started[@]}"; do
    pkill -TERM -P "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${started[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
forget() { # PID: ended and waited for; not to be signalled again
  local pid kept=()
  for pid in "${started[@]}"; do
    [[ $pid == "$1" ]] || kept+=("$pid")
  done
  started=("${kept[@]}")
}

# ---- set-up: the release build, the peer's packages, oha, the CPUs ---------------------------
scripts/setup.sh
# shellcheck source=scripts/env.sh
source scripts/env.sh
py=$root/.venv/bin/python
helper=("$py" "$root/scripts/serve_bench.py")
say "building the release binary"
cargo build --quiet --release --bin lstm-tch
bin=$root/target/release/lstm-tch

serve_req=$root/scripts/requirements-serve.txt
stamp=$root/.venv/.lstm-tch-requirements-serve
if [[ ! -f $stamp || "$(cat "$stamp")" != "$(sha256sum "$serve_req" | cut -d' ' -f1)" ]]; then
  say "installing the peer's packages into .venv (scripts/requirements-serve.txt)"
  "$py" -m pip install --quiet --disable-pip-version-check -r "$serve_req"
  sha256sum "$serve_req" | cut -d' ' -f1 >"$stamp"
fi

oha_version=1.16.0
oha=${SERVE_BENCH_OHA:-$root/.tools/bin/oha}
if [[ ! -x $oha ]]; then
  say "installing oha $oha_version into .tools (cargo install; once, a few minutes)"
  cargo install oha --version "$oha_version" --locked --no-default-features --features native-tls \
    --root "$root/.tools" --quiet # plain HTTP is all it needs here: the system OpenSSL, no TLS build
fi

# Placement (SERVE_BENCH_PLACEMENT):
#   shared (default): the servers and oha run on every CPU; the thread counts are pinned (libtorch
#          T threads on both sides, oha one worker thread): what the peer's users run, and how
#          the issue's peer figures were taken;
#   split: the servers on CPUs 0..T-1, oha (and tcpdump) on the others (when there are
#          others): a server gets no more CPUs than its libtorch threads (its HTTP threads
#          share them: ours runs one HTTP thread on one CPU).
placement=${SERVE_BENCH_PLACEMENT:-shared}
cpu_range() { (($1 == $2)) && echo "$1" || echo "$1-$2"; }
ncpu=$(nproc)
if [[ $placement == shared ]]; then
  server_cpus=$(cpu_range 0 $((ncpu - 1))) load_cpus=$server_cpus load_threads=1
elif [[ $placement != split ]]; then
  echo "SERVE_BENCH_PLACEMENT must be shared or split, got '$placement'" >&2
  exit 2
elif ((ncpu > threads)); then
  server_cpus=$(cpu_range 0 $((threads - 1))) load_cpus=$(cpu_range "$threads" $((ncpu - 1)))
  load_threads=$((ncpu - threads))
else
  server_cpus=$(cpu_range 0 $((ncpu - 1))) load_cpus=$server_cpus load_threads=$ncpu
  say "warning: $ncpu CPU(s) for $threads server thread(s): oha shares the servers' CPUs"
fi

# oha runs at the servers' priority (SERVE_BENCH_OHA_NICE, 0). Sharing their CPUs it is not
# always running: it sends late, then catches up in a burst, and timestamps answers when it next
# runs. Run higher (nice -10, root only), it sends on time but takes the CPU from the server's
# HTTP threads, and at 2x overload requests wait unread in their sockets instead (measured on the
# wire: docs/serving.md). So its priority stays equal, and the latencies that judge the server
# are also taken on the wire, where the client's own scheduling is not in them.
oha_nice=${SERVE_BENCH_OHA_NICE:-0}
if [[ $(nice -n "$oha_nice" nice 2>/dev/null) != "$oha_nice" ]]; then
  say "warning: cannot run oha at nice $oha_nice (not root?): it runs at the servers' priority"
  oha_nice=0
fi

# Latencies on the wire (scripts/wire_latency.py): tcpdump on the loopback interface, the data
# segments to and from the server's port, during the low fixed rates and the overload; the
# kernel dates each request as the client's write sends it and each answer as the server's does.
capture=${SERVE_BENCH_CAPTURE:-auto}
if [[ $capture != 0 ]] && ! command -v tcpdump >/dev/null; then
  [[ $capture == 1 ]] && die "SERVE_BENCH_CAPTURE=1 needs tcpdump (apt-get install tcpdump)"
  say "no tcpdump: latencies from oha only (apt-get install tcpdump, and run as root, for the wire's)"
  capture=0
fi

run_dir=$bench_dir/runs/$(date +%Y%m%d-%H%M%S)
mkdir -p "$run_dir"
command_line="scripts/serve_bench.sh ${commands[*]}"
[[ -n $quick ]] && command_line="SERVE_BENCH_QUICK=1 $command_line"
[[ $threads != 1 ]] && command_line="SERVE_BENCH_THREADS=$threads $command_line"
[[ $placement != shared ]] && command_line="SERVE_BENCH_PLACEMENT=$placement $command_line"
"${helper[@]}" init "$run_dir" --oha "$oha" --command "$command_line" --threads "$threads" \
  --server-cpus "$server_cpus" --load-cpus "$load_cpus" --placement "$placement" \
  --oha-nice "$oha_nice" \
  --step-seconds "$step_s" ${quick:+--quick} --p99-ms "$p99_ms" \
  --lstm-tch-version "$("$bin" --version | cut -d' ' -f2)" \
  --git "$(git describe --always --dirty 2>/dev/null || echo unknown)"
say "run directory: $run_dir (servers on CPU $server_cpus, oha on CPU $load_cpus)"

# ---- texts and checkpoints -----------------------------------------------------------------
declare -A median_text
corpus_of() { [[ $1 == en ]] && echo "$data_dir/sst2/train.tsv" || echo "$data_dir/waimai_10k.csv"; }

prepare_lang() { # LANG: texts under $bench_dir, the checkpoint trained if missing
  local lang=$1 corpus ckpt
  corpus=$(corpus_of "$lang")
  [[ -f $corpus ]] || die "$corpus not found (SERVE_BENCH_DATA: the folder with sst2/ and waimai_10k.csv)"
  if [[ ! -f $bench_dir/texts-$lang.json ]]; then
    "${helper[@]}" texts --lang "$lang" --out "$bench_dir" --sst2 "$data_dir/sst2/train.tsv" \
      --waimai "$data_dir/waimai_10k.csv" >/dev/null
  fi
  median_text[$lang]=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["median_text"])' "$bench_dir/texts-$lang.json")
  ckpt=$bench_dir/ckpt-$lang
  if [[ ! -f $ckpt/model.safetensors ]]; then
    local train=("$bin" train --train "$corpus" --out "$ckpt" --epochs "$epochs" --seed 0 --quiet)
    say "training the $lang checkpoint: ${train[*]}"
    "${train[@]}" --report "$bench_dir/ckpt-$lang.report.json" >&2
    "$py" -c 'import json,sys; print(json.dumps({"command": " ".join(sys.argv[1:])}))' \
      "lstm-tch train --train $(realpath --relative-to="$root" "$corpus") --out $(realpath --relative-to="$root" "$ckpt") --epochs $epochs --seed 0" \
      >"$bench_dir/ckpt-$lang.train.json"
  fi
}

# ---- servers -------------------------------------------------------------------------------
server_pid="" server_url=""

start_server() { # KIND(ours|peer) CHECKPOINT LOG: sets server_pid, server_url once ready
  local kind=$1 ckpt=$2 log=$3 i addr=""
  if [[ $kind == ours ]]; then
    taskset -c "$server_cpus" "$bin" serve --checkpoint "$ckpt" --threads "$threads" --port 0 \
      "${serve_args[@]}" 2>"$log" &
  else
    taskset -c "$server_cpus" "$py" scripts/serve_peer.py --checkpoint "$ckpt" --threads "$threads" \
      --port 0 2>"$log" &
  fi
  server_pid=$!
  started+=("$server_pid")
  for ((i = 0; i < 1200; i++)); do
    addr=$(grep -o -m1 'listening on http://[0-9.:]*' "$log" 2>/dev/null || true)
    [[ -n $addr ]] && break
    kill -0 "$server_pid" 2>/dev/null || die "the $kind server exited: $(tail -3 "$log")"
    sleep 0.1
  done
  [[ -n $addr ]] || die "the $kind server did not start in 120 s: $(tail -3 "$log")"
  server_url=http://${addr#listening on http://}
  for ((i = 0; i < 600; i++)); do
    curl -sf -o /dev/null "$server_url/ready" && return 0
    sleep 0.1
  done
  die "the $kind server at $server_url is not ready after 60 s"
}

stop_server() { # sends SIGTERM, waits (30 s, then SIGKILL); sets server_status (its exit status)
  local i
  kill -TERM "$server_pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$server_pid" 2>/dev/null && kill -KILL "$server_pid"
  server_status=0
  wait "$server_pid" || server_status=$?
  forget "$server_pid"
}

rss_json() { # PID → {"vmhwm_kib", "vmrss_kib"} of that process
  awk '/^VmHWM/{h=$2} /^VmRSS/{r=$2} END{printf "{\"vmhwm_kib\": %d, \"vmrss_kib\": %d}\n", h, r}' "/proc/$1/status"
}

vmrss() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }

record() { "${helper[@]}" record "$@"; } # OUT KEY=VALUE...: a JSON object (numbers as numbers)

# "seconds rss_kib fds" of PID every INTERVAL s, from INTERVAL s after the start (once the load
# tool's connections are open) for DURATION s (so that none is taken as they close).
sampler() { # PID INTERVAL DURATION
  local pid=$1 every=$2 t0=$EPOCHREALTIME rss fds
  sleep "$every"
  while kill -0 "$pid" 2>/dev/null && awk -v a="$EPOCHREALTIME" -v b="$t0" -v d="$3" 'BEGIN{exit !(a - b <= d)}'; do
    rss=$(awk '/^VmRSS/{print $2}' "/proc/$pid/status" 2>/dev/null) || break
    fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    awk -v a="$EPOCHREALTIME" -v b="$t0" -v r="$rss" -v f="$fds" 'BEGIN{printf "%.1f %d %d\n", a - b, r, f}'
    sleep "$every"
  done
}

# ---- load ----------------------------------------------------------------------------------
# oha: POST bodies drawn at random from the language's file, to $server_url/predict, bounded by
# its own -z and by `timeout`; JSON figures in OUT.
oha_run() { # OUT SECONDS BODIES [oha flags...]
  local out=$1 secs=$2 bodies=$3 ms
  shift 3
  ms=$(awk -v s="$secs" 'BEGIN{print int(s * 1000)}')
  # in the background, so that a signal to this script is handled at once (wait is interrupted)
  nice -n "$oha_nice" taskset -c "$load_cpus" timeout -k 5 $((ms / 1000 + 90)) \
    "$oha" --no-tui --output-format json -o "$out" \
    --worker-threads "$load_threads" -m POST -T application/json -Z "$bodies" -z "${ms}ms" -w -t 30s \
    "$@" "$server_url/predict" >&2 &
  local pid=$!
  started+=("$pid")
  wait "$pid" || die "oha failed ($out)"
  forget "$pid"
}

# tcpdump for the server now running (its port), until capture_stop; nothing without capture.
capture_pid="" capture_file=""
capture_start() { # PCAP
  [[ $capture == 0 ]] && return 0
  local i
  capture_file=$1
  taskset -c "$load_cpus" tcpdump -i lo -n -s 128 -B 262144 --time-stamp-precision=nano -w "$capture_file" \
    "tcp port ${server_url##*:} and (ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2)) != 0" \
    2>"${capture_file%.pcap}.tcpdump.txt" &
  capture_pid=$!
  started+=("$capture_pid")
  for ((i = 0; i < 50; i++)); do # until its filter is in place
    grep -q 'listening on' "${capture_file%.pcap}.tcpdump.txt" 2>/dev/null && return 0
    kill -0 "$capture_pid" 2>/dev/null || break
    sleep 0.1
  done
  [[ $capture == 1 ]] && die "tcpdump did not start: $(cat "${capture_file%.pcap}.tcpdump.txt")"
  say "tcpdump did not start (not root?): latencies from oha only from now on"
  kill "$capture_pid" 2>/dev/null || true
  wait "$capture_pid" 2>/dev/null || true
  forget "$capture_pid"
  rm -f "$capture_file"
  capture=0 capture_pid=""
}

capture_stop() { # WIRE_JSON: the latencies on the wire (scripts/wire_latency.py); the capture removed
  [[ -n $capture_pid ]] || return 0
  local dropped
  sleep 0.2 # the last answers
  kill -INT "$capture_pid" 2>/dev/null || true
  wait "$capture_pid" 2>/dev/null || true
  forget "$capture_pid"
  capture_pid=""
  dropped=$(awk '/packets dropped by kernel/{print $1}' "${capture_file%.pcap}.tcpdump.txt")
  "$py" scripts/wire_latency.py "$capture_file" "${server_url##*:}" --dropped "${dropped:-0}" >"$1"
  [[ -n ${SERVE_BENCH_KEEP_CAPTURES:-} ]] || rm -f "$capture_file"
}

step_n=0
load_step() { # DIR KIND CONCURRENCY RATE SECONDS LABEL BODIES: one oha run, /metrics around it
  local dir=$1 kind=$2 conc=$3 rate=$4 secs=$5 label=$6 bodies=$7 stem figures
  step_n=$((step_n + 1))
  stem=$dir/$(printf %02d $step_n)-$kind
  record "$stem.step.json" kind="$kind" concurrency="$conc" rate="${rate:-null}" seconds="$secs" \
    label="$label" p99_limit_ms="$p99_ms"
  curl -sf "$server_url/metrics" >"$stem.metrics0.txt" 2>/dev/null || rm -f "$stem.metrics0.txt"
  if [[ -n $rate ]]; then
    ((rate < 100)) && capture_start "$stem.pcap" # a low rate: what the server adds to one request
    oha_run "$stem.oha.json" "$secs" "$bodies" -c "$conc" -q "$rate" --latency-correction
    capture_stop "$stem.wire.json"
  else
    oha_run "$stem.oha.json" "$secs" "$bodies" -c "$conc"
  fi
  if [[ -f $stem.metrics0.txt ]]; then curl -sf "$server_url/metrics" >"$stem.metrics1.txt"; fi
  figures=$("${helper[@]}" brief "$stem.oha.json" --p99-ms "$p99_ms")
  read -r step_rps step_p50 step_p99 step_errors step_pass <<<"$figures"
  say "  $(basename "$dir") $kind c=$conc${rate:+ rate=$rate}: $step_rps req/s, p50 $step_p50 ms, p99 $step_p99 ms, $step_errors errors"
}

# Whether the last step held RATE: p99 within the limit, no error, 95 % of the rate served.
step_passed() { # RATE
  [[ $step_pass == 1 ]] && awk -v s="$step_rps" -v r="$1" 'BEGIN{exit !(s >= 0.95 * r)}'
}

# Sweep, capacity search and fixed rates for the server now running; sets best_sweep, capacity.
# The last fixed rate is the peer's ceiling: PEER_CEILING, or (for the peer) this sweep's best;
# "none": no such step.
measure_server() { # DIR BODIES [PEER_CEILING|none]
  local dir=$1 bodies=$2 peer_ceiling=${3:-} c f r
  mkdir -p "$dir"
  step_n=0 best_sweep=0 capacity=""
  load_step "$dir" warmup 8 "" "$step_s" warm-up "$bodies"
  for c in $sweep; do
    load_step "$dir" sweep "$c" "" "$step_s" "c=$c" "$bodies"
    best_sweep=$(awk -v a="$best_sweep" -v b="$step_rps" 'BEGIN{print (b > a) ? b : a}')
  done
  local failed=""
  for f in $search_factors; do
    r=$(awk -v a="$best_sweep" -v f="$f" 'BEGIN{r = int(a * f); print (r < 1) ? 1 : r}')
    load_step "$dir" search "$rate_connections" "$r" "$step_s" "search $r req/s" "$bodies"
    if step_passed "$r"; then
      capacity=$r
      break
    fi
    failed=$r
  done
  # Then bisect between the passing rate and the failing one above it.
  local i lo=$capacity hi=$failed
  for ((i = 0; i < bisect_steps; i++)); do
    [[ -n $lo && -n $hi ]] || break
    r=$(((lo + hi) / 2))
    ((r > lo)) || break
    load_step "$dir" search "$rate_connections" "$r" "$step_s" "search $r req/s" "$bodies"
    if step_passed "$r"; then lo=$r capacity=$r; else hi=$r; fi
  done
  for r in $rates; do
    local secs=$step_s
    ((r < 100)) && secs=$slow_s # enough requests for a p99 at a low rate
    load_step "$dir" rate "$rate_connections" "$r" "$secs" "$r req/s" "$bodies"
  done
  [[ -z $peer_ceiling ]] && peer_ceiling=$(awk -v a="$best_sweep" 'BEGIN{print int(a)}')
  if [[ $peer_ceiling != none ]]; then
    load_step "$dir" rate "$rate_connections" "$peer_ceiling" "$step_s" "the peer's ceiling, $peer_ceiling req/s" "$bodies"
  fi
  rss_json "$server_pid" >"$dir/rss.json"
}

answers() { # OUT BODIES: the first checks_n bodies' answers, one JSON per line (label agreement)
  head -n "$checks_n" "$2" | while IFS= read -r body; do
    curl -sf -H 'Content-Type: application/json' -d "$body" "$server_url/predict" || printf null
    echo
  done >"$1"
}

run_load() {
  local lang dir bodies ckpt peer_ceiling
  for lang in $langs; do
    prepare_lang "$lang"
    dir=$run_dir/load/$lang bodies=$bench_dir/bodies-$lang.jsonl ckpt=$bench_dir/ckpt-$lang
    mkdir -p "$dir"
    cp "$bench_dir/texts-$lang.json" "$dir/texts.json"
    cp "$bench_dir/ckpt-$lang.train.json" "$dir/train.json" 2>/dev/null || true

    say "$lang: in-process forward of one text, and predict --file ($threads thread(s), CPU $server_cpus)"
    # back to back, then one every 100 ms (untimed sleeps between): the model as warm as under
    # load, and as cold as at the lowest fixed rate (10 req/s)
    local pause suffix
    for pause in 0 100; do
      suffix="" && [[ $pause != 0 ]] && suffix=-paced
      taskset -c "$server_cpus" "$bin" bench predict --threads "$threads" --checkpoint "$ckpt" \
        --sentence "${median_text[$lang]}" --warmup 20 --reps "$reps" --pause-ms "$pause" \
        >"$dir/inproc-ours$suffix.json"
      taskset -c "$server_cpus" "$py" scripts/serve_peer.py --checkpoint "$ckpt" --threads "$threads" \
        --time-forward "${median_text[$lang]}" --warmup 20 --reps "$reps" --pause-ms "$pause" \
        >"$dir/inproc-peer$suffix.json"
    done
    head -n "$predict_n" "$bench_dir/texts-$lang.txt" >"$dir/predict-texts.txt"
    local t0=$EPOCHREALTIME
    taskset -c "$server_cpus" "$bin" predict --checkpoint "$ckpt" --threads "$threads" \
      --file "$dir/predict-texts.txt" >/dev/null
    awk -v a="$EPOCHREALTIME" -v b="$t0" -v n="$(wc -l <"$dir/predict-texts.txt")" \
      -v cmd="lstm-tch predict --file ($predict_n $lang texts) --threads $threads, the whole process" \
      'BEGIN{printf "{\"texts\": %d, \"seconds\": %.3f, \"command\": \"%s\"}\n", n, a - b, cmd}' >"$dir/ceiling.json"
    rm "$dir/predict-texts.txt"

    say "$lang: the peer (FastAPI + PyTorch)"
    start_server peer "$ckpt" "$dir/peer.log"
    answers "$dir/answers-peer.jsonl" "$bodies"
    measure_server "$dir/peer" "$bodies"
    peer_ceiling=$(awk -v a="$best_sweep" 'BEGIN{print int(a)}')
    stop_server
    say "$lang: peer stopped (exit $server_status)"

    say "$lang: ours (lstm-tch serve)"
    start_server ours "$ckpt" "$dir/ours.log"
    answers "$dir/answers-ours.jsonl" "$bodies"
    measure_server "$dir/ours" "$bodies" "$peer_ceiling"
    stop_server
    say "$lang: ours stopped (exit $server_status)"
  done
}

# ---- the stress runs (ours alone) ------------------------------------------------------------
our_capacity() { # LANG → req/s: SERVE_BENCH_CAPACITY, this run's load, the last load run, or measured
  local lang=$1 v="" last
  if [[ -n ${SERVE_BENCH_CAPACITY:-} ]]; then
    echo "$SERVE_BENCH_CAPACITY"
    return
  fi
  # this run, else the newest run that measured it
  for last in "$run_dir" $(find "$bench_dir/runs" -mindepth 1 -maxdepth 1 -type d | sort -r); do
    [[ -d $last/load/$lang/ours ]] || continue
    v=$("${helper[@]}" capacity "$last" "$lang")
    [[ -n $v ]] && break
  done
  if [[ -z $v ]]; then
    say "no capacity for $lang yet: measuring it (sweep and search)"
    local rates="" # no fixed rates here
    measure_server "$run_dir/capacity/$lang" "$bench_dir/bodies-$lang.jsonl" none >&2
    v=${capacity:-$(awk -v a="$best_sweep" 'BEGIN{print int(a / 2)}')}
  fi
  echo "$v"
}

with_our_server() { # DIR: prepare the stress language, start ours, set cap
  prepare_lang "$stress_lang"
  mkdir -p "$1"
  start_server ours "$bench_dir/ckpt-$stress_lang" "$1/ours.log"
  cap=$(our_capacity "$stress_lang")
  [[ $cap -ge 2 ]] || die "capacity '$cap' is too low to run the stress tests"
}

run_overload() {
  local dir=$run_dir/overload bodies=$bench_dir/bodies-$stress_lang.jsonl rate half warm pid
  with_our_server "$dir"
  rate=$((2 * cap)) half=$((cap / 2))
  say "overload: warm-up at $half req/s, then $rate req/s (2 x $cap) for $overload_s s"
  oha_run "$dir/warmup.oha.json" "$step_s" "$bodies" -c "$overload_connections" -q "$half" --latency-correction
  # and 5 s at the overload's rate: its 1,024 connections open, their buffers allocated
  oha_run "$dir/warmup-overload.oha.json" 5 "$bodies" -c "$overload_connections" -q "$rate" --latency-correction
  warm=$(vmrss "$server_pid")
  sampler "$server_pid" 1 $((overload_s - 1)) >"$dir/samples.tsv" &
  pid=$!
  started+=("$pid")
  curl -sf "$server_url/metrics" >"$dir/overload.metrics0.txt"
  capture_start "$dir/overload.pcap"
  oha_run "$dir/overload.oha.json" "$overload_s" "$bodies" -c "$overload_connections" -q "$rate" \
    --latency-correction --db-url "$dir/overload.db"
  capture_stop "$dir/overload.wire.json"
  curl -sf "$server_url/metrics" >"$dir/overload.metrics1.txt"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  forget "$pid"
  say "overload: then $half req/s for $step_s s"
  oha_run "$dir/after.oha.json" "$step_s" "$bodies" -c "$rate_connections" -q "$half" --latency-correction
  stop_server
  record "$dir/overload.json" lang="$stress_lang" capacity="$cap" rate="$rate" seconds="$overload_s" \
    connections="$overload_connections" rss_warm_kib="$warm" after_rate="$half" after_seconds="$step_s" \
    exit_status="$server_status" p99_limit_ms="$p99_ms"
}

run_soak() {
  local dir=$run_dir/soak bodies=$bench_dir/bodies-$stress_lang.jsonl half pid
  with_our_server "$dir"
  half=$((cap / 2))
  say "soak: $half req/s for $soak_s s, RSS and descriptors every $soak_every s"
  oha_run "$dir/warmup.oha.json" "$step_s" "$bodies" -c "$rate_connections" -q "$half" --latency-correction
  sampler "$server_pid" "$soak_every" $((soak_s - soak_every)) >"$dir/samples.tsv" &
  pid=$!
  started+=("$pid")
  oha_run "$dir/soak.oha.json" "$soak_s" "$bodies" -c "$rate_connections" -q "$half" --latency-correction
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  forget "$pid"
  stop_server
  record "$dir/soak.json" lang="$stress_lang" capacity="$cap" rate="$half" seconds="$soak_s" \
    interval="$soak_every" exit_status="$server_status" p99_limit_ms="$p99_ms"
}

# Twice: a new connection per request (every failure then names its request: refused before a
# connection, or lost after one), then over keep-alive connections (as clients run; a request
# written as the server closes an idle connection fails, and the client may retry it).
run_shutdown() {
  local dir=$run_dir/shutdown bodies=$bench_dir/bodies-$stress_lang.jsonl rate secs oha_pid t0 exit_s mode
  for mode in new-connections keep-alive; do
    with_our_server "$dir"
    rate=$((cap / 2))
    # a connection per request: at most 1000 a second, clear of running out of local ports
    ((rate > 1000)) && rate=1000
    secs=$((shutdown_before_s + 5))
    say "shutdown: $rate req/s ($mode); SIGTERM after $shutdown_before_s s"
    if [[ $mode == new-connections ]]; then
      oha_run "$dir/$mode.oha.json" "$secs" "$bodies" -c 64 -q "$rate" --disable-keepalive &
    else
      oha_run "$dir/$mode.oha.json" "$secs" "$bodies" -c 64 -q "$rate" &
    fi
    oha_pid=$!
    started+=("$oha_pid")
    sleep "$shutdown_before_s"
    t0=$EPOCHREALTIME
    stop_server
    exit_s=$(awk -v a="$EPOCHREALTIME" -v b="$t0" 'BEGIN{printf "%.3f", a - b}')
    wait "$oha_pid" || die "oha failed during the shutdown run"
    forget "$oha_pid"
    record "$dir/$mode.json" mode="$mode" lang="$stress_lang" capacity="$cap" rate="$rate" connections=64 \
      before_seconds="$shutdown_before_s" seconds="$secs" exit_status="$server_status" exit_seconds="$exit_s"
  done
}

run_reload() {
  local dir=$run_dir/reload bodies=$bench_dir/bodies-$stress_lang.jsonl half code oha_pid n=0 ok0 ok1
  local ckpt_b=$bench_dir/ckpt-$stress_lang-copy
  with_our_server "$dir"
  half=$((cap / 2))
  rm -rf "$ckpt_b" && cp -r "$bench_dir/ckpt-$stress_lang" "$ckpt_b"
  code=$(curl -s -o "$dir/probe.txt" -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d '{}' \
    "$server_url/admin/reload" || true)
  if [[ $code != 200 ]]; then
    say "reload: POST /admin/reload answers $code: skipped"
    record "$dir/reload.json" lang="$stress_lang" skipped="POST /admin/reload answered $code"
    stop_server
    return
  fi
  curl -sf "$server_url/metrics" >"$dir/metrics0.txt"
  say "reload: $half req/s for $reload_s s, a reload every 0.5 s (POST {}, POST another directory, SIGHUP)"
  oha_run "$dir/reload.oha.json" "$reload_s" "$bodies" -c "$rate_connections" -q "$half" --latency-correction &
  oha_pid=$!
  started+=("$oha_pid")
  : >"$dir/reloads.txt"
  while kill -0 "$oha_pid" 2>/dev/null; do
    case $((n % 4)) in
      0) curl -s -o /dev/null -w '%{http_code}\n' -X POST -H 'Content-Type: application/json' -d '{}' "$server_url/admin/reload" ;;
      1) curl -s -o /dev/null -w '%{http_code}\n' -X POST -H 'Content-Type: application/json' \
        -d "{\"checkpoint\": \"$ckpt_b\"}" "$server_url/admin/reload" ;;
      2) curl -s -o /dev/null -w '%{http_code}\n' -X POST -H 'Content-Type: application/json' \
        -d "{\"checkpoint\": \"$bench_dir/ckpt-$stress_lang\"}" "$server_url/admin/reload" ;;
      3) kill -HUP "$server_pid" && echo SIGHUP ;;
    esac >>"$dir/reloads.txt"
    n=$((n + 1))
    sleep 0.5
  done
  wait "$oha_pid" || die "oha failed during the reload run"
  forget "$oha_pid"
  sleep 1 # a SIGHUP's reload may still be under way
  curl -sf "$server_url/metrics" >"$dir/metrics1.txt"
  ok0=$("${helper[@]}" metric "$dir/metrics0.txt" 'lstm_tch_model_reloads_total{result="ok"}')
  ok1=$("${helper[@]}" metric "$dir/metrics1.txt" 'lstm_tch_model_reloads_total{result="ok"}')
  stop_server
  record "$dir/reload.json" lang="$stress_lang" capacity="$cap" rate="$half" seconds="$reload_s" \
    how='POST {} / POST {"checkpoint"} / SIGHUP in turn, every 0.5 s' exit_status="$server_status" \
    metrics_ok="$(awk -v a="${ok0:-0}" -v b="${ok1:-0}" 'BEGIN{print b - a}')"
}

# /proc/stat's CPU line before and after each command: its steal column is the time the
# hypervisor gave the CPUs to other machines, which stalls every process here, the servers too.
cpu_mark() { # COMMAND
  [[ -r /proc/stat ]] && echo "$1 $(head -n 1 /proc/stat)" >>"$run_dir/cpu.txt"
  return 0
}

for c in "${commands[@]}"; do
  cpu_mark "$c"
  "run_$c"
  cpu_mark "$c"
done
"${helper[@]}" report "$run_dir"
ln -sfn "$run_dir" "$bench_dir/latest"
say "raw figures: $run_dir (results.json, report.md; also target/serve-bench/latest)"
