#!/usr/bin/env bash
# test/bench/flood.sh — a login flood against the rest of the database
# (issue 15; README, Performance, "Login flood").
#
# Builds audiotricks into a private copy of the PostgreSQL tree, starts a
# throwaway cluster (test/lib/cluster.sh) at the default bcrypt cost (12) and
# the default audiotricks.max_concurrent_password_checks, and measures in one
# run:
#   page      an authenticated first page (at_authenticate + at_history_page,
#             20 of 1,000 rows, one pgbench client as an audiotricks_user
#             role): latency and tps idle, then under a flood of 16 and of 64
#             anonymous at_login clients (random unknown names, a wrong
#             password; the flood's function swallows 28P01 and 53400);
#   uncapped  the same two floods with the cap raised to 1024 (no bound: the
#             behaviour before issue 15), for comparison;
#   legit     during each capped flood, 20 correct logins of 20 registered
#             users, one after the other, each retried at once on 53400
#             until it succeeds: median and worst time to a token;
#   login     without a flood: at_login with the right password against
#             pgcrypto's crypt() with the same stored hash (one client).
# It prints a table and writes it to test/bench/results/flood.md.  It
# reports; it never fails on a slow number.
#
#   sudo bash test/bench/flood.sh
#
# Environment:
#   AT_FLOOD_SECONDS   seconds per measurement (default 10)
#   AT_FLOOD_WARMUP    seconds a flood runs before measuring (default 3)
#   AT_BENCH_SRC       source tree to build (default: this checkout)
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH="$ROOT/test/bench"
SRC=${AT_BENCH_SRC:-$ROOT}
DUR=${AT_FLOOD_SECONDS:-10}
WARM=${AT_FLOOD_WARMUP:-3}
RESULTS="$BENCH/results"
. "$ROOT/test/lib/cluster.sh"

if [ "$(id -u)" != 0 ]; then
	echo "test/bench/flood.sh must run as root (it runs PostgreSQL as postgres)" >&2
	exit 2
fi
T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
say() { printf '[%4ds] %s\n' "$(($(date +%s) - T_START))" "$*"; }

WORK=$(mktemp -d /tmp/audiotricks-flood.XXXXXX)
chmod 755 "$WORK"
FLOOD_PID=""
cleanup() {
	[ -n "$FLOOD_PID" ] && kill "$FLOOD_PID" 2>/dev/null && wait "$FLOOD_PID" 2>/dev/null
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
# a copy of the sources, so the checkout's objects are left alone
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
at_cluster_start "$WORK/pg" "$PORT" "max_connections = 120" "shared_buffers = 256MB" \
	"jit = off" "autovacuum = off" "log_min_messages = warning" "log_min_error_statement = panic" || exit 1
export PGHOST="$WORK/pg" PGPORT="$PORT"
PSQL="$PGBIN/psql -X -q -v ON_ERROR_STOP=1 -d flood"
sql() { $PSQL -At -U postgres -c "$1"; }
$PGBIN/createdb -U postgres flood

say "setting up: the reader (1,000 history rows), 20 legitimate users"
$PSQL -U postgres >/dev/null <<'EOF' || exit 1
CREATE EXTENSION pgcrypto SCHEMA public;
CREATE EXTENSION audiotricks CASCADE;
CREATE ROLE flood_app LOGIN IN ROLE audiotricks_user;
CREATE SCHEMA flood;
CREATE TABLE flood.legit (n int, ms double precision, retries int);
-- the flood: a login that swallows its expected failures, so that pgbench
-- (which aborts a client on error) keeps flooding
CREATE FUNCTION flood.try_login(login text) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
	PERFORM audiotricks.at_login(login, 'Wrong-passw0rd');
	RETURN 0;
EXCEPTION
	WHEN invalid_password THEN RETURN 1;
	WHEN configuration_limit_exceeded THEN RETURN 2;
END $$;
-- one correct login of legitN, retried on 53400; returns how many retries
CREATE FUNCTION flood.legit_login(n int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE r int := 0;
BEGIN
	FOR i IN 1..100000 LOOP
		BEGIN
			PERFORM audiotricks.at_login('legit' || n, 'Passw0rd-legit' || n);
			RETURN r;
		EXCEPTION WHEN configuration_limit_exceeded THEN r := r + 1;
		END;
	END LOOP;
	RAISE EXCEPTION 'no login after % retries', r;
END $$;
SELECT audiotricks.at_register('reader@example.com', 'reader', 'Passw0rd-reader');
SELECT audiotricks.at_register('legit' || n || '@example.com', 'legit' || n, 'Passw0rd-legit' || n)
  FROM generate_series(1, 20) n;
EOF
TOKEN=$(sql "SELECT token FROM audiotricks.at_login('reader', 'Passw0rd-reader')")
sql "BEGIN; SELECT audiotricks.at_authenticate('$TOKEN');
	SELECT count(audiotricks.at_history_add('entry ' || i, 'https://example.com/' || i || '.mp3',
		transcript => 'a transcript of entry ' || i)) FROM generate_series(1, 1000) i; COMMIT" >/dev/null || exit 1
sql "VACUUM ANALYZE" || exit 1
CAP=$(sql "SHOW audiotricks.max_concurrent_password_checks")
WAIT=$(sql "SHOW audiotricks.password_check_wait")
COST=$(sql "SHOW audiotricks.bcrypt_cost")
READER_HASH=$(sql "SELECT password_hash FROM audiotricks.users WHERE username = 'reader'")

cat >"$WORK/page.sql" <<'EOF'
BEGIN;
SELECT audiotricks.at_authenticate(:tok);
SELECT * FROM audiotricks.at_history_page(20);
END;
EOF
cat >"$WORK/flood.sql" <<'EOF'
\set r random(1, 2000000000)
SELECT flood.try_login('nobody' || :r);
EOF
cat >"$WORK/login.sql" <<'EOF'
SELECT token FROM audiotricks.at_login('reader', 'Passw0rd-reader');
EOF
cat >"$WORK/crypt.sql" <<'EOF'
SELECT public.crypt('Passw0rd-reader', :hash);
EOF

# pgb ROLE FILE CLIENTS SECONDS DEFS...: prints "latency_ms tps"
pgb() {
	local role=$1 file=$2 clients=$3 secs=$4 out
	shift 4
	out=$("$PGBIN/pgbench" -n -h 127.0.0.1 -p "$PORT" -U "$role" -M prepared -c "$clients" -j "$clients" \
		-T "$secs" -f "$file" "$@" flood 2>&1)
	if grep -q 'aborted\|ERROR' <<<"$out"; then
		echo "pgbench failed: $(grep -m1 -i 'error\|aborted' <<<"$out")" >&2
		echo "NaN NaN"
		return
	fi
	echo "$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$out") $(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' <<<"$out")"
}

flood_start() {
	"$PGBIN/pgbench" -n -h 127.0.0.1 -p "$PORT" -U postgres -c "$1" -j 4 -T 100000 \
		-f "$WORK/flood.sql" flood >"$WORK/flood.$1.log" 2>&1 &
	FLOOD_PID=$!
	sleep "$WARM"
}
flood_stop() {
	kill -TERM "$FLOOD_PID" 2>/dev/null
	wait "$FLOOD_PID" 2>/dev/null
	FLOOD_PID=""
	# until the flood's backends are gone
	for _ in $(seq 1 100); do
		[ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%flood.try_login%' AND pid <> pg_backend_pid()")" = 0 ] && break
		sleep 0.2
	done
}
checks() { sql "SELECT running || ' running, ' || waiting || ' waiting' FROM audiotricks.at_password_checks()"; }

# legit N: 20 correct logins one after the other, timed, into flood.legit
legit() {
	sql "DELETE FROM flood.legit"
	for n in $(seq 1 20); do
		sql "DO \$\$ DECLARE t0 timestamptz := clock_timestamp(); r int;
			BEGIN r := flood.legit_login($n);
			INSERT INTO flood.legit VALUES ($n, extract(epoch FROM clock_timestamp() - t0) * 1000, r); END \$\$" ||
			echo "legit login $n failed" >&2
	done
	sql "SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::numeric / 1000, 2) || ' s / '
		|| round(max(ms)::numeric / 1000, 2) || ' s (' || sum(retries) || ' retries)' FROM flood.legit"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "NaN" }'; }

say "cap $CAP, wait $WAIT, bcrypt cost $COST; page idle"
pgb flood_app "$WORK/page.sql" 1 2 -D tok="$TOKEN" >/dev/null	# warm-up
read -r IDLE_LAT IDLE_TPS < <(pgb flood_app "$WORK/page.sql" 1 "$DUR" -D tok="$TOKEN")
say "idle: $IDLE_LAT ms, $IDLE_TPS tps"

declare -A LAT TPS STATE LEGIT ILAT ITPS
for mode in capped uncapped; do
	if [ "$mode" = uncapped ]; then
		sql "ALTER SYSTEM SET audiotricks.max_concurrent_password_checks = 1024" && sql "SELECT pg_reload_conf()" >/dev/null
		sleep 1
	fi
	for f in 16 64; do
		# idle again right before each flood: the machine is shared
		read -r ILAT[$mode.$f] ITPS[$mode.$f] < <(pgb flood_app "$WORK/page.sql" 1 "$DUR" -D tok="$TOKEN")
		flood_start "$f"
		STATE[$mode.$f]=$(checks)
		read -r LAT[$mode.$f] TPS[$mode.$f] < <(pgb flood_app "$WORK/page.sql" 1 "$DUR" -D tok="$TOKEN")
		say "$mode, flood of $f (${STATE[$mode.$f]}): page ${LAT[$mode.$f]} ms, ${TPS[$mode.$f]} tps (idle just before: ${ILAT[$mode.$f]} ms, ${ITPS[$mode.$f]} tps)"
		if [ "$mode" = capped ]; then
			LEGIT[$f]=$(legit)
			say "$mode, flood of $f: 20 correct logins, median / worst ${LEGIT[$f]}"
		fi
		flood_stop
	done
done
sql "ALTER SYSTEM RESET audiotricks.max_concurrent_password_checks" && sql "SELECT pg_reload_conf()" >/dev/null
sleep 1

say "login without a flood vs crypt() alone"
read -r LOGIN_LAT _ < <(pgb postgres "$WORK/login.sql" 1 "$DUR")
read -r CRYPT_LAT _ < <(pgb postgres "$WORK/crypt.sql" 1 "$DUR" -D hash="$READER_HASH")
read -r LOGIN_LAT2 _ < <(pgb postgres "$WORK/login.sql" 1 "$DUR")
LOGIN_LAT=$(awk -v a="$LOGIN_LAT" -v b="$LOGIN_LAT2" 'BEGIN { printf "%.1f", (a + b) / 2 }')
say "login $LOGIN_LAT ms, crypt $CRYPT_LAT ms"

mkdir -p "$RESULTS"
{
	echo "Login flood ($GIT_DESC), $(nproc) cores, load at start $LOAD_START, end $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "cap $CAP, password_check_wait $WAIT, bcrypt cost $COST, ${DUR}s per cell, page = 1 pgbench client"
	echo
	echo "Each flood cell is compared with the idle cell measured just before it (first idle cell: $IDLE_LAT ms, $IDLE_TPS tps)."
	echo
	echo "| authenticated first page | idle latency | flood latency | × idle | idle tps | flood tps | of idle tps |"
	echo "|---|---|---|---|---|---|---|"
	for mode in capped uncapped; do
		for f in 16 64; do
			echo "| $f flooders, $mode | ${ILAT[$mode.$f]} ms | ${LAT[$mode.$f]} ms | $(ratio "${LAT[$mode.$f]}" "${ILAT[$mode.$f]}") | ${ITPS[$mode.$f]%.*} | ${TPS[$mode.$f]%.*} | $(ratio "${TPS[$mode.$f]}" "${ITPS[$mode.$f]}") |"
		done
	done
	echo
	for f in 16 64; do
		[ -n "${LEGIT[$f]:-}" ] && echo "- 20 correct logins (one user each) during the $f-client flood, retried on 53400: median / worst ${LEGIT[$f]}"
	done
	echo "- at_login without a flood: $LOGIN_LAT ms; crypt() alone: $CRYPT_LAT ms; ratio $(ratio "$LOGIN_LAT" "$CRYPT_LAT")"
} >"$RESULTS/flood.md"
echo
cat "$RESULTS/flood.md"
