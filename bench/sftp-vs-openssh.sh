#!/usr/bin/env bash
# SFTP throughput: Posta against OpenSSH's sftp-server (Debian's
# openssh-server, a second sshd on a loopback high port with its own host
# keys and config), same client (OpenSSH's sftp -b with a key), same file,
# same cipher named on both sides, in the same run, interleaved A B B A.
#
#   bench/sftp-vs-openssh.sh [-s SIZE_MIB] [-r ROUNDS] [-c "CIPHER ..."]
#
# put: a SIZE_MIB random file from /dev/shm to the server's disk, with
#   `put -f` (fsync@openssh.com): OpenSSH fsyncs on that request, Posta
#   fsyncs every upload before answering CLOSE anyway, so both are durable.
# get: the same file from the server's disk (page cache) into /dev/shm.
# Both servers keep their files under the same mktemp directory (/tmp).
# Prints MiB/s per run, the median per (cipher, op) and Posta/OpenSSH, and
# the CPU seconds per GiB the server and the client spent (from /proc and
# the shell's `time`), which a busy machine disturbs less than wall time.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE=1024 ROUNDS=3 CIPHERS="aes128-gcm@openssh.com chacha20-poly1305@openssh.com"
while getopts "s:r:c:" o; do
  case $o in s) SIZE=$OPTARG;; r) ROUNDS=$OPTARG;; c) CIPHERS=$OPTARG;; *) exit 2;; esac
done

if [ ! -x /usr/sbin/sshd ]; then
  echo "sshd missing: installing Debian's openssh-server (its service is not started)" >&2
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi
command -v sftp >/dev/null || { echo "sftp (openssh-client) is required" >&2; exit 1; }

T=$(mktemp -d /tmp/posta-sftp-bench.XXXXXX)
SHM=$(mktemp -d /dev/shm/posta-sftp-bench.XXXXXX)
POSTA_PID="" SSHD_PID=""
cleanup() {
  [ -n "$POSTA_PID" ] && kill "$POSTA_PID" 2>/dev/null && wait "$POSTA_PID" 2>/dev/null || true
  [ -n "$SSHD_PID" ] && kill "$SSHD_PID" 2>/dev/null && wait "$SSHD_PID" 2>/dev/null || true
  rm -rf "$T" "$SHM"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "== client key, test file ($SIZE MiB)"
ssh-keygen -q -t ed25519 -N '' -f "$T/id"
head -c "$((SIZE << 20))" /dev/urandom > "$SHM/src.bin"

echo "== starting Posta (bench test binary: sftp is not in the posta binary yet)"
go test -c -o "$T/bench.test" ./bench/sftpload
mkdir -p "$T/posta-tmp"
POSTA_SFTP_SERVE="$T" TMPDIR="$T/posta-tmp" "$T/bench.test" -test.run '^TestSFTPServe$' -test.timeout 0 \
  > "$T/posta.log" 2>&1 &
POSTA_PID=$!
for _ in $(seq 300); do [ -s "$T/port" ] && break; sleep 0.1; done
[ -s "$T/port" ] || { cat "$T/posta.log"; echo "Posta did not start"; exit 1; }
PPORT=$(cat "$T/port")

echo "== starting OpenSSH sshd (internal-sftp)"
SPORT=$(free_port)
mkdir -p "$T/sshd" "$T/ossh-data" /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$T/sshd/host_ed25519"
cp "$T/id.pub" "$T/sshd/authorized_keys"
ME=$(id -un)
cat > "$T/sshd/sshd_config" <<CONF
ListenAddress 127.0.0.1
HostKey $T/sshd/host_ed25519
PidFile $T/sshd/pid
AuthorizedKeysFile $T/sshd/authorized_keys
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
AllowUsers $ME
Subsystem sftp internal-sftp
ForceCommand internal-sftp
Ciphers ${CIPHERS// /,}
LogLevel ERROR
CONF
/usr/sbin/sshd -D -e -f "$T/sshd/sshd_config" -p "$SPORT" 2> "$T/sshd.log" &
SSHD_PID=$!
echo "[127.0.0.1]:$SPORT $(cat "$T/sshd/host_ed25519.pub")" > "$T/sshd_known_hosts"
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$SPORT") 2>/dev/null && break; sleep 0.1; done

# cpu PID: CPU seconds of a process and its reaped children (sshd forks one
# process per connection and reaps it; Posta is one process).
TICK=$(getconf CLK_TCK)
cpu() { awk -v t="$TICK" '{printf "%.3f", ($14+$15+$16+$17)/t}' "/proc/$1/stat"; }

# run SERVER CIPHER BATCHFILE: one sftp session; prints "wall client_cpu server_cpu" seconds.
run() {
  local server=$1 cipher=$2 batch=$3 port user kh pid
  if [ "$server" = posta ]; then port=$PPORT user=alice@example.test kh=$T/known_hosts pid=$POSTA_PID
  else port=$SPORT user=$ME kh=$T/sshd_known_hosts pid=$SSHD_PID; fi
  local t0 t1 c0 c1 ct
  c0=$(cpu "$pid")
  t0=$(date +%s.%N)
  TIMEFORMAT="%U %S"
  ct=$( { time sftp -q -F /dev/null -b "$batch" -i "$T/id" -o IdentitiesOnly=yes -o UserKnownHostsFile="$kh" \
    -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o User="$user" -c "$cipher" -P "$port" \
    127.0.0.1 > "$T/sftp.out" 2>&1 || { cat "$T/sftp.out" >&2; echo "sftp failed ($server $cipher)" >&2; exit 1; } ; } 2>&1 )
  t1=$(date +%s.%N)
  c1=$(cpu "$pid")
  echo "$(echo "$t1 - $t0" | bc -l) $(echo "$ct" | awk '{print $1+$2}') $(echo "$c1 - $c0" | bc -l)"
}

remote() { if [ "$1" = posta ]; then echo "/bench.bin"; else echo "$T/ossh-data/bench.bin"; fi; }

printf 'put -f %s %s\n' "$SHM/src.bin" "$(remote posta)" > "$T/put.posta"
printf 'put -f %s %s\n' "$SHM/src.bin" "$(remote openssh)" > "$T/put.openssh"
printf 'get %s %s\n' "$(remote posta)" "$SHM/dst.bin" > "$T/get.posta"
printf 'get %s %s\n' "$(remote openssh)" "$SHM/dst.bin" > "$T/get.openssh"

echo "== correctness: one put and get through each server, byte-compared"
for srv in posta openssh; do
  c=${CIPHERS%% *}
  run "$srv" "$c" "$T/put.$srv" > /dev/null
  rm -f "$SHM/dst.bin"
  run "$srv" "$c" "$T/get.$srv" > /dev/null
  cmp "$SHM/src.bin" "$SHM/dst.bin" || { echo "$srv: get does not match put"; exit 1; }
done

declare -A RES SCPU CCPU
echo "== $ROUNDS rounds of $SIZE MiB, interleaved (A B B A)"
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then order="posta openssh"; else order="openssh posta"; fi
  for c in $CIPHERS; do
    for op in put get; do
      for srv in $order; do
        rm -f "$SHM/dst.bin"
        read -r secs ccpu scpu < <(run "$srv" "$c" "$T/$op.$srv")
        rate=$(echo "$SIZE / $secs" | bc -l)
        cg=$(echo "$ccpu * 1024 / $SIZE" | bc -l) sg=$(echo "$scpu * 1024 / $SIZE" | bc -l)
        RES[$srv,$c,$op]="${RES[$srv,$c,$op]:-} $rate"
        SCPU[$srv,$c,$op]="${SCPU[$srv,$c,$op]:-} $sg"
        CCPU[$srv,$c,$op]="${CCPU[$srv,$c,$op]:-} $cg"
        printf '  round %d %-30s %-4s %-8s %8.1f MiB/s  cpu s/GiB: server %5.2f client %5.2f\n' \
          "$r" "$c" "$op" "$srv" "$rate" "$sg" "$cg"
      done
    done
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

echo
echo "== medians ($ROUNDS rounds, $SIZE MiB, loopback, client: OpenSSH $(ssh -V 2>&1 | cut -d, -f1))"
printf '%-30s %-4s %12s %9s %7s | %-22s | %-22s\n' cipher op "Posta MiB/s" "OpenSSH" ratio \
  "server cpu s/GiB P / O" "client cpu s/GiB P / O"
for c in $CIPHERS; do
  for op in put get; do
    p=$(echo "${RES[posta,$c,$op]}" | median)
    o=$(echo "${RES[openssh,$c,$op]}" | median)
    sp=$(echo "${SCPU[posta,$c,$op]}" | median) so=$(echo "${SCPU[openssh,$c,$op]}" | median)
    cp=$(echo "${CCPU[posta,$c,$op]}" | median) co=$(echo "${CCPU[openssh,$c,$op]}" | median)
    printf '%-30s %-4s %12.1f %9.1f %6.2fx | %9.2f / %-10.2f | %9.2f / %-10.2f\n' "$c" "$op" "$p" "$o" \
      "$(echo "$p / $o" | bc -l)" "$sp" "$so" "$cp" "$co"
  done
done
