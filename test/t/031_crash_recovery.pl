# test/t/031_crash_recovery.pl
# Crash recovery under load: the mixed pgbench workload plus four clients
# that each run transactions of register + login + authenticate + history add
# (+ set API key) with a client-chosen key, and print the key
# and token only after COMMIT returned.  Then "pg_ctl stop -m immediate" and
# a restart: every acknowledged transaction is there in full (user, settings,
# session whose token still authenticates, history entry, API key), nothing
# is half-done anywhere, and the extension works at once (register, login,
# authenticate, history, the audit writer).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use AtReliability;

my $USERS = 100;
my $CLIENTS = 4;
my $PER_CLIENT = 3000;		# more than can run before the crash

my $node = at_node('crash');
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE app');
$node->safe_psql('app', 'CREATE EXTENSION audiotricks CASCADE');
at_bench_setup($node, 'app', $USERS, 10);

# background load: the mixed workload (it dies with the server; -T is only
# an upper bound in case the crash never comes)
my @scripts = at_bench_scripts($node->basedir, $USERS);
my ($bout, $berr) = ('', '');
my $bench = IPC::Run::start(
	[ 'pgbench', '-n', '-M', 'prepared', '-T', '150', '-c', '8', '-j', '2', @scripts,
	  '-h', $node->host, '-p', $node->port, '-U', 'app', 'app' ],
	'>', \$bout, '2>', \$berr, IPC::Run::timeout(240));

# acknowledging clients: psql stops at the first error, so "ACK" is printed
# only after the COMMIT before it succeeded
my @clients;
for my $c (1 .. $CLIENTS)
{
	my $script = "\\set ON_ERROR_STOP on\n";
	for my $n (1 .. $PER_CLIENT)
	{
		my $k = "ack_${c}_$n";
		$script .= "BEGIN;\n"
		  . "SELECT audiotricks.at_register('$k\@example.com', '$k', 'Passw0rdA') IS NOT NULL AS registered;\n"
		  . "SELECT token FROM audiotricks.at_login('$k', 'Passw0rdA') \\gset\n"
		  . "SELECT audiotricks.at_authenticate(:'token') IS NOT NULL AS authenticated;\n"
		  . "SELECT audiotricks.at_history_add(title => '$k', transcript => 'acknowledged $k') IS NOT NULL AS added;\n"
		  . "SELECT audiotricks.at_set_api_key('elevenlabs', 'el-$k');\n"
		  . "COMMIT;\n"
		  . "\\echo ACK $k :token\n";
	}
	my $dir = $node->basedir;
	my %cl = (in => "$dir/client$c.sql", out => "$dir/client$c.out", err => "$dir/client$c.err");
	open my $fh, '>', $cl{in} or die "$cl{in}: $!";
	print $fh $script;
	close $fh;
	# output to files: nothing has to read a pipe while the clients run
	$cl{h} = IPC::Run::start(
		[ 'psql', '-X', '-q', '-At', '-d', $node->connstr('app') . ' user=app', '-f', $cl{in} ],
		'>', $cl{out}, '2>', $cl{err}, IPC::Run::timeout(240));
	push @clients, \%cl;
}

# let the load run until the clients have committed a good number
$node->poll_query_until('app',
	q{SELECT count(*) >= 1200 FROM audiotricks.users WHERE username LIKE 'ack%'})
  or die 'acknowledging clients made no progress';
is($node->safe_psql('app', q{SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'}),
	8 + $CLIENTS, 'the pgbench load and the clients are connected at the crash')
  or diag($bout, $berr);

$node->stop('immediate');
$_->{h}->finish for @clients;
$bench->finish;

my %acked;
for my $cl (@clients)
{
	my $out = slurp_file($cl->{out});
	my $err = slurp_file($cl->{err});
	while ($out =~ /^ACK (\S+) (\S+)$/mg) { $acked{$1} = $2 }
	like($err, qr/server closed the connection|terminating connection|connection to server|no connection/i,
		'a client was cut off by the crash, not by an error of its own')
	  or diag($err);
}
my $nacked = scalar keys %acked;
cmp_ok($nacked, '>=', 100, "clients saw committed transactions before the crash ($nacked)");

my $log_before = -s $node->logfile;
my $t0 = time;
$node->start;
my $recovery = time - $t0;
my $log = slurp_file($node->logfile, $log_before);
like($log, qr/database system was not properly shut down; automatic recovery in progress/,
	'the restart ran crash recovery');
my ($redo) = $log =~ /redo done at .* elapsed: ([\d.]+) s/;
note(sprintf('restart after immediate stop until accepting connections: %.2f s (redo %s s)',
	$recovery, $redo // '?'));

# the extension works at once
my ($ret, $out, $err) = $node->psql('app', q{
SELECT audiotricks.at_register('after@example.com', 'after', 'Passw0rdA') IS NOT NULL;
SELECT token FROM audiotricks.at_login('after', 'Passw0rdA') \gset
BEGIN;
SELECT audiotricks.at_authenticate(:'token') = audiotricks.at_current_user_id();
SELECT audiotricks.at_history_add(title => 'after the crash') IS NOT NULL;
SELECT title FROM audiotricks.at_history_page(5);
COMMIT;}, extra_params => [ '-U', 'app' ], on_error_stop => 1);
is($ret, 0, 'register, login, authenticate, history add and page work right after the restart')
  or diag($err);
is($out, "t\nt\nt\nafter the crash", 'with the right answers');

# every acknowledged transaction is there, in full
my $values = join ",\n", map { "('$_', '$acked{$_}')" } sort keys %acked;
$node->safe_psql('app', "CREATE TABLE bench.acked (k text PRIMARY KEY, token text NOT NULL);
	INSERT INTO bench.acked VALUES $values; GRANT SELECT ON bench.acked TO app");
is($node->safe_psql('app', q{SELECT count(*) FROM bench.acked a
	JOIN audiotricks.users u ON u.username = a.k AND u.email = a.k || '@example.com'
	JOIN audiotricks.user_settings s ON s.user_id = u.id
	JOIN audiotricks.audio_history h ON h.user_id = u.id AND h.title = a.k
	WHERE u.last_login_at IS NOT NULL
	  AND EXISTS (SELECT FROM audiotricks.sessions x WHERE x.user_id = u.id)}),
	$nacked, 'every acknowledged user is there with settings, session, last login and history entry');
is($node->safe_psql('app', q{SELECT count(*) FROM bench.acked a
	JOIN audiotricks.users u ON u.username = a.k
	WHERE audiotricks.at_authenticate(a.token) = u.id}),
	$nacked, 'every acknowledged token authenticates as its user');
is($node->safe_psql('app', q{SELECT count(*) FROM bench.acked a
	JOIN audiotricks.users u ON u.username = a.k
	JOIN audiotricks.audit_log l ON l.user_id = u.id AND l.event IN ('registered', 'login')}),
	2 * $nacked, 'and their registered and login audit events');

# nothing half-done: transactions are all or nothing, acknowledged or not
is($node->safe_psql('app', at_integrity_sql()), '0,0,0,0',
	'no user without settings, no settings, session or history row without its user');
is($node->safe_psql('app', q{SELECT count(*) FROM audiotricks.users u
	WHERE u.username LIKE 'ack%' AND NOT (
	  EXISTS (SELECT FROM audiotricks.sessions s WHERE s.user_id = u.id) AND
	  EXISTS (SELECT FROM audiotricks.audio_history h WHERE h.user_id = u.id AND h.title = u.username))}),
	'0', 'no client transaction is half there (user without its session or history entry)');
my $extra = $node->safe_psql('app', q{SELECT count(*) FROM audiotricks.users u
	WHERE u.username LIKE 'ack%' AND NOT EXISTS (SELECT FROM bench.acked a WHERE a.k = u.username)});
note("committed but not acknowledged before the crash (allowed): $extra");
cmp_ok($extra, '<=', $CLIENTS, 'at most one unacknowledged commit per client');

{
	my $check = join "\n", map {
		"BEGIN; SELECT audiotricks.at_authenticate('$acked{$_}') IS NOT NULL;"
		  . " SELECT audiotricks.at_get_api_key('elevenlabs') = 'el-$_'; COMMIT;" } sort keys %acked;
	my $res = $node->safe_psql('app', $check, extra_params => [ '-U', 'app' ]);
	my $good = () = $res =~ /^t$/mg;
	is($good, 2 * $nacked, 'every acknowledged API key decrypts after the restart');
}

# the audit writer (a background worker) works after the restart too
$node->psql('app', q{SELECT * FROM audiotricks.at_login('after', 'wrong-password')});
ok($node->poll_query_until('app',
	q{SELECT count(*) > 0 FROM audiotricks.audit_log WHERE event = 'login_failed'}),
	'a failed login after the restart is recorded by the audit writer');

my $full = slurp_file($node->logfile);
unlike($full, qr/deadlock detected/, 'no deadlock');
unlike($full, qr/was terminated by signal/, 'no backend crashed');
$node->stop;
done_testing();
