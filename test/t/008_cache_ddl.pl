# test/t/008_cache_ddl.pl
# The token check (src/token.c) and at_history_page (src/history_page.c) keep the
# OIDs of their table and index per backend.  DDL that gives them new OIDs
# (REINDEX INDEX CONCURRENTLY builds a new index and drops the old one, DROP +
# CREATE INDEX) must not break a backend that cached the old ones:
# - in one long-lived session, calls keep working after each rebuild by
#   another session (the OIDs are checked to have changed);
# - pgbench clients (connections kept for the whole run) authenticate and
#   page without a single error while another session rebuilds both indexes
#   in a loop.
# What this does not prove: the windows it guards (an invalidation processed
# inside a cache fill, or between the check of the cache and the locks) are
# microseconds wide; pgbench hit them within seconds on the old code (could not
# open relation with OID ...), but a pass is evidence, not proof.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('cache_ddl');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'audiotricks'
audiotricks.jwt_secret = 'cache-ddl-secret-0123456789abcdefghij'
audiotricks.bcrypt_cost = 4
log_error_verbosity = verbose
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION audiotricks CASCADE;
CREATE ROLE app LOGIN IN ROLE audiotricks_user;
SELECT audiotricks.at_register('alice@example.com', 'alice', 'Alice-pass-1');
});
my $token = $node->safe_psql('postgres',
	q{SELECT token FROM audiotricks.at_login('alice', 'Alice-pass-1')});
$node->safe_psql('postgres', qq{BEGIN;
SELECT audiotricks.at_authenticate('$token') IS NOT NULL;
SELECT audiotricks.at_history_add('hello');
COMMIT;}, extra_params => [ '-U', 'app' ]);

my $calls = qq{BEGIN; SELECT audiotricks.at_authenticate('$token') IS NOT NULL AS ok, (SELECT count(*) FROM audiotricks.at_history_page(20)) AS n; COMMIT;};
my @rebuild = (
	q{REINDEX INDEX CONCURRENTLY audiotricks.sessions_token_hash_key},
	q{REINDEX INDEX CONCURRENTLY audiotricks.audio_history_user_created_idx},
	q{BEGIN; DROP INDEX audiotricks.audio_history_user_created_idx;
	  CREATE INDEX audio_history_user_created_idx ON audiotricks.audio_history
	    (user_id, created_at DESC, id DESC); COMMIT},
);
# (audio_history is partitioned: REINDEX CONCURRENTLY gives its partitions'
# copies of the index new OIDs and keeps the partitioned index's)
my $oids = q{SELECT 'audiotricks.sessions_token_hash_key'::regclass::oid || ',' ||
	(SELECT string_agg(relid::oid::text, ',' ORDER BY relid::oid)
	   FROM pg_partition_tree('audiotricks.audio_history_user_created_idx'))};

# one long-lived session: fill the caches, rebuild elsewhere, call again
my ($in, $out, $err) = ('', '', '');
my $h = IPC::Run::start([ 'psql', '-X', '-At', '-U', 'app', '-d', $node->connstr('postgres') ],
	'<', \$in, '>', \$out, '2>', \$err);
sub session_calls
{
	$out = '';
	$in .= "$calls\n\\echo done\n";
	$h->pump until $out =~ /done/ || $err ne '';
	return $out;
}
like(session_calls(), qr/^t\|1$/m, 'long-lived session: the calls work (caches filled)');
for my $ddl (@rebuild)
{
	my $before = $node->safe_psql('postgres', $oids);
	$node->safe_psql('postgres', $ddl);
	my $after = $node->safe_psql('postgres', $oids);
	isnt($after, $before, "an index got a new OID: " . (split /\n/, $ddl)[0]);
	like(session_calls(), qr/^t\|1$/m, '... and the long-lived session still authenticates and pages');
	is($err, '', '... without an error');
}
$in .= "\\q\n";
$h->finish;

# pgbench clients calling while another session rebuilds the indexes
my $script = $node->basedir . '/calls.sql';
open my $fh, '>', $script or die "$script: $!";
print $fh "SELECT audiotricks.at_authenticate('$token') IS NOT NULL AS ok, (SELECT count(*) FROM audiotricks.at_history_page(20)) AS n;\n";
close $fh;
sub bench_while
{
	my ($what, @ddl) = @_;
	my ($bout, $berr) = ('', '');
	my $bench = IPC::Run::start([ 'pgbench', '-n', '-c', '2', '-T', '6', '-f', $script,
		'-h', $node->host, '-p', $node->port, '-U', 'app', 'postgres' ],
		'>', \$bout, '2>', \$berr);
	my $rebuilds = 0;
	my $deadline = time() + 5;
	while (time() < $deadline)
	{
		$node->safe_psql('postgres', $_) for @ddl;
		$rebuilds++;
	}
	$bench->finish;
	ok(!$bench->result, "pgbench ran while $what was rebuilt $rebuilds times")
	  or diag($bout . $berr);
	unlike($berr, qr/ERROR|aborted/, '... with no error and no aborted client');
	like($bout, qr/number of transactions actually processed: [1-9]/, '... and it did call');
	like($bout, qr/number of failed transactions: 0 /, '... and no transaction failed');
}
bench_while('the history paging index', @rebuild[ 1, 2 ]);
bench_while('the sessions token index', $rebuild[0]);
is($node->safe_psql('postgres', "SELECT audiotricks.at_authenticate('$token') IS NOT NULL"),
	't', 'afterwards the token still authenticates');

$node->stop;
done_testing();
