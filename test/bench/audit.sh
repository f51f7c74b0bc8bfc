#!/usr/bin/env bash
# test/bench/audit.sh — the cost of the audit hash chains (README, "Audit
# trail"; test/bench/README.md, "Audit").
#
# Builds audiotricks into a private copy of the PostgreSQL tree, starts one
# throwaway cluster (test/lib/cluster.sh, bcrypt cost 4), registers users
# and measures in one run:
#   insert  at_history_add with the audit trigger (audio_history_audit) and
#           without it (the same table, the trigger disabled with ALTER TABLE
#           ... DISABLE TRIGGER between rounds), interleaved: every round
#           runs both, in alternating order, so machine noise hits both alike;
#           (a) pgbench, one client, -M prepared, a random one of the users
#               per transaction: BEGIN; at_authenticate; at_history_add;
#               COMMIT;
#           (b) in-server: one transaction adding 2,000 entries in a loop
#               after at_authenticate (no round trips, so the per-call cost
#               shows);
#           medians over the rounds, and the median of each round's ratio
#           audited / unaudited rate (the two ran back to back, so each pair
#           saw about the same machine).
#   verify  at_verify_audit_chain for a user with 100,000 events (median of
#           3), and a writer appending to that same user's chain while the
#           verifier runs: its transactions and worst latency against the
#           same writer alone.
# It prints the table and writes it to test/bench/results/audit.md.  It
# reports; it never fails on a slow number.
#
#   sudo bash test/bench/audit.sh
#
# Environment:
#   AT_AUDIT_SECONDS   seconds per pgbench measurement (default 5)
#   AT_AUDIT_ROUNDS    interleaved rounds (default 7)
#   AT_AUDIT_EVENTS    events of the verified user (default 100000)
#   AT_BENCH_SRC       source tree to build (default: this checkout)
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH="$ROOT/test/bench"
SRC=${AT_BENCH_SRC:-$ROOT}
DUR=${AT_AUDIT_SECONDS:-5}
ROUNDS=${AT_AUDIT_ROUNDS:-7}
EVENTS=${AT_AUDIT_EVENTS:-100000}
USERS=20
RESULTS="$BENCH/results"
. "$ROOT/test/lib/cluster.sh"

if [ "$(id -u)" != 0 ]; then
	echo "test/bench/audit.sh must run as root (it runs PostgreSQL as postgres)" >&2
	exit 2
fi
T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
say() { printf '[%4ds] %s\n' "$(($(date +%s) - T_START))" "$*"; }

WORK=$(mktemp -d /tmp/audiotricks-audit.XXXXXX)
chmod 755 "$WORK"
cleanup() {
	at_cluster_stop "$WORK/pg"
	rm -rf "$WORK"
}
trap cleanup EXIT

say "building $SRC into a private PostgreSQL tree"
INST="$WORK/install"
mkdir -p "$INST/usr/lib/postgresql" "$INST/usr/share/postgresql"
cp -a /usr/lib/postgresql/15 "$INST/usr/lib/postgresql/"
cp -a /usr/share/postgresql/15 "$INST/usr/share/postgresql/"
PGBIN="$INST/usr/lib/postgresql/15/bin"
export PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
mkdir -p "$WORK/src"
(cd "$SRC" && tar --exclude=./test --exclude='*.o' --exclude='*.so' -cf - .) | tar -C "$WORK/src" -xf -
if ! (cd "$WORK/src" && make -s >"$WORK/build.log" 2>&1 &&
	make -s install DESTDIR="$INST" >>"$WORK/build.log" 2>&1); then
	cat "$WORK/build.log"
	exit 1
fi
GIT_DESC=$(cd "$SRC" && git log -1 --format='%h %s' 2>/dev/null | cut -c1-72)

PORT=$(at_free_port)
say "starting a throwaway cluster in $WORK/pg on 127.0.0.1:$PORT"
at_cluster_start "$WORK/pg" "$PORT" "audiotricks.bcrypt_cost = 4" "jit = off" \
	"shared_buffers = 512MB" "max_wal_size = 4GB" "log_min_messages = warning" || exit 1
export PGHOST="$WORK/pg" PGPORT="$PORT"
PSQL="$PGBIN/psql -X -q -v ON_ERROR_STOP=1 -U postgres -d bench"
sql() { $PSQL -At -c "$1"; }
$PGBIN/createdb -U postgres bench

say "setting up: $USERS users, and one user with $EVENTS audit events"
$PSQL >/dev/null <<EOF || exit 1
CREATE EXTENSION audiotricks CASCADE;
CREATE ROLE app LOGIN IN ROLE audiotricks_user;
CREATE SCHEMA bench;
GRANT USAGE ON SCHEMA bench TO app;
CREATE TABLE bench.tokens (i int PRIMARY KEY, token text NOT NULL);
GRANT SELECT ON bench.tokens TO app;
SELECT count(audiotricks.at_register('bench' || i || '@example.com', 'bench' || i, 'Passw0rdA'))
  FROM generate_series(0, $USERS) i;
INSERT INTO bench.tokens
  SELECT i, l.token FROM generate_series(0, $USERS) i,
    LATERAL audiotricks.at_login('bench' || i, 'Passw0rdA') l;
-- the in-server loop: n entries in this transaction, as the caller
CREATE FUNCTION bench.add_loop(tok text, n int) RETURNS numeric LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz;
BEGIN
  PERFORM audiotricks.at_authenticate(tok);
  t0 := clock_timestamp();
  FOR k IN 1 .. n LOOP
    PERFORM audiotricks.at_history_add('bench talk ' || k, transcript => 'a few words of a talk');
  END LOOP;
  RETURN extract(epoch FROM clock_timestamp() - t0) * 1000000 / n;
END \$\$;
GRANT EXECUTE ON FUNCTION bench.add_loop(text, int) TO app;
CREATE FUNCTION bench.verify_ms(u uuid) RETURNS text LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz; r record;
BEGIN
  t0 := clock_timestamp();
  SELECT events, ok INTO r FROM audiotricks.at_verify_audit_chain(u) ORDER BY events DESC LIMIT 1;
  RETURN round(extract(epoch FROM clock_timestamp() - t0) * 1000, 1) || ' ' || r.events || ' ' || r.ok;
END \$\$;
EOF
# the verified user (bench0): history adds of 10,000 per transaction
TOK0=$(sql "SELECT token FROM bench.tokens WHERE i = 0")
U0=$(sql "SELECT id FROM audiotricks.users WHERE username = 'bench0'")
have=$(sql "SELECT count(*) FROM audiotricks.audit_log WHERE user_id = '$U0'")
while [ "$have" -lt "$EVENTS" ]; do
	n=$((EVENTS - have))
	[ $n -gt 10000 ] && n=10000
	sql "SELECT bench.add_loop('$TOK0', $n)" >/dev/null || exit 1
	have=$(sql "SELECT count(*) FROM audiotricks.audit_log WHERE user_id = '$U0'")
done
$PGBIN/vacuumdb -U postgres -q --analyze -d bench || exit 1
sql "CHECKPOINT"
say "user bench0 has $have events"

S="$WORK/scripts"
mkdir -p "$S"
cat >"$S/add.sql" <<EOF
\\set i random(1, $USERS)
BEGIN;
SELECT audiotricks.at_authenticate(t.token) FROM bench.tokens t WHERE t.i = :i;
SELECT audiotricks.at_history_add('bench talk', transcript => 'a few words of a talk');
COMMIT;
EOF
cat >"$S/add0.sql" <<EOF
BEGIN;
SELECT audiotricks.at_authenticate(t.token) FROM bench.tokens t WHERE t.i = 0;
SELECT audiotricks.at_history_add('while verifying', transcript => 'a few words');
COMMIT;
EOF

# pgbench FILE SECONDS: "tps max_latency_ms"
pgb() {
	local out
	out=$(cd / && runuser -u postgres -- "$PGBIN/pgbench" -n -M prepared -c 1 -j 1 -T "$2" -r \
		-h "$PGHOST" -p "$PGPORT" -U app -f "$1" bench 2>&1)
	if printf '%s\n' "$out" | grep -q 'failed: [1-9]\|aborted'; then
		printf '%s\n' "$out" >&2
		echo "n/a"
		return
	fi
	printf '%s\n' "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | head -1
}
trigger() { sql "ALTER TABLE audiotricks.audio_history $1 TRIGGER audio_history_audit"; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

declare -A TPS LOOP
RATIOS=""
LRATIOS=""
for r in $(seq 1 "$ROUNDS"); do
	if [ $((r % 2)) = 1 ]; then order="on off"; else order="off on"; fi
	for m in $order; do
		if [ $m = on ]; then trigger ENABLE; else trigger DISABLE; fi
		t=$(pgb "$S/add.sql" "$DUR")
		u=$(runuser -u postgres -- $PGBIN/psql -X -At -h "$PGHOST" -p "$PORT" -U app -d bench \
			-c "SELECT round(bench.add_loop(token, 2000), 2) FROM bench.tokens WHERE i = $(((r % USERS) + 1))")
		TPS[$m]="${TPS[$m]:-} $t"
		LOOP[$m]="${LOOP[$m]:-} $u"
		say "round $r, audit $m: $t tps (pgbench), $u µs per call (in-server loop)"
		eval "T_$m=\$t; U_$m=\$u"
	done
	# the round's pair: audited rate / unaudited rate
	RATIOS="$RATIOS $(awk -v a="$T_on" -v b="$T_off" 'BEGIN { printf "%.3f", a / b }')"
	LRATIOS="$LRATIOS $(awk -v a="$U_on" -v b="$U_off" 'BEGIN { printf "%.3f", b / a }')"
done
trigger ENABLE
med() { printf '%s\n' $1 | median; }
TON=$(med "${TPS[on]}")
TOFF=$(med "${TPS[off]}")
LON=$(med "${LOOP[on]}")
LOFF=$(med "${LOOP[off]}")
RT=$(med "$RATIOS")
RL=$(med "$LRATIOS")

say "verifying bench0's chains (3 times)"
V=()
for k in 1 2 3; do
	V+=("$(sql "SELECT bench.verify_ms('$U0')")")
	say "verify: ${V[-1]} (ms, events, ok)"
done
VMED=$(for v in "${V[@]}"; do echo "${v%% *}"; done | median)
VEV=$(echo "${V[0]}" | cut -d' ' -f2)
VOK=$(echo "${V[0]}" | cut -d' ' -f3)

say "a writer on bench0's chain alone, then while verifiers run"
WALONE=$(pgb "$S/add0.sql" "$DUR")
(for k in $(seq 1 20); do sql "SELECT bench.verify_ms('$U0')" >>"$WORK/verify_during"; done) &
VP=$!
sleep 0.5
WDURING=$(pgb "$S/add0.sql" "$DUR")
NVER=$(wc -l <"$WORK/verify_during")
wait $VP
NVER_ALL=$(wc -l <"$WORK/verify_during")
VOK_DURING=$(awk '{ print $3 }' "$WORK/verify_during" | sort -u | tr '\n' ' ')

mkdir -p "$RESULTS"
{
	echo "Audit hash chains: at_history_add audited against unaudited, interleaved ($ROUNDS rounds, alternating order, medians), and the verifier."
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load $LOAD_START at start and $(cut -d' ' -f1-3 /proc/loadavg) at end, ${GIT_DESC:-unknown commit}"
	echo
	echo "| measurement | audited (median) | unaudited (median) | audited / unaudited rate (median of the rounds' pairs) |"
	echo "|---|---:|---:|---:|"
	echo "| pgbench, 1 client: authenticate + at_history_add (tps) | $TON | $TOFF | ${RT}× |"
	echo "| in-server loop of 2,000 at_history_add (µs per call) | $LON | $LOFF | ${RL}× |"
	echo
	echo "Rounds (tps audited: ${TPS[on]}; unaudited: ${TPS[off]}; pair ratios:$RATIOS; µs audited: ${LOOP[on]}; unaudited: ${LOOP[off]}; pair ratios:$LRATIOS)."
	echo
	echo "| verifier | |"
	echo "|---|---|"
	echo "| at_verify_audit_chain of a user with $VEV events (median of 3) | $VMED ms (ok: $VOK) |"
	echo "| a writer appending to that user's chain, alone | $WALONE tps |"
	echo "| the same writer while verifiers of that chain run back to back | $WDURING tps ($NVER verifications finished meanwhile, $NVER_ALL in all; results ok: $VOK_DURING) |"
} >"$RESULTS/audit.md"
cat "$RESULTS/audit.md"
