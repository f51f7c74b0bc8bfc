# test/t/007_revocation.pl
# A refresh-token reuse revocation is never lost, and "log out everywhere"
# cannot be outrun by a refresh in flight.  Written from the attacker's side:
# - a user holds a lock on their own users row (an open at_delete_account)
#   while one of their failed logins is queued for the audit writer, and
#   another user floods the queue with reuse of their own refreshed token:
#   the victim's revocation is still in force as soon as their refused call
#   returns, and every event is written once the lock goes;
# - the audit writer's idle exit, swept over offsets around it: a
#   revocation queued at any moment is in force when its call returns;
# - a refresh in flight (the thief's, holding the old row locked) across
#   the revocation: its new token is refused when it commits, and after a
#   crash-restart the thief's token is still refused;
# - at_logout_all racing at_refresh, in both orders, also under REPEATABLE
#   READ: no session survives.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('revocation');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'audiotricks'
audiotricks.jwt_secret = 'revocation-test-secret-0123456789abcdef'
audiotricks.bcrypt_cost = 4
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION audiotricks CASCADE;
SELECT audiotricks.at_register(u || '@example.com', u, 'Pass-word-1')
  FROM unnest(ARRAY['vic', 'hal', 'fred', 'lou']) u;
CREATE FUNCTION public.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;
});

sub q1 { return $node->safe_psql('postgres', $_[0]); }

sub login
{
	my ($user) = @_;
	return q1("SELECT token FROM audiotricks.at_login('$user', 'Pass-word-1')");
}

sub refresh { return q1("SELECT token FROM audiotricks.at_refresh('$_[0]')"); }

# 'valid', 'refused' (28000) or the error
sub token_state
{
	my ($token) = @_;
	my ($out, $err);
	$node->psql('postgres', "SELECT audiotricks.at_authenticate('$token')",
		stdout => \$out, stderr => \$err, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return $err =~ /28000/ ? 'refused' : ($out ne '' ? 'valid' : "other: $err");
}

# runs $sql, returns its SQLSTATE ('' when it succeeded)
sub sqlstate
{
	my ($sql) = @_;
	my ($out, $err);
	$node->psql('postgres', $sql, stdout => \$out, stderr => \$err,
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return $err =~ /ERROR:\s+([0-9A-Z]{5})/ ? $1 : '';
}

sub events
{
	my ($event, $user) = @_;
	return q1("SELECT count(*) FROM audiotricks.audit_log a JOIN audiotricks.users u ON u.id = a.user_id"
		  . " WHERE a.event = '$event' AND u.username = '$user'");
}

sub start_bg
{
	my ($sql) = @_;
	my ($o, $e) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose', '-At',
		  '-d', $node->connstr('postgres'), '-c', $sql ],
		'>', \$o, '2>', \$e);
	return ($h, \$o, \$e);
}

sub wait_for_lock_wait
{
	$node->poll_query_until('postgres',
		q{SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event_type = 'Lock'})
	  or die 'the racing statement never waited for a lock';
}

# ------------------------------------------------------------ lock and flood
{
	my $hal_token = login('hal');
	my $holder = $node->background_psql('postgres');
	$holder->query_safe("BEGIN; SELECT audiotricks.at_authenticate('$hal_token');"
		  . " SELECT audiotricks.at_delete_account('Pass-word-1')");
	# a failed login of hal's: its event waits for hal's row, which the
	# holder keeps locked
	is(sqlstate(q{SELECT * FROM audiotricks.at_login('hal', 'wrong-Pass-1')}), '28P01',
		'lock: a failed login of the locked user');

	my $t1 = login('vic');
	my $t2 = refresh($t1);    # the thief refreshed the stolen token
	is(sqlstate("SELECT * FROM audiotricks.at_refresh('$t1')"), '28000',
		'lock: the victim presents the refreshed token: 28000');
	is(token_state($t2), 'refused',
		"lock: the thief's token is refused as soon as that call returns, while the lock is held");

	# the flood: reuse of one's own refreshed token, many times, each in a
	# rolled-back savepoint
	my $f1 = login('fred');
	refresh($f1);
	my $flood = "BEGIN;\n";
	$flood .= "SAVEPOINT s; SELECT count(*) FROM audiotricks.at_refresh('$f1'); ROLLBACK TO s;\n"
	  for 1 .. 600;
	$flood .= "COMMIT;\n";
	my ($out, $err);
	$node->psql('postgres', $flood, stdout => \$out, stderr => \$err, on_error_stop => 0);
	is(() = $err =~ /invalid or expired token/g, 600, 'flood: 600 refused reuses');
	is(token_state($t2), 'refused', "flood: the thief's token is still refused");
	ok($node->poll_query_until('postgres',
			q{SELECT count(*) = 1 FROM audiotricks.audit_log a JOIN audiotricks.users u ON u.id = a.user_id
			   WHERE a.event = 'refresh_reuse' AND u.username = 'vic'}),
		"flood: the victim's refresh_reuse event is written while hal's row is locked");
	is(events('login_failed', 'hal'), '0', "lock: hal's event waits for the lock");

	$holder->query_safe('ROLLBACK');
	$holder->quit;
	ok($node->poll_query_until('postgres',
			q{SELECT count(*) = 1 FROM audiotricks.audit_log a JOIN audiotricks.users u ON u.id = a.user_id
			   WHERE a.event = 'login_failed' AND u.username = 'hal'}),
		"lock released: hal's failed login is written");
	is(events('refresh_reuse', 'fred'), '1', "flood: fred's first reuse was recorded (his family is gone after it)");
}

# ------------------------------------------------------------ hoarding the queue
# Every call that may queue an item reserves its slots first.  Calls
# repeated in one open transaction must not pile up reservations until the
# queue (8,192 slots) is full for everybody else.
{
	my $hoarder = $node->background_psql('postgres');
	$hoarder->query_safe(q{BEGIN; SELECT count(audiotricks.at_logout('junk-' || g)) FROM generate_series(1, 4100) g});
	is(sqlstate(q{SELECT * FROM audiotricks.at_login('lou', 'wrong-Pass-1')}), '28P01',
		'hoarding: a failed login elsewhere is answered as usual (not 53400)');
	$hoarder->query_safe('ROLLBACK');
	$hoarder->quit;
}

# ------------------------------------------------------------ seen at once, mid-transaction
# The token check keeps a per-backend copy of revoked_families: a backend
# that already checked the thief's token in its open transaction must see a
# revocation committed meanwhile at its next check.
{
	my $t1 = login('vic');
	my $t2 = refresh($t1);
	my $app = $node->background_psql('postgres');
	# the same statement before and after, so that the second one touches
	# no catalog (a catalog read would also take the invalidation)
	my $check = "SELECT public.try(\$\$SELECT audiotricks.at_authenticate('$t2')\$\$)";
	$app->query_safe('BEGIN');
	is($app->query_safe($check), 'ok', 'mid-transaction: t2 is valid before');
	# a refresh of t2 in flight keeps its row locked: the writer cannot
	# delete it, only the listed family refuses it
	my $thief = $node->background_psql('postgres');
	$thief->query_safe("BEGIN; SELECT count(*) FROM audiotricks.at_refresh('$t2')");
	is(sqlstate("SELECT * FROM audiotricks.at_refresh('$t1')"), '28000', 'mid-transaction: the victim reuses t1');
	is(q1(q{SELECT count(*) FROM audiotricks.sessions s JOIN audiotricks.users u ON u.id = s.user_id
	         WHERE u.username = 'vic' AND s.refreshed_at IS NULL}), '1',
		"mid-transaction: t2's row is still there (locked by the thief's refresh)");
	is($app->query_safe($check), '28000',
		'mid-transaction: the same backend refuses t2 at its next check');
	$app->query_safe('ROLLBACK');
	$app->quit;
	$thief->query_safe('ROLLBACK');
	$thief->quit;
}

# ------------------------------------------------------------ the writer's idle exit
# The writer exits about 1 s after its last item (so that DROP DATABASE,
# which waits 5 s for other sessions, does not find it connected).  Queue one item (a failed
# login), then a revocation at offsets around that exit.
for my $offset_ms (800, 900, 950, 1000, 1050, 1100, 1150, 1250, 1400)
{
	my $t1 = login('lou');
	my $t2 = refresh($t1);
	sqlstate(q{SELECT * FROM audiotricks.at_login('nobody-at-all', 'wrong-Pass-1')});
	my $secs = $offset_ms / 1000;
	is(sqlstate("SELECT pg_sleep($secs); SELECT * FROM audiotricks.at_refresh('$t1')"), '28000',
		"exit window +${offset_ms}ms: reuse refused");
	is(token_state($t2), 'refused', "exit window +${offset_ms}ms: the family ended at once");
}
is(events('refresh_reuse', 'lou'), '9', 'exit window: every reuse recorded');

# ------------------------------------------------------------ a refresh in flight, then a crash
{
	my $t1 = login('vic');
	my $t2 = refresh($t1);
	# the thief refreshes t2 and keeps the transaction open: t2's row is
	# locked, t3 not yet committed
	my $thief = $node->background_psql('postgres');
	my $t3 = $thief->query_safe("BEGIN; SELECT token FROM audiotricks.at_refresh('$t2')");
	$t3 =~ s/\s+//g;
	like($t3, qr/^[\w-]+\.[\w-]+\.[\w-]+$/, 'in flight: the thief got t3 (uncommitted)');
	is(sqlstate("SELECT * FROM audiotricks.at_refresh('$t1')"), '28000', 'in flight: the victim reuses t1');
	is(token_state($t2), 'refused', "in flight: t2 is refused although the thief's refresh holds its row");
	$thief->query_safe('COMMIT');
	$thief->quit;
	is(token_state($t3), 'refused', 't3, committed after the revocation, is refused');
	is(sqlstate("SELECT * FROM audiotricks.at_refresh('$t3')"), '28000', 't3 cannot be refreshed');

	# again, and the server crashes while the thief's refresh is in flight
	$t1 = login('vic');
	$t2 = refresh($t1);
	$thief = $node->background_psql('postgres');
	$thief->query_safe("BEGIN; SELECT token FROM audiotricks.at_refresh('$t2')");
	is(sqlstate("SELECT * FROM audiotricks.at_refresh('$t1')"), '28000', 'crash: the victim reuses t1');
	$node->stop('immediate');
	eval { $thief->quit; };
	$node->start;
	is(token_state($t2), 'refused', 'crash: the acknowledged revocation survives the restart');
	is(sqlstate("SELECT * FROM audiotricks.at_refresh('$t2')"), '28000', 'crash: t2 cannot be refreshed');
	# the control: a fresh login of the same user works
	is(token_state(login('vic')), 'valid', 'control: a new login of the victim is valid');
}

# ------------------------------------------------------------ logout_all vs refresh
for my $iso ('READ COMMITTED', 'REPEATABLE READ')
{
	# refresh first (not committed), logout_all waits for it and ends its session
	my $t = login('lou');
	my $v = login('lou');
	my $r = $node->background_psql('postgres');
	my $t2 = $r->query_safe("BEGIN; SELECT token FROM audiotricks.at_refresh('$t')");
	$t2 =~ s/\s+//g;
	my ($h, $o, $e) = start_bg("BEGIN ISOLATION LEVEL $iso; SELECT audiotricks.at_authenticate('$v');"
		  . " SELECT audiotricks.at_logout_all(); COMMIT;");
	wait_for_lock_wait();
	$r->query_safe('COMMIT');
	$r->quit;
	$h->finish;
	ok(!$h->result, "$iso, refresh first: logout_all succeeds") or diag($$e);
	is(token_state($t2), 'refused', "$iso, refresh first: the refreshed token does not survive logout_all");
	is(q1(q{SELECT count(*) FROM audiotricks.sessions s JOIN audiotricks.users u ON u.id = s.user_id
	         WHERE u.username = 'lou' AND s.refreshed_at IS NULL}), '0',
		"$iso, refresh first: lou has no live session");

	# logout_all first (not committed), the refresh waits and is refused
	$t = login('lou');
	$v = login('lou');
	my $l = $node->background_psql('postgres');
	$l->query_safe("BEGIN ISOLATION LEVEL $iso; SELECT audiotricks.at_authenticate('$v');"
		  . " SELECT audiotricks.at_logout_all()");
	($h, $o, $e) = start_bg("SELECT token FROM audiotricks.at_refresh('$t')");
	wait_for_lock_wait();
	$l->query_safe('COMMIT');
	$l->quit;
	$h->finish;
	ok($h->result, "$iso, logout_all first: the waiting refresh fails");
	like($$e, qr/28000/, "$iso, logout_all first: with 28000");
	is(q1(q{SELECT count(*) FROM audiotricks.sessions s JOIN audiotricks.users u ON u.id = s.user_id
	         WHERE u.username = 'lou' AND s.refreshed_at IS NULL}), '0',
		"$iso, logout_all first: lou has no live session");
}

done_testing();
