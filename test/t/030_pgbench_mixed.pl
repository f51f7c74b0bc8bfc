# test/t/030_pgbench_mixed.pl
# The mixed workload under concurrency: pgbench, 16 clients, 2 threads, 60
# seconds, as an application role under row-level security: register, login
# (bcrypt cost 4) + authenticate + logout, authenticate + history page and
# search, authenticate + history add, and authenticate + set/get API key.  No script can fail by design, so the run must
# have zero errors; no deadlock; afterwards every user has exactly one
# settings row, nothing points at a missing user, and the rows written equal
# the transactions pgbench counted.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AtReliability;

my $USERS = 200;
my $SEED_HISTORY = 30;

my $node = at_node('bench');
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE app');
$node->safe_psql('app', 'CREATE EXTENSION audiotricks CASCADE');
at_bench_setup($node, 'app', $USERS, $SEED_HISTORY);

my @scripts = at_bench_scripts($node->basedir, $USERS);
my $log_before = -s $node->logfile;

my ($out, $err) = ('', '');
my $ok = IPC::Run::run(
	[ 'pgbench', '-n', '-M', 'prepared', '-T', '60', '-c', '16', '-j', '2',
	  '--max-tries=1', '--failures-detailed', @scripts,
	  '-h', $node->host, '-p', $node->port, '-U', 'app', 'app' ],
	'>', \$out, '2>', \$err, IPC::Run::timeout(180));
note($out);
diag($err) if $err =~ /\S/;
ok($ok, 'pgbench exits successfully (no client aborted)');
unlike($err, qr/aborted|error/i, 'no client error reported by pgbench');
like($out, qr/^number of failed transactions: 0 \(/m, 'zero failed transactions');
my ($total) = $out =~ /^number of transactions actually processed: (\d+)/m;
my ($tps) = $out =~ /^tps = ([\d.]+)/m;
cmp_ok($total // 0, '>', 0, 'transactions were processed');
note(sprintf('mixed workload: %d transactions in 60 s, %.1f tps, 16 clients', $total // 0, $tps // 0));

# per-script transaction counts
my %done;
while ($out =~ /^SQL script \d+: \S*\/(\w+)\.sql\n - weight: \d+ \([^)]*\)\n - (\d+) transactions/mg)
{
	$done{$1} = $2;
}
for my $s (qw(register login_logout read history_add api_key))
{
	cmp_ok($done{$s} // 0, '>', 0, "script $s ran");
}

# the server log of the run: no deadlock, no error at all
my $log = slurp_file($node->logfile, $log_before);
unlike($log, qr/deadlock detected/, 'no deadlock in the server log');
my @errors = $log =~ /^.*(?:ERROR|FATAL|PANIC):.*$/mg;
is(scalar(@errors), 0, 'no error in the server log during the run') or diag(join "\n", @errors[0 .. ($#errors < 9 ? $#errors : 9)]);
unlike($log, qr/terminated by signal|server process .* was terminated/, 'no backend crashed');

# afterwards: consistent, and the rows match what pgbench counted.  When
# -T runs out, pgbench stops each client where it is, so a client's last
# transaction may have committed without being counted: at most one per
# client (16) more than counted, never fewer.
sub counted
{
	my ($got, $counted, $what) = @_;
	ok($got >= $counted && $got <= $counted + 16, "$what: $got for $counted counted (at most 16 in flight at the end)");
}
is($node->safe_psql('app', at_integrity_sql()), '0,0,0,0',
	'every user has exactly one settings row; no settings, session or history row without its user');
my $registered = $node->safe_psql('app', q{SELECT count(*) FROM audiotricks.users WHERE username LIKE 'reg%'});
counted($registered, $done{register}, 'one user per committed registration');
cmp_ok($registered, '<=', $node->safe_psql('app', q{SELECT last_value FROM bench.reg_seq}),
	'no registration without its number from the sequence');
counted($node->safe_psql('app', q{SELECT count(*) FROM audiotricks.audio_history WHERE title LIKE 'bench entry %'}),
	$done{history_add}, 'one history entry per committed history_add');
is($node->safe_psql('app', q{SELECT count(*) FROM audiotricks.sessions}), $USERS,
	'every login of the workload was logged out in its transaction: only the bench sessions remain');
my $logins = $node->safe_psql('app', q{SELECT count(*) FROM audiotricks.audit_log WHERE event = 'login'}) - $USERS;
counted($logins, $done{login_logout}, 'one login event per committed login');
is($node->safe_psql('app', q{SELECT count(*) FROM audiotricks.audit_log WHERE event = 'logout'}), $logins,
	'one logout event per login of the workload');
is($node->safe_psql('app', q{SELECT count(*) FROM audiotricks.audit_log WHERE event IN ('login_failed', 'login_throttled')}),
	'0', 'no failed or throttled login');
is($node->safe_psql('app', q{SELECT count(*) FROM audiotricks.users u JOIN bench.tokens t ON t.user_id = u.id
	WHERE u.last_login_at IS NULL}), '0', 'every bench user has last_login_at');

# the bench tokens still work after the run (nobody logged them out)
is($node->safe_psql('app', q{SELECT count(*) FROM bench.tokens t
	WHERE audiotricks.at_authenticate(t.token) = t.user_id}, extra_params => [ '-U', 'app' ]),
	$USERS, 'every bench token still authenticates');

{
	# every user's key decrypts to a value the setup or the workload wrote
	my $check = join "\n", map {
		"BEGIN; SELECT audiotricks.at_authenticate(token) IS NOT NULL FROM bench.tokens WHERE i = $_;"
		  . " SELECT audiotricks.at_get_api_key('openai') ~ '^sk-(seed|bench)-[0-9]+\$' AS key_ok; COMMIT;" } 1 .. $USERS;
	my $res = $node->safe_psql('app', $check, extra_params => [ '-U', 'app' ]);
	my $good = () = $res =~ /^t$/mg;
	is($good, 2 * $USERS, 'every stored API key decrypts to a value that was written');
}

$node->stop;
done_testing();
