# test/t/003_concurrent_register.pl
# Eight concurrent registrations of one email in different cases (and eight
# of one username) create exactly one user; the others get 23505.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('concurrent');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'audiotricks'
audiotricks.jwt_secret = 'concurrency-test-secret-0123456789abcdef'
audiotricks.bcrypt_cost = 4
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION audiotricks CASCADE');

my $barrier;

sub race
{
	$barrier = $node->background_psql('postgres');
	$barrier->query_safe('SELECT pg_advisory_lock(42)');
	my ($make_sql) = @_;
	my @h;
	my @out;
	for my $i (0 .. 7)
	{
		my ($o, $e) = ('', '');
		push @out, [ \$o, \$e ];
		push @h, IPC::Run::start(
			[ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose', '-At',
			  '-d', $node->connstr('postgres'),
			  '-c', 'SELECT pg_advisory_lock_shared(42)',
			  '-c', $make_sql->($i) ],
			'>', \$o, '2>', \$e);
	}
	# all eight wait at the barrier, then go at once
	$node->poll_query_until('postgres',
		q{SELECT count(*) = 8 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted})
	  or die 'clients did not reach the barrier';
	$barrier->query_safe('SELECT pg_advisory_unlock(42)');
	my ($ok, $dup, $other) = (0, 0, 0);
	for my $i (0 .. 7)
	{
		$h[$i]->finish;
		my $err = ${ $out[$i][1] };
		if ($h[$i]->result == 0) { $ok++ }
		elsif ($err =~ /23505/) { $dup++ }
		else { $other++; diag($err) }
	}
	$barrier->quit;
	return ($ok, $dup, $other);
}

my @cases = ('same@example.com', 'SAME@example.com', 'Same@Example.com', 'same@EXAMPLE.com',
	'SAME@EXAMPLE.COM', 'sAmE@example.com', 'samE@example.COM', 'same@Example.Com');
my ($ok, $dup, $other) = race(sub {
	my $i = shift;
	return "SELECT audiotricks.at_register('$cases[$i]', 'user$i', 'Passw0rdA')";
});
is($ok, 1, 'exactly one of eight concurrent same-email registrations succeeds');
is($dup, 7, 'the other seven get 23505');
is($other, 0, 'no other errors');
is($node->safe_psql('postgres',
	q{SELECT count(*) FROM audiotricks.users WHERE lower(email) = 'same@example.com'}), '1',
	'one user with that email');

($ok, $dup, $other) = race(sub {
	my $i = shift;
	my @u = ('Taken', 'TAKEN', 'taken', 'tAken', 'taKen', 'takEn', 'takeN', 'TaKeN');
	return "SELECT audiotricks.at_register('u$i\@example.com', '$u[$i]', 'Passw0rdA')";
});
is($ok, 1, 'exactly one of eight concurrent same-username registrations succeeds');
is($dup, 7, 'the other seven get 23505');
is($node->safe_psql('postgres',
	q{SELECT count(*) FROM audiotricks.users u JOIN audiotricks.user_settings s ON s.user_id = u.id}),
	'2', 'every user has exactly one settings row');

$node->stop;
done_testing();
