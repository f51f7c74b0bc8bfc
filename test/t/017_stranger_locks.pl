# test/t/017_stranger_locks.pl
# A stranger cannot hold up someone else's account through the audit chains.
#
# Each account's audited events append to its hash chain under a lock held
# until the appending transaction ends.  Some calls anyone may make name
# another person's account: a password-reset request for their login, a
# registration with their address (with require_email_verification on),
# whose account-to-come's id is the pending registration's.  If
# those recorded their event in the caller's transaction, a stranger who
# made the call and sat idle would hold that account's chain: the owner's
# login, history adds and every other audited change would wait as long
# as the stranger liked.  Each case below: the stranger calls and stays
# idle in the transaction; meanwhile the owner's calls complete under
# lock_timeout 1s (a wait behind the stranger fails with 55P03 instead of
# hanging); the stranger's event is written all the same.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AtReliability;

my $node = at_node('stranger_locks');
$node->start;
$node->safe_psql('postgres', q{CREATE EXTENSION audiotricks CASCADE;
CREATE ROLE stranger LOGIN; GRANT audiotricks_anon TO stranger;
CREATE ROLE owner_app LOGIN; GRANT audiotricks_user, audiotricks_anon TO owner_app;});

sub q1 { return $node->safe_psql('postgres', $_[0]); }

q1(q{SELECT audiotricks.at_register('victim@example.com', 'victim', 'Pass-word-1')});
my $vid = q1(q{SELECT id FROM audiotricks.users WHERE username = 'victim'});

# the owner (or anyone else) with lock_timeout 1s: 'ok' or the error
sub meanwhile
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', "SET lock_timeout = '1s';\n$sql",
		extra_params => [ '-U', 'owner_app', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose' ]);
	return $ret == 0 ? 'ok' : "failed: $err";
}

my $owner_calls = q{BEGIN;
SELECT audiotricks.at_authenticate(token) IS NOT NULL
  FROM audiotricks.at_login('victim', 'Pass-word-1');
SELECT audiotricks.at_history_add(title => 'my note') IS NOT NULL;
COMMIT;};

sub events
{
	my ($event, $who) = @_;
	my $cond = defined $who ? "user_id = '$who'" : 'user_id IS NULL';
	return q1(qq{SELECT count(*) FROM audiotricks.audit_log WHERE event = '$event' AND $cond});
}

# the stranger calls $sql in a transaction and stays idle
sub stranger
{
	my ($sql) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 1,
		extra_params => [ '-U', 'stranger' ]);
	$s->query_safe("BEGIN; $sql");
	return $s;
}

# ------------------------------------------------ a reset request for the owner
{
	my $s = stranger(q{SELECT audiotricks.at_request_password_reset('victim')});
	is(meanwhile($owner_calls), 'ok', 'reset request: the owner logs in and adds history meanwhile');
	ok($node->poll_query_until('postgres',
			"SELECT count(*) = 1 FROM audiotricks.audit_log WHERE event = 'password_reset_requested' AND user_id = '$vid'"),
		'reset request: its event is written while the stranger sits idle');
	$s->query_safe('COMMIT');
	$s->quit;
}

# ------------------------------------------------ reset requests for unknown logins
{
	my $s = stranger(q{SELECT audiotricks.at_request_password_reset('nobody-1')});
	is(meanwhile(q{SELECT audiotricks.at_request_password_reset('nobody-2')}), 'ok',
		'unknown logins: another request completes meanwhile (the same as for a known one)');
	ok($node->poll_query_until('postgres',
			"SELECT count(*) = 2 FROM audiotricks.audit_log WHERE event = 'password_reset_requested' AND user_id IS NULL"),
		'unknown logins: both events are written');
	$s->query_safe('ROLLBACK');
	$s->quit;
	is(events('password_reset_requested', undef), '2', 'unknown logins: a rollback keeps the event');
}

# ------------------------------------------------ registrations, verification on
q1(q{ALTER SYSTEM SET audiotricks.require_email_verification = on; SELECT pg_reload_conf()});
$node->poll_query_until('postgres', q{SELECT current_setting('audiotricks.require_email_verification') = 'on'})
  or die 'the setting did not reload';
{
	my $s = stranger(q{SELECT audiotricks.at_register('victim@example.com', 'stranger1', 'Pass-word-9') IS NOT NULL});
	is(meanwhile($owner_calls), 'ok', "registration with the owner's address: the owner logs in and adds history meanwhile");
	ok($node->poll_query_until('postgres',
			"SELECT count(*) = 1 FROM audiotricks.audit_log WHERE event = 'registration_for_existing_email' AND user_id = '$vid'"),
		"registration with the owner's address: its event is written, under the owner");
	$s->query_safe('COMMIT');
	$s->quit;
}
{
	my $s = stranger(q{SELECT audiotricks.at_register('newbie@example.com', 'stranger2', 'Pass-word-9')});
	my $id = $s->query_safe(q{SELECT audiotricks.at_register('newbie@example.com', 'stranger2', 'Pass-word-9')});
	ok($node->poll_query_until('postgres', qq{SELECT count(*) = 2 FROM audiotricks.audit_log
  WHERE event = 'registration_requested' AND user_id = '$id'}),
		"registration of a new address: its events are written while the stranger sits idle, under the account-to-come's id");
	$s->query_safe('COMMIT');
	$s->quit;
}

is(q1('SELECT count(*) FILTER (WHERE NOT ok) FROM audiotricks.at_verify_audit_chain()'), '0',
	'every chain verifies');

$node->stop;
done_testing();
