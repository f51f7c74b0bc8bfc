#!/usr/bin/env bash
# test/bench/keys_vs_pgp.sh [N]
#		Encrypted API keys (src/keys.c): at_encrypt_key + at_decrypt_key
#		against pgcrypto's pgp_sym_encrypt + pgp_sym_decrypt (DESIGN: at least
#		50x faster), on a throwaway cluster (as root, like test/run).
#		Prints microseconds per encrypt+decrypt pair, inside one statement
#		(server cost) and per pgbench transaction (what a client sees).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
. test/lib/cluster.sh
N=${1:-20000}
WORK=$(mktemp -d /tmp/audiotricks-bench.XXXXXX)
chmod 755 "$WORK"
trap 'at_cluster_stop "$WORK/pg"; rm -rf "$WORK"' EXIT
INST="$WORK/install"
mkdir -p "$INST/usr/lib/postgresql" "$INST/usr/share/postgresql"
cp -a /usr/lib/postgresql/15 "$INST/usr/lib/postgresql/"
cp -a /usr/share/postgresql/15 "$INST/usr/share/postgresql/"
PGBIN="$INST/usr/lib/postgresql/15/bin"
export PATH="$PGBIN:$PATH" PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
make -s >/dev/null && make -s install DESTDIR="$INST" >/dev/null
PORT=$(at_free_port)
at_cluster_start "$WORK/pg" "$PORT"
export PGHOST="$WORK/pg" PGPORT="$PORT" PGUSER=postgres
psql -qX -d postgres -c 'CREATE EXTENSION audiotricks CASCADE' 2>/dev/null

echo "== inside one statement, $N pairs each (best of 3), µs per encrypt+decrypt"
psql -qXAt -d postgres <<SQL
CREATE FUNCTION pg_temp.per_call(q text, n int) RETURNS numeric LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz; best numeric := 1e12; i int;
BEGIN
  FOR i IN 1..3 LOOP
    t0 := clock_timestamp();
    EXECUTE q USING n;
    best := least(best, extract(epoch FROM clock_timestamp() - t0) * 1e6 / n);
  END LOOP;
  RETURN round(best, 2);
END \$\$;
SELECT 'loop floor       ' || pg_temp.per_call(\$q\$SELECT count(*) FROM generate_series(1, \$1) g WHERE ('sk-proj-0123456789abcdef0123456789abcdef' || g) IS NOT NULL\$q\$, $N);
SELECT 'at_* (auto)      ' || pg_temp.per_call(\$q\$SELECT count(*) FROM generate_series(1, \$1) g WHERE audiotricks.at_decrypt_key(audiotricks.at_encrypt_key('sk-proj-0123456789abcdef0123456789abcdef' || g, 'ctx'), 'ctx') IS NOT NULL\$q\$, $N);
SET audiotricks.aes_backend = openssl;
SELECT 'at_* (openssl)   ' || pg_temp.per_call(\$q\$SELECT count(*) FROM generate_series(1, \$1) g WHERE audiotricks.at_decrypt_key(audiotricks.at_encrypt_key('sk-proj-0123456789abcdef0123456789abcdef' || g, 'ctx'), 'ctx') IS NOT NULL\$q\$, $N);
RESET audiotricks.aes_backend;
SELECT 'pgp_sym_*        ' || pg_temp.per_call(\$q\$SELECT count(*) FROM generate_series(1, \$1) g WHERE pgp_sym_decrypt(pgp_sym_encrypt('sk-proj-0123456789abcdef0123456789abcdef' || g, 'a passphrase'), 'a passphrase') IS NOT NULL\$q\$, $N / 20);
SQL

echo "== pgbench, one SELECT of an encrypt+decrypt pair per transaction, 10 s, µs per transaction"
for q in "SELECT 1" \
	"SELECT audiotricks.at_decrypt_key(audiotricks.at_encrypt_key('sk-proj-0123456789abcdef0123456789abcdef', 'ctx'), 'ctx')" \
	"SELECT pgp_sym_decrypt(pgp_sym_encrypt('sk-proj-0123456789abcdef0123456789abcdef', 'a passphrase'), 'a passphrase')"; do
	echo "$q" >"$WORK/q.sql"
	lat=$(pgbench -n -M prepared -T 10 -f "$WORK/q.sql" postgres 2>/dev/null | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
	printf '%10.1f µs  %s\n' "$(echo "$lat * 1000" | bc -l)" "${q:0:60}"
done
