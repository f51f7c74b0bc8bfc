# test/t/043_schema_squat.pl
# Schema squatting (issue 14, finding 1).  The C code finds its tables by the
# name audiotricks.<table>, and its audit writer used to connect as the
# bootstrap superuser, so a schema named audiotricks that is not the
# extension's own would run whatever it holds with the extension owner's (a
# superuser's) rights.  Checked here:
# (i)  CREATE EXTENSION refuses an audiotricks schema that a non-superuser
#      database owner created beforehand, or that holds objects, or where
#      another role may create objects; nothing is installed;
# (ii) after a normal install, once the schema is renamed (a superuser's
#      mistake) and the database owner plants a new audiotricks schema with
#      a trap audit_log and users, every entry point (anonymous failed login,
#      login, authenticate, history page and search, an identity verified
#      earlier in the same transaction) stops with 55000, and the trap never
#      runs: the database owner does not become superuser; the same for a
#      schema handed to another owner; renaming it back restores service;
# (iii) the audit writer connects as the extension's owner.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('schema_squat');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'audiotricks'
audiotricks.jwt_secret = 'schema-squat-secret-0123456789abcdef'
audiotricks.bcrypt_cost = 4
});
$node->start;

$node->safe_psql('postgres', q{
CREATE ROLE squatter LOGIN;
CREATE ROLE admin LOGIN SUPERUSER;
CREATE ROLE app LOGIN;
CREATE DATABASE app1 OWNER squatter;
CREATE DATABASE app2 OWNER squatter;
});

# runs $sql as $user in $db; returns (exit code, stdout, stderr)
sub run_as
{
	my ($user, $db, $sql) = @_;
	my ($out, $err) = ('', '');
	my $ret = $node->psql($db, $sql, stdout => \$out, stderr => \$err,
		extra_params => [ '-U', $user, '-v', 'VERBOSITY=verbose' ]);
	return ($ret, $out, $err);
}

sub squatter_is_superuser
{
	return $node->safe_psql('postgres',
		q{SELECT rolsuper FROM pg_roles WHERE rolname = 'squatter'});
}

# 't' as soon as the squatter is superuser, else 'f' after about 5 seconds
# (time for the audit writer to take anything queued)
sub squatter_becomes_superuser
{
	for (1 .. 20)
	{
		return 't' if squatter_is_superuser() eq 't';
		select(undef, undef, undef, 0.25);
	}
	return 'f';
}

# ------------------------------------------------------------ (i) install
my ($ret, $out, $err);
run_as('squatter', 'app1', 'CREATE SCHEMA audiotricks') == 0
  or die 'the database owner could not create the schema';
($ret, $out, $err) = run_as('postgres', 'app1', 'CREATE EXTENSION audiotricks CASCADE');
isnt($ret, 0, 'CREATE EXTENSION into a schema a database owner created fails');
like($err, qr/42P06.*schema "audiotricks" already exists and is not the extension's own/,
	'with 42P06 and a clear message');
like($err, qr/HINT:.*owned by/s, 'and a hint');
is($node->safe_psql('app1', q{
SELECT count(*) FROM pg_extension WHERE extname IN ('audiotricks', 'pgcrypto', 'btree_gin')}),
	'0', 'no extension was installed');
is($node->safe_psql('app1', q{
SELECT count(*) FROM pg_class WHERE relnamespace = 'audiotricks'::regnamespace}),
	'0', 'nothing was created in the squatted schema');
is($node->safe_psql('postgres',
	q{SELECT count(*) FROM pg_roles WHERE rolname LIKE 'audiotricks\_%'}),
	'0', 'no role was created');

# a superuser's schema that already holds something, or where another role
# may create objects, is refused too
run_as('squatter', 'app1', 'DROP SCHEMA audiotricks');
$node->safe_psql('app1', 'CREATE SCHEMA audiotricks; CREATE TABLE audiotricks.users (x int)');
($ret, $out, $err) = run_as('postgres', 'app1', 'CREATE EXTENSION audiotricks CASCADE');
isnt($ret, 0, 'CREATE EXTENSION into a schema that holds a table fails');
like($err, qr/schema "audiotricks" already exists and is not the extension's own/,
	'with the same message');
$node->safe_psql('app1', 'DROP TABLE audiotricks.users; GRANT CREATE ON SCHEMA audiotricks TO squatter');
($ret, $out, $err) = run_as('postgres', 'app1', 'CREATE EXTENSION audiotricks CASCADE');
isnt($ret, 0, 'CREATE EXTENSION into a schema where another role may create fails');
like($err, qr/schema "audiotricks" already exists and is not the extension's own/,
	'with the same message');

# the installing superuser's own empty schema (left by DROP EXTENSION, or
# restored by pg_dump) is accepted
$node->safe_psql('app1', 'REVOKE CREATE ON SCHEMA audiotricks FROM squatter');
($ret, $out, $err) = run_as('postgres', 'app1', 'CREATE EXTENSION audiotricks CASCADE');
is($ret, 0, 'CREATE EXTENSION into the superuser\'s own empty schema works') or diag $err;
($ret, $out, $err) = run_as('postgres', 'app1',
	'DROP EXTENSION audiotricks; CREATE EXTENSION audiotricks');
is($ret, 0, 'DROP EXTENSION then CREATE EXTENSION works (the schema stays behind)') or diag $err;

# audiotricks_internal and audiotricks_api belong to the extension (DROP
# EXTENSION drops them): any existing schema of either name is refused, even
# the installing superuser's own empty one
$node->safe_psql('postgres', 'CREATE DATABASE app3 OWNER squatter');
run_as('squatter', 'app3', 'CREATE SCHEMA audiotricks_internal') == 0
  or die 'the database owner could not create audiotricks_internal';
($ret, $out, $err) = run_as('postgres', 'app3', 'CREATE EXTENSION audiotricks CASCADE');
like($err, qr/42P06.*schema "audiotricks_internal" already exists and is not the extension's own/,
	'CREATE EXTENSION refuses a squatted audiotricks_internal with 42P06');
is($node->safe_psql('app3', q{SELECT count(*) FROM pg_extension WHERE extname = 'audiotricks'}),
	'0', 'nothing installed');
run_as('squatter', 'app3', 'DROP SCHEMA audiotricks_internal');
$node->safe_psql('app3', 'CREATE SCHEMA audiotricks_api');
($ret, $out, $err) = run_as('postgres', 'app3', 'CREATE EXTENSION audiotricks CASCADE');
like($err, qr/42P06.*schema "audiotricks_api" already exists and is not the extension's own/,
	'and an existing audiotricks_api, even the superuser\'s own');
$node->safe_psql('app3', 'DROP SCHEMA audiotricks_api');
($ret, $out, $err) = run_as('postgres', 'app3',
	'CREATE EXTENSION audiotricks CASCADE; DROP EXTENSION audiotricks; CREATE EXTENSION audiotricks');
is($ret, 0, 'without them it installs, and DROP EXTENSION takes both schemas along') or diag $err;

# ------------------------------------------------------------ (ii) run time
($ret, $out, $err) = run_as('admin', 'app2', q{
CREATE EXTENSION audiotricks CASCADE;
GRANT audiotricks_user TO app;
SELECT audiotricks.at_register('alice@example.com', 'alice', 'Alice-pass-1');
});
is($ret, 0, 'install by another superuser in a database the squatter owns') or diag $err;
my $token = $node->safe_psql('app2',
	q{SELECT token FROM audiotricks.at_login('alice', 'Alice-pass-1')},
	extra_params => [ '-U', 'app' ]);
$node->safe_psql('app2', qq{
BEGIN;
SELECT audiotricks.at_authenticate('$token');
SELECT audiotricks.at_history_add('hello squatting world', transcript => 'hello there');
COMMIT;
}, extra_params => [ '-U', 'app' ]);

# (iii) the audit writer connects as the extension's owner
($ret, $out, $err) = run_as('app', 'app2', q{SELECT audiotricks.at_login('nobody', 'Wrong-pass-1')});
like($err, qr/28P01/, 'a failed login before any squatting: 28P01');
ok($node->poll_query_until('app2',
	q{SELECT count(*) > 0 FROM audiotricks.audit_log WHERE event = 'login_failed'}),
	'the audit writer recorded it');
my $writer_role = $node->safe_psql('app2', q{
SELECT string_agg(DISTINCT usename, ',') FROM pg_stat_activity
 WHERE backend_type = 'audiotricks audit writer'});
is($writer_role, 'admin', 'the audit writer runs as the extension owner, not the bootstrap superuser');

# a session that verified its token before the squatting
my $bg = $node->background_psql('app2', on_error_stop => 0,
	extra_params => [ '-U', 'app', '-v', 'VERBOSITY=verbose' ]);
$bg->query_safe("BEGIN; SELECT audiotricks.at_authenticate('$token')");
is($bg->query_safe('SELECT count(*) FROM audiotricks.at_history_page()'), '1',
	'history works before the squatting');

# the superuser's mistake, and the database owner's trap
$node->safe_psql('app2', 'ALTER SCHEMA audiotricks RENAME TO audiotricks_real');
($ret, $out, $err) = run_as('squatter', 'app2', q{
CREATE SCHEMA audiotricks;
CREATE FUNCTION audiotricks.promote() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        EXECUTE 'ALTER ROLE squatter SUPERUSER';
    END IF;
    RETURN true;
END $$;
CREATE FUNCTION audiotricks.promote_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM audiotricks.promote();
    RETURN NEW;
END $$;
CREATE TABLE audiotricks.audit_log (id bigserial, event text, user_id uuid,
    session_id uuid, detail jsonb, client_addr inet, created_at timestamptz);
CREATE TRIGGER trap BEFORE INSERT ON audiotricks.audit_log
    FOR EACH ROW EXECUTE FUNCTION audiotricks.promote_trigger();
CREATE VIEW audiotricks.users AS
    SELECT NULL::uuid AS id, ''::text AS email, ''::text AS username,
           ''::text AS password_hash, true AS is_active,
           NULL::timestamptz AS last_login_at
     WHERE audiotricks.promote();
CREATE VIEW audiotricks.audio_history AS
    SELECT h.* FROM (SELECT NULL::uuid AS id) h WHERE audiotricks.promote();
GRANT USAGE ON SCHEMA audiotricks TO PUBLIC;
GRANT ALL ON ALL TABLES IN SCHEMA audiotricks TO PUBLIC;
GRANT ALL ON ALL SEQUENCES IN SCHEMA audiotricks TO PUBLIC;
});
is($ret, 0, 'the database owner plants a schema audiotricks') or diag $err;

my $squat = qr/55000.*schema audiotricks was renamed or replaced/;
for my $case (
	[ 'anonymous failed login', 'postgres', q{SELECT audiotricks_real.at_login('nobody', 'Wrong-pass-1')} ],
	[ 'anonymous failed login (app role)', 'app', q{SELECT audiotricks_real.at_login('nobody', 'Wrong-pass-1')} ],
	[ 'login', 'app', q{SELECT * FROM audiotricks_real.at_login('alice', 'Alice-pass-1')} ],
	[ 'register', 'app', q{SELECT audiotricks_real.at_register('bob@example.com', 'bob', 'Bob-pass-1')} ],
	[ 'authenticate', 'app', qq{SELECT audiotricks_real.at_authenticate('$token')} ],
	[ 'history page with a token', 'app', qq{BEGIN; SELECT audiotricks_real.at_authenticate('$token'); SELECT * FROM audiotricks_real.at_history_page()} ],
	[ 'purge', 'postgres', q{SELECT audiotricks_real.at_purge_expired_sessions()} ])
{
	my ($name, $user, $sql) = @$case;
	($ret, $out, $err) = run_as($user, 'app2', $sql);
	isnt($ret, 0, "$name fails after the schema was replaced");
	like($err, $squat, "$name: 55000 schema audiotricks was renamed or replaced");
}
is(squatter_becomes_superuser(), 'f', 'the database owner did not become superuser');

# the identity verified before: the history functions check too
for my $case (
	[ 'history page', 'SELECT count(*) FROM audiotricks_real.at_history_page()' ],
	[ 'history search', q{SELECT count(*) FROM audiotricks_real.at_history_search('hello')} ],
	[ 'current user id', 'SELECT audiotricks_real.at_current_user_id()' ],
	[ 'history add', q{SELECT audiotricks_real.at_history_add('x')} ],
	[ 'logout', 'SELECT audiotricks_real.at_logout()' ])
{
	my ($name, $sql) = @$case;
	$bg->{stderr} = '';
	$bg->query_safe('SAVEPOINT s');
	my $res = $bg->query($sql);
	my $e = $bg->{stderr};
	# the error may arrive after psql's separator: with the next answer
	$bg->query('ROLLBACK TO SAVEPOINT s');
	like($e . $bg->{stderr}, $squat, "$name in a transaction authenticated before: 55000")
	  or diag "result: " . ($res // '');
}
$bg->query('ROLLBACK');
$bg->query('SELECT 1');		# collects a late error message
$bg->{stderr} = '';

is(squatter_becomes_superuser(), 'f', 'the database owner is still not superuser');
is($node->safe_psql('app2', 'SELECT count(*) FROM audiotricks.audit_log'), '0',
	'nothing was written into the planted audit_log');

# renaming it back restores service
$node->safe_psql('app2', q{
DROP SCHEMA audiotricks CASCADE;
ALTER SCHEMA audiotricks_real RENAME TO audiotricks;
});
($ret, $out, $err) = run_as('app', 'app2', q{SELECT count(*) FROM audiotricks.at_login('alice', 'Alice-pass-1')});
is($ret, 0, 'login works again once the schema has its name back') or diag $err;
$bg->query_safe("BEGIN; SELECT audiotricks.at_authenticate('$token')");
is($bg->query_safe('SELECT count(*) FROM audiotricks.at_history_page()'), '1',
	'history works again in a session that saw the squatting');
$bg->query_safe('COMMIT');

# a schema handed to another owner is no longer the extension's own
$node->safe_psql('app2', 'ALTER SCHEMA audiotricks OWNER TO squatter');
($ret, $out, $err) = run_as('app', 'app2', q{SELECT count(*) FROM audiotricks.at_login('alice', 'Alice-pass-1')});
like($err, $squat, 'login fails once the schema belongs to someone else');
$node->safe_psql('app2', 'ALTER SCHEMA audiotricks OWNER TO admin');
($ret, $out, $err) = run_as('app', 'app2', q{SELECT count(*) FROM audiotricks.at_login('alice', 'Alice-pass-1')});
is($ret, 0, 'and works again with its owner back') or diag $err;

$bg->quit;
is(squatter_is_superuser(), 'f', 'the database owner is still not superuser');
$node->stop;
done_testing();
