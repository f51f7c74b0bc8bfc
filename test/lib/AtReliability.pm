# test/lib/AtReliability.pm — shared by the reliability TAP tests (030-039).
#
# Nodes configured for audiotricks (preloaded, a fixed JWT secret, bcrypt cost
# 4, and a master-key file), the mixed
# pgbench workload and its setup, and small query helpers.
package AtReliability;

use strict;
use warnings;
use Exporter 'import';
use File::Spec;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(at_node at_have_api_keys at_write_key_file
  at_bench_setup at_bench_scripts at_sqlstate at_integrity_sql);

our $SECRET = 'reliability-secret-' . ('0123456789' x 4);
our $PASSWORD = 'Passw0rdA';

# at_write_key_file(PATH): two master keys, the second current, mode 0600
sub at_write_key_file
{
	my ($path) = @_;
	my @hex = map { join '', map { sprintf '%02x', int(rand(256)) } 1 .. 32 } 1 .. 2;
	open my $fh, '>', $path or die "$path: $!";
	print $fh "# audiotricks master keys (reliability tests)\n";
	print $fh "key 1 $hex[0]\nkey 2 $hex[1]\ncurrent 2\n";
	close $fh;
	chmod 0600, $path or die "chmod $path: $!";
	return $path;
}

# at_node(NAME, key_file => PATH, secret => S, allows_streaming => 1,
#         has_archiving => 1, extra_conf => TEXT): an initialised node (not
#         started)
sub at_node
{
	my ($name, %opt) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => $opt{allows_streaming} ? 1 : 0,
		has_archiving => $opt{has_archiving} ? 1 : 0);
	my $secret = $opt{secret} // $SECRET;
	my $conf = qq{
shared_preload_libraries = 'audiotricks'
audiotricks.jwt_secret = '$secret'
audiotricks.bcrypt_cost = 4
max_connections = 60
log_min_error_statement = error
};
	# absolute: the server resolves a relative path from its data directory
	my $kf = $opt{key_file}
	  // at_write_key_file(File::Spec->rel2abs($node->basedir . '/master.keys'));
	$conf .= "audiotricks.key_file = '$kf'\n";
	# the archive by absolute path (Cluster.pm's is relative without TESTDIR)
	$conf .= sprintf(qq{archive_command = 'cp "%%p" "%s/%%f"'\n},
		File::Spec->rel2abs($node->archive_dir)) if $opt{has_archiving};
	$node->{at_key_file} = $kf;
	$conf .= $opt{extra_conf} if $opt{extra_conf};
	$node->append_conf('postgresql.conf', $conf);
	return $node;
}

# at_have_api_keys(NODE, DB): the API-key functions are installed there
sub at_have_api_keys
{
	my ($node, $db) = @_;
	return $node->safe_psql($db,
		q{SELECT to_regprocedure('audiotricks.at_set_api_key(text,text)') IS NOT NULL}) eq 't';
}

# at_sqlstate(NODE, DB, SQL, ROLE): (exit code, SQLSTATE or '', stderr)
sub at_sqlstate
{
	my ($node, $db, $sql, $role) = @_;
	my ($ret, $out, $err) = $node->psql($db, "\\set VERBOSITY verbose\n$sql",
		on_error_stop => 1, extra_params => [ '-U', $role // 'postgres' ]);
	my ($state) = ($err // '') =~ /ERROR:\s+([0-9A-Z]{5}):/;
	return ($ret, $state // '', $err // '');
}

# Rows that would be half-done work: each count must be 0.
sub at_integrity_sql
{
	return q{SELECT
  (SELECT count(*) FROM audiotricks.users u
    WHERE (SELECT count(*) FROM audiotricks.user_settings s WHERE s.user_id = u.id) <> 1)
  || ',' || (SELECT count(*) FROM audiotricks.user_settings s
    WHERE NOT EXISTS (SELECT FROM audiotricks.users u WHERE u.id = s.user_id))
  || ',' || (SELECT count(*) FROM audiotricks.sessions s
    WHERE NOT EXISTS (SELECT FROM audiotricks.users u WHERE u.id = s.user_id))
  || ',' || (SELECT count(*) FROM audiotricks.audio_history h
    WHERE NOT EXISTS (SELECT FROM audiotricks.users u WHERE u.id = h.user_id))};
}

# at_bench_setup(NODE, DB, USERS, HISTORY_PER_USER): an application role
# "app", USERS registered users (bench<i>), one live token each in
# bench.tokens, their logins (email or username, mixed case) in bench.logins,
# HISTORY_PER_USER history entries each, and an OpenAI key each.
sub at_bench_setup
{
	my ($node, $db, $users, $per_user) = @_;
	$node->safe_psql($db, qq{
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app') THEN CREATE ROLE app LOGIN; END IF;
END \$\$;
GRANT audiotricks_user TO app;
CREATE SCHEMA bench;
GRANT USAGE ON SCHEMA bench TO app;
CREATE TABLE bench.tokens (i int PRIMARY KEY, user_id uuid NOT NULL, token text NOT NULL);
CREATE TABLE bench.logins (i int PRIMARY KEY, login text NOT NULL);
CREATE SEQUENCE bench.reg_seq;
GRANT SELECT ON bench.tokens, bench.logins TO app;
GRANT USAGE ON SEQUENCE bench.reg_seq TO app;
SELECT count(audiotricks.at_register('bench' || i || '\@example.com', 'bench' || i, '$PASSWORD'))
  FROM generate_series(1, $users) i;
INSERT INTO bench.logins
  SELECT i, CASE WHEN i % 2 = 0 THEN 'Bench' || i ELSE 'BENCH' || i || '\@Example.com' END
  FROM generate_series(1, $users) i;
INSERT INTO bench.tokens
  SELECT i, l.user_id, l.token FROM generate_series(1, $users) i,
    LATERAL audiotricks.at_login('bench' || i, '$PASSWORD') l;
INSERT INTO audiotricks.audio_history (user_id, title, transcript, summary, created_at)
  SELECT t.user_id, 'seed talk ' || g, 'seed words number ' || g || ' about audio',
         'summary ' || g, now() - g * interval '1 minute'
  FROM bench.tokens t, generate_series(1, $per_user) g;
});
	# each user stores a key under their own identity (one transaction each)
	$node->safe_psql($db, join "\n", map {
		"BEGIN; SELECT audiotricks.at_authenticate(token) FROM bench.tokens WHERE i = $_;"
		  . " SELECT audiotricks.at_set_api_key('openai', 'sk-seed-$_'); COMMIT;" } 1 .. $users);
	return;
}

# at_bench_scripts(DIR, USERS): writes the mixed workload's pgbench
# scripts and returns the -f arguments (with weights).  Every script is one
# transaction that cannot fail by design (unique names from a sequence, only
# correct passwords, logout of the session it just created, bench tokens are
# never logged out), so any error at all is a bug; a wrong answer is turned
# into a division by zero, so it counts as an error too.  Run with
# -M prepared: the token goes from one statement to the next as a bind
# parameter.
sub at_bench_scripts
{
	my ($dir, $users) = @_;
	my %scripts = (
		register => [ 1, qq{SELECT nextval('bench.reg_seq') AS n \\gset
SELECT audiotricks.at_register('reg' || :n || '\@example.com', 'reg' || :n, '$PASSWORD');
} ],
		login_logout => [ 2, qq{\\set i random(1, $users)
BEGIN;
SELECT token FROM audiotricks.at_login((SELECT login FROM bench.logins WHERE i = :i), '$PASSWORD') \\gset
SELECT audiotricks.at_authenticate(:token) IS NOT NULL AS ok;
SELECT 1 / audiotricks.at_logout(:token)::int AS logged_out;
END;
} ],
		read => [ 6, qq{\\set i random(1, $users)
BEGIN;
SELECT audiotricks.at_authenticate((SELECT token FROM bench.tokens WHERE i = :i));
SELECT audiotricks.at_current_user_id();
SELECT count(*) FROM audiotricks.at_history_page(20);
SELECT count(*) FROM audiotricks.at_history_search('seed words', 10);
END;
} ],
		history_add => [ 3, qq{\\set i random(1, $users)
\\set r random(1, 1000000)
BEGIN;
SELECT audiotricks.at_authenticate((SELECT token FROM bench.tokens WHERE i = :i));
SELECT audiotricks.at_history_add(title => 'bench entry ' || :r, transcript => 'bench words ' || :r,
  duration_seconds => :r % 3600, processing_options => '{"language": "en", "model": "whisper-1"}');
END;
} ],
	);
	$scripts{api_key} = [ 2, qq{\\set i random(1, $users)
\\set r random(1, 1000000)
BEGIN;
SELECT audiotricks.at_authenticate((SELECT token FROM bench.tokens WHERE i = :i));
SELECT audiotricks.at_set_api_key('openai', 'sk-bench-' || :r);
SELECT 1 / (audiotricks.at_get_api_key('openai') = ('sk-bench-' || :r))::int AS same_key;
END;
} ];
	my @args;
	for my $name (sort keys %scripts)
	{
		my $file = "$dir/$name.sql";
		open my $fh, '>', $file or die "$file: $!";
		print $fh $scripts{$name}[1];
		close $fh;
		push @args, '-f', "$file\@$scripts{$name}[0]";
	}
	return @args;
}

1;
