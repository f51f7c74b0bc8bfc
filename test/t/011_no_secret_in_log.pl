# test/t/011_no_secret_in_log.pl
# Secrets stay out of the server log and out of non-superusers' sight:
# - with log_min_error_statement = error (and log_statement = 'none'),
#   failed calls that carry a literal password or token (at_login,
#   at_register, at_authenticate, at_change_password, also from PL/pgSQL)
#   are logged without the literal, while an ordinary failing statement
#   is logged with its text (so the check can fail); likewise bind
#   parameters with log_parameter_max_length_on_error = -1;
# - audiotricks.jwt_secret is hidden from a non-superuser (SHOW,
#   current_setting, SHOW ALL, pg_settings, pg_file_settings) and cannot be
#   set per session or per database;
# - rotating the secret never writes a value to the log (src/logscrub.c):
#   a new value in postgresql.conf and a reload (the postmaster logs the
#   change at LOG), a line with a syntax error in the value (the message
#   quotes the token it stopped at), ALTER SYSTEM SET + pg_reload_conf(),
#   with log_statement = 'all', an ALTER SYSTEM that is refused (a newline in
#   the value) and set_config() refused in a session, all with
#   log_min_messages = debug2 (other processes log a syntax error too); the
#   whole log holds no value nor any 16-byte piece of one, and does say that
#   the parameter changed (so the check cannot pass by logging nothing);
# - CREATE EXTENSION without shared_preload_libraries fails with 55000 and a
#   hint naming shared_preload_libraries.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;

my $secret = 'log-tap-secret-' . join('', map { ('a' .. 'z')[ int(rand(26)) ] } 1 .. 40);
my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'audiotricks'
audiotricks.jwt_secret = '$secret'
audiotricks.bcrypt_cost = 4
log_min_error_statement = error
log_statement = 'none'
log_error_verbosity = verbose
log_parameter_max_length_on_error = -1
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION audiotricks CASCADE;
CREATE ROLE app LOGIN IN ROLE audiotricks_user;
});
$node->safe_psql('postgres',
	q{SELECT audiotricks.at_register('alice@example.com', 'alice', 'Alice-pass-1')});
my $token = $node->safe_psql('postgres',
	q{SELECT token FROM audiotricks.at_login('alice', 'Alice-pass-1')});
like($token, qr/^[\w-]+\.[\w-]+\.[\w-]+$/, 'set-up: alice has a token');

# runs SQL as the application role; returns (exit code, stdout, stderr)
sub app_psql
{
	my ($sql) = @_;
	my ($out, $err);
	my $rc = $node->psql('postgres', $sql, stdout => \$out, stderr => \$err,
		extra_params => [ '-U', 'app', '-v', 'VERBOSITY=verbose' ]);
	return ($rc, $out, $err);
}

# ------------------------------------------------------------ the log
my $log_offset = -s $node->logfile;

# each case: [ description, SQL, marker that must not be logged, SQLSTATE ]
my @cases = (
	[ 'failed at_login with a literal password',
	  q{SELECT * FROM audiotricks.at_login('alice', 'Wrong-Pass-Marker-83')},
	  'Wrong-Pass-Marker-83', '28P01' ],
	[ 'failed at_login of an unknown user',
	  q{SELECT * FROM audiotricks.at_login('nobody@example.com', 'Unknown-User-Marker-41')},
	  'Unknown-User-Marker-41', '28P01' ],
	[ 'at_register breaking a password rule',
	  q{SELECT audiotricks.at_register('bob@example.com', 'bob', 'nouppercase-marker-55')},
	  'nouppercase-marker-55', '22023' ],
	[ 'at_register with an over-long password',
	  q{SELECT audiotricks.at_register('bob@example.com', 'bob', 'Long-Marker-1' || repeat('x', 80))},
	  'Long-Marker-1', '22023' ],
	[ 'at_authenticate with a bad literal token',
	  q{SELECT audiotricks.at_authenticate('eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.bad-token-marker-77.c2ln')},
	  'bad-token-marker-77', '28000' ],
	[ 'at_authenticate with a tampered real token',
	  "SELECT audiotricks.at_authenticate('${token}x')",
	  substr($token, -20), '28000' ],
	[ 'at_change_password with a wrong current password',
	  "BEGIN; SELECT audiotricks.at_authenticate('$token') IS NOT NULL;\n"
	  . q{SELECT audiotricks.at_change_password('Wrong-Current-Marker-12', 'New-pass-12');},
	  'Wrong-Current-Marker-12', '28P01' ],
	[ 'at_change_password with a new password breaking a rule',
	  "BEGIN; SELECT audiotricks.at_authenticate('$token') IS NOT NULL;\n"
	  . q{SELECT audiotricks.at_change_password('Alice-pass-1', 'short-marker-34');},
	  'short-marker-34', '22023' ],
	[ 'failed at_login called from PL/pgSQL',
	  q{DO $$ BEGIN PERFORM audiotricks.at_login('alice', 'Do-Block-Marker-19'); END $$},
	  'Do-Block-Marker-19', '28P01' ],
);

for my $c (@cases)
{
	my ($what, $sql, $marker, $state) = @$c;
	my ($rc, $out, $err) = app_psql($sql);
	like($err, qr/ERROR:\s+$state:/, "$what fails with $state");
}
# the control: an ordinary failing statement is logged with its text
my ($crc, $cout, $cerr) = app_psql(q{SELECT 1/0 AS "control-marker-q7"});
like($cerr, qr/division by zero/, 'control statement fails');

# Extended protocol (pgbench -M extended sends :variables as bind
# parameters), with log_parameter_max_length_on_error = -1: the parameters
# of a failed at_login must not be logged either, while those of an
# ordinary failing statement are (the control).
sub pgbench_script
{
	my ($name, $script) = @_;
	my $file = $node->basedir . "/$name.sql";
	open my $fh, '>', $file or die "$file: $!";
	print $fh $script;
	close $fh;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'pgbench', '-n', '-t', '1', '-M', 'extended', '-f', $file,
		'-h', $node->host, '-p', $node->port, '-U', 'app', 'postgres' ],
		'>', \$out, '2>', \$err, IPC::Run::timeout(60));
	return $out . $err;
}
my $bench = pgbench_script('bind_login', qq{SELECT 'Bind-Param-Marker-66' AS pw \\gset
SELECT * FROM audiotricks.at_login('alice', :pw);
});
like($bench, qr/invalid login or password/, 'failed at_login with a bind parameter (extended protocol)');
push @cases, [ 'failed at_login with the password as a bind parameter', '', 'Bind-Param-Marker-66', '' ];
$bench = pgbench_script('bind_control', qq{SELECT 'Ctl-Param-Marker-020' AS m \\gset
SELECT 1 / (length(:m) - 20);
});
like($bench, qr/division by zero/, 'control statement with a bind parameter fails');

my $log = slurp_file($node->logfile, $log_offset);
like($log, qr/parameters: \$1 = 'Ctl-Param-Marker-020'/,
	'control: log_parameter_max_length_on_error logs the parameters of a failing statement');
like($log, qr/STATEMENT:.*control-marker-q7/,
	'control: log_min_error_statement logs the text of a failing statement');
like($log, qr/invalid login or password/, 'the failed logins are in the log');
like($log, qr/invalid or expired token/, 'the bad tokens are in the log');
for my $c (@cases)
{
	my ($what, $sql, $marker) = @$c;
	unlike($log, qr/\Q$marker\E/, "log does not contain the secret of: $what");
}
unlike($log, qr/\Q$token\E/, 'log never contains a real token');
unlike($log, qr/\Q$secret\E/, 'log never contains the JWT secret');

# ------------------------------------------------------------ the setting
my ($rc, $out, $err) = app_psql('SHOW audiotricks.jwt_secret');
like($err, qr/ERROR:\s+42501:/, 'SHOW audiotricks.jwt_secret as non-superuser: 42501');
unlike($out . $err, qr/\Q$secret\E/, '... and no secret in its output');

($rc, $out, $err) = app_psql(q{SELECT current_setting('audiotricks.jwt_secret')});
like($err, qr/ERROR:\s+42501:/, 'current_setting(jwt_secret) as non-superuser: 42501');
($rc, $out, $err) = app_psql(q{SELECT current_setting('audiotricks.jwt_secret', true)});
unlike($out . $err, qr/\Q$secret\E/, 'current_setting(jwt_secret, true) does not reveal it');

($rc, $out, $err) = app_psql('SHOW ALL');
is($rc, 0, 'SHOW ALL works for a non-superuser');
unlike($out, qr/\Q$secret\E/, 'SHOW ALL does not reveal the secret');

($rc, $out, $err) = app_psql(q{SELECT s::text FROM pg_settings s});
ok($rc == 0 && $out =~ /audiotricks\.jwt_role/, 'pg_settings readable and lists audiotricks settings');
unlike($out, qr/\Q$secret\E/, 'pg_settings does not reveal the secret');

($rc, $out, $err) = app_psql(q{SELECT f::text FROM pg_file_settings f});
unlike($out . $err, qr/\Q$secret\E/, 'pg_file_settings does not reveal the secret');

($rc, $out, $err) = app_psql(q{SET audiotricks.jwt_secret = 'a-session-secret-of-at-least-32-bytes!'});
like($err, qr/ERROR:\s+(42501|55P02):/, 'a non-superuser cannot SET the secret');
($rc, $out, $err) = $node->psql('postgres',
	q{ALTER DATABASE postgres SET audiotricks.jwt_secret = 'a-database-secret-of-at-least-32-bytes!'},
	stderr => \$err, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/ERROR:\s+55P02:/, 'not even a superuser can set the secret per database');
is($node->safe_psql('postgres', 'SHOW audiotricks.jwt_secret'), $secret,
	'a superuser can read the secret (the name tested above is the real one)');

# ------------------------------------------------------------ rotation
sub random_secret
{
	my ($tag) = @_;
	return "$tag-" . join('', map { ('a' .. 'z')[ int(rand(26)) ] } 1 .. 40);
}

# waits until the log, from offset on, matches re; returns whether it did
sub log_shows
{
	my ($re, $offset) = @_;
	for (1 .. 600)
	{
		return 1 if slurp_file($node->logfile, $offset) =~ $re;
		select(undef, undef, undef, 0.1);
	}
	return 0;
}

# the superuser sees value once the server has applied it
sub secret_is
{
	my ($value, $what) = @_;
	ok($node->poll_query_until('postgres',
		q{SELECT current_setting('audiotricks.jwt_secret')}, $value), $what);
}

# removes the lines of postgresql.conf that match re
sub drop_conf_lines
{
	my ($re) = @_;
	my $file = $node->data_dir . '/postgresql.conf';
	my @keep = grep { !/$re/ } split /^/, slurp_file($file);
	open my $fh, '>', $file or die "$file: $!";
	print $fh @keep;
	close $fh;
}

my @values = ($secret, 'a-session-secret-of-at-least-32-bytes!',
	'a-database-secret-of-at-least-32-bytes!');
my $changed = qr/parameter "audiotricks\.jwt_secret" changed/;

# All of it with log_min_messages = debug2: other processes (checkpointer,
# walwriter, ...) log what they find in the file at DEBUG2.
my $offset = -s $node->logfile;
$node->append_conf('postgresql.conf', "log_min_messages = debug2\n");
$node->reload;
ok(log_shows(qr/parameter "log_min_messages" changed to "debug2"/, $offset),
	'log_min_messages = debug2 is in effect');

# a new value in postgresql.conf and a reload
$offset = -s $node->logfile;
my $s1 = random_secret('rot-file');
push @values, $s1;
$node->append_conf('postgresql.conf', "audiotricks.jwt_secret = '$s1'\n");
$node->reload;
ok(log_shows(qr/LOG:\s+(\d+: )?$changed/, $offset),
	'reload: the postmaster logs that audiotricks.jwt_secret changed');
secret_is($s1, 'reload: the new secret is in effect');

# a syntax error in the value: the message quotes the token it stopped at
$offset = -s $node->logfile;
my ($pa, $pb) = (random_secret('syn-a'), random_secret('syn-b'));
push @values, $pa, $pb;
$node->append_conf('postgresql.conf', "audiotricks.jwt_secret = $pa $pb\n");
$node->reload;
ok(log_shows(qr/LOG:\s+(\d+: )?syntax error in file "[^"]*postgresql\.conf" line \d+/, $offset),
	'a syntax error in the value is logged with file and line');
ok(log_shows(qr/DEBUG:\s+(\d+: )?syntax error in file "[^"]*postgresql\.conf" line \d+/, $offset),
	'... by the postmaster and, at DEBUG2, by other processes');
secret_is($s1, '... and the secret in effect is unchanged');
drop_conf_lines(qr/syn-a-/);
$node->reload;

# ALTER SYSTEM SET + pg_reload_conf(), with every statement logged
$offset = -s $node->logfile;
my $s2 = random_secret('rot-alter');
my ($na, $nb) = (random_secret('nl-a'), random_secret('nl-b'));
my $s3 = random_secret('set-config');
push @values, $s2, $na, $nb, $s3;
my ($out2, $err2);
$node->psql('postgres', qq{SET log_statement = 'all';
ALTER SYSTEM SET audiotricks.jwt_secret = '$s2';
SELECT pg_reload_conf();
ALTER SYSTEM SET audiotricks.jwt_secret = E'$na\\n$nb';
SELECT set_config('audiotricks.jwt_secret', '$s3', false);
}, stdout => \$out2, stderr => \$err2, on_error_stop => 0);
like($err2, qr/must not contain a newline/, 'ALTER SYSTEM with a newline in the value is refused');
like($err2, qr/cannot be changed now/, 'set_config() of the secret is refused');
ok(log_shows(qr/LOG:\s+(\d+: )?$changed/, $offset),
	'ALTER SYSTEM + pg_reload_conf(): the postmaster logs that it changed');
secret_is($s2, 'ALTER SYSTEM + pg_reload_conf(): the new secret is in effect');
like(slurp_file($node->logfile, $offset), qr/ERROR:.*must not contain a newline/,
	'the refused ALTER SYSTEM is in the log');

# and once more, into postgresql.auto.conf, as DEBUG2 is on
$offset = -s $node->logfile;
my $s4 = random_secret('rot-debug');
push @values, $s4;
$node->safe_psql('postgres', qq{ALTER SYSTEM SET audiotricks.jwt_secret = '$s4'; SELECT pg_reload_conf()});
ok(log_shows(qr/LOG:\s+(\d+: )?$changed/, $offset),
	'debug2: the postmaster logs that audiotricks.jwt_secret changed');
secret_is($s4, 'debug2: the new secret is in effect');
drop_conf_lines(qr/^log_min_messages = debug2/);
$node->reload;

# the whole log: no value, no piece of one
my $whole = slurp_file($node->logfile);
for my $v (@values)
{
	my $tag = substr($v, 0, 12);
	my @leaks = grep { index($whole, substr($v, $_, 16)) >= 0 }
	  grep { $_ % 4 == 0 } 0 .. length($v) - 16;
	is(scalar(@leaks), 0, "the log holds no piece of the value $tag...");
}

# ------------------------------------------------------------ no preload
my $bare = PostgreSQL::Test::Cluster->new('bare');
$bare->init;
$bare->start;
($rc, $out, $err) = $bare->psql('postgres', 'CREATE EXTENSION audiotricks CASCADE',
	stdout => \$out, stderr => \$err, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
isnt($rc, 0, 'CREATE EXTENSION without shared_preload_libraries fails');
like($err, qr/ERROR:\s+55000:/, '... with SQLSTATE 55000');
like($err, qr/HINT:.*shared_preload_libraries/, '... and a hint naming shared_preload_libraries');
is($bare->safe_psql('postgres',
	q{SELECT count(*) FROM pg_extension WHERE extname = 'audiotricks'}), '0',
	'... and leaves nothing installed');

$bare->stop;
$node->stop;
done_testing();
