# test/t/004_throttle.pl
# Login throttling with a short window: N failures refuse even the right
# password until the window passes; the count survives the failing calls'
# rollbacks and lives in shared memory across connections; a token holder's
# password re-checks have their own count (anonymous failures do not block
# them, theirs do not block the login); counts are per database; and a
# throttled, an unknown and a wrong-password attempt take comparable time
# (medians).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(time);
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('throttle');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'audiotricks'
audiotricks.jwt_secret = 'throttle-test-secret-0123456789abcdefghij'
audiotricks.max_failed_logins = 3
audiotricks.failed_login_window = '3s'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION audiotricks CASCADE');
$node->safe_psql('postgres', q{SET audiotricks.bcrypt_cost = 4;
	SELECT audiotricks.at_register('amy@example.com', 'amy', 'Passw0rdA');
	SELECT audiotricks.at_register('bea@example.com', 'bea', 'Passw0rdB')});

sub login
{
	my ($login, $password, $cost) = @_;
	$cost //= 4;
	my ($ret, $out, $err) = $node->psql('postgres',
		"SET audiotricks.bcrypt_cost = $cost; SELECT count(*) FROM audiotricks.at_login('$login', '$password')");
	return $ret == 0 ? 'ok' : ($err =~ /invalid login or password/ ? '28P01' : "other: $err");
}

# each failure in its own connection and its own (aborted) transaction
is(login('amy', "wrong$_"), '28P01', "failure $_") for 1 .. 3;
is(login('amy', 'Passw0rdA'), '28P01', 'after 3 failures the right password is refused');
is(login('amy@example.com', 'Passw0rdA'), '28P01', 'also by email');
is(login('bea', 'Passw0rdB'), 'ok', 'another login is unaffected');
sleep 4;
is(login('amy', 'Passw0rdA'), 'ok', 'after the window the right password is accepted');
is(login('amy', 'wrong'), '28P01', 'a new failure after the success');
is(login('amy', 'Passw0rdA'), 'ok', 'a success reset the count');

# a token holder's password re-checks have their own count: anonymous
# failures do not lock the owner out of at_change_password, and wrong
# re-checks are limited without locking the login.  A window long enough for
# the steps of each part (slow machines), polled until in force.
$node->append_conf('postgresql.conf', "audiotricks.failed_login_window = '6s'\n");
$node->reload;
$node->poll_query_until('postgres', q{SELECT current_setting('audiotricks.failed_login_window') = '6s'})
  or die 'the window did not change';
$node->safe_psql('postgres', q{SET audiotricks.bcrypt_cost = 4;
	SELECT audiotricks.at_register('bob@example.com', 'bob', 'Passw0rdB1')});
my $tok = $node->safe_psql('postgres', q{SELECT token FROM audiotricks.at_login('bob', 'Passw0rdB1')});
sub recheck
{
	my ($current, $new) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', qq{SET audiotricks.bcrypt_cost = 4; BEGIN;
		SELECT audiotricks.at_authenticate('$tok') IS NOT NULL;
		SELECT audiotricks.at_change_password('$current', '$new');
		COMMIT;});
	return $ret == 0 ? 'ok' : ($err =~ /invalid login or password/ ? '28P01' : "other: $err");
}
is(login('bob', "wrong$_"), '28P01', "bob: anonymous failure $_") for 1 .. 3;
is(login('bob', 'Passw0rdB1'), '28P01', 'bob is locked out of login');
is(recheck('Passw0rdB1', 'Passw0rdB2'), 'ok', 'but his session changes his password with the right one');
is(login('bob', 'Passw0rdB2'), '28P01', 'and anonymous login stays refused, new password too');
sleep 7;
is(recheck("wrong$_", 'Passw0rdB3'), '28P01', "bob's session: wrong re-check $_") for 1 .. 3;
is(recheck('Passw0rdB2', 'Passw0rdB3'), '28P01', 'after 3 wrong re-checks the right one is refused');
is(login('bob', 'Passw0rdB2'), 'ok', 'wrong re-checks do not lock the login');
is(recheck('Passw0rdB2', 'Passw0rdB3'), '28P01', 'nor does the login reset the re-check count');
sleep 7;
is(recheck('Passw0rdB2', 'Passw0rdB3'), 'ok', 'after the window the right re-check is accepted');

# counts are per database: a copy of the database (same user ids) keeps its own
$node->safe_psql('postgres', 'CREATE DATABASE one');
$node->safe_psql('one', q{CREATE EXTENSION audiotricks CASCADE; SET audiotricks.bcrypt_cost = 4;
	SELECT audiotricks.at_register('cy@example.com', 'cy', 'Passw0rdC1')});
$node->safe_psql('postgres', 'CREATE DATABASE two TEMPLATE one');
sub login_in
{
	my ($db, $login, $password) = @_;
	my ($ret, $out, $err) = $node->psql($db,
		"SET audiotricks.bcrypt_cost = 4; SELECT count(*) FROM audiotricks.at_login('$login', '$password')");
	return $ret == 0 ? 'ok' : ($err =~ /invalid login or password/ ? '28P01' : "other: $err");
}
is($node->safe_psql('one', q{SELECT id FROM audiotricks.users WHERE username = 'cy'}),
	$node->safe_psql('two', q{SELECT id FROM audiotricks.users WHERE username = 'cy'}),
	'cy has the same id in both databases');
is(login_in('one', 'cy', "wrong$_"), '28P01', "cy in one: failure $_") for 1 .. 3;
is(login_in('one', 'cy', 'Passw0rdC1'), '28P01', 'cy is locked in database one');
is(login_in('two', 'cy', 'Passw0rdC1'), 'ok', 'but not in its copy two');

# timing: the same bcrypt work in every refused case (cost 11, ~100 ms); a
# longer window so that the throttled login stays throttled throughout
$node->append_conf('postgresql.conf', "audiotricks.failed_login_window = '10min'\n");
$node->reload;
$node->safe_psql('postgres', q{SET audiotricks.bcrypt_cost = 11;
	SELECT audiotricks.at_register('cal@example.com', 'cal', 'Passw0rdC');
	SELECT audiotricks.at_register('dee@example.com', 'dee', 'Passw0rdD')});
sub median { my @s = sort { $a <=> $b } @_; return $s[int(@s / 2)] }
# Timed in the server (clock_timestamp around the call, the error caught),
# so that starting psql, which under load can take longer than the bcrypt
# itself, is not measured; the failure still counts (shared memory).
$node->safe_psql('postgres', q{
CREATE FUNCTION public.login_ms(l text, p text, cost int, OUT ms float8, OUT state text)
LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz;
BEGIN
	PERFORM set_config('audiotricks.bcrypt_cost', cost::text, true);
	t0 := clock_timestamp();
	BEGIN
		PERFORM * FROM audiotricks.at_login(l, p);
		state := 'ok';
	EXCEPTION WHEN OTHERS THEN
		state := SQLSTATE;
	END;
	ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$});
sub timed
{
	my ($login, $password, $cost) = @_;
	my ($ms, $state) = split /\|/,
	  $node->safe_psql('postgres', "SELECT ms, state FROM public.login_ms('$login', '$password', ${\($cost // 11)})");
	return ($ms, $state);
}
login("dee", "wrong$_", 11) for 1 .. 3;	# dee is now throttled
my (@throttled, @unknown, @wrong, @fast);
for my $i (1 .. 11)
{
	# interleaved so that machine noise hits all four alike
	my ($t, $r) = timed('dee', 'Passw0rdD');
	push @throttled, $t;
	BAIL_OUT("throttled attempt not refused: $r") unless $r eq '28P01';
	($t, $r) = timed("nobody$i", 'Passw0rdX');
	push @unknown, $t;
	BAIL_OUT("unknown attempt not refused: $r") unless $r eq '28P01';
	($t, $r) = timed('cal', "wrong$i");
	push @wrong, $t;
	BAIL_OUT("wrong attempt not refused: $r") unless $r eq '28P01';
	# the same refused attempt at cost 4, for the comparison below
	($t, $r) = timed("fast$i", 'x', 4);
	push @fast, $t;
	BAIL_OUT("fast attempt not refused: $r") unless $r eq '28P01';
	# keep dee throttled and cal below the limit
	login('cal', 'Passw0rdC', 11) if $i % 2 == 0;
}
my ($mt, $mu, $mw, $mf) = (median(@throttled), median(@unknown), median(@wrong), median(@fast));
note(sprintf('median ms: throttled %.2f, unknown %.2f, wrong password %.2f; at cost 4 %.2f', $mt, $mu, $mw, $mf));
my $max = (sort { $b <=> $a } ($mt, $mu, $mw))[0];
my $min = (sort { $a <=> $b } ($mt, $mu, $mw))[0];
cmp_ok($max / $min, '<', 1.5, 'throttled, unknown and wrong-password attempts take comparable time');
# and all of them pay for a bcrypt at cost 11 (128 times the work of cost 4:
# a factor of 2 leaves room for any load that hits both alike)
cmp_ok($min, '>', 2 * $mf, 'each refused attempt did the bcrypt work of the configured cost');

$node->stop;
done_testing();
