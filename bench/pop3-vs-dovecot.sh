#!/usr/bin/env bash
# POP3 download throughput and login rate: Posta against Dovecot (Debian's
# dovecot-pop3d) on the same machine in the same run, with the same load
# generator (bench/pop3load) and the same messages.
#
#   bench/pop3-vs-dovecot.sh [-c CLIENTS] [-n MESSAGES] [-r ROUNDS] [-d LOGIN_SECONDS]
#
# What is compared:
#   - both without TLS, on 127.0.0.1, USER/PASS (Posta with
#     allow_plaintext_auth; Dovecot treats loopback as secure anyway);
#   - the same N messages of mixed sizes (70% 1-8 KiB, 25% 8-64 KiB, 5%
#     64-512 KiB) in each of C accounts, one concurrent client per account
#     (POP3 locks a maildrop per session);
#   - Posta gets them over its SMTP port (so each also carries the
#     Return-Path and Received headers Posta adds, ~300 octets); Dovecot gets
#     them written into Maildirs, LF line endings with S=/W= sizes in the file
#     names, as its own delivery would leave them;
#   - retr: login, STAT, RETR every message, QUIT; MB/s of message octets
#     received, per server;
#   - login: connect, USER/PASS, STAT, QUIT in a loop; logins/s. Both verify
#     the same argon2id (m=19456 KiB, t=2, p=1: Posta's parameters; Dovecot
#     gets {ARGON2ID} hashes made with them), so the hash costs the same;
#     Dovecot runs its default process model (a login process and a pop3
#     process per connection, auth in its auth process).
#   - one warm-up retr round each (Dovecot builds its index, both mark
#     \Seen), then rounds alternate A B B A (PEERS.md); medians and the ratio
#     Posta/Dovecot are printed.
set -euo pipefail
cd "$(dirname "$0")/.."

C=4 N=10000 ROUNDS=2 LOGIN_SECS=5
while getopts "c:n:r:d:" o; do
  case $o in c) C=$OPTARG;; n) N=$OPTARG;; r) ROUNDS=$OPTARG;; d) LOGIN_SECS=$OPTARG;; *) exit 2;; esac
done

if ! command -v /usr/sbin/dovecot >/dev/null || [ ! -e /usr/lib/dovecot/pop3 ]; then
  echo "dovecot missing: installing Debian's packages" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-pop3d dovecot-core >/dev/null
fi

T=$(mktemp -d /tmp/posta-pop3-bench.XXXXXX)
chmod 755 "$T" # Dovecot's processes run as dovenull, dovecot and nobody and must traverse it
POSTA_PID=""
cleanup() {
  [ -n "$POSTA_PID" ] && kill "$POSTA_PID" 2>/dev/null && wait "$POSTA_PID" 2>/dev/null || true
  [ -f "$T/dc/run/master.pid" ] && kill "$(cat "$T/dc/run/master.pid")" 2>/dev/null || true
  for _ in $(seq 50); do [ -f "$T/dc/run/master.pid" ] || break; sleep 0.1; done
  [ -n "${KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 not open" >&2; exit 1; }

PASSWORD="bench-password"
USERS=""
for i in $(seq "$C"); do USERS="$USERS${USERS:+,}bench$i@example.test"; done

echo "== building"
go build -o "$T/posta" ./cmd/posta
go build -o "$T/pop3load" ./bench/pop3load

echo "== generating $N messages"
"$T/pop3load" gen -dir "$T/msgs" -n "$N" -seed 1

echo "== starting Posta"
OFFSET=$(( $(free_port) % 20000 + 30000 ))
cat > "$T/posta.toml" <<CONF
data_dir = "$T/posta-data"
bind_address = "127.0.0.1"
port_offset = $OFFSET
allow_plaintext_auth = true
[log]
level = "warn"
[imap]
enabled = false
[ftp]
enabled = false
[sftp]
enabled = false
[guard]
max_conns_per_ip = 1000
max_conns = 2000
exempt_loopback = true
[smtp]
# Dovecot's side gets no SPF/DKIM/DMARC checks, and this machine's DNS may
# not answer: the inbound checks would measure resolver timeouts.
check_inbound = false
[smtp.limits]
max_recipients = 1000
CONF
"$T/posta" domain add example.test --config "$T/posta.toml" >/dev/null
for u in ${USERS//,/ }; do
  echo "$PASSWORD" | "$T/posta" user add "$u" --password-stdin --config "$T/posta.toml" >/dev/null
done
"$T/posta" serve --config "$T/posta.toml" > "$T/posta.out" 2> "$T/posta.log" &
POSTA_PID=$!
PPORT=$((110 + OFFSET))
wait_port "$PPORT"
"$T/pop3load" deliver -dir "$T/msgs" -smtp "127.0.0.1:$((25 + OFFSET))" -rcpt "$USERS" -c 4

echo "== starting Dovecot $(/usr/sbin/dovecot --version)"
DPORT=$(free_port)
D="$T/dc"
mkdir -p "$D/run" "$D/state" "$D/mail" "$D/home"
"$T/pop3load" maildir -dir "$T/msgs" -root "$D/mail" -users "$USERS"
HASH=$("$T/pop3load" hash -password "$PASSWORD")
: > "$D/passwd"
for u in ${USERS//,/ }; do
  echo "$u:$HASH::::::" >> "$D/passwd"
  mkdir -p "$D/home/$u"
done
chown -R nobody:nogroup "$D/mail" "$D/home"
chmod 644 "$D/passwd"
cat > "$D/dovecot.conf" <<CONF
protocols = pop3
listen = 127.0.0.1
base_dir = $D/run
state_dir = $D/state
log_path = $D/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:$D/mail/%u
mail_max_userip_connections = 1000
pop3_uidl_format = %08Xu%08Xv
passdb {
  driver = passwd-file
  args = scheme=ARGON2ID $D/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$D/home/%u
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = $DPORT
  }
  inet_listener pop3s {
    port = 0
  }
}
CONF
/usr/sbin/dovecot -c "$D/dovecot.conf"
wait_port "$DPORT"

run() { # label port mode
  "$T/pop3load" run -addr "127.0.0.1:$2" -users "$USERS" -password "$PASSWORD" -mode "$3" \
    -duration "${LOGIN_SECS}s" -label "$1" | tee -a "$T/results"
}

echo "== warm-up (not counted)"
run posta-warmup "$PPORT" retr
run dovecot-warmup "$DPORT" retr

echo "== load: $C clients, $N messages each, $ROUNDS rounds (A B B A), login runs of ${LOGIN_SECS}s"
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then order="posta dovecot"; else order="dovecot posta"; fi
  for s in $order; do
    if [ "$s" = posta ]; then run posta "$PPORT" retr; else run dovecot "$DPORT" retr; fi
  done
  for s in $order; do
    if [ "$s" = posta ]; then run posta "$PPORT" login; else run dovecot "$DPORT" login; fi
  done
done

python3 - "$T/results" <<'PY'
import re, statistics, sys
vals = {}
for line in open(sys.argv[1]):
    m = re.match(r"(\S+) (retr|login) .*?(mbps|loginps)=([\d.]+)", line)
    if m and not m.group(1).endswith("-warmup"):
        vals.setdefault((m.group(1), m.group(2)), []).append(float(m.group(4)))
med = {k: statistics.median(v) for k, v in vals.items()}
for mode, unit in (("retr", "MB/s"), ("login", "logins/s")):
    p, d = med.get(("posta", mode)), med.get(("dovecot", mode))
    if p is None or d is None:
        continue
    print(f"== {mode}: median Posta {p:.1f} {unit}, Dovecot {d:.1f} {unit}, ratio Posta/Dovecot {p / d:.2f}x"
          f"  (runs: Posta {vals[('posta', mode)]}, Dovecot {vals[('dovecot', mode)]})")
PY
