#!/usr/bin/env bash
# FTP throughput, login rate and idle memory: Posta against vsftpd (Debian's
# package) on the same machine in the same run, with the same client
# (bench/ftpload), interleaved A B B A (PEERS.md).
#
#   bench/ftp-vs-vsftpd.sh [-s SIZE] [-r ROUNDS] [-i IDLE] [-k KINDS] [-T] [-2]
#
#   -s SIZE    file size for RETR and STOR, as head -c takes it (default 1G)
#   -r ROUNDS  transfers per server and kind (default 3; the median is used)
#   -i IDLE    idle logged-in sessions for the memory figure (default 300;
#              0 skips the memory and login figures)
#   -k KINDS   transfers to measure (default "retr stor")
#   -T         also measure TLS (AUTH TLS, PROT P, session reuse on data)
#   -2         cap TLS at 1.2 for both servers (PEERS.md: vsftpd and TLS 1.3)
#
# Run as root: vsftpd needs a local user (one is created for the run and
# removed after, with a PAM service file of its own) and starts as root.
#
# Differences that remain, and what they mean for the ratios:
#   - Posta fsyncs an upload (file, then directory) before its 226; vsftpd
#     does not, so its STOR figure is the page cache's speed.
#   - Posta writes an upload to a temporary file and renames it over the
#     target; vsftpd truncates and rewrites the target in place.
#   - Logins cost a password hash on both sides: Posta argon2id (19 MiB, 2
#     passes), vsftpd PAM pam_unix (the system's crypt, yescrypt on Debian
#     12): the login rate compares the hashes more than the servers.
#   - vsftpd runs two processes per session; memory is compared as PSS
#     (shared pages split), summed over its processes. Posta's is sampled
#     after a garbage collection (SIGUSR1 to ftpload -serve), so the heap
#     each argon2id login leaves behind is not counted as session memory.
#   - Posta runs in-process through ftpload -serve (the whole server:
#     database, directory, guard, TLS) until internal/server registers the
#     ftp builder, after which `posta serve` would do the same.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE=1G ROUNDS=3 IDLE=300 TLS=0 TLS12="" KINDS="retr stor"
while getopts "s:r:i:k:T2" o; do
  case $o in s) SIZE=$OPTARG;; r) ROUNDS=$OPTARG;; i) IDLE=$OPTARG;; k) KINDS=$OPTARG;; T) TLS=1;; 2) TLS12="-tls12";; *) exit 2;; esac
done
[ "$(id -u)" = 0 ] || { echo "run as root (vsftpd needs a local user)"; exit 1; }

T=$(mktemp -d /tmp/posta-ftpbench.XXXXXX)
chmod 755 "$T" # the vsftpd session runs as the bench user and must traverse it
BUSER=posta-ftpbench
BPASS=bench-password
PAMSVC=posta-ftpbench
POSTA_PID="" VSFTPD_PID="" IDLE_PID=""
cleanup() {
  set +e
  [ -n "$IDLE_PID" ] && kill "$IDLE_PID" 2>/dev/null
  [ -n "$POSTA_PID" ] && kill "$POSTA_PID" 2>/dev/null && wait "$POSTA_PID" 2>/dev/null
  [ -n "$VSFTPD_PID" ] && kill "$VSFTPD_PID" 2>/dev/null && wait "$VSFTPD_PID" 2>/dev/null
  id "$BUSER" >/dev/null 2>&1 && userdel "$BUSER" 2>/dev/null
  rm -f "/etc/pam.d/$PAMSVC"
  rm -rf "$T"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

echo "== building"
go build -o "$T/ftpload" ./bench/ftpload

echo "== vsftpd"
VSFTPD=/usr/sbin/vsftpd
if [ ! -x "$VSFTPD" ]; then
  (cd "$T" && apt-get download -qq vsftpd >/dev/null 2>&1) || { echo "apt-get download vsftpd failed"; exit 1; }
  dpkg -x "$T"/vsftpd_*.deb "$T/vsftpd-root"
  VSFTPD="$T/vsftpd-root/usr/sbin/vsftpd"
fi
"$VSFTPD" -v 0>&1 | head -1 || true # vsftpd prints its version on fd 0
id "$BUSER" >/dev/null 2>&1 || useradd -M -d "$T/vsftpd-home" -s /usr/sbin/nologin "$BUSER"
usermod -d "$T/vsftpd-home" "$BUSER" >/dev/null 2>&1 || true
echo "$BUSER:$BPASS" | chpasswd
mkdir -p "$T/vsftpd-home" "$T/empty"
chown "$BUSER" "$T/vsftpd-home"
# A PAM service of our own: the system's password check, nothing else (the
# Debian vsftpd file adds pam_shells and /etc/ftpusers).
printf '@include common-auth\n@include common-account\n@include common-session\n' > "/etc/pam.d/$PAMSVC"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -keyout "$T/vsftpd.key" -out "$T/vsftpd.pem" >/dev/null 2>&1
VPORT=$(free_port)
cat > "$T/vsftpd.conf" <<CONF
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$VPORT
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
pam_service_name=$PAMSVC
userlist_enable=NO
seccomp_sandbox=NO
secure_chroot_dir=$T/empty
use_sendfile=YES
xferlog_enable=NO
dirmessage_enable=NO
pasv_enable=YES
max_clients=0
max_per_ip=0
idle_session_timeout=900
data_connection_timeout=900
ssl_enable=YES
rsa_cert_file=$T/vsftpd.pem
rsa_private_key_file=$T/vsftpd.key
allow_anon_ssl=NO
force_local_logins_ssl=NO
force_local_data_ssl=NO
require_ssl_reuse=YES
ssl_ciphers=HIGH
ssl_tlsv1=YES
ssl_sslv2=NO
ssl_sslv3=NO
vsftpd_log_file=$T/vsftpd.log
CONF
"$VSFTPD" "$T/vsftpd.conf" > "$T/vsftpd.out" 2>&1 &
VSFTPD_PID=$!
wait_port "$VPORT" || { cat "$T/vsftpd.out"; exit 1; }

echo "== Posta"
PPORT=$(free_port)
"$T/ftpload" -serve -data "$T/posta-data" -port "$PPORT" -user bench@example.test -pass "$BPASS" \
  > "$T/posta.out" 2> "$T/posta.log" &
POSTA_PID=$!
wait_port "$PPORT" || { cat "$T/posta.out" "$T/posta.log"; exit 1; }
PHOME="$T/posta-data/files/bench@example.test"

echo "== test file: $SIZE of random bytes"
head -c "$SIZE" /dev/urandom > "$T/src.bin"
mkdir -p "$PHOME"
cp "$T/src.bin" "$PHOME/big.bin"
cp "$T/src.bin" "$T/vsftpd-home/big.bin"
chown "$BUSER" "$T/vsftpd-home/big.bin"
cat "$T/src.bin" "$PHOME/big.bin" "$T/vsftpd-home/big.bin" > /dev/null # page cache

posta() { "$T/ftpload" -addr "127.0.0.1:$PPORT" -user bench@example.test -pass "$BPASS" $TLS12 "$@"; }
vsftpd() { "$T/ftpload" -addr "127.0.0.1:$VPORT" -user "$BUSER" -pass "$BPASS" $TLS12 "$@"; }
one() { # server kind [tls]
  local srv=$1 kind=$2 tls=${3:-} label="$1-$2${3:+-tls}"
  sync # each measurement starts with no dirty pages from the one before
  case $kind in
    retr) $srv -op retr -remote big.bin -n 1 -label "$label" ${tls:+-tls} | grep -v median | tee -a "$T/results" ;;
    stor)
      local line t0 t1
      line=$($srv -op stor -local "$T/src.bin" -remote up.bin -n 1 -label "$label" ${tls:+-tls} | grep -v median)
      echo "$line" | tee -a "$T/results"
      if [ "$srv" = vsftpd ]; then
        # The durable figure: vsftpd's 226 plus the fsync it skipped.
        t0=$(date +%s.%N); sync "$T/vsftpd-home/up.bin"; t1=$(date +%s.%N)
        python3 - "$line" "$t0" "$t1" "$label" <<'PY' | tee -a "$T/results"
import re, sys
line, t0, t1, label = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
b = int(re.search(r"bytes=(\d+)", line).group(1)); s = float(re.search(r"seconds=([\d.]+)", line).group(1))
print(f"{label}+fsync run=1 bytes={b} seconds={s + t1 - t0:.3f} rate={b / (s + t1 - t0) / 1e6:.1f} MB/s")
PY
      fi
      # Check every upload, then remove it outside the measurement, so no
      # STOR pays for freeing the previous one's blocks (this disk is
      # mounted with discard: freeing 1 GiB takes ~0.7 s), neither vsftpd
      # at its O_TRUNC nor Posta after its rename.
      local up="$PHOME/up.bin"
      [ "$srv" = vsftpd ] && up="$T/vsftpd-home/up.bin"
      cmp -s "$T/src.bin" "$up" || { echo "$label: upload differs"; exit 1; }
      rm -f "$up" ;;
  esac
}

# Memory first, on servers that have not yet moved a gigabyte (Go keeps
# freed heap for a while, and that is not what an idle session costs).
pss() { # sum of Pss (kB) of a process and its descendants
  local pids="$1" all="" next
  while [ -n "$pids" ]; do
    all="$all $pids"; next=""
    for p in $pids; do next="$next $(ps -o pid= --ppid "$p" 2>/dev/null | tr '\n' ' ')"; done
    pids=$(echo $next)
  done
  local sum=0 v
  for p in $all; do
    v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}
GC_SEQ=0
settle() { # pid: for Posta, collect garbage first (ftpload -serve on SIGUSR1)
  [ "$1" = "$POSTA_PID" ] || return 0
  GC_SEQ=$((GC_SEQ + 1))
  kill -USR1 "$POSTA_PID"
  for _ in $(seq 200); do grep -q "gc $GC_SEQ done" "$T/posta.out" && return 0; sleep 0.05; done
  echo "Posta did not collect garbage"; exit 1
}
idle_mem() { # server pid label
  local srv=$1 pid=$2 label=$3 before after
  settle "$pid"
  before=$(pss "$pid")
  mkfifo "$T/idle.fifo"
  $srv -op idle -c "$IDLE" -label "$label" < "$T/idle.fifo" > "$T/idle.out" 2>&1 &
  IDLE_PID=$!
  exec 9> "$T/idle.fifo" # keeps the sessions open until closed
  for _ in $(seq 1200); do grep -q ready "$T/idle.out" 2>/dev/null && break; kill -0 "$IDLE_PID" 2>/dev/null || break; sleep 0.05; done
  grep -q ready "$T/idle.out" || { cat "$T/idle.out"; exit 1; }
  settle "$pid"
  after=$(pss "$pid")
  exec 9>&-
  wait "$IDLE_PID" || true
  IDLE_PID=""
  rm -f "$T/idle.fifo"
  echo "$label idle=$IDLE pss_before_kb=$before pss_after_kb=$after per_session_kb=$(( (after - before) / IDLE ))" | tee -a "$T/results"
}
if [ "$IDLE" -gt 0 ]; then
  echo "== memory with $IDLE idle logged-in sessions"
  idle_mem posta "$POSTA_PID" posta-idle
  idle_mem vsftpd "$VSFTPD_PID" vsftpd-idle

  echo "== logins (connect, USER, PASS, QUIT), 4 clients x 25"
  posta -op login -c 4 -n 25 -label posta-login | tee -a "$T/results"
  vsftpd -op login -c 4 -n 25 -label vsftpd-login | tee -a "$T/results"
fi

echo "== warm-up (not counted): one RETR from each"
posta -op retr -remote big.bin -n 1 -label warmup >/dev/null
vsftpd -op retr -remote big.bin -n 1 -label warmup >/dev/null

echo "== transfers: $ROUNDS rounds, A B B A"
for r in $(seq "$ROUNDS"); do
  for k in $KINDS; do
    if [ $((r % 2)) -eq 1 ]; then one posta "$k"; one vsftpd "$k"; else one vsftpd "$k"; one posta "$k"; fi
    if [ "$TLS" = 1 ]; then
      if [ $((r % 2)) -eq 1 ]; then one posta "$k" tls; one vsftpd "$k" tls; else one vsftpd "$k" tls; one posta "$k" tls; fi
    fi
  done
done
case "$KINDS" in *stor*) echo "every upload byte-exact on both";; esac

python3 - "$T/results" <<'PY'
import re, statistics, sys
rates, other = {}, {}
for line in open(sys.argv[1]):
    m = re.match(r"(\S+) run=\d+ .*rate=([\d.]+) MB/s", line)
    if m:
        rates.setdefault(m.group(1), []).append(float(m.group(2)))
    m = re.match(r"(\S+)-login .*rate=([\d.]+) logins/s", line)
    if m:
        other[m.group(1) + " logins/s"] = float(m.group(2))
    m = re.match(r"(\S+)-idle .*per_session_kb=(-?\d+)", line)
    if m:
        other[m.group(1) + " kB/idle session"] = float(m.group(2))
med = {k: statistics.median(v) for k, v in rates.items()}
print("== medians (MB/s): " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(med.items())))
for kind, target in (("retr", 0.95), ("stor", 1.0), ("retr-tls", None), ("stor-tls", None)):
    p, v = med.get("posta-" + kind), med.get("vsftpd-" + kind)
    if p and v:
        goal = f" (target >= {target}x)" if target else ""
        print(f"ratio Posta / vsftpd {kind.upper()}: {p / v:.2f}x{goal}")
    d = med.get("vsftpd-" + kind + "+fsync")
    if p and d:
        print(f"ratio Posta / vsftpd {kind.upper()} + fsync (both durable at the end): {p / d:.2f}x")
for k, v in sorted(other.items()):
    print(f"{k}: {v:.1f}")
PY
