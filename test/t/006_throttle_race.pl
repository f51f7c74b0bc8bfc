# test/t/006_throttle_race.pl
# The login throttle against an attacker who does not wait for answers:
# - 20 wrong logins for one account released at once: at most
#   max_failed_logins reach the stored hash (login_failed), the rest are
#   throttled; the same for the password re-check behind a token
#   (at_change_password);
# - 19 wrong and the right password released at once, three fresh accounts:
#   the wrong passwords checked stay within the limit (plus one more window
#   when the right one won and reset the count);
# - deterministic: with max_failed_logins = N attempts in flight (right
#   passwords held on the user's row lock after their check), an N+1st
#   attempt is refused even with the right password;
# - a flood of junk unknown logins, far more than the table holds
#   (audiotricks.throttle_slots), neither clears a blocked account nor locks
#   out an account that never failed;
# - a table full of live account entries fails closed: a new account is
#   refused, and the blocked account stays blocked.
# Attempts are released together by an advisory lock (a "gate"), so they
# overlap however slow the machine; no test depends on elapsed time.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;

my $MAX = 4;
my $SLOTS = 128;
my $node = PostgreSQL::Test::Cluster->new('throttle_race');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'audiotricks'
audiotricks.jwt_secret = 'throttle-race-secret-0123456789abcdefghij'
audiotricks.bcrypt_cost = 4
audiotricks.max_failed_logins = $MAX
audiotricks.failed_login_window = '10min'
audiotricks.throttle_slots = $SLOTS
max_connections = 60
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION audiotricks CASCADE');
is($node->safe_psql('postgres', 'SHOW audiotricks.throttle_slots'), $SLOTS,
	"the throttle table holds $SLOTS entries (so a flood can overfill it)");

# accounts whose stored hash costs bcrypt 10, so that a real check takes
# long enough for parallel attempts to overlap
sub register
{
	my ($name, $cost) = @_;
	$cost //= 10;
	$node->safe_psql('postgres', "SET audiotricks.bcrypt_cost = $cost;
		SELECT audiotricks.at_register('$name\@example.com', '$name', 'Passw0rd-$name')");
}

sub result_of
{
	my ($ret, $err) = @_;
	return $ret == 0 ? 'ok' : ($err =~ /invalid login or password/ ? '28P01' : "other: $err");
}

sub login
{
	my ($login, $password) = @_;
	my ($ret, $out, $err) = $node->psql('postgres',
		"SELECT count(*) FROM audiotricks.at_login('$login', '$password')");
	return result_of($ret, $err);
}

# a background psql running $sql (with application_name $app); returns a
# hash with the harness and its output buffers
sub start_psql
{
	my ($sql, $app) = @_;
	my %p = (out => '', err => '');
	$p{h} = IPC::Run::start(
		[ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-At',
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

# count of backends of $app waiting on a heavyweight lock
sub waiting
{
	my ($app) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = '$app' AND wait_event_type = 'Lock'");
}

# holds $lock_sql in an open transaction until released
sub hold
{
	my ($lock_sql) = @_;
	my $g = start_psql("BEGIN; $lock_sql; SELECT pg_sleep(300)", 'gate');
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'gate' AND wait_event = 'PgSleep'")
	  or die 'gate did not start';
	return $g;
}

sub release
{
	my ($g) = @_;
	$node->safe_psql('postgres',
		"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'gate'");
	$g->{h}->finish;
}

# runs every SQL text of @sqls at once: all wait on an advisory lock held by
# the gate, which then lets them go together.  Returns their results.
sub release_together
{
	my @sqls = @_;
	my $g = hold('SELECT pg_advisory_xact_lock(4242)');
	my @p = map { start_psql("SELECT pg_advisory_xact_lock_shared(4242); $_", 'racer') } @sqls;
	my $n = scalar @sqls;
	$node->poll_query_until('postgres',
		"SELECT count(*) = $n FROM pg_stat_activity WHERE application_name = 'racer' AND wait_event_type = 'Lock'")
	  or die 'racers did not line up';
	release($g);
	return map { finish_psql($_) } @p;
}

# (login_failed, login_throttled) events of $name, once $total have been
# written (the detached audit writer is asynchronous)
sub events
{
	my ($name, $total) = @_;
	my $q = "FROM audiotricks.audit_log a JOIN audiotricks.users u ON u.id = a.user_id
		WHERE u.username = '$name' AND a.event IN ('login_failed', 'login_throttled')";
	$node->poll_query_until('postgres', "SELECT count(*) >= $total $q")
	  or diag("only some audit events of $name arrived");
	my $r = $node->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE event = 'login_failed') || ' ' || count(*) FILTER (WHERE event = 'login_throttled') $q");
	return split / /, $r;
}

# ---- 20 parallel wrong logins
register('ann');
my @r = release_together(map { "SELECT count(*) FROM audiotricks.at_login('ann', 'wrong-$_')" } 1 .. 20);
is(scalar(grep { $_ eq '28P01' } @r), 20, '20 parallel wrong logins: all refused with 28P01');
my ($failed, $throttled) = events('ann', 20);
cmp_ok($failed, '<=', $MAX, "at most max_failed_logins ($MAX) of them were checked against the hash (login_failed: $failed)");
is($failed + $throttled, 20, "the rest were throttled ($throttled)");
is(login('ann', 'Passw0rd-ann'), '28P01', 'afterwards the right password is refused');

# ---- the same for the password re-check of a token holder
register('bob');
my $tok = $node->safe_psql('postgres', q{SELECT token FROM audiotricks.at_login('bob', 'Passw0rd-bob')});
@r = release_together(map {
	"SELECT audiotricks.at_authenticate('$tok') IS NOT NULL;
	 SELECT audiotricks.at_change_password('wrong-$_', 'NewPassw0rd-$_')" } 1 .. 12);
is(scalar(grep { $_ eq '28P01' } @r), 12, '12 parallel wrong at_change_password: all refused');
($failed, $throttled) = events('bob', 12);
cmp_ok($failed, '<=', $MAX, "at most $MAX checked against the hash (login_failed: $failed)");
is($failed + $throttled, 12, "the rest were throttled ($throttled)");

# ---- 19 wrong and the right one at once, three fresh accounts
for my $round (1 .. 3)
{
	my $name = "cy$round";
	register($name);
	@r = release_together((map { "SELECT count(*) FROM audiotricks.at_login('$name', 'wrong-$_')" } 1 .. 19),
		"SELECT count(*) FROM audiotricks.at_login('$name', 'Passw0rd-$name')");
	my $token = $r[-1] eq 'ok' ? 1 : 0;
	is(scalar(grep { $_ eq '28P01' } @r[0 .. 18]), 19, "round $round: the 19 wrong ones refused");
	($failed, $throttled) = events($name, 20 - $token);
	# a success resets the count once recorded: wrong ones reserved after it
	# get one more window, so at most MAX-1 before it and MAX after it
	my $bound = $token ? 2 * $MAX - 1 : $MAX;
	cmp_ok($failed, '<=', $bound,
		"round $round: wrong passwords checked $failed <= $bound (right one " . ($token ? 'won a reservation' : 'throttled') . ')');
	is($failed + $throttled + $token, 20, "round $round: every attempt accounted for");
}

# ---- deterministic: N reservations in flight, the N+1st refused even when right
register('dee');
my $g = hold(q{SELECT 1 FROM audiotricks.users WHERE username = 'dee' FOR UPDATE});
my @held = map { start_psql(q{SELECT count(*) FROM audiotricks.at_login('dee', 'Passw0rd-dee')}, 'held') } 1 .. $MAX;
ok($node->poll_query_until('postgres',
	"SELECT count(*) = $MAX FROM pg_stat_activity WHERE application_name = 'held' AND wait_event_type = 'Lock'"),
	"$MAX right-password logins checked and waiting on the user's row");
my $extra = start_psql(q{SELECT count(*) FROM audiotricks.at_login('dee', 'Passw0rd-dee')}, 'extra');
# it either finishes (refused) or gets through the check and waits as well
my $extra_waits;
for (1 .. 1800)
{
	$extra->{h}->pump_nb;
	if ($extra->{out} ne '' || $extra->{err} ne '') { $extra_waits = 0; last }
	if (waiting('extra')) { $extra_waits = 1; last }
	select(undef, undef, undef, 0.1);
}
die 'the extra attempt neither finished nor waited' unless defined $extra_waits;
release($g);
is($extra_waits, 0, 'the attempt after max_failed_logins reservations did not reach the password check');
is(finish_psql($extra), '28P01', 'and was refused although its password was right');
is(scalar(grep { finish_psql($_) eq 'ok' } @held), $MAX, "the $MAX reserved right-password logins then succeed");
is(login('dee', 'wrong'), '28P01', 'a wrong one after them');
is(login('dee', 'Passw0rd-dee'), 'ok', 'the successes reset the count');

# ---- a flood of junk unknown logins does not clear a block
register('eve', 4);
register('fay', 4);
is(login('eve', "wrong-$_"), '28P01', "eve: failure $_") for 1 .. $MAX;
is(login('eve', 'Passw0rd-eve'), '28P01', 'eve is blocked');
my $junk = 16 * $SLOTS;
is($node->safe_psql('postgres', qq{
DO \$\$
BEGIN
	FOR i IN 1 .. $junk LOOP
		BEGIN
			PERFORM audiotricks.at_login('junk-' || i, 'Passw0rd-junk');
			RAISE EXCEPTION 'junk login % succeeded', i;
		EXCEPTION WHEN invalid_password THEN
			NULL;
		END;
	END LOOP;
END
\$\$;
SELECT 'flooded'}), 'flooded', "$junk junk unknown logins ($SLOTS slots)");
is(login('eve', 'Passw0rd-eve'), '28P01', 'after the flood eve is still blocked');
is(login('fay', 'Passw0rd-fay'), 'ok', 'and an account that never failed still logs in');

# ---- a table full of live account entries: new keys are refused
my $accounts = 4 * $SLOTS;
$node->safe_psql('postgres', qq{
SET audiotricks.bcrypt_cost = 4;
SELECT count(audiotricks.at_register('acc' || i || '\@example.com', 'acc' || i, 'Passw0rd-acc'))
  FROM generate_series(1, $accounts) i;
SELECT audiotricks.at_register('gus\@example.com', 'gus', 'Passw0rd-gus');
DO \$\$
BEGIN
	FOR i IN 1 .. $accounts LOOP
		BEGIN
			PERFORM audiotricks.at_login('acc' || i, 'wrong');
		EXCEPTION WHEN invalid_password THEN
			NULL;
		END;
	END LOOP;
END
\$\$});
is(login('gus', 'Passw0rd-gus'), '28P01',
	"with $accounts accounts failing in $SLOTS slots a new account is refused (fail closed)");
is(login('eve', 'Passw0rd-eve'), '28P01', 'and eve is still blocked');

$node->stop;
done_testing();
