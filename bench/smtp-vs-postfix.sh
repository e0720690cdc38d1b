#!/usr/bin/env bash
# SMTP acceptance throughput: Posta against Postfix (Debian's package) on the
# same machine in the same run, same load generator, same messages.
#
#   bench/smtp-vs-postfix.sh [-c CLIENTS] [-n PER_CLIENT] [-s SIZE_KIB] [-r ROUNDS]
#
# Both servers acknowledge only durable mail: Posta answers 250 after the
# message is fsynced into the recipient's mailbox; Postfix answers 250 after
# fsyncing its queue file and delivers to a Maildir afterwards (its virtual(8)
# agent fsyncs too). So the fair pair is Posta's accept rate against Postfix's
# end-to-end rate (250 received AND the file in the Maildir), and we print
# Postfix's accept-only rate beside it. Rounds alternate A B B A (PEERS.md).
set -euo pipefail
cd "$(dirname "$0")/.."

C=16 N=100 S=8 ROUNDS=2
while getopts "c:n:s:r:" o; do
  case $o in c) C=$OPTARG;; n) N=$OPTARG;; s) S=$OPTARG;; r) ROUNDS=$OPTARG;; *) exit 2;; esac
done

if ! command -v /usr/sbin/postfix >/dev/null; then
  echo "postfix missing: installing Debian's package" >&2
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null
fi

T=$(mktemp -d /tmp/posta-bench.XXXXXX)
chmod 755 "$T" # Postfix daemons run as postfix and nobody and must traverse it
POSTA_PID=""
cleanup() {
  [ -n "$POSTA_PID" ] && kill "$POSTA_PID" 2>/dev/null && wait "$POSTA_PID" 2>/dev/null || true
  /usr/sbin/postfix -c "$T/pf/etc" stop >/dev/null 2>&1 || true
  rm -rf "$T"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "== building"
go build -o "$T/posta" ./cmd/posta
go build -o "$T/smtpload" ./bench/smtpload

echo "== starting Posta"
OFFSET=$(( $(free_port) % 20000 + 30000 ))
cat > "$T/posta.toml" <<CONF
data_dir = "$T/posta-data"
bind_address = "127.0.0.1"
port_offset = $OFFSET
# Postfix here checks no SPF/DKIM/DMARC, and this machine's DNS may not
# answer: the inbound checks would measure resolver timeouts.
[smtp]
check_inbound = false
[pop3]
enabled = false
[imap]
enabled = false
[ftp]
enabled = false
[sftp]
enabled = false
[guard]
max_conns_per_ip = 1000
max_conns = 2000
CONF
"$T/posta" domain add example.test --config "$T/posta.toml" >/dev/null
echo "bench-password" | "$T/posta" user add bench@example.test --password-stdin --config "$T/posta.toml" >/dev/null
"$T/posta" serve --config "$T/posta.toml" > "$T/posta.out" 2> "$T/posta.log" &
POSTA_PID=$!
PPORT=$((25 + OFFSET))
for _ in $(seq 100); do grep -q "Stop with" "$T/posta.out" 2>/dev/null && break; sleep 0.1; done

echo "== starting Postfix"
FPORT=$(free_port)
mkdir -p "$T/pf/etc" "$T/pf/queue" "$T/pf/data" "$T/pf/mail/bench"
chown nobody:nogroup "$T/pf/mail" "$T/pf/mail/bench"
chown postfix "$T/pf/data"
cp /etc/postfix/master.cf "$T/pf/etc/master.cf"
sed -i "s/^smtp      inet  n       -       y       -       -       smtpd/127.0.0.1:$FPORT inet n - n - - smtpd/" "$T/pf/etc/master.cf"
grep -q "^127.0.0.1:$FPORT" "$T/pf/etc/master.cf" || { echo "could not set the Postfix port"; exit 1; }
cat > "$T/pf/etc/main.cf" <<CONF
compatibility_level = 3.6
queue_directory = $T/pf/queue
data_directory = $T/pf/data
myhostname = bench.localdomain
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_forbid_bare_newline = normalize
virtual_mailbox_domains = example.test
virtual_mailbox_base = $T/pf/mail
virtual_mailbox_maps = static:bench/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_minimum_uid = 100
maillog_file = /dev/stdout
default_process_limit = 200
smtpd_client_connection_count_limit = 0
smtpd_client_message_rate_limit = 0
CONF
/usr/sbin/postfix -c "$T/pf/etc" check >/dev/null 2>&1 || true
/usr/sbin/postfix -c "$T/pf/etc" start > "$T/pf/start.log" 2>&1 || { cat "$T/pf/start.log"; /usr/lib/postfix/sbin/master -c "$T/pf/etc" -d -t 2>&1 | tail -5; exit 1; }
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$FPORT) 2>/dev/null && break; sleep 0.1; done

total=$((C * N))
maildir_count() { { find "$T/pf/mail/bench/new" -type f 2>/dev/null || true; } | wc -l; }

run_posta() {
  "$T/smtpload" -addr 127.0.0.1:$PPORT -c "$C" -n "$N" -size "$S" -label posta | tee -a "$T/results"
}
run_postfix() {
  before=$(maildir_count)
  t0=$(date +%s.%N)
  line=$("$T/smtpload" -addr 127.0.0.1:$FPORT -c "$C" -n "$N" -size "$S" -label postfix-accept)
  for _ in $(seq 6000); do [ $(( $(maildir_count) - before )) -ge "$total" ] && break; sleep 0.05; done
  t1=$(date +%s.%N)
  e2e=$(python3 -c "print(f'{$total/($t1-$t0):.1f}')")
  echo "$line" | tee -a "$T/results"
  echo "postfix-end-to-end delivered=$(( $(maildir_count) - before )) rate=$e2e msg/s" | tee -a "$T/results"
}

echo "== load: $C clients x $N messages x ${S}KiB, $ROUNDS rounds (A B B A)"
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then run_posta; run_postfix; else run_postfix; run_posta; fi
done

python3 - "$T/results" <<'PY'
import re, statistics, sys
rates = {}
for line in open(sys.argv[1]):
    m = re.match(r"(\S+) .*rate=([\d.]+)", line)
    if m:
        rates.setdefault(m.group(1), []).append(float(m.group(2)))
med = {k: statistics.median(v) for k, v in rates.items()}
p = med.get("posta", 0)
print("== medians (msg/s): " + ", ".join(f"{k} {v:.1f}" for k, v in med.items()))
if med.get("postfix-end-to-end"):
    print(f"ratio Posta / Postfix end-to-end (both durable in the mailbox): {p / med['postfix-end-to-end']:.2f}x")
if med.get("postfix-accept"):
    print(f"ratio Posta / Postfix accept-only (Postfix queue fsync, not yet delivered): {p / med['postfix-accept']:.2f}x")
PY
