# test/t/045_login_timing.pl
# Login timing does not tell an account whose stored hash has another cost
# than audiotricks.bcrypt_cost from an unknown login: with the server at cost
# 10, a wrong password for a user whose stored hash has cost 4 takes about as
# long as an unknown login (medians of interleaved attempts, timed inside the
# server so that connection set-up does not dilute them); the same for the
# password re-check of a token holder (at_change_password).  A stored hash of
# another cost, lower or higher, is re-hashed at the configured cost when its
# user logs in.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('login_timing');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'audiotricks'
audiotricks.jwt_secret = 'login-timing-secret-0123456789abcdefghij'
audiotricks.bcrypt_cost = 10
audiotricks.max_failed_logins = 0
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION audiotricks CASCADE');
# lo4's hash has cost 4 (as after raising the cost, or imported); hi12's 12
$node->safe_psql('postgres', q{
SET audiotricks.bcrypt_cost = 4;
SELECT audiotricks.at_register('lo4@example.com', 'lo4', 'Passw0rd-lo4');
SET audiotricks.bcrypt_cost = 12;
SELECT audiotricks.at_register('hi12@example.com', 'hi12', 'Passw0rd-hi12');
SET audiotricks.bcrypt_cost = 4;
SELECT audiotricks.at_register('up4@example.com', 'up4', 'Passw0rd-up4')});

sub stored_cost
{
	my ($name) = @_;
	return $node->safe_psql('postgres',
		"SELECT substr(password_hash, 5, 2)::int FROM audiotricks.users WHERE username = '$name'");
}
is(stored_cost('lo4'), 4, 'lo4 has a cost-4 hash');
is(stored_cost('hi12'), 12, 'hi12 has a cost-12 hash');

my $tok = $node->safe_psql('postgres',
	q{SET audiotricks.bcrypt_cost = 4; SELECT token FROM audiotricks.at_login('lo4', 'Passw0rd-lo4')});
is(stored_cost('lo4'), 4, 'a login at cost 4 leaves it at cost 4');

# seconds one refused call takes, measured in the server; 15 interleaved
# rounds of: a wrong password for lo4, an unknown login, a wrong re-check
my $out = $node->safe_psql('postgres', qq{
CREATE FUNCTION pg_temp.took(stmt text) RETURNS float8 LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
	BEGIN
		EXECUTE stmt;
		RAISE EXCEPTION 'not refused: %', stmt;
	EXCEPTION WHEN invalid_password THEN
		NULL;
	END;
	RETURN extract(epoch FROM clock_timestamp() - t0);
END \$\$;
BEGIN;
SELECT audiotricks.at_authenticate('$tok') IS NOT NULL;
CREATE TEMP TABLE s AS
SELECT i,
	pg_temp.took(format('SELECT * FROM audiotricks.at_login(%L, %L)', 'lo4', 'wrong-' || i)) AS wrong,
	pg_temp.took(format('SELECT * FROM audiotricks.at_login(%L, %L)', 'nobody-' || i, 'Passw0rd-x')) AS unknown,
	pg_temp.took(format('SELECT audiotricks.at_change_password(%L, %L)', 'wrong-' || i, 'N3wPassw0rd')) AS recheck
  FROM generate_series(1, 15) i;
COMMIT;
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY wrong) || ' ' ||
	percentile_cont(0.5) WITHIN GROUP (ORDER BY unknown) || ' ' ||
	percentile_cont(0.5) WITHIN GROUP (ORDER BY recheck) FROM s});
my ($wrong, $unknown, $recheck) = split / /, (split /\n/, $out)[-1];
note(sprintf('median seconds at cost 10: wrong password (cost-4 hash) %.4f, unknown login %.4f, wrong re-check (cost-4 hash) %.4f',
	$wrong, $unknown, $recheck));
my $r = $wrong / $unknown;
ok($r > 0.5 && $r < 2.0, sprintf('wrong password for a cost-4 hash vs unknown login: ratio %.2f within 0.5-2.0', $r));
$r = $recheck / $unknown;
ok($r > 0.5 && $r < 2.0, sprintf('wrong re-check for a cost-4 hash vs unknown login: ratio %.2f within 0.5-2.0', $r));
is(stored_cost('lo4'), 4, 'wrong passwords left the hash alone');

# a successful login re-hashes at the configured cost, lower or higher
$node->safe_psql('postgres', q{SELECT count(*) FROM audiotricks.at_login('up4', 'Passw0rd-up4')});
is(stored_cost('up4'), 10, 'a cost-4 hash is re-hashed at cost 10 on login');
$node->safe_psql('postgres', q{SELECT count(*) FROM audiotricks.at_login('hi12', 'Passw0rd-hi12')});
is(stored_cost('hi12'), 10, 'a cost-12 hash is re-hashed at cost 10 on login');
is($node->safe_psql('postgres', q{SELECT count(*) FROM audiotricks.at_login('hi12', 'Passw0rd-hi12')}),
	1, 'and the password still logs in');

$node->stop;
done_testing();
