#!/usr/bin/env bash
# test/bench/partition.sh — audio_history partitioned and audited against the
# same data unpartitioned and unaudited (method and results:
# test/bench/README.md, "Partitioned and audited").
#
# Two builds, two throwaway clusters, one run:
#   before  AT_BENCH_BASE (default: the last commit whose audio_history is one
#           table without the audit trigger), built from `git archive`
#   after   this checkout's working tree
# Both get the same data (3,000,000 entries over 24 months by default: one
# heavy user with 1,000,000, 1,000 users with 2,000 each); on "after" the 24
# past months are partitions.  Then, in interleaved rounds, per call inside the
# server: page 1 and a page 100,000 deep (at_history_page, and the plain
# keyset query as a superuser with generic and with custom plans), a search
# for a heavy and for a light user; then pgbench: at_history_add's insert
# rate at 1 and 2 clients.  Last, on "after" only: the time to drop an
# expired month holding 1,000 and one holding 1,000,000 entries.  It reports
# ratios (after / before); it never fails on a slow number.
#
#   sudo bash test/bench/partition.sh
#
# Environment: AT_BENCH_BASE (commit), AT_BENCH_HEAVY (1000000),
# AT_BENCH_LIGHT_USERS (1000), AT_BENCH_LIGHT_ROWS (2000), AT_BENCH_ROUNDS (3),
# AT_BENCH_SECONDS (3, per pgbench cell and round), AT_BENCH_DEPTH (100000),
# KEEP_BENCH_DIR=1.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH="$ROOT/test/bench"
BASE=${AT_BENCH_BASE:-9270dcb}
HEAVY=${AT_BENCH_HEAVY:-1000000}
LIGHT_USERS=${AT_BENCH_LIGHT_USERS:-1000}
LIGHT_ROWS=${AT_BENCH_LIGHT_ROWS:-2000}
ROUNDS=${AT_BENCH_ROUNDS:-3}
SECS=${AT_BENCH_SECONDS:-3}
DEPTH=${AT_BENCH_DEPTH:-100000}
MONTHS=24
. "$ROOT/test/lib/cluster.sh"

[ "$(id -u)" = 0 ] || { echo "run as root (PostgreSQL runs as postgres)" >&2; exit 2; }
T_START=$(date +%s)
say() { printf '[%4ds] %s\n' "$(($(date +%s) - T_START))" "$*"; }
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

WORK=$(mktemp -d /tmp/audiotricks-pbench.XXXXXX)
chmod 755 "$WORK"
cleanup() {
	if [ -n "${KEEP_BENCH_DIR:-}" ]; then
		echo "kept: $WORK"
	else
		for s in before after; do PGBIN="$WORK/$s/install/usr/lib/postgresql/15/bin" at_cluster_stop "$WORK/$s/pg"; done
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- build
# build SIDE: $WORK/SIDE/src built into a private copy of the PostgreSQL tree
build() {
	local side=$1 inst="$WORK/$1/install"
	mkdir -p "$inst/usr/lib/postgresql" "$inst/usr/share/postgresql"
	cp -a /usr/lib/postgresql/15 "$inst/usr/lib/postgresql/"
	cp -a /usr/share/postgresql/15 "$inst/usr/share/postgresql/"
	(cd "$WORK/$side/src" && make -s PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config >"$WORK/$side/build.log" 2>&1 &&
		make -s install PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config DESTDIR="$inst" >>"$WORK/$side/build.log" 2>&1) ||
		{ cat "$WORK/$side/build.log"; exit 1; }
}
mkdir -p "$WORK/before/src" "$WORK/after/src"
(cd "$ROOT" && git archive "$BASE") | tar -C "$WORK/before/src" -xf - ||
	{ echo "cannot read commit $BASE" >&2; exit 2; }
tar -C "$ROOT" --exclude=test/clients/node_modules --exclude=test/fuzz/build --exclude='*.o' --exclude='*.so' \
	-cf - Makefile audiotricks.control src | tar -C "$WORK/after/src" -xf -
say "building $BASE (before) and the working tree (after)"
build before
build after
DESC_BEFORE=$(cd "$ROOT" && git log -1 --format='%h %s' "$BASE" | cut -c1-60)
DESC_AFTER=$(cd "$ROOT" && git log -1 --format='%h %s' | cut -c1-60)

# ---------------------------------------------------------------- clusters
declare -A PORT
CONF=("shared_buffers = 3GB" "work_mem = 16MB" "maintenance_work_mem = 1GB" "max_wal_size = 16GB"
	"checkpoint_timeout = 30min" "random_page_cost = 1.1" "jit = off" "autovacuum = off"
	"log_min_messages = warning" "audiotricks.bcrypt_cost = 4")
for s in before after; do
	PGBIN="$WORK/$s/install/usr/lib/postgresql/15/bin"
	PORT[$s]=$(at_free_port)
	at_cluster_start "$WORK/$s/pg" "${PORT[$s]}" "${CONF[@]}" || exit 1
done
# psql_on SIDE [ROLE] ARGS...
psql_on() {
	local s=$1
	shift
	"$WORK/$s/install/usr/lib/postgresql/15/bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$WORK/$s/pg" -p "${PORT[$s]}" -d bench "$@"
}
sql() { psql_on "$1" -U postgres -At -c "$2"; }

# ---------------------------------------------------------------- data
load_side() {
	local s=$1
	"$WORK/$s/install/usr/lib/postgresql/15/bin/createdb" -h "$WORK/$s/pg" -p "${PORT[$s]}" -U postgres bench || exit 1
	psql_on "$s" -U postgres -v months=$MONTHS -v light_users="$LIGHT_USERS" -f "$BENCH/partition.sql" >/dev/null || exit 1
	# two loaders, one per core; the audit trigger is off for the load only
	psql_on "$s" -U postgres -c "SET session_replication_role = replica; SET gin_pending_list_limit = '2000MB';
		SELECT bench.load('heavy', 1, $HEAVY, 2, 0); SELECT bench.load_light($LIGHT_ROWS, 2, 0)" >/dev/null &
	local a=$!
	psql_on "$s" -U postgres -c "SET session_replication_role = replica; SET gin_pending_list_limit = '2000MB';
		SELECT bench.load('heavy', 1, $HEAVY, 2, 1); SELECT bench.load_light($LIGHT_ROWS, 2, 1)" >/dev/null &
	local b=$!
	wait $a || exit 1
	wait $b || exit 1
	sql "$s" "SELECT gin_clean_pending_list(i) FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
		CROSS JOIN LATERAL (SELECT x.indexrelid::regclass AS i) r WHERE c.relam = (SELECT oid FROM pg_am WHERE amname = 'gin')
		AND c.relnamespace = 'audiotricks'::regnamespace AND c.relkind = 'i'" >/dev/null
	"$WORK/$s/install/usr/lib/postgresql/15/bin/vacuumdb" -h "$WORK/$s/pg" -p "${PORT[$s]}" -U postgres -q -j 2 --analyze -d bench || exit 1
	# the partitions of this month and ahead (made by the first insert otherwise)
	sql "$s" "SELECT count(*) FROM audiotricks.at_maintain_history_partitions()
		WHERE to_regprocedure('audiotricks.at_maintain_history_partitions()') IS NOT NULL" >/dev/null 2>&1 || true
	sql "$s" "CHECKPOINT"
	sql "$s" "SELECT bench.prepare_cursors($DEPTH)" >/dev/null || exit 1
}
for s in before after; do
	say "loading $s"
	load_side "$s"
	say "$s: $(sql "$s" "SELECT count(*) FROM audiotricks.audio_history") entries in $(sql "$s" "SELECT count(*) FROM pg_inherits WHERE inhparent = 'audiotricks.audio_history'::regclass") partitions, $(sql "$s" "SELECT pg_size_pretty(pg_database_size('bench'))")"
done

# ---------------------------------------------------------------- measure
R="$WORK/r.tsv"
: >"$R"
# percall SIDE NAME ROLE BODY [PLAN_CACHE_MODE [USER]]: µs per run of the
# PL/pgSQL statements BODY (bench.per_call: a loop of 400 ms)
percall() {
	local s=$1 name=$2 role=$3 q=$4 pcm=${5:-} who=${6:-} v
	v=$(psql_on "$s" -U "$role" -At -c "SELECT round(us_per_call::numeric, 2) FROM bench.per_call(\$q\$$q\$q\$, 400,
		NULLIF('$pcm', ''), NULLIF('$who', ''))") || { echo "measure $name on $s failed" >&2; return; }
	printf '%s\t%s\t%s\n' "$name" "$s" "$v" >>"$R"
}
pgb() {		# pgb SIDE NAME CLIENTS: TPS of at_history_add, a random one of 20 users a transaction
	local s=$1 name=$2 c=$3 v
	v=$("$WORK/$s/install/usr/lib/postgresql/15/bin/pgbench" -h "$WORK/$s/pg" -p "${PORT[$s]}" -U bench_app -n -c "$c" -j "$c" \
		-T "$SECS" -f "$BENCH/partition_add.sql" bench 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
	printf '%s\t%s\t%s\n' "$name" "$s" "${v:-0}" >>"$R"
}
for r in $(seq 1 "$ROUNDS"); do
	say "round $r of $ROUNDS"
	# each side first in every other round, so warm-up effects do not favour one
	order="before after"
	[ $((r % 2)) = 0 ] && order="after before"
	for s in $order; do
		percall "$s" "page 1 (at_history_page)" bench_app \
			"PERFORM count(*) FROM audiotricks.at_history_page(20);" "" heavy
		percall "$s" "page $DEPTH deep (at_history_page)" bench_app \
			"PERFORM count(*) FROM audiotricks.at_history_page(20, (SELECT cursor FROM bench.cursors WHERE depth = $DEPTH));" "" heavy
		for mode in generic custom; do
			percall "$s" "page 1, plain SQL, $mode plan" postgres "PERFORM bench.keyset_page(0);" "force_${mode}_plan"
			percall "$s" "page $DEPTH deep, plain SQL, $mode plan" postgres "PERFORM bench.keyset_page($DEPTH);" "force_${mode}_plan"
		done
		percall "$s" "search, heavy user ($HEAVY entries)" bench_app \
			"PERFORM count(*) FROM audiotricks.at_history_search('budget', 20);" "" heavy
		percall "$s" "search, light user ($LIGHT_ROWS entries)" bench_app \
			"PERFORM count(*) FROM audiotricks.at_history_search('budget', 20);" "" light1
		pgb "$s" "at_history_add, 1 client (TPS)" 1
		pgb "$s" "at_history_add, 2 clients (TPS)" 2
	done
done

# ---------------------------------------------------------------- drop a month
DROPS="$WORK/drops.tsv"
: >"$DROPS"
if [ "$(sql after "SELECT to_regprocedure('audiotricks.at_maintain_history_partitions()') IS NOT NULL")" = t ]; then
	say "after: dropping an expired month of 1,000 and one of 1,000,000 entries"
	for rows in 1000 1000000 1000 1000000; do
		ms=$(psql_on after -U postgres -At -f - <<-EOF
			SET session_replication_role = replica;
			SELECT bench.old_month($rows);
			RESET session_replication_role;
			CHECKPOINT;
			SELECT bench.time_retention_drop();
		EOF
		)
		printf '%s\t%s\n' "$rows" "$(echo "$ms" | tail -1)" >>"$DROPS"
	done
fi

# ---------------------------------------------------------------- report
OUT="$BENCH/results/partition.md"
mkdir -p "$BENCH/results"
{
	echo "# audio_history partitioned and audited vs one table unaudited"
	echo
	echo "before: $DESC_BEFORE"
	echo "after: $DESC_AFTER"
	echo "data: $HEAVY entries of one user + $LIGHT_USERS users x $LIGHT_ROWS, over $MONTHS months;" \
		"$ROUNDS interleaved rounds, median; load average $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
	echo
	echo "| measure | before | after | after / before |"
	echo "|---|---|---|---|"
	python3 - "$R" <<-'EOF'
		import sys, statistics, collections
		d = collections.OrderedDict()
		for line in open(sys.argv[1]):
		    name, side, v = line.rstrip("\n").split("\t")
		    d.setdefault(name, {"before": [], "after": []})[side].append(float(v))
		for name, v in d.items():
		    b = statistics.median(v["before"]) if v["before"] else float("nan")
		    a = statistics.median(v["after"]) if v["after"] else float("nan")
		    unit = "" if "TPS" in name else " µs"
		    print(f"| {name} | {b:,.2f}{unit} | {a:,.2f}{unit} | {a / b:.2f}× |")
	EOF
	if [ -s "$DROPS" ]; then
		echo
		echo "| expired month dropped by at_maintain_history_partitions() | ms |"
		echo "|---|---|"
		awk -F'\t' '{ printf "| %s entries | %s |\n", $1, $2 }' "$DROPS"
	fi
} >"$OUT"
cat "$OUT"
say "done: $OUT"
