#!/usr/bin/env bash
# test/bench/router.sh — the PL/Proxy router's added cost per call (README,
# "Past one machine: shards behind a PL/Proxy router"; test/bench/README.md).
#
# Builds audiotricks into a private copy of the PostgreSQL tree, starts one
# throwaway cluster (test/lib/cluster.sh, bcrypt cost 4) holding a shard
# database (audiotricks + audiotricks_shard) and a router database
# (audiotricks_router, one shard: the shard database over the Unix socket),
# registers users through the router, gives each 50 history rows, and
# measures with pgbench (one client, -M prepared, a random user per
# transaction, the token read from a table in the same statement) in one run:
#   page   direct: BEGIN; at_authenticate; at_history_page(20); COMMIT
#          shard:  audiotricks_shard.at_history_page(token, 20, NULL) on the
#                  shard (the statement the router sends, without the router)
#          router: audiotricks.at_history_page(token, 20) on the router
#   add    the same three forms of at_history_add
#   login  at_login on the shard against at_login on the router (bcrypt cost 4
#          in both, so the difference is the router's cost, not bcrypt's)
# It prints a table of mean latency per transaction and the router's added
# cost (router minus direct), and writes it to test/bench/results/router.md.
# It reports; it never fails on a slow number.
#
#   sudo bash test/bench/router.sh
#
# Environment:
#   AT_ROUTER_SECONDS  seconds per measurement (default 10)
#   AT_ROUTER_USERS    users (default 100)
#   AT_BENCH_SRC       source tree to build (default: this checkout)
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH="$ROOT/test/bench"
SRC=${AT_BENCH_SRC:-$ROOT}
DUR=${AT_ROUTER_SECONDS:-10}
USERS=${AT_ROUTER_USERS:-100}
RESULTS="$BENCH/results"
. "$ROOT/test/lib/cluster.sh"

if [ "$(id -u)" != 0 ]; then
	echo "test/bench/router.sh must run as root (it runs PostgreSQL as postgres)" >&2
	exit 2
fi
if [ ! -f /usr/share/postgresql/15/extension/plproxy.control ]; then
	echo "PL/Proxy is not installed: apt-get install postgresql-15-plproxy" >&2
	exit 2
fi
T_START=$(date +%s)
say() { printf '[%4ds] %s\n' "$(($(date +%s) - T_START))" "$*"; }

WORK=$(mktemp -d /tmp/audiotricks-router.XXXXXX)
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
	"autovacuum = off" "log_min_messages = warning" || exit 1
export PGHOST="$WORK/pg" PGPORT="$PORT"
PSQL="$PGBIN/psql -X -q -v ON_ERROR_STOP=1 -U postgres"
$PGBIN/createdb -U postgres shard
$PGBIN/createdb -U postgres router

say "setting up: $USERS users registered through the router, 50 history rows each"
$PSQL -d shard >/dev/null <<'EOF' || exit 1
CREATE EXTENSION audiotricks CASCADE;
CREATE EXTENSION audiotricks_shard;
CREATE ROLE rconn LOGIN IN ROLE audiotricks_router;
CREATE ROLE app LOGIN IN ROLE audiotricks_user;
CREATE SCHEMA bench;
GRANT USAGE ON SCHEMA bench TO app, rconn;
CREATE TABLE bench.tokens (i int PRIMARY KEY, token text NOT NULL);
GRANT SELECT ON bench.tokens TO app, rconn;
EOF
$PSQL -d router >/dev/null <<EOF || exit 1
CREATE EXTENSION audiotricks_router CASCADE;
GRANT audiotricks_user TO app;
SELECT audiotricks_router.at_add_shard('host=$PGHOST port=$PGPORT dbname=shard user=rconn');
CREATE SCHEMA bench;
GRANT USAGE ON SCHEMA bench TO app;
CREATE TABLE bench.tokens (i int PRIMARY KEY, token text NOT NULL);
GRANT SELECT ON bench.tokens TO app;
SELECT count(audiotricks.at_register('bench' || i || '@example.com', 'bench' || i, 'Passw0rdA'))
  FROM generate_series(1, $USERS) i;
INSERT INTO bench.tokens
  SELECT i, l.token FROM generate_series(1, $USERS) i,
    LATERAL audiotricks.at_login('bench' || i, 'Passw0rdA') l;
EOF
$PSQL -d router -At -c "SELECT i, token FROM bench.tokens" |
	$PSQL -d shard -c "COPY bench.tokens FROM STDIN WITH (DELIMITER '|')" || exit 1
$PSQL -d shard >/dev/null <<'EOF' || exit 1
INSERT INTO audiotricks.audio_history (user_id, title, transcript, created_at)
  SELECT u.id, 'seed talk ' || g, 'seed words ' || g, now() - g * interval '1 minute'
  FROM audiotricks.users u, generate_series(1, 50) g;
VACUUM ANALYZE;
EOF

S="$WORK/scripts"
mkdir -p "$S"
R="\\set i random(1, $USERS)"
cat >"$S/page_direct.sql" <<EOF
$R
BEGIN;
SELECT audiotricks.at_authenticate(t.token) FROM bench.tokens t WHERE t.i = :i;
SELECT count(*) FROM audiotricks.at_history_page(20);
COMMIT;
EOF
cat >"$S/page_shard.sql" <<EOF
$R
SELECT count(*) FROM bench.tokens t, audiotricks_shard.at_history_page(t.token, 20, NULL) WHERE t.i = :i;
EOF
cat >"$S/page_router.sql" <<EOF
$R
SELECT count(*) FROM bench.tokens t, audiotricks.at_history_page(t.token, 20) WHERE t.i = :i;
EOF
cat >"$S/add_direct.sql" <<EOF
$R
BEGIN;
SELECT audiotricks.at_authenticate(t.token) FROM bench.tokens t WHERE t.i = :i;
SELECT audiotricks.at_history_add('bench talk', transcript => 'a few words');
COMMIT;
EOF
cat >"$S/add_shard.sql" <<EOF
$R
SELECT audiotricks_shard.at_history_add(t.token, 'bench talk', NULL, NULL, NULL, 'a few words', NULL, NULL, NULL)
  FROM bench.tokens t WHERE t.i = :i;
EOF
cat >"$S/add_router.sql" <<EOF
$R
SELECT audiotricks.at_history_add(t.token, 'bench talk', transcript => 'a few words')
  FROM bench.tokens t WHERE t.i = :i;
EOF
cat >"$S/login.sql" <<EOF
$R
SELECT count(*) FROM audiotricks.at_login('bench' || :i, 'Passw0rdA');
EOF

# run NAME DB SCRIPT ROLE: mean latency in ms
run() {
	local out
	out=$(cd / && runuser -u postgres -- "$PGBIN/pgbench" -n -M prepared -c 1 -j 1 -T "$DUR" \
		-h "$PGHOST" -p "$PGPORT" -U "$4" -f "$S/$3" "$2" 2>&1)
	local lat
	lat=$(printf '%s\n' "$out" | sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p')
	if [ -z "$lat" ] || printf '%s\n' "$out" | grep -q 'failed: [1-9]\|aborted'; then
		printf '%s\n' "$out" >&2
		echo "n/a"
	else
		echo "$lat"
	fi
}
us() { awk -v a="$1" 'BEGIN { if (a == "n/a") print "n/a"; else printf "%.0f", a * 1000 }'; }
diff_us() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a") print "n/a"; else printf "%+.0f", (a - b) * 1000 }'; }

declare -A L
for w in page add; do
	for f in direct shard; do
		say "$w ($f, on the shard): $DUR s"
		# the shard entry points as the router's role, the API as an app role
		role=app
		[ $f = shard ] && role=rconn
		L[$w.$f]=$(run "$w.$f" shard "${w}_$f.sql" $role)
	done
	say "$w (router): $DUR s"
	L[$w.router]=$(run "$w.router" router "${w}_router.sql" app)
done
say "login (on the shard): $DUR s"
L[login.direct]=$(run login shard login.sql app)
L[login.shard]=${L[login.direct]}
say "login (router): $DUR s"
L[login.router]=$(run login router login.sql app)

mkdir -p "$RESULTS"
{
	echo "Router against the shard directly (one client, -M prepared, $DUR s each, $USERS users, bcrypt cost 4);"
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), ${GIT_DESC:-unknown commit}"
	echo
	echo "| call | direct µs | shard entry point µs | router µs | router added µs |"
	echo "|---|---:|---:|---:|---:|"
	for w in page add login; do
		case $w in
			page) n='auth + at_history_page (20 rows)' ;;
			add) n='auth + at_history_add' ;;
			login) n='at_login (bcrypt cost 4)' ;;
		esac
		echo "| $n | $(us "${L[$w.direct]}") | $(us "${L[$w.shard]}") | $(us "${L[$w.router]}") | $(diff_us "${L[$w.router]}" "${L[$w.direct]}") |"
	done
} | tee "$RESULTS/router.md"
say "written to test/bench/results/router.md"
