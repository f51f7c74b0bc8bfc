# test/t/001_dump_restore.pl
# pg_dump -Fc / pg_restore of a database with rows in all four tables brings
# back every row (the tables are extension configuration tables), into a new
# database and into a new cluster, without duplicating policies; the audit
# log comes back as it was dumped (a restore writes no event) and every hash
# chain verifies, also after new events are appended to the restored chains.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $secret = 'tap-secret-' . ('x' x 40);
sub new_node
{
	my ($name) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'audiotricks'
audiotricks.jwt_secret = '$secret'
audiotricks.bcrypt_cost = 4
});
	$node->start;
	return $node;
}

my $node = new_node('primary');
$node->safe_psql('postgres', 'CREATE DATABASE app');
$node->safe_psql('app', 'CREATE EXTENSION audiotricks CASCADE');
$node->safe_psql('app', q{
INSERT INTO audiotricks.users (email, username, password_hash)
  SELECT 'u' || i || '@example.com', 'user' || i, 'x' FROM generate_series(1, 50) i;
INSERT INTO audiotricks.user_settings (user_id, settings_json)
  SELECT id, '{"theme":"dark"}' FROM audiotricks.users;
INSERT INTO audiotricks.sessions (user_id, token_hash, expires_at)
  SELECT id, md5(id::text), now() + interval '1 day' FROM audiotricks.users;
INSERT INTO audiotricks.audio_history (user_id, title, transcript)
  SELECT u.id, 'talk ' || g, 'words ' || g FROM audiotricks.users u, generate_series(1, 10) g;
});

my $counts_sql = q{SELECT (SELECT count(*) FROM audiotricks.users) || ',' ||
  (SELECT count(*) FROM audiotricks.user_settings) || ',' ||
  (SELECT count(*) FROM audiotricks.sessions) || ',' ||
  (SELECT count(*) FROM audiotricks.audio_history) || ',' ||
  (SELECT count(*) FROM pg_policies WHERE schemaname = 'audiotricks')};
my $fingerprint_sql = q{SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM (
  SELECT u.id, u.email, u.username, s.settings_json, h.title, h.transcript, h.created_at
  FROM audiotricks.users u JOIN audiotricks.user_settings s ON s.user_id = u.id
  JOIN audiotricks.audio_history h ON h.user_id = u.id) t};

# without a scheduler: the first insert found no partition for this month
# and started the maintenance in a background worker, which made this
# month's and the next three and moved the rows out of the default partition
ok($node->poll_query_until('app', q{SELECT count(*) = 4 FROM pg_partition_tree('audiotricks.audio_history')
  WHERE relid::text ~ '_p[0-9]{6}$'}), 'a background worker made the month partitions');
ok($node->poll_query_until('app', q{SELECT count(*) = 0 FROM audiotricks.audio_history_default}),
	'and moved the rows out of the default partition');
is($node->safe_psql('app', q{SELECT bool_and(tableoid::regclass::text =
  'audiotricks.audio_history_p' || to_char(created_at AT TIME ZONE 'UTC', 'YYYYMM'))
  FROM audiotricks.audio_history}), 't', "every row is in its month's partition");

# audio_history's partitions: rows over three months, the default partition
# and a partition whose rows were moved out of it
$node->safe_psql('app', q{
INSERT INTO audiotricks.audio_history (user_id, title, created_at)
  SELECT u.id, 'month ' || m, date_trunc('month', now()) + m * interval '1 month' + interval '1 day'
    FROM audiotricks.users u, generate_series(0, 2) m;
INSERT INTO audiotricks.audio_history (user_id, title, created_at)
  SELECT u.id, 'old', '2001-01-15' FROM audiotricks.users u;
SELECT count(*) FROM audiotricks.at_maintain_history_partitions();
INSERT INTO audiotricks.audio_history (user_id, title, created_at)
  SELECT u.id, 'no partition', 'infinity' FROM audiotricks.users u LIMIT 1;
});
# rows per partition, by name
my $per_partition_sql = q{SELECT string_agg(p || '=' || n, ',' ORDER BY p) FROM (
  SELECT tableoid::regclass::text AS p, count(*) AS n FROM audiotricks.audio_history GROUP BY 1) s};
my $source_partitions = $node->safe_psql('app', $per_partition_sql);
like($source_partitions, qr/audio_history_default=1,.*audio_history_p200101=50,/,
	'source rows are in the default partition and in month partitions');

my $source_counts = $node->safe_psql('app', $counts_sql);
like($source_counts, qr/^50,50,50,701,\d+$/, 'source has rows in all four tables');
my $fp = $node->safe_psql('app', $fingerprint_sql);

# the audit log and its chains: the row changes above are in it
my $audit_sql = q{SELECT (SELECT count(*) FROM audiotricks.audit_log) || ',' ||
  (SELECT count(*) FROM audiotricks.audit_chain_heads) || ',' ||
  (SELECT md5(string_agg(hash::text, '|' ORDER BY chain_id, seq)) FROM audiotricks.audit_log)};
my $verify_sql = q{SELECT count(*) || ',' || count(*) FILTER (WHERE NOT ok) FROM audiotricks.at_verify_audit_chain()};
my $source_audit = $node->safe_psql('app', $audit_sql);
like($source_audit, qr/^(\d+),50,/, 'source: a chain per user');
is($node->safe_psql('app', $verify_sql), '50,0', 'source: every chain verifies');

my $dump = $node->basedir . '/app.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('app'), '-f', $dump ],
	'pg_dump -Fc succeeds');

# into a new database of the same cluster
$node->safe_psql('postgres', 'CREATE DATABASE app2');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('app2'), $dump ],
	'pg_restore into a new database succeeds');
is($node->safe_psql('app2', $counts_sql), $source_counts,
	'every row restored, policies not duplicated (new database)');
is($node->safe_psql('app2', $fingerprint_sql), $fp, 'restored data is identical (new database)');
# the rows come back in the default partition; the maintenance moves them
$node->safe_psql('app2', 'SELECT count(*) FROM audiotricks.at_maintain_history_partitions()');
is($node->safe_psql('app2', $per_partition_sql), $source_partitions,
	'after maintenance every partition holds the rows it held (new database)');
is($node->safe_psql('app2', $counts_sql), $source_counts, 'no row lost or doubled by the move');

check_audit($node, 'app2', 'new database');

# every chain verifies after a restore, and new events continue it
sub check_audit
{
	my ($n, $db, $where) = @_;
	is($n->safe_psql($db, $audit_sql), $source_audit,
		"$where: the audit log and chain heads as dumped, no event added by the restore");
	is($n->safe_psql($db, $verify_sql), '50,0', "$where: every chain verifies");
	my $inserts_sql = q{SELECT count(*) FROM audiotricks.audit_log
		WHERE table_name = 'audio_history' AND operation = 'INSERT' AND seq > 1};
	my $inserts = $n->safe_psql($db, $inserts_sql);
	cmp_ok($inserts, '>=', 500, "$where: the restored log holds the history inserts");
	$n->safe_psql($db, q{
		UPDATE audiotricks.user_settings SET summary_quality = 'fast';
		INSERT INTO audiotricks.audio_history (user_id, title)
		  SELECT id, 'after restore' FROM audiotricks.users;});
	is($n->safe_psql($db, $verify_sql), '50,0', "$where: chains still verify after new events");
	is($n->safe_psql($db, $inserts_sql), $inserts + 50,
		"$where: new events continue the users' chains (one insert each, none at seq 1)");
}

# into a new cluster
my $other = new_node('other');
$other->safe_psql('postgres', 'CREATE DATABASE app');
$other->command_ok([ 'pg_restore', '--exit-on-error', '-d', $other->connstr('app'), $dump ],
	'pg_restore into a new cluster succeeds');
is($other->safe_psql('app', $counts_sql), $source_counts,
	'every row restored, policies not duplicated (new cluster)');
is($other->safe_psql('app', $fingerprint_sql), $fp, 'restored data is identical (new cluster)');
$other->safe_psql('app', 'SELECT count(*) FROM audiotricks.at_maintain_history_partitions()');
is($other->safe_psql('app', $per_partition_sql), $source_partitions,
	'after maintenance every partition holds the rows it held (new cluster)');

check_audit($other, 'app', 'new cluster');

# a plain-format dump piped into psql: the same
$other->safe_psql('postgres', 'CREATE DATABASE app3');
my $sqlfile = $node->basedir . '/app.sql';
$node->command_ok([ 'pg_dump', '-d', $node->connstr('app'), '-f', $sqlfile ], 'pg_dump plain');
$other->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $other->connstr('app3'), '-f', $sqlfile ],
	'plain dump restored with psql');
check_audit($other, 'app3', 'psql restore');
is($other->safe_psql('app', q{SELECT relforcerowsecurity FROM pg_class WHERE oid = 'audiotricks.audio_history'::regclass}),
	't', 'RLS still forced after restore');

$node->stop;
$other->stop;
done_testing();
