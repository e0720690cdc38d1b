#!/usr/bin/env bash
# Outbound throughput: Posta's submission port to a local sink SMTP server,
# through the durable outbound queue (250 to the submitter only after the
# message is fsynced in the queue; removed from the queue only after the
# sink's 250). bench/outload runs the DNS server, the sink and `posta serve`.
#
#   bench/outbound.sh [-n MESSAGES] [-c CONNS] [-s SIZE_KIB] [-w QUEUE_WORKERS] [-r ROUNDS]
#
# Prints the command line, each round's machine-readable lines, and with
# more than one round the median of accept_per_sec and outbound_per_sec.
set -euo pipefail
cd "$(dirname "$0")/.."

N=2000 C=8 S=4 W=0 ROUNDS=1
while getopts "n:c:s:w:r:" o; do
  case $o in n) N=$OPTARG;; c) C=$OPTARG;; s) S=$OPTARG;; w) W=$OPTARG;; r) ROUNDS=$OPTARG;; *) exit 2;; esac
done

T=$(mktemp -d /tmp/posta-outbound.XXXXXX)
trap 'rm -rf "$T"' EXIT

echo "== building"
go build -o "$T/posta" ./cmd/posta
go build -o "$T/outload" ./bench/outload

cmd=("$T/outload" -posta "$T/posta" -n "$N" -c "$C" -size "$S" -workers "$W")
echo "== command: ${cmd[*]}"
for r in $(seq "$ROUNDS"); do
  echo "== round $r"
  "${cmd[@]}" | tee "$T/round.$r"
done

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }
if [ "$ROUNDS" -gt 1 ]; then
  echo "== median of $ROUNDS rounds"
  for k in accept_per_sec outbound_per_sec; do
    echo "$k $(awk -v k="$k" '$1==k {print $2}' "$T"/round.* | median)"
  done
fi
