# test/t/034_dump_restore_auth.pl
# Dump and restore keep the product working, not only the rows (those are
# 001_dump_restore's): after pg_dump -Fc / pg_restore into a new database and
# into a new cluster with the same audiotricks.jwt_secret (and key file):
# old passwords log in, tokens issued before the dump authenticate as the
# same user, a token logged out before the dump stays refused, history pages
# and searches are identical, settings and the audit log are kept, and API
# keys decrypt.  A cluster with another
# secret refuses the old tokens but still accepts the passwords.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AtReliability;

my $USERS = 10;

my $src = at_node('source');
$src->start;
$src->safe_psql('postgres', 'CREATE DATABASE app');
$src->safe_psql('app', 'CREATE EXTENSION audiotricks CASCADE');
at_bench_setup($src, 'app', $USERS, 25);

sub token_of { $src->safe_psql('app', "SELECT token FROM bench.tokens WHERE i = $_[0]") }
my %token = map { $_ => token_of($_) } 1 .. $USERS;

# more of what users do: entries through the API (search config, generated
# search document), settings, a deleted entry, a logout, a failed login
for my $i (1 .. $USERS)
{
	$src->safe_psql('app', "BEGIN; SELECT audiotricks.at_authenticate('$token{$i}');
		SELECT count(audiotricks.at_history_add(title => 'restored talk ' || g,
		  transcript => 'the quick brown fox ' || g, summary => 'foxes and dogs',
		  processing_options => '{\"language\": \"en\", \"model\": \"whisper-1\"}'))
		  FROM generate_series(1, 5) g;
		SELECT count(*) FROM audiotricks.at_update_settings(preferred_language => 'fr',
		  settings_json => '{\"theme\": \"dark\", \"notifications\": {\"email\": true, \"browser\": false}}');
		SELECT audiotricks.at_history_delete((SELECT id FROM audiotricks.at_history_page(1)));
		COMMIT;", extra_params => [ '-U', 'app' ]);
}
my $gone = $src->safe_psql('app', q{SELECT token FROM audiotricks.at_login('bench1', 'Passw0rdA')});
$src->safe_psql('app', "SELECT audiotricks.at_logout('$gone')");
$src->psql('app', q{SELECT * FROM audiotricks.at_login('bench2', 'not-the-password')});
$src->poll_query_until('app', q{SELECT count(*) = 1 FROM audiotricks.audit_log WHERE event = 'login_failed'})
  or die 'the failed login was not audited';

# what each user sees, as the application role
sub user_view
{
	my ($node, $db, $token) = @_;
	my $sql = qq{BEGIN;
SELECT audiotricks.at_authenticate('$token');
SELECT p::text FROM audiotricks.at_history_page(20) p;
SELECT p::text FROM audiotricks.at_history_page(20,
  (SELECT cursor FROM audiotricks.at_history_page(20) OFFSET 19 LIMIT 1)) p;
SELECT h.id, h.title FROM audiotricks.at_history_search('fox', 20) h;
SELECT h.id FROM audiotricks.at_history_search('seed', 20) h;
SELECT audiotricks.at_history_count();
SELECT s::text FROM audiotricks.at_get_settings() s;
SELECT a::text FROM audiotricks.audit_log a ORDER BY a.id;
};
	$sql .= "SELECT audiotricks.at_get_api_key('openai');\n";
	$sql .= "COMMIT;\n";
	my ($ret, $out, $err) = $node->psql($db, $sql, extra_params => [ '-U', 'app' ], on_error_stop => 1);
	return $ret == 0 ? $out : "failed: $err";
}
my %view = map { $_ => user_view($src, 'app', $token{$_}) } 1 .. $USERS;
my $audit_sql = q{SELECT a::text FROM audiotricks.audit_log a ORDER BY a.id};
my $audit = $src->safe_psql('app', $audit_sql);
my $events = () = $audit =~ /\n/g;
cmp_ok($events, '>=', 3 * $USERS, "the source has an audit trail ($events events)");
like($audit, qr/login_failed/, 'including a detached event (failed login)');
like($audit, qr/history_deleted/, 'and deleted history entries');
my @lines = split /\n/, $view{3};
cmp_ok(scalar(@lines), '>=', 1 + 20 + 10 + 5 + 20, 'a user sees pages, search hits, settings and events');

my $dump = $src->basedir . '/app.dump';
$src->command_ok([ 'pg_dump', '-Fc', '-d', $src->connstr('app'), '-f', $dump ], 'pg_dump -Fc');

sub check_restored
{
	my ($node, $db, $where) = @_;
	is($node->safe_psql($db, $audit_sql), $audit, "$where: the audit log is kept, row for row");
	for my $i (1 .. $USERS)
	{
		is(user_view($node, $db, $token{$i}), $view{$i},
			"$where: user $i\'s pre-dump token authenticates; pages, search, settings, events"
			  . ', API key are identical');
	}
	my ($r, $state) = at_sqlstate($node, $db, "SELECT audiotricks.at_authenticate('$gone')", 'app');
	is($state, '28000', "$where: the token logged out before the dump stays refused");
	is($node->safe_psql($db, q{SELECT count(*) FROM bench.logins b,
		LATERAL audiotricks.at_login(b.login, 'Passw0rdA') l}), $USERS,
		"$where: every user logs in with the old password");
	is($node->safe_psql($db, q{BEGIN;
		SELECT audiotricks.at_register('new@example.com', 'newcomer', 'Passw0rdA') IS NOT NULL;
		SELECT audiotricks.at_authenticate(token) IS NOT NULL FROM audiotricks.at_login('newcomer', 'Passw0rdA');
		SELECT audiotricks.at_history_add(title => 'after restore') IS NOT NULL;
		SELECT count(*) FROM audiotricks.at_history_search('restore');
		COMMIT;}, extra_params => [ '-U', 'app' ]), "t\nt\nt\n1", "$where: register, login and history work");
	{
		is($node->safe_psql($db, "BEGIN; SELECT audiotricks.at_authenticate('$token{4}') IS NOT NULL;
			SELECT audiotricks.at_set_api_key('elevenlabs', 'el-restored');
			SELECT audiotricks.at_get_api_key('elevenlabs') || ' ' || audiotricks.at_get_api_key('openai'); COMMIT;",
			extra_params => [ '-U', 'app' ]), "t\n\nel-restored sk-seed-4", "$where: new API keys are stored and old ones decrypt");
	}
	is($node->safe_psql($db, at_integrity_sql()), '0,0,0,0', "$where: no row without its user");
}

# into a new database of the same cluster
$src->safe_psql('postgres', 'CREATE DATABASE app2');
$src->command_ok([ 'pg_restore', '--exit-on-error', '-d', $src->connstr('app2'), $dump ],
	'pg_restore into a new database');
check_restored($src, 'app2', 'new database');

# into a new cluster with the same secret and the same key file
my $dst = at_node('target', key_file => $src->{at_key_file});
$dst->start;
$dst->safe_psql('postgres', 'CREATE ROLE app LOGIN; CREATE DATABASE app');
$dst->command_ok([ 'pg_restore', '--exit-on-error', '-d', $dst->connstr('app'), $dump ],
	'pg_restore into a new cluster');
$dst->safe_psql('postgres', 'GRANT audiotricks_user TO app');
check_restored($dst, 'app', 'new cluster');

# a cluster with another secret: the old tokens are refused, passwords work
my $other = at_node('other', key_file => $src->{at_key_file},
	secret => 'another-secret-' . ('9876543210' x 4));
$other->start;
$other->safe_psql('postgres', 'CREATE ROLE app LOGIN; CREATE DATABASE app');
$other->command_ok([ 'pg_restore', '--exit-on-error', '-d', $other->connstr('app'), $dump ],
	'pg_restore into a cluster with another secret');
my ($r, $state) = at_sqlstate($other, 'app', "SELECT audiotricks.at_authenticate('$token{1}')");
is($state, '28000', 'another secret: a pre-dump token is refused (28000)');
is($other->safe_psql('app', q{SELECT count(*) FROM audiotricks.at_login('bench1', 'Passw0rdA')}), '1',
	'another secret: the old password still logs in');

$other->stop;
$dst->stop;
$src->stop;
done_testing();
