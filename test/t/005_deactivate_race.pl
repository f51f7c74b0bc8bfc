# test/t/005_deactivate_race.pl
# Deactivating a user deletes their sessions (trigger), and the token check
# reads only sessions, so no session may outlive a deactivation.  A login or
# a refresh racing a deactivation must therefore either be refused or have
# its new session deleted:
# - deactivation first, login waits on the user row, then is refused (28P01);
# - login first (not yet committed), deactivation waits, then deletes the
#   session the login created;
# - the same two orders for at_refresh (refused with 28000 / new session
#   deleted).
# Afterwards the user has no sessions and every token issued is refused.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('deactivate_race');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'audiotricks'
audiotricks.jwt_secret = 'deactivate-race-secret-0123456789abcdef'
audiotricks.bcrypt_cost = 4
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION audiotricks CASCADE;
SELECT audiotricks.at_register('bob@example.com', 'bob', 'Bob-pass-1');
});

sub sessions
{
	return $node->safe_psql('postgres', q{
SELECT count(*) FROM audiotricks.sessions s JOIN audiotricks.users u ON u.id = s.user_id
 WHERE u.username = 'bob'});
}

sub set_active
{
	my ($active) = @_;
	$node->safe_psql('postgres',
		"UPDATE audiotricks.users SET is_active = $active WHERE username = 'bob'");
}

sub login_token
{
	return $node->safe_psql('postgres',
		q{SELECT token FROM audiotricks.at_login('bob', 'Bob-pass-1')});
}

# starts psql running $sql in the background; returns (harness, \stdout,
# \stderr).  After finish, $h->result is psql's exit code, empty when 0.
sub start_blocked
{
	my ($sql) = @_;
	my ($o, $e) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose', '-At',
		  '-d', $node->connstr('postgres'), '-c', $sql ],
		'>', \$o, '2>', \$e);
	return ($h, \$o, \$e);
}

# waits until some backend waits for a lock (the racing statement is blocked)
sub wait_for_lock_wait
{
	$node->poll_query_until('postgres',
		q{SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event_type = 'Lock'})
	  or die 'the racing statement never waited for the lock';
}

sub token_state
{
	my ($token) = @_;
	my ($out, $err);
	$node->psql('postgres', "SELECT audiotricks.at_authenticate('$token')",
		stdout => \$out, stderr => \$err, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return $err =~ /28000/ ? 'refused' : ($out ne '' ? 'valid' : "other: $err");
}

# ------------------------------------------------------------ login
{
	my $holder = $node->background_psql('postgres');
	$holder->query_safe(q{BEGIN; UPDATE audiotricks.users SET is_active = false WHERE username = 'bob'});
	my ($h, $o, $e) = start_blocked(q{SELECT token FROM audiotricks.at_login('bob', 'Bob-pass-1')});
	wait_for_lock_wait();
	$holder->query_safe('COMMIT');
	$h->finish;
	ok($h->result, 'deactivation first: the waiting login fails');
	like($$e, qr/28P01/, 'deactivation first: with 28P01');
	is(sessions(), '0', 'deactivation first: bob has no session');
	$holder->quit;
}

set_active('true');
{
	my $holder = $node->background_psql('postgres');
	my $token = $holder->query_safe(
		q{BEGIN; SELECT token FROM audiotricks.at_login('bob', 'Bob-pass-1')});
	$token =~ s/\s+//g;
	like($token, qr/^[\w-]+\.[\w-]+\.[\w-]+$/, 'login first: the login issued a token');
	my ($h, $o, $e) = start_blocked(
		q{UPDATE audiotricks.users SET is_active = false WHERE username = 'bob'});
	wait_for_lock_wait();
	$holder->query_safe('COMMIT');
	$h->finish;
	ok(!$h->result, 'login first: the waiting deactivation succeeds') or diag($$e);
	is(sessions(), '0', "login first: the login's session was deleted");
	is(token_state($token), 'refused', "login first: the login's token is refused");
	$holder->quit;
}

# ------------------------------------------------------------ refresh
set_active('true');
{
	my $token = login_token();
	my $holder = $node->background_psql('postgres');
	$holder->query_safe(q{BEGIN; UPDATE audiotricks.users SET is_active = false WHERE username = 'bob'});
	my ($h, $o, $e) = start_blocked("SELECT token FROM audiotricks.at_refresh('$token')");
	wait_for_lock_wait();
	$holder->query_safe('COMMIT');
	$h->finish;
	ok($h->result, 'deactivation first: the waiting refresh fails');
	like($$e, qr/28000/, 'deactivation first: with 28000');
	is(sessions(), '0', 'deactivation first: no session after the refresh');
	$holder->quit;
}

set_active('true');
{
	my $token = login_token();
	my $holder = $node->background_psql('postgres');
	my $fresh = $holder->query_safe(
		"BEGIN; SELECT token FROM audiotricks.at_refresh('$token')");
	$fresh =~ s/\s+//g;
	like($fresh, qr/^[\w-]+\.[\w-]+\.[\w-]+$/, 'refresh first: the refresh issued a token');
	my ($h, $o, $e) = start_blocked(
		q{UPDATE audiotricks.users SET is_active = false WHERE username = 'bob'});
	wait_for_lock_wait();
	$holder->query_safe('COMMIT');
	$h->finish;
	ok(!$h->result, 'refresh first: the waiting deactivation succeeds') or diag($$e);
	is(sessions(), '0', "refresh first: the refresh's session was deleted");
	is(token_state($fresh), 'refused', "refresh first: the refreshed token is refused");
	is(token_state($token), 'refused', 'refresh first: the old token is refused');
	$holder->quit;
}

# a control, so that "refused" above means something: an active user's
# fresh token is valid
set_active('true');
is(token_state(login_token()), 'valid', 'control: a new login of the reactivated user works');

done_testing();
