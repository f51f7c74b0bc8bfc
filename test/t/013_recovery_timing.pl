# test/t/013_recovery_timing.pl
# at_request_password_reset tells a caller nothing about whether its login
# names an account: the same answer (no row, no error) and the same time.
# Medians of 20 interleaved calls of each, timed inside the server so that
# connection set-up does not dilute them, must be within 1.25x of each
# other either way; the measurement is retried up to 3 times before the
# test fails (a machine under load can skew one run).  The two do the same
# statements with the same number of rows written (src/recovery.c), and so
# measure within a few percent of each other.  max_reset_requests
# is off so every known call does its full work.
use strict;
use warnings;
use File::Spec;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('recovery_timing');
$node->init;
my $keyfile = File::Spec->rel2abs($node->basedir . '/audiotricks.keys');
{
	my $old = umask(077);
	open(my $fh, '>', $keyfile) or die "$keyfile: $!";
	print $fh "key 1 " . join('', map { sprintf('%02x', int(rand(256))) } 1 .. 32) . "\ncurrent 1\n";
	close($fh);
	umask($old);
	chmod(0600, $keyfile) or die "chmod: $!";
}
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'audiotricks'
audiotricks.jwt_secret = 'recovery-timing-secret-0123456789abcdefghij'
audiotricks.bcrypt_cost = 4
audiotricks.key_file = '$keyfile'
audiotricks.max_reset_requests = 0
audiotricks.require_email_verification = on
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION audiotricks CASCADE');
$node->safe_psql('postgres',
	q{SET audiotricks.require_email_verification = off;
	  SELECT audiotricks.at_register('known@example.com', 'known', 'Passw0rd-known')});
is($node->safe_psql('postgres', q{SELECT count(*) FROM audiotricks.users WHERE username = 'known'}),
	1, 'the known account exists');

# the same answer, as the anonymous role
my ($rc_k, $out_k, $err_k) = $node->psql('postgres',
	q{SET ROLE audiotricks_anon; SELECT audiotricks.at_request_password_reset('known@example.com') IS NULL});
my ($rc_u, $out_u, $err_u) = $node->psql('postgres',
	q{SET ROLE audiotricks_anon; SELECT audiotricks.at_request_password_reset('unknown@example.com') IS NULL});
is($rc_k, $rc_u, 'same exit status for a known and an unknown login');
is($out_k, $out_u, 'same result for a known and an unknown login');
is($err_k, $err_u, 'same (no) error for a known and an unknown login');

# Medians of n interleaved calls of each statement ($i is the call's
# number), each call timed inside the server in a transaction of its own:
# a request is a transaction, and calls sharing one would see each other's
# row versions (a repeated request for one account would walk its own
# earlier tokens, which no real request does).
sub medians
{
	my ($known, $unknown, $n) = @_;
	my $out = $node->safe_psql('postgres', qq{
CREATE TEMP TABLE s (known float8, unknown float8);
CREATE PROCEDURE pg_temp.measure(k text, u text, n int) LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz; dk float8; du float8;
BEGIN
	FOR i IN 1..n LOOP
		t0 := clock_timestamp();
		EXECUTE replace(k, '\$i', i::text);
		dk := extract(epoch FROM clock_timestamp() - t0);
		COMMIT;
		t0 := clock_timestamp();
		EXECUTE replace(u, '\$i', i::text);
		du := extract(epoch FROM clock_timestamp() - t0);
		COMMIT;
		INSERT INTO s VALUES (dk, du);
	END LOOP;
END \$\$;
CALL pg_temp.measure(\$k\$$known\$k\$, \$u\$$unknown\$u\$, $n);
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY known) || ' ' ||
	percentile_cont(0.5) WITHIN GROUP (ORDER BY unknown) FROM s;
DELETE FROM audiotricks.mail_outbox});
	return split / /, (split /\n/, $out)[0];
}

# the medians of 20 calls each within 1.25x of each other, tried up to 3 times
sub same_time
{
	my ($what, $known_stmt, $unknown_stmt) = @_;
	my ($ok, $known, $unknown, $ratio) = (0);
	for my $try (1 .. 3)
	{
		($known, $unknown) = medians($known_stmt, $unknown_stmt, 20);
		$ratio = $known > $unknown ? $known / $unknown : $unknown / $known;
		note(sprintf('%s, try %d: median seconds known %.6f, unknown %.6f, ratio %.3f',
			$what, $try, $known, $unknown, $ratio));
		if ($ratio <= 1.25)
		{
			$ok = 1;
			last;
		}
	}
	ok($ok, sprintf('%s: known and unknown take the same time (median ratio %.3f <= 1.25)',
		$what, $ratio));
}

# The unknown login is asked for again and again, as the known one is: a
# repeated request overwrites its own earlier token (or decoy) in both cases,
# a first request inserts in both.
same_time('at_request_password_reset',
	q{SELECT audiotricks.at_request_password_reset('known@example.com')},
	q{SELECT audiotricks.at_request_password_reset('nobody@example.com')});

# at_register, with require_email_verification on, answers an address that
# has an account as it answers a new one: no error, a UUIDv7 either way, and
# the same time (the same bcrypt, then one pending registration row and one
# sealed mail each; the account is created only by at_verify_email).
my $shape = q{SELECT pg_typeof(r)::text || ' ' || substr(r::text, 15, 1)
  FROM audiotricks.at_register(%s, %s, 'Passw0rd-shape') r};
is($node->safe_psql('postgres', sprintf($shape, q{'KNOWN@example.com'}, q{'shape1'})),
	$node->safe_psql('postgres', sprintf($shape, q{'shape2@example.com'}, q{'shape2'})),
	'at_register: the same result type and UUID version for a taken and a new address');
same_time('at_register',
	q{SELECT audiotricks.at_register('known@example.com', 'k$i' || pg_backend_pid(), 'Passw0rd-known1')},
	q{SELECT audiotricks.at_register('n$i-' || pg_backend_pid() || '@example.com', 'n$i' || pg_backend_pid(), 'Passw0rd-known1')});
is($node->safe_psql('postgres',
	q{SELECT count(*) FROM audiotricks.users WHERE username ~ '^k[0-9]' OR username = 'shape1'}),
	0, 'no account was created for the taken address');

# both did all their work: 20 tokens of the known account were replaced one
# by the next (one left), and decoys have no user
is($node->safe_psql('postgres',
	q{SELECT count(*) FROM audiotricks.account_tokens t JOIN audiotricks.users u ON u.id = t.user_id WHERE u.username = 'known' AND t.purpose = 'reset'}),
	1, 'each request replaced the previous token');

$node->stop;
done_testing();
