# test/t/015_audit_chain_race.pl
# The audit hash chains (src/audit_chain.c) under concurrency, and from an
# attacker's side:
# - 8 pgbench clients append events for the SAME user at once: history adds
#   under the user's token, settings updates, failed logins (which go
#   through the detached audit writer), while a 9th client verifies the
#   chains over and over: every verification during the writes is ok, and
#   afterwards each chain runs 1..n with no gap or duplicate seq, no event
#   is missing, and every chain verifies;
# - a verifier's transaction left open does not hold a writer back: a
#   history add commits meanwhile, and the verifier still sees its snapshot;
# - the user holds locks against their own security events (an open
#   transaction that appended an event and sits idle, and their users row
#   locked FOR UPDATE): failed logins up to the lock-out, the lock-out
#   itself and a refresh-token reuse revocation still return at once; their
#   events are delayed, never lost, once the locks go (also when the
#   holder rolls back).
# Nothing here depends on elapsed time: lock waits would hang the synchronous
# calls, which lock_timeout turns into failures.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('audit_chain_race');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'audiotricks'
audiotricks.jwt_secret = 'audit-chain-race-secret-0123456789abcdef'
audiotricks.bcrypt_cost = 4
audiotricks.max_failed_logins = 3
max_connections = 40
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION audiotricks CASCADE');
$node->safe_psql('postgres', q{CREATE TABLE public.attempts (n int);
CREATE FUNCTION public.sqlstate(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;});

sub q1 { return $node->safe_psql('postgres', $_[0]); }

q1(q{SELECT audiotricks.at_register('racer@example.com', 'racer', 'Pass-word-1')});
my $uid = q1(q{SELECT id FROM audiotricks.users WHERE username = 'racer'});
my $tok = q1(q{SELECT token FROM audiotricks.at_login('racer', 'Pass-word-1')});

# each chain of the user: events, lowest and highest seq, distinct seqs
my $shape_sql = qq{SELECT string_agg(n || ':' || lo || ':' || hi || ':' || d, ' ' ORDER BY n)
  FROM (SELECT count(*) n, min(seq) lo, max(seq) hi, count(DISTINCT seq) d
          FROM audiotricks.audit_log WHERE user_id = '$uid' GROUP BY chain_id) c};
my $verify_sql = qq{SELECT count(*) || ',' || count(*) FILTER (WHERE NOT ok)
  FROM audiotricks.at_verify_audit_chain('$uid')};

# ------------------------------------------------------------------ the race
my $dir = $node->basedir;
my %scripts = (
	'hist.sql' => qq{BEGIN;
SELECT audiotricks.at_authenticate('$tok') IS NOT NULL;
SELECT audiotricks.at_history_add(title => 'race ' || :client_id);
COMMIT;
},
	'settings.sql' => qq{BEGIN;
SELECT audiotricks.at_authenticate('$tok') IS NOT NULL;
UPDATE audiotricks.user_settings SET settings_json = jsonb_build_object('n', random())
 WHERE user_id = '$uid';
COMMIT;
},
	# a failed login: 28P01 (or 53400 once locked out), counted
	'fail.sql' => q{INSERT INTO public.attempts
  SELECT 1 WHERE public.sqlstate($q$SELECT audiotricks.at_login('racer', 'Wrong-pass-1')$q$) <> 'ok';
},
	'verify.sql' => qq{SELECT count(*) FILTER (WHERE NOT ok) AS bad FROM audiotricks.at_verify_audit_chain('$uid') \\gset
\\if :bad > 0
SELECT 1/0;
\\endif
},);
for my $f (keys %scripts)
{
	open(my $fh, '>', "$dir/$f") or die;
	print $fh $scripts{$f};
	close $fh;
}

my ($vout, $verr);
my $verifier = IPC::Run::start(
	[ 'pgbench', '-n', '-M', 'simple', '-c', '1', '-t', '60', '-f', "$dir/verify.sql",
	  $node->connstr('postgres') ],
	'>', \$vout, '2>', \$verr);
my ($ret, $out, $err) = (0, '', '');
$node->command_ok(
	[ 'pgbench', '-n', '-M', 'simple', '-c', '8', '-j', '2', '-t', '150',
	  '-f', "$dir/hist.sql\@5", '-f', "$dir/settings.sql\@3", '-f', "$dir/fail.sql\@2",
	  $node->connstr('postgres') ],
	'8 clients append to one user\'s chains at once');
ok($verifier->finish, 'every verification during the writes found the chains ok')
  or diag($verr);
like($vout, qr/number of transactions actually processed: 60\/60/, '60 verifications ran');

my $attempts = q1('SELECT count(*) FROM public.attempts');
ok($attempts > 0, "failed logins were made ($attempts)");
ok($node->poll_query_until('postgres',
		qq{SELECT count(*) = $attempts FROM audiotricks.audit_log
		    WHERE user_id = '$uid' AND event IN ('login_failed', 'login_throttled')}),
	'every failed login is in the log (through the audit writer)');
my $hist = q1(qq{SELECT count(*) FROM audiotricks.audio_history WHERE user_id = '$uid'});
is(q1(qq{SELECT count(*) FROM audiotricks.audit_log WHERE user_id = '$uid'
  AND table_name = 'audio_history' AND operation = 'INSERT'}), $hist,
	"one data_changed event per history add ($hist)");
my @chains = split / /, q1($shape_sql);
is(scalar(@chains), 2, 'the user has two chains (transactions, audit writer)');
for my $c (@chains)
{
	my ($n, $lo, $hi, $d) = split /:/, $c;
	ok($lo == 1 && $hi == $n && $d == $n, "chain of $n events: seq 1..$n, no gap, no duplicate");
}
is(q1($verify_sql), '2,0', 'both chains verify after the race');

# ------------------------------------------- an open verifier holds nobody
my $v = $node->background_psql('postgres');
$v->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
is($v->query_safe($verify_sql), '2,0', 'a verifier transaction is open');
my $events_before = q1(qq{SELECT count(*) FROM audiotricks.audit_log WHERE user_id = '$uid'});
is(q1(qq{SET lock_timeout = '60s';
BEGIN;
SELECT audiotricks.at_authenticate('$tok') IS NOT NULL;
SELECT audiotricks.at_history_add(title => 'while verifying') IS NOT NULL;
COMMIT;}), "t\nt", 'a writer commits while the verifier transaction is open');
is(q1(qq{SELECT count(*) FROM audiotricks.audit_log WHERE user_id = '$uid'}), $events_before + 1,
	'its event is in the log');
is($v->query_safe($verify_sql), '2,0', 'the open verifier still verifies its snapshot');
$v->query_safe('COMMIT');
is($v->query_safe($verify_sql), '2,0', 'and the new state verifies');
$v->quit;

# ------------------------------------------- the user holds locks against us
sub security_events
{
	my ($who) = @_;
	return q1(qq{SELECT count(*) FROM audiotricks.audit_log a JOIN audiotricks.users u ON u.id = a.user_id
		WHERE u.username = '$who' AND a.event IN ('login_failed', 'login_throttled', 'refresh_reuse')});
}

for my $end ('COMMIT', 'ROLLBACK')
{
	my $who = lc("holder_$end");
	q1(qq{SELECT audiotricks.at_register('$who\@example.com', '$who', 'Pass-word-1')});
	my $t = q1(qq{SELECT token FROM audiotricks.at_login('$who', 'Pass-word-1')});
	my $t1 = q1(qq{SELECT token FROM audiotricks.at_login('$who', 'Pass-word-1')});
	my $t2 = q1(qq{SELECT token FROM audiotricks.at_refresh('$t1')});
	my $before = security_events($who);

	my $holder = $node->background_psql('postgres');
	$holder->query_safe(qq{BEGIN;
SELECT audiotricks.at_authenticate('$t');
SELECT audiotricks.at_history_add(title => 'holding my chain');
SELECT 1 FROM audiotricks.users WHERE username = '$who' FOR UPDATE;});

	# four failed logins: three counted, the fourth locked out; then the
	# reuse of a refreshed token, which revokes its family
	my @got = map {
		q1(qq{SET lock_timeout = '60s';
SELECT public.sqlstate(\$q\$SELECT audiotricks.at_login('$who', 'Wrong-pass-1')\$q\$)})
	} 1 .. 4;
	is("@got", '28P01 28P01 28P01 28P01', "$end: failed logins and the lock-out return at once");
	is(q1(qq{SET lock_timeout = '60s';
SELECT public.sqlstate(\$q\$SELECT audiotricks.at_login('$who', 'Pass-word-1')\$q\$)}), '28P01',
		"$end: the account is locked out: the right password is refused too, at once");
	is(q1(qq{SET lock_timeout = '60s'; SELECT public.sqlstate(\$q\$SELECT audiotricks.at_refresh('$t1')\$q\$)}),
		'28000', "$end: the refresh-token reuse is refused at once");
	is(q1(qq{SELECT public.sqlstate(\$q\$SELECT audiotricks.at_authenticate('$t2')\$q\$)}), '28000',
		"$end: the family is revoked while the locks are held");

	$holder->query_safe($end);
	$holder->quit;
	ok($node->poll_query_until('postgres',
			"SELECT " . ($before + 6) . " = (SELECT count(*) FROM audiotricks.audit_log a"
			  . " JOIN audiotricks.users u ON u.id = a.user_id WHERE u.username = '$who'"
			  . " AND a.event IN ('login_failed', 'login_throttled', 'refresh_reuse'))"),
		"$end: the 6 security events are written once the locks go");
	is(q1(qq{SELECT string_agg(event || '=' || n, ' ' ORDER BY event) FROM (
		SELECT a.event, count(*) n FROM audiotricks.audit_log a JOIN audiotricks.users u ON u.id = a.user_id
		 WHERE u.username = '$who' AND a.event IN ('login_failed', 'login_throttled', 'refresh_reuse')
		 GROUP BY a.event) e}), 'login_failed=3 login_throttled=2 refresh_reuse=1',
		"$end: which events");
	my $wid = q1(qq{SELECT id FROM audiotricks.users WHERE username = '$who'});
	is(q1(qq{SELECT count(*) FILTER (WHERE NOT ok) FROM audiotricks.at_verify_audit_chain('$wid')}), '0',
		"$end: the user's chains verify");
}

is(q1('SELECT count(*) FILTER (WHERE NOT ok) FROM audiotricks.at_verify_audit_chain()'), '0',
	'every chain of the database verifies');

$node->stop;
done_testing();
