# test/t/004_throttle.pl
# Login throttling with a short window: N failures refuse even the right
# password until the window passes; the count survives the failing calls'
# rollbacks and lives in shared memory across connections; and a throttled,
# an unknown and a wrong-password attempt take comparable time (medians).
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
	login('cal', 'Passw0rdC', 4) if $i % 2 == 0;
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
