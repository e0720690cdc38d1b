#!/usr/bin/env bash
# IMAP: Posta against Dovecot (Debian's dovecot-imapd) on the same machine in
# the same run, with the same load generator (bench/imapload) and the same
# mailbox contents.
#
#   bench/imap-vs-dovecot.sh [-n BIG] [-m LOAD_MSGS] [-c CLIENTS] [-d SECONDS]
#       [-r ROUNDS] [-s SELECTS] [-i IDLE_STEPS] [-u IDLE_USERS] [-k IDLE_MSGS]
#       [-f DOVECOT_FORMAT] [-y DOVECOT_FSYNC] [-o posta|dovecot]
#
#   -n  messages in the big mailbox (100000)
#   -m  messages in each load account's INBOX (1000)
#   -c  concurrent load clients, one account each (4)
#   -d  seconds per load run (20)
#   -r  rounds; each round runs both servers, alternating A B / B A (2)
#   -s  SELECT + FETCH measurements per select run (5)
#   -i  idle session counts measured, increasing (1000,10000)
#   -u  accounts the idle sessions are spread over (100)
#   -k  messages in each idle account's INBOX (100)
#   -f  Dovecot mailbox format: mdbox, sdbox or maildir (mdbox)
#   -y  Dovecot's mail_fsync while measuring: optimized (its default: flag
#       changes are not fsynced, expunges and appends are; Posta runs with
#       its default too, which syncs flag changes within 200 ms) or always
#       (flag changes are synced before the reply; Posta runs with
#       [mailstore] flag_sync_delay = 0, which does the same) (optimized)
#   -o  run one server only (the other's figures and the ratios are left out)
#   KEEP=1 in the environment keeps the temporary directory; CPUPROFILE=FILE
#   has Posta write a Go CPU profile of its last start (the load runs) there.
#
# Small run: bench/imap-vs-dovecot.sh -n 2000 -m 300 -d 5 -s 3 -i 200 -u 10 -k 20
#
# What is compared (the differences are printed again at the end):
#   - both without TLS on 127.0.0.1 (Posta with allow_plaintext_auth;
#     Dovecot treats loopback as secure anyway); the same client binary and
#     seeds against both;
#   - the same mail: imapload fill APPENDs the same deterministic messages
#     (1-64 KiB, a quarter multipart) with the same INTERNALDATEs to both.
#     Dovecot stores them in mdbox (-f; its own high-performance format; its
#     Maildir APPEND slows down with every message in the folder: here 20k
#     took 4 minutes, ending at 35/s, so 100k would take hours) and fills with
#     mail_fsync = never (setup only, it halves the time); it measures with
#     its default mail_fsync = optimized (-y), which leaves flag changes
#     (STORE) unsynced; Posta's default syncs them within 200 ms, every
#     other change before its reply.
#   - ops/s: imapload load, C clients each in its own account (LOGIN), a
#     fixed-seed mix of FETCH (FLAGS ENVELOPE) of 1-5 messages, FETCH
#     BODY.PEEK[], STORE +/-FLAGS, SEARCH UNSEEN, APPEND, STORE \Deleted +
#     EXPUNGE, NOOP and re-login; one warm-up run each (not counted), then
#     rounds A B / B A; the median ops/s. The load and big accounts'
#     passwords cost the same on both (argon2id m=19456 KiB, t=2, p=1:
#     Posta's parameters; Dovecot gets {ARGON2ID} hashes made with them).
#   - SELECT of the big mailbox and UID FETCH 1:* (FLAGS ENVELOPE) to the
#     tagged OK: one cold run each (the first after the fill; printed, not
#     counted), then -s runs per server per round; the median of them all.
#   - memory per idle session (AUTHENTICATE SCRAM-SHA-256, SELECT INBOX,
#     IDLE; sessions spread over -u accounts of -k messages): for Posta the
#     PSS growth of its process (restarted first, so that the heap the
#     fill grew does not hide the sessions) divided by the sessions; for
#     Dovecot the growth of PSS summed over the master and all its children
#     (an imap process per session; PSS splits shared pages where summed RSS
#     would count the libraries once per process). SCRAM because Posta's
#     LOGIN runs argon2id, whose 19 MiB per login grow the Go heap by an
#     amount that depends on timing, not on sessions; Dovecot's idle accounts
#     have {PLAIN} passwords, from which it derives the SCRAM keys. Dovecot
#     keeps its default of an imap process per session (imap_hibernate off);
#     its login processes run in high-performance mode (service_count = 0)
#     to open 10k sessions in reasonable time. A Dovecot step that would need
#     more memory than the machine has available is skipped, and said so.
set -euo pipefail
cd "$(dirname "$0")/.."

BIG=100000 LOADN=1000 C=4 SECS=20 ROUNDS=2 SELECTS=5 STEPS=1000,10000 IDLEU=100 IDLEK=100 FORMAT=mdbox ONLY=""
DFSYNC=optimized
while getopts "n:m:c:d:r:s:i:u:k:f:o:y:" o; do
  case $o in
    n) BIG=$OPTARG;; m) LOADN=$OPTARG;; c) C=$OPTARG;; d) SECS=$OPTARG;; r) ROUNDS=$OPTARG;;
    s) SELECTS=$OPTARG;; i) STEPS=$OPTARG;; u) IDLEU=$OPTARG;; k) IDLEK=$OPTARG;; f) FORMAT=$OPTARG;;
    o) ONLY=$OPTARG;; y) DFSYNC=$OPTARG;; *) exit 2;;
  esac
done
case $FORMAT in mdbox|sdbox|maildir) ;; *) echo "-f: mdbox, sdbox or maildir" >&2; exit 2;; esac
case $ONLY in ""|posta|dovecot) ;; *) echo "-o: posta or dovecot" >&2; exit 2;; esac
case $DFSYNC in optimized|always) ;; *) echo "-y: optimized or always" >&2; exit 2;; esac
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }

# Every idle session is a socket on each side (and, for Dovecot, a process
# with a log pipe): the largest step needs that many descriptors.
MAXSTEP=${STEPS##*,}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [ "$NOFILE" != unlimited ] && [ "$NOFILE" -lt $((MAXSTEP + 2000)) ]; then
  ulimit -Hn $((MAXSTEP + 4000)) 2>/dev/null && ulimit -n $((MAXSTEP + 4000)) 2>/dev/null || true
  NOFILE=$(ulimit -n)
  if [ "$NOFILE" -lt $((MAXSTEP + 2000)) ]; then
    echo "ulimit -n is $NOFILE (hard $(ulimit -Hn)) and cannot be raised: too few for $MAXSTEP idle sessions; use -i" >&2
    exit 1
  fi
fi

if want dovecot && { [ ! -x /usr/sbin/dovecot ] || [ ! -e /usr/lib/dovecot/imap ]; }; then
  echo "dovecot missing: installing Debian's packages" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd dovecot-core >/dev/null
fi

T=$(mktemp -d /tmp/posta-imap-bench.XXXXXX)
chmod 755 "$T" # Dovecot's processes run as dovenull, dovecot and nobody and must traverse it
POSTA_PID="" IDLE_PID=""
cleanup() {
  [ -n "$IDLE_PID" ] && kill "$IDLE_PID" 2>/dev/null || true
  [ -n "$POSTA_PID" ] && kill "$POSTA_PID" 2>/dev/null && wait "$POSTA_PID" 2>/dev/null || true
  [ -f "$T/dc/run/master.pid" ] && kill "$(cat "$T/dc/run/master.pid")" 2>/dev/null || true
  for _ in $(seq 300); do [ -f "$T/dc/run/master.pid" ] || break; sleep 0.1; done
  [ -n "${KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT

# free_offset N...: a number k in 10000..30999 such that every port k+N is
# free: below the ephemeral range (32768-), which 10k client sockets use.
free_offset() {
  python3 - "$@" <<'PY'
import random, socket, sys
for _ in range(1000):
    k = random.randrange(10000, 31000)
    try:
        for n in sys.argv[1:]:
            s = socket.socket()
            s.bind(("127.0.0.1", k + int(n)))
            s.close()
    except OSError:
        continue
    print(k)
    break
else:
    sys.exit("no free ports")
PY
}
wait_port() { for _ in $(seq 200); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 not open" >&2; exit 1; }

PASSWORD="bench-password"
BIGUSER="big@example.test"
LOADUSERS="" IDLEUSERS=""
for i in $(seq "$C"); do LOADUSERS="$LOADUSERS${LOADUSERS:+,}load$i@example.test"; done
for i in $(seq "$IDLEU"); do IDLEUSERS="$IDLEUSERS${IDLEUSERS:+,}idle$i@example.test"; done
ALLUSERS="$BIGUSER,$LOADUSERS,$IDLEUSERS"

LOAD1=$(cut -d' ' -f1 /proc/loadavg)
echo "== building (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
if awk -v l="$LOAD1" 'BEGIN{exit !(l > 0.5)}'; then
  echo "   the machine is busy (load average $LOAD1): figures will be noisy" >&2
fi
go build -o "$T/posta" ./cmd/posta
go build -o "$T/imapload" ./bench/imapload
go build -o "$T/pop3load" ./bench/pop3load # for its Dovecot argon2id hash
L="$T/imapload"

PPORT="" DPORT="" MASTER=""
start_posta() {
  "$T/posta" serve --config "$T/posta.toml" ${CPUPROFILE:+--cpuprofile "$CPUPROFILE"} > "$T/posta.out" 2>> "$T/posta.log" &
  POSTA_PID=$!
  wait_port "$PPORT"
  grep -q "imap " "$T/posta.out" || { echo "Posta lists no imap listener:" >&2; cat "$T/posta.out" >&2; exit 1; }
}
if want posta; then
  echo "== starting Posta"
  OFFSET=$(free_offset 143 993)
  cat > "$T/posta.toml" <<CONF
data_dir = "$T/posta-data"
bind_address = "127.0.0.1"
port_offset = $OFFSET
allow_plaintext_auth = true
[log]
level = "warn"
[smtp]
enabled = false
[pop3]
enabled = false
[ftp]
enabled = false
[sftp]
enabled = false
[guard]
max_conns_per_ip = $((MAXSTEP + 1000))
max_conns = $((MAXSTEP + 1000))
exempt_loopback = true
[imap.limits]
max_sessions_per_user = $((MAXSTEP + 1000))
[mailstore]
flag_sync_delay = "$([ "$DFSYNC" = always ] && echo 0s || echo 200ms)"
CONF
  "$T/posta" check --config "$T/posta.toml" >/dev/null
  "$T/posta" domain add example.test --config "$T/posta.toml" >/dev/null
  # Each add hashes the password (argon2id): two at a time.
  echo "${ALLUSERS//,/ }" | tr ' ' '\n' | xargs -P 2 -I{} sh -c \
    "echo '$PASSWORD' | '$T/posta' user add {} --password-stdin --config '$T/posta.toml' >/dev/null"
  PPORT=$((143 + OFFSET))
  start_posta
fi

if want dovecot; then
  echo "== starting Dovecot $(/usr/sbin/dovecot --version) ($FORMAT)"
  DPORT=$(free_offset 0)
  D="$T/dc"
  mkdir -p "$D/run" "$D/state" "$D/mail" "$D/home"
  HASH=$("$T/pop3load" hash -password "$PASSWORD")
  : > "$D/passwd"
  for u in $BIGUSER ${LOADUSERS//,/ }; do echo "$u:$HASH::::::" >> "$D/passwd"; done
  for u in ${IDLEUSERS//,/ }; do echo "$u:{PLAIN}$PASSWORD::::::" >> "$D/passwd"; done
  chown -R nobody:nogroup "$D/mail" "$D/home"
  chmod 644 "$D/passwd"
  echo "mail_fsync = never" > "$D/fill.conf"
  cat > "$D/dovecot.conf" <<CONF
protocols = imap
listen = 127.0.0.1
base_dir = $D/run
state_dir = $D/state
log_path = $D/dovecot.log
# Info lines (a login and a logout per session) go nowhere, as Posta runs at
# level warn.
info_log_path = /dev/null
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login scram-sha-256
default_internal_user = dovecot
default_login_user = dovenull
mail_location = $FORMAT:$D/mail/%u
mail_fsync = $DFSYNC
mail_max_userip_connections = $((MAXSTEP + 1000))
# Room for the idle sessions: an imap process each, and the log, anvil and
# stats services hold a connection per process.
default_client_limit = $((MAXSTEP + 1000))
passdb {
  driver = passwd-file
  args = $D/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$D/home/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $DPORT
  }
  inet_listener imaps {
    port = 0
  }
  service_count = 0
  process_min_avail = 2
}
service imap {
  process_limit = $((MAXSTEP + 1000))
}
!include_try $D/fill.conf
CONF
  /usr/sbin/dovecot -c "$D/dovecot.conf"
  wait_port "$DPORT"
  for _ in $(seq 100); do [ -s "$D/run/master.pid" ] && break; sleep 0.05; done
  MASTER=$(cat "$D/run/master.pid")
fi

fill() { # label port user(s) n [extra flags]
  local label=$1 port=$2 users=$3 n=$4
  shift 4
  echo "-- $label: $n messages into each of $(echo "$users" | tr ',' '\n' | wc -l) account(s)"
  "$L" -mode fill -addr "127.0.0.1:$port" -user "$users" -pass "$PASSWORD" -n "$n" "$@" > "$T/fill.out"
  sed "s/^/$label fill /" "$T/fill.out" >> "$T/results"
}

echo "== filling (imapload fill: the same messages for both)"
for s in posta dovecot; do
  want $s || continue
  if [ $s = posta ]; then port=$PPORT; else port=$DPORT; fi
  fill $s $port "$IDLEUSERS" "$IDLEK" -c 8
  fill $s $port "$LOADUSERS" "$LOADN" -c "$C"
  fill $s $port "$BIGUSER" "$BIG" -split 2
done
if want dovecot; then
  rm "$D/fill.conf" # back to mail_fsync = $DFSYNC for the measurements
  kill -HUP "$MASTER"
  sleep 1
  [ "$(doveconf -c "$D/dovecot.conf" -h mail_fsync)" = "$DFSYNC" ] || { echo "Dovecot did not reload" >&2; exit 1; }
fi

mem() { # label -> "pss rss" in KiB
  if [ "$1" = posta ]; then "$L" -mode mem -pid "$POSTA_PID"; else "$L" -mode mem -pid "$MASTER" -children; fi |
    awk '$1=="pss_kib"{p=$2} $1=="rss_kib"{r=$2} $1=="processes"{n=$2} END{print p, r, n}'
}

idle() { # label port
  local label=$1 port=$2 base brss pss rss procs per perr next need avail
  # Sessions log in with SCRAM-SHA-256 on both: with LOGIN, Posta's
  # argon2id (19 MiB per login) would grow the Go heap by an amount that
  # depends on timing, not on sessions. A warm-up of 100 sessions, opened
  # and closed, puts code paths and caches into the baseline.
  echo stop | "$L" -mode idle -auth scram -addr "127.0.0.1:$port" -user "$IDLEUSERS" -pass "$PASSWORD" -sessions 100 >/dev/null
  sleep 2
  read -r base brss _ < <(mem "$label")
  echo "-- $label: before: PSS $((base / 1024)) MiB"
  rm -f "$T/idle.in" "$T/idle.out"
  mkfifo "$T/idle.in"
  "$L" -mode idle -auth scram -addr "127.0.0.1:$port" -user "$IDLEUSERS" -pass "$PASSWORD" -sessions "$STEPS" \
    < "$T/idle.in" > "$T/idle.out" &
  IDLE_PID=$!
  exec 3> "$T/idle.in"
  local steps=(${STEPS//,/ }) i
  for i in "${!steps[@]}"; do
    n=${steps[$i]}
    while ! grep -q "^ready $n\$" "$T/idle.out"; do
      if ! kill -0 "$IDLE_PID" 2>/dev/null; then
        wait "$IDLE_PID" || true
        IDLE_PID=""
        echo "$label: the idle client failed before $n sessions" >&2
        exec 3>&-
        return 1
      fi
      sleep 0.5
    done
    read -r pss rss procs < <(mem "$label")
    per=$(awk -v a="$pss" -v b="$base" -v n="$n" 'BEGIN{printf "%.1f", (a - b) / n}')
    perr=$(awk -v a="$rss" -v b="$brss" -v n="$n" 'BEGIN{printf "%.1f", (a - b) / n}')
    echo "$label idle sessions=$n pss_kib=$pss base_pss_kib=$base per_session_pss_kib=$per per_session_rss_kib=$perr processes=$procs" |
      tee -a "$T/results"
    next=${steps[$((i + 1))]:-}
    if [ -n "$next" ] && [ "$label" = dovecot ]; then
      need=$(( (pss - base) * (next - n) / n * 13 / 10 ))
      avail=$(awk '/^MemAvailable:/{print $2}' /proc/meminfo)
      if [ "$need" -gt "$avail" ]; then
        echo "$label idle sessions=$next skipped: ~$((need / 1024)) MiB more needed, $((avail / 1024)) MiB available" |
          tee -a "$T/results"
        echo stop >&3
        break
      fi
    fi
    echo >&3
  done
  exec 3>&-
  local rc=0
  wait "$IDLE_PID" || rc=$?
  IDLE_PID=""
  return $rc
}

echo "== memory per idle session (AUTHENTICATE SCRAM-SHA-256, SELECT INBOX, IDLE; over $IDLEU accounts of $IDLEK messages): $STEPS"
for s in posta dovecot; do
  want $s || continue
  if [ $s = posta ]; then
    # A fresh process: the fill grew Go's heap, and sessions would reuse that
    # free memory instead of growing the process.
    kill "$POSTA_PID"
    wait "$POSTA_PID" || true
    start_posta
    idle posta "$PPORT" || echo "posta idle: failed (see above)" | tee -a "$T/results"
  else
    idle dovecot "$DPORT" || echo "dovecot idle: failed (see above)" | tee -a "$T/results"
    # Let the imap processes exit before anything is timed.
    for _ in $(seq 120); do [ "$(pgrep -c -P "$MASTER")" -lt 20 ] && break; sleep 1; done
  fi
  sleep 2
done

load() { # label port
  "$L" -mode load -addr "127.0.0.1:$2" -user "$LOADUSERS" -pass "$PASSWORD" -c "$C" -d "${3:-$SECS}s" > "$T/load.out" || {
    cat "$T/load.out"
    echo "$1: load failed" >&2
    exit 1
  }
  sed "s/^/$1 load /" "$T/load.out" >> "$T/results"
  echo "$1: $(awk '$1=="ops_per_sec"{o=$2} $1=="commands_per_sec"{c=$2} $1=="errors"{e=$2} END{print o " ops/s, " c " commands/s, " e " errors"}' "$T/load.out")"
}
selectrun() { # label port repeat
  "$L" -mode select -addr "127.0.0.1:$2" -user "$BIGUSER" -pass "$PASSWORD" -repeat "$3" > "$T/select.out" 2>/dev/null || {
    "$L" -mode select -addr "127.0.0.1:$2" -user "$BIGUSER" -pass "$PASSWORD" -repeat 1 >&2 || true
    echo "$1: select failed" >&2
    exit 1
  }
  sed "s/^/$1 select /" "$T/select.out" >> "$T/results"
  echo "$1: $(awk '$1=="messages"{m=$2} $1=="select_ms_all"{s=$2} $1=="fetch_ms_all"{f=$2} END{print m " messages, SELECT ms " s ", UID FETCH 1:* (FLAGS ENVELOPE) ms " f}' "$T/select.out")"
}
order() { # round -> the servers in this round's order
  local o
  if [ $(($1 % 2)) -eq 1 ]; then o="posta dovecot"; else o="dovecot posta"; fi
  for s in $o; do want $s && echo $s; done
}
port() { if [ "$1" = posta ]; then echo "$PPORT"; else echo "$DPORT"; fi; }

echo "== SELECT and UID FETCH 1:* (FLAGS ENVELOPE) of $BIG messages: cold (the first after the fill and Posta's restart; not counted)"
for s in $(order 1); do selectrun $s-cold "$(port $s)" 1; done
echo "== load: $C clients, ${SECS}s; warm-up (not counted)"
for s in $(order 1); do load $s-warmup "$(port $s)" $(( (SECS + 3) / 4 )); done
for r in $(seq "$ROUNDS"); do
  echo "== round $r: load, then SELECT/FETCH x$SELECTS"
  for s in $(order "$r"); do load $s "$(port $s)"; done
  for s in $(order "$r"); do selectrun $s "$(port $s)" "$SELECTS"; done
done

echo
echo "== results ($(nproc) cores, load average now $(cut -d' ' -f1-3 /proc/loadavg); Posta $("$T/posta" version 2>/dev/null | head -1); Dovecot $(/usr/sbin/dovecot --version 2>/dev/null || echo -), $FORMAT, mail_fsync = $DFSYNC)"
python3 - "$T/results" "$BIG" "$C" "$SECS" <<'PY'
import re, statistics, sys
path, big, clients, secs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
vals = {}
idle = {}
skipped = []
oplat = {}
for line in open(path):
    f = line.split()
    if len(f) >= 4 and f[1] == "load" and f[2] == "ops_per_sec":
        vals.setdefault((f[0], "ops"), []).append(float(f[3]))
    elif len(f) >= 5 and f[1] == "load" and f[2] == "op":
        kv = dict(x.split("=", 1) for x in f[4:])
        oplat.setdefault((f[0], f[3]), []).append(float(kv["mean_ms"]))
    elif len(f) >= 4 and f[1] == "select" and f[2] in ("select_ms_all", "fetch_ms_all"):
        vals.setdefault((f[0], f[2]), []).extend(float(x) for x in f[3].split(","))
    elif len(f) >= 3 and f[1] == "idle":
        kv = dict(x.split("=", 1) for x in f[2:] if "=" in x)
        if "skipped:" in line:
            skipped.append(line.strip())
        else:
            idle[(f[0], int(kv["sessions"]))] = kv
med = {k: statistics.median(v) for k, v in vals.items()}

def row(title, key, unit, better, target=None):
    p, d = med.get(("posta", key)), med.get(("dovecot", key))
    parts = []
    if p is not None:
        parts.append(f"Posta {p:.1f} {unit}")
    if d is not None:
        parts.append(f"Dovecot {d:.1f} {unit}")
    if p is not None and d:
        parts.append(f"Posta/Dovecot {p / d:.2f}x ({better} is better)")
    if target:
        parts.append(f"target: {target}")
    print(f"  {title}: " + ", ".join(parts))
    for s in ("posta", "dovecot"):
        if (s, key) in vals:
            print(f"      {s} runs: {vals[(s, key)]}")

row(f"load mix ops/s ({clients} clients, {secs}s runs, median)", "ops", "ops/s", "higher",
    "Posta/Dovecot >= 1.0x")
for op in sorted({o for s, o in oplat if s in ("posta", "dovecot")}):
    p, d = oplat.get(("posta", op)), oplat.get(("dovecot", op))
    parts = []
    if p:
        parts.append(f"Posta {statistics.median(p):.2f} ms")
    if d:
        parts.append(f"Dovecot {statistics.median(d):.2f} ms")
    if p and d and statistics.median(d) > 0:
        parts.append(f"{statistics.median(p) / statistics.median(d):.2f}x")
    print(f"      {op} mean latency: " + ", ".join(parts))
row(f"SELECT of {big} messages (median)", "select_ms_all", "ms", "lower", "Posta < 50 ms")
row(f"UID FETCH 1:* (FLAGS ENVELOPE) of {big} messages (median)", "fetch_ms_all", "ms", "lower")
for s in ("posta-cold", "dovecot-cold"):
    for k in ("select_ms_all", "fetch_ms_all"):
        if (s, k) in vals:
            note = "; Posta restarted before the idle test, so also its first since starting" if s == "posta-cold" else ""
            print(f"  {s} (the first after the fill{note}; not counted): {k.split('_')[0].upper()} {vals[(s, k)][0]:.1f} ms")
for n in sorted({n for _, n in idle}):
    p, d = idle.get(("posta", n)), idle.get(("dovecot", n))
    parts = []
    if p:
        parts.append(f"Posta {p['per_session_pss_kib']} KiB (RSS growth {p['per_session_rss_kib']} KiB)")
    if d:
        parts.append(f"Dovecot {d['per_session_pss_kib']} KiB ({d['processes']} processes)")
    if p and d and float(d["per_session_pss_kib"]) > 0:
        parts.append(f"Posta/Dovecot {float(p['per_session_pss_kib']) / float(d['per_session_pss_kib']):.2f}x (lower is better)")
    parts.append("target: Posta <= 30 KiB")
    print(f"  memory per idle session at {n} sessions (PSS growth / sessions): " + ", ".join(parts))
steps = sorted({n for _, n in idle})
for a, b in zip(steps, steps[1:]):
    parts = []
    for s, name in (("posta", "Posta"), ("dovecot", "Dovecot")):
        if (s, a) in idle and (s, b) in idle:
            m = (int(idle[(s, b)]["pss_kib"]) - int(idle[(s, a)]["pss_kib"])) / (b - a)
            parts.append(f"{name} {m:.1f} KiB")
    if parts:
        print(f"  memory per idle session from {a} to {b} sessions (PSS growth between the steps): " + ", ".join(parts))
for l in skipped:
    print("  " + l)
PY
if [ "$DFSYNC" = optimized ]; then
  SYNCNOTE="optimized (its default), which does not fsync flag changes (STORE); Posta's default syncs them within 200 ms (-y always syncs them before the reply on both)"
else
  SYNCNOTE="always, which fsyncs flag changes (STORE) before the reply, as Posta does with flag_sync_delay = 0"
fi
cat <<EOF
  Same on both sides: loopback without TLS; the same messages with the same INTERNALDATEs; the
  same client binary and seeds; argon2id for LOGIN. Differences that remain: Dovecot filled with
  mail_fsync = never and measured with mail_fsync = $SYNCNOTE;
  idle sessions use SCRAM-SHA-256 (Dovecot derives the keys from {PLAIN} passwords, Posta stores
  them); Dovecot keeps an imap process per idle session (imap_hibernate off, its default).
EOF
if want dovecot && n=$(grep -c "Inotify instance limit" "$D/dovecot.log"); then
  echo "  Dovecot: $n sessions found fs.inotify.max_user_instances ($(cat /proc/sys/fs/inotify/max_user_instances))" \
    "used up and watch their mailbox by polling instead (not changed here: a sysctl of the machine)."
fi
