# test/t/032_standby.pl
# A streaming hot standby made with pg_basebackup serves the reading calls
# (at_authenticate, at_current_user_id, at_history_page, at_history_search,
# at_history_count, at_get_settings, at_list_sessions, the PostgREST
# pre-request check, at_get_api_key) with the
# same answers as the primary, sees logouts and new logins once replayed, and
# refuses every writing call with SQLSTATE 25006 (read-only transaction);
# logins and refreshes are refused before any password or token check.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AtReliability;

my $USERS = 5;

my $primary = at_node('primary', allows_streaming => 1,
	extra_conf => "log_line_prefix = '[%p] %e '\n");
$primary->start;
$primary->safe_psql('postgres', 'CREATE DATABASE app');
$primary->safe_psql('app', 'CREATE EXTENSION audiotricks CASCADE');
at_bench_setup($primary, 'app', $USERS, 25);
# a second page, search hits with different ranks, and own settings
$primary->safe_psql('app', q{
UPDATE audiotricks.audio_history SET summary = 'audio audio audio' WHERE title LIKE '%7';
UPDATE audiotricks.user_settings SET preferred_language = 'de', settings_json = '{"theme": "dark"}'
 WHERE user_id = (SELECT user_id FROM bench.tokens WHERE i = 1);
});

$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);
is($standby->safe_psql('app', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');

sub token_of { $primary->safe_psql('app', "SELECT token FROM bench.tokens WHERE i = $_[0]") }

# everything a user reads, in one transaction, as the application role
sub reads
{
	my ($node, $token) = @_;
	my $sql = qq{BEGIN;
SELECT audiotricks.at_authenticate('$token');
SELECT audiotricks.at_current_user_id();
SELECT p::text FROM audiotricks.at_history_page(20) p;
SELECT p::text FROM audiotricks.at_history_page(20,
  (SELECT cursor FROM audiotricks.at_history_page(20) OFFSET 19 LIMIT 1)) p;
SELECT h.title, h.id FROM audiotricks.at_history_search('audio', 20) h;
SELECT h.title FROM audiotricks.at_history_search('seed -"talk 3"', 5) h;
SELECT audiotricks.at_history_count();
SELECT s::text FROM audiotricks.at_get_settings() s;
SELECT count(*), max(created_at) FROM audiotricks.audio_history;
SELECT count(*) FROM audiotricks.users;
SELECT id, created_at, expires_at, is_current FROM audiotricks.at_list_sessions();
};
	$sql .= "SELECT audiotricks.at_get_api_key('openai');\n";
	$sql .= "COMMIT;\n";
	# the PostgREST path: identity from the bearer token in request.headers
	$sql .= qq{BEGIN;
SELECT set_config('request.headers', '{"authorization": "Bearer $token"}', true) IS NOT NULL;
SELECT audiotricks.at_postgrest_pre_request();
SELECT audiotricks.at_current_user_id();
SELECT count(*) FROM audiotricks.audio_history;
COMMIT;
};
	my ($ret, $out, $err) = $node->psql('app', $sql, extra_params => [ '-U', 'app' ],
		on_error_stop => 1);
	diag($err) if $ret;
	return $ret == 0 ? $out : "failed: $err";
}

for my $i (1 .. $USERS)
{
	my $tok = token_of($i);
	my $on_primary = reads($primary, $tok);
	my $on_standby = reads($standby, $tok);
	my @lines = split /\n/, $on_primary;
	cmp_ok(scalar(@lines), '>=', 2 + 20 + 5 + 20 + 5 + 4 + 1 + 4, "user $i: the primary answers in full");
	is($on_standby, $on_primary, "user $i: the standby gives the same answers as the primary");
}

# audio_history's partitions replay: one made and filled on the primary
# after the base backup holds the same rows on the standby, and a page walks
# across the partitions there as on the primary
$primary->safe_psql('app', q{
INSERT INTO audiotricks.audio_history (user_id, title, created_at)
  SELECT user_id, 'replayed', '2001-02-03' FROM bench.tokens WHERE i <= 3;
SELECT count(*) FROM audiotricks.at_maintain_history_partitions();
});
$primary->wait_for_catchup($standby);
my $parts_sql = q{SELECT string_agg(p || '=' || n, ',' ORDER BY p) FROM (
  SELECT tableoid::regclass::text AS p, count(*) AS n FROM audiotricks.audio_history GROUP BY 1) s};
my $on_primary_parts = $primary->safe_psql('app', $parts_sql);
like($on_primary_parts, qr/audio_history_p200102=3/, 'the primary made a partition for the new rows');
is($standby->safe_psql('app', $parts_sql), $on_primary_parts,
	'the standby holds the same rows in the same partitions');
my ($mret, $mstate) = at_sqlstate($standby, 'app', 'SELECT * FROM audiotricks.at_maintain_history_partitions()');
is($mstate, '25006', 'partition maintenance on the standby fails with 25006');

# at_authenticate on the standby is as strict as on the primary
my ($ret, $state) = at_sqlstate($standby, 'app',
	q{SELECT audiotricks.at_authenticate('eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.AAAA')}, 'app');
is($state, '28000', 'a forged token is refused on the standby (28000)');
($ret, $state) = at_sqlstate($standby, 'app',
	q{SELECT count(*) FROM audiotricks.at_history_page(20)}, 'app');
is($state, '42501', 'no identity on the standby: 42501');

# replay: a logout and a new login on the primary show on the standby
my $tok2 = token_of(2);
$primary->safe_psql('app', "SELECT audiotricks.at_logout('$tok2')");
my $fresh = $primary->safe_psql('app',
	q{SELECT token FROM audiotricks.at_login('bench3', 'Passw0rdA')});
$primary->wait_for_catchup($standby);
($ret, $state) = at_sqlstate($standby, 'app', "SELECT audiotricks.at_authenticate('$tok2')", 'app');
is($state, '28000', 'a token logged out on the primary is refused on the standby after replay');
is($standby->safe_psql('app', "SELECT audiotricks.at_authenticate('$fresh') = "
	  . "(SELECT user_id FROM bench.tokens WHERE i = 3)", extra_params => [ '-U', 'app' ]),
	't', 'a token issued on the primary after the base backup works on the standby after replay');

# every writing call fails with a clear read-only error
my $tok1 = token_of(1);
my $hid = $primary->safe_psql('app', q{SELECT h.id FROM audiotricks.audio_history h
	JOIN bench.tokens t ON t.user_id = h.user_id WHERE t.i = 1 LIMIT 1});
my %writes = (
	at_register => q{SELECT audiotricks.at_register('new@example.com', 'newbie', 'Passw0rdA')},
	at_login => q{SELECT * FROM audiotricks.at_login('bench1', 'Passw0rdA')},
	at_logout => "SELECT audiotricks.at_logout('$tok1')",
	at_refresh => "SELECT * FROM audiotricks.at_refresh('$tok1')",
	at_history_add => "BEGIN; SELECT audiotricks.at_authenticate('$tok1');"
	  . " SELECT audiotricks.at_history_add(title => 'on the standby'); COMMIT;",
	at_history_delete => "BEGIN; SELECT audiotricks.at_authenticate('$tok1');"
	  . " SELECT audiotricks.at_history_delete('$hid'); COMMIT;",
	at_update_settings => "BEGIN; SELECT audiotricks.at_authenticate('$tok1');"
	  . " SELECT * FROM audiotricks.at_update_settings(summary_quality => 'fast'); COMMIT;",
	at_logout_all => "BEGIN; SELECT audiotricks.at_authenticate('$tok1');"
	  . " SELECT audiotricks.at_logout_all(); COMMIT;",
	at_logout_session => "BEGIN; SELECT audiotricks.at_authenticate('$tok1');"
	  . " SELECT audiotricks.at_logout_session(s.id) FROM audiotricks.at_list_sessions() s; COMMIT;",
	'INSERT INTO audio_history' => "BEGIN; SELECT audiotricks.at_authenticate('$tok1');"
	  . " INSERT INTO audiotricks.audio_history (title) VALUES ('direct'); COMMIT;",
	'UPDATE user_settings' => "BEGIN; SELECT audiotricks.at_authenticate('$tok1');"
	  . " UPDATE audiotricks.user_settings SET summary_quality = 'fast'; COMMIT;",
);
for my $f (sort keys %writes)
{
	my ($r, $s, $err) = at_sqlstate($standby, 'app', $writes{$f}, 'app');
	is($s, '25006', "$f on the standby fails with 25006") or diag($err);
	like($err, qr/read-only transaction/, "$f: the message says read-only");
}
{
	my ($r, $s, $err) = at_sqlstate($standby, 'app', "BEGIN; SELECT audiotricks.at_authenticate('$tok1');"
		  . " SELECT audiotricks.at_set_api_key('openai', 'sk-standby'); COMMIT;", 'app');
	is($s, '25006', 'at_set_api_key on the standby fails with 25006') or diag($err);
	like($err, qr/read-only transaction/, 'at_set_api_key: the message says read-only');
}
is($primary->safe_psql('app', "SELECT audiotricks.at_authenticate('$tok1') IS NOT NULL"), 't',
	'the refused logout on the standby changed nothing: the token still works on the primary');

# a standby refuses a login or refresh before looking at the password or
# token: the right and a wrong password get the same 25006 (no password
# oracle, no failures counted or queued there), and so does a token that
# was already refreshed (reuse is detected on the primary only)
for my $pw ('Passw0rdA', 'wrong1', 'wrong2', 'wrong3', 'Passw0rdA')
{
	my ($r, $s) = at_sqlstate($standby, 'app',
		"SELECT * FROM audiotricks.at_login('bench4', '$pw')", 'app');
	is($s, '25006', 'a login on the standby with ' . ($pw =~ /wrong/ ? 'a wrong' : 'the right')
		  . ' password: 25006');
}
for my $f ('at_change_password(\'wrong\', \'Passw0rdZ9\')', 'at_deactivate_account(\'wrong\')',
	'at_delete_account(\'wrong\')')
{
	my ($r, $s, $err) = at_sqlstate($standby, 'app', "BEGIN; SELECT audiotricks.at_authenticate('$tok1');"
		  . " SELECT audiotricks.$f; COMMIT;", 'app');
	is($s, '25006', "$f with a wrong password on the standby: 25006, not 28P01") or diag($err);
}
my $old = $primary->safe_psql('app', q{SELECT token FROM audiotricks.at_login('bench5', 'Passw0rdA')});
$primary->safe_psql('app', "SELECT count(*) FROM audiotricks.at_refresh('$old')");
$primary->wait_for_catchup($standby);
($ret, $state) = at_sqlstate($standby, 'app', "SELECT * FROM audiotricks.at_refresh('$old')", 'app');
is($state, '25006', 'a refresh of an already refreshed token on the standby: 25006');
($ret, $state) = at_sqlstate($primary, 'app',
	q{BEGIN READ ONLY; SELECT * FROM audiotricks.at_login('bench4', 'wrong4'); COMMIT;}, 'app');
is($state, '25006', 'on the primary, a login in a read-only transaction: 25006');
is($primary->safe_psql('app', q{SELECT count(*) FROM audiotricks.at_login('bench4', 'Passw0rdA')},
	extra_params => [ '-U', 'app' ]), '1', 'the primary accepts the login');

# still serving, nothing crashed
$primary->wait_for_catchup($standby);
is(reads($standby, token_of(5)), reads($primary, token_of(5)), 'the standby still answers like the primary');
# the audit chains replayed: the verifier, read-only, finds the same chains
# ok on the standby as on the primary
my $chains_sql = q{SELECT count(*) || ',' || count(*) FILTER (WHERE NOT ok) || ',' ||
  md5(string_agg(chain_id || ':' || events || ':' || encode(last_hash, 'hex'), ',' ORDER BY chain_id))
  FROM audiotricks.at_verify_audit_chain()};
my $chains = $primary->safe_psql('app', $chains_sql);
like($chains, qr/^[1-9]\d*,0,/, 'the primary: every audit chain verifies');
is($standby->safe_psql('app', $chains_sql), $chains, 'the standby: the same chains, every one verifies');
my $log = slurp_file($standby->logfile);
unlike($log, qr/terminated by signal|PANIC/, 'no backend crashed on the standby');
my @states = $log =~ /^\[\d+\] ([0-9A-Z]{5}) (?:ERROR|FATAL|PANIC):/mg;
my %seen;
$seen{$_}++ for @states;
ok($seen{'25006'}, 'the refused writes are in the standby log with their SQLSTATE');
is(join(',', grep { !/^(25006|28000|42501)$/ } sort keys %seen), '',
	'no error on the standby other than read-only, bad token and no identity');

# promoted, the standby takes writes; the refused logins left no queued
# events behind (the audit writer starts once recovery has finished and
# would have written them by now)
$standby->promote;
$standby->poll_query_until('app', 'SELECT NOT pg_is_in_recovery()')
  or die 'promotion did not finish';
is($standby->safe_psql('app', q{SELECT audiotricks.at_register('new@example.com', 'newbie', 'Passw0rdA') IS NOT NULL},
	extra_params => [ '-U', 'app' ]), 't', 'after promotion at_register works');
($ret, $state) = at_sqlstate($standby, 'app', q{SELECT * FROM audiotricks.at_login('bench4', 'wrong5')}, 'app');
is($state, '28P01', 'after promotion a wrong password is 28P01');
ok($standby->poll_query_until('app', q{SELECT count(*) > 0 FROM audiotricks.audit_log l
	JOIN bench.tokens t ON t.user_id = l.user_id WHERE t.i = 4 AND l.event = 'login_failed'}),
	'and is recorded by the audit writer');
is($standby->safe_psql('app', q{SELECT count(*) FROM audiotricks.audit_log l
	JOIN bench.tokens t ON t.user_id = l.user_id WHERE t.i = 4 AND l.event IN ('login_failed', 'login_throttled')}),
	'1', 'only that one: nothing was counted or queued while it was a standby');

$standby->stop;
$primary->stop;
done_testing();
