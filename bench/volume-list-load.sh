#!/bin/bash
# Create latency through a running dev cluster's leader, alone and while 4 clients list
# volumes back to back (bench/results/volume-list-under-load-100k.json).
# Usage: bench/volume-list-load.sh KEY [HEKATE_BENCH]   (hekate dev prints the key)
set -euo pipefail
key=$1
bench=${2:-${CARGO_TARGET_DIR:-target}/release/hekate-bench}
token() { # a Heketi JWT for admin: GET /volumes, 300 s
  python3 - "$key" <<'PY'
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
claims = {"iss": "admin", "iat": now, "exp": now + 300,
          "qsh": hashlib.sha256(b"GET&/volumes").hexdigest()}
body = b64(json.dumps(claims).encode())
sig = b64(hmac.new(sys.argv[1].encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
print(f"{head}.{body}.{sig}")
PY
}
leader=""
for port in 18580 18581 18582; do
  if curl -s "localhost:$port/metrics" | grep -q '^hekate_raft_is_leader 1'; then leader=$port; fi
done
[ -n "$leader" ] || { echo "no leader on ports 18580-18582" >&2; exit 1; }
echo "alone:"
"$bench" creates --server "http://127.0.0.1:$leader" --key "$key" --n 100
end=$((SECONDS + 25))
for _ in 1 2 3 4; do
  (while [ $SECONDS -lt $end ]; do
     curl -s -o /dev/null -H "Authorization: bearer $(token)" "http://127.0.0.1:$leader/volumes"
   done) &
done
sleep 2
echo "with 4 clients listing volumes:"
"$bench" creates --server "http://127.0.0.1:$leader" --key "$key" --n 100
wait
