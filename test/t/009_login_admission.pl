# test/t/009_login_admission.pl
# Admission control for password hashing, with
# audiotricks.max_concurrent_password_checks = 1:
# - a "holder" hashes at a high bcrypt cost and keeps the one place taken;
#   behind it known and unknown logins both queue (at_password_checks()
#   counts them) and all end in the same 28P01; sampled while the queue
#   drains, never more than one hash runs;
# - while the place is taken and 8 logins wait, at_authenticate and a
#   history page complete: the counts read before and after them are the
#   same (one running, 8 waiting), so no login was admitted meanwhile;
# - with a short audiotricks.password_check_wait, known and unknown logins
#   over the cap fail alike with 53400, and those refusals are not counted
#   by the login throttle (a user retrying on 53400 is not locked out);
# - a login retried after 53400 goes before those that queued after its
#   first attempt;
# - a cancelled waiter and a terminated one leave the queue, a terminated
#   holder gives its place back, and the next login proceeds;
# - at_password_checks() is refused to roles outside pg_monitor.
# Each step waits for states (bounded polls), not for elapsed time.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;

my $HOLD_COST = 16;		# one hash: a few seconds, long enough to look at
my $node = PostgreSQL::Test::Cluster->new('login_admission');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'audiotricks'
audiotricks.jwt_secret = 'login-admission-secret-0123456789abcdefghij'
audiotricks.bcrypt_cost = 4
audiotricks.max_failed_logins = 1000
audiotricks.max_concurrent_password_checks = 1
audiotricks.password_check_wait = '10min'
max_connections = 40
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION audiotricks CASCADE');
is($node->safe_psql('postgres', 'SHOW audiotricks.max_concurrent_password_checks'), '1',
	'the cap is one hash');

$node->safe_psql('postgres', q{
	SELECT audiotricks.at_register('alice@example.com', 'alice', 'Passw0rd-alice');
	SELECT audiotricks.at_register('bob@example.com', 'bob', 'Passw0rd-bob');
	CREATE FUNCTION pg_temp.nothing() RETURNS void LANGUAGE sql AS '';
});
my $token = $node->safe_psql('postgres',
	"SELECT token FROM audiotricks.at_login('alice', 'Passw0rd-alice')");
like($token, qr/^[\w-]+\.[\w-]+\.[\w-]+$/, 'alice logged in');
$node->safe_psql('postgres', "BEGIN; SELECT audiotricks.at_authenticate('$token');
	SELECT audiotricks.at_history_add('hello', 'https://example.com/a.mp3'); COMMIT");

sub checks
{
	return $node->safe_psql('postgres',
		'SELECT running || \'/\' || waiting FROM audiotricks.at_password_checks()');
}

sub result_of
{
	my ($ret, $err) = @_;
	return 'ok' if $ret == 0;
	return $1 if $err =~ /(?:ERROR|FATAL):\s+([0-9A-Z]{5})\b/;
	return "other: $err";
}

# a background psql (application_name $app) running $sql with SQLSTATEs shown
sub start_psql
{
	my ($sql, $app) = @_;
	my %p = (out => '', err => '');
	$p{h} = IPC::Run::start(
		[ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=sqlstate', '-At',
		  '-d', $node->connstr('postgres') . " application_name=$app", '-c', $sql ],
		'>', \$p{out}, '2>', \$p{err});
	return \%p;
}

sub finish_psql
{
	my ($p) = @_;
	$p->{h}->finish;
	return result_of($p->{h}->result // 0, $p->{err});
}

sub login_sql
{
	my ($login, $password, $cost) = @_;
	$cost //= 4;
	return "SET audiotricks.bcrypt_cost = $cost; "
	  . "SELECT count(*) FROM audiotricks.at_login('$login', '$password')";
}

# an unknown login hashing at $HOLD_COST: it takes the one place
sub start_holder
{
	my ($app) = @_;
	my $h = start_psql(login_sql('holder-nobody', 'wrong', $HOLD_COST), $app);
	$node->poll_query_until('postgres',
		"SELECT running = 1 FROM audiotricks.at_password_checks()")
	  or die 'the holder did not start hashing';
	return $h;
}

sub wait_for_checks
{
	my ($want, $what) = @_;
	ok($node->poll_query_until('postgres',
			"SELECT running || '/' || waiting FROM audiotricks.at_password_checks()", $want),
		$what);
}

# --- the cap holds; known and unknown logins queue alike; pages never wait ---
my $holder = start_holder('holder1');
my @waiters;
for my $i (1 .. 4)
{
	push @waiters, start_psql(login_sql('alice', "wrong-$i"), "known$i");
	push @waiters, start_psql(login_sql("nobody-$i", "wrong-$i"), "unknown$i");
}
wait_for_checks('1/8', 'behind the holder, 4 known and 4 unknown logins wait');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE application_name ~ '^(known|unknown)' AND wait_event_type = 'Extension'"),
	'8', 'the 8 wait on the condition variable (wait event Extension), not on a lock');

# the page runs while the place is taken: no login was admitted meanwhile
my $page = $node->safe_psql('postgres', qq{
	SELECT running || '/' || waiting FROM audiotricks.at_password_checks();
	BEGIN;
	SELECT audiotricks.at_authenticate('$token') IS NOT NULL;
	SELECT count(*) FROM audiotricks.at_history_page(20);
	COMMIT;
	SELECT running || '/' || waiting FROM audiotricks.at_password_checks();
});
is($page, "1/8\nt\n1\n1/8",
	'at_authenticate and a history page complete while every place is taken and 8 logins wait');

# sample the counts until the queue has drained (bounded)
my $sampler = start_psql(q{
	CREATE FUNCTION pg_temp.sample() RETURNS int LANGUAGE plpgsql AS $$
	DECLARE m int := 0; r int; w int;
	BEGIN
		FOR i IN 1..400000 LOOP
			SELECT running, waiting INTO r, w FROM audiotricks.at_password_checks();
			m := greatest(m, r);
			EXIT WHEN r = 0 AND w = 0;
			PERFORM pg_sleep(0.0005);
		END LOOP;
		RETURN m;
	END $$;
	SELECT pg_temp.sample();
}, 'sampler');
is(finish_psql($holder), '28P01', 'the holder failed as an unknown login');
my @results = map { finish_psql($_) } @waiters;
is_deeply(\@results, [ ('28P01') x 8 ], 'known and unknown logins all ended in 28P01');
is(finish_psql($sampler), 'ok', 'the sampler ran to the end of the queue');
like($sampler->{out}, qr/^1\n\z/m, 'never more than one hash ran at once');
is(checks(), '0/0', 'nothing runs or waits afterwards');

# --- a short wait: over the cap, known and unknown fail alike with 53400 ---
$node->safe_psql('postgres', "ALTER SYSTEM SET audiotricks.password_check_wait = '50ms'; SELECT pg_reload_conf()");
$node->poll_query_until('postgres', "SELECT current_setting('audiotricks.password_check_wait') = '50ms'")
  or die 'reload not seen';
$holder = start_holder('holder2');
my ($ret, $out, $err);
($ret, $out, $err) = $node->psql('postgres', login_sql('alice', 'Passw0rd-alice'),
	extra_params => [ '-v', 'VERBOSITY=sqlstate' ]);
is(result_of($ret, $err), '53400', 'a known login with the right password: 53400 after the wait');
($ret, $out, $err) = $node->psql('postgres', login_sql('nobody-x', 'Passw0rd-alice'),
	extra_params => [ '-v', 'VERBOSITY=sqlstate' ]);
is(result_of($ret, $err), '53400', 'an unknown login: the same 53400');
($ret, $out, $err) = $node->psql('postgres', login_sql('alice', 'Passw0rd-alice'));
like($err, qr/too many logins in progress, retry/, 'the message says to retry');
is(checks(), '1/0', 'the refused logins left the queue');
# a refused login never reached its check: the throttle does not count it
$node->safe_psql('postgres', "ALTER SYSTEM SET audiotricks.max_failed_logins = 2; SELECT pg_reload_conf()");
$node->poll_query_until('postgres', "SELECT current_setting('audiotricks.max_failed_logins') = '2'")
  or die 'reload not seen';
my @refused = map {
	($ret, $out, $err) = $node->psql('postgres', login_sql('bob', 'Passw0rd-bob'),
		extra_params => [ '-v', 'VERBOSITY=sqlstate' ]);
	result_of($ret, $err)
} 1 .. 4;
is_deeply(\@refused, [ ('53400') x 4 ], 'bob, retrying, is refused 4 times (max_failed_logins is 2)');
($ret, $out, $err) = $node->psql('postgres', login_sql('carol-nobody', 'wrong'),
	extra_params => [ '-v', 'VERBOSITY=sqlstate' ]);
is(result_of($ret, $err), '53400', 'carol is refused too');
is(finish_psql($holder), '28P01', 'the holder finished');
($ret, $out, $err) = $node->psql('postgres', login_sql('bob', 'Passw0rd-bob'),
	extra_params => [ '-v', 'VERBOSITY=sqlstate' ]);
is(result_of($ret, $err), 'ok', 'then bob logs in: the refusals were not counted as failures');
$node->safe_psql('postgres', "ALTER SYSTEM RESET audiotricks.max_failed_logins; SELECT pg_reload_conf()");
$node->poll_query_until('postgres', "SELECT current_setting('audiotricks.max_failed_logins') = '1000'")
  or die 'reload not seen';
$node->safe_psql('postgres', "ALTER SYSTEM RESET audiotricks.password_check_wait; SELECT pg_reload_conf()");
$node->poll_query_until('postgres', "SELECT current_setting('audiotricks.password_check_wait') = '10min'")
  or die 'reload not seen';

# --- a retry after 53400 keeps its place: carol goes before later arrivals ---
$holder = start_holder('holder4');
my @later = map { start_psql(login_sql("later-$_", 'wrong'), "later$_") } 1 .. 3;
wait_for_checks('1/3', 'three logins wait behind the holder');
my $carol = start_psql(login_sql('carol-nobody', 'wrong', $HOLD_COST), 'carol');
wait_for_checks('1/4', 'carol, retrying, waits after them');
is(finish_psql($holder), '28P01', 'the holder finished');
wait_for_checks('1/3', 'the next one was admitted');
is($node->safe_psql('postgres', q{
	SELECT string_agg(application_name, ',' ORDER BY application_name)
	  FROM pg_stat_activity WHERE application_name ~ '^(later|carol)' AND wait_event_type = 'Extension'}),
	'later1,later2,later3', 'it was carol: the three who came after her first attempt still wait');
is(finish_psql($carol), '28P01', 'carol finished');
is_deeply([ map { finish_psql($_) } @later ], [ ('28P01') x 3 ], 'then the others');
wait_for_checks('0/0', 'nothing left');

# --- cancelled and terminated waiters, a terminated holder ---
$holder = start_holder('holder3');
my $w_cancel = start_psql(login_sql('alice', 'wrong'), 'w_cancel');
my $w_term = start_psql(login_sql('nobody-y', 'wrong'), 'w_term');
wait_for_checks('1/2', 'two logins wait');
$node->safe_psql('postgres',
	"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'w_cancel'");
is(finish_psql($w_cancel), '57014', 'the cancelled waiter ended with 57014');
is(checks(), '1/1', 'the cancelled waiter left the queue');
$node->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'w_term'");
$w_term->{h}->finish;
isnt($w_term->{h}->result // 0, 0, 'the terminated waiter is gone');
wait_for_checks('1/0', 'the terminated waiter left the queue');
$node->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'holder3'");
$holder->{h}->finish;
isnt($holder->{h}->result // 0, 0, 'the holder was terminated');
wait_for_checks('0/0', 'the terminated holder gave its place back');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM audiotricks.at_login('alice', 'Passw0rd-alice')"),
	'1', 'the next login proceeds');
is(checks(), '0/0', 'and gives its place back');

# --- the counts are for monitoring roles only ---
$node->safe_psql('postgres', q{
	CREATE ROLE regress_plain LOGIN;
	CREATE ROLE regress_monitor LOGIN IN ROLE pg_monitor;
	GRANT USAGE ON SCHEMA audiotricks TO regress_plain, regress_monitor;
});
($ret, $out, $err) = $node->psql('postgres',
	'SELECT * FROM audiotricks.at_password_checks()',
	extra_params => [ '-U', 'regress_plain', '-v', 'VERBOSITY=sqlstate' ]);
is(result_of($ret, $err), '42501', 'a plain role may not read the counts');
is($node->safe_psql('postgres', 'SELECT running || \'/\' || waiting FROM audiotricks.at_password_checks()',
		extra_params => [ '-U', 'regress_monitor' ]),
	'0/0', 'pg_monitor may');

$node->stop;
done_testing();
