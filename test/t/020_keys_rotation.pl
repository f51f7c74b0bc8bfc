# test/t/020_keys_rotation.pl
# Encrypted API keys (src/keys.c): master-key rotation end to end, and the
# key file's failure modes.
#  - keys stored under key 1; key 2 added as current, reload; new values use
#    key 2; at_rotate_api_keys in batches re-encrypts the rest (skipping a row
#    locked by another session); key 1 removed, reload; every user still reads
#    their keys, and a value left under key 1 fails clearly.
#  - a key file readable by group or others, a malformed, a missing and an
#    unset key file each give 55000 naming audiotricks.key_file at use; the
#    setting cannot be changed by SET; key material never reaches the log.
use strict;
use warnings;
use File::Spec;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

sub random_hex
{
	open(my $fh, '<:raw', '/dev/urandom') or die "urandom: $!";
	read($fh, my $buf, 32) == 32 or die "short read";
	close($fh);
	return unpack('H*', $buf);
}

# write_key_file(path, current, id => hex, ...): mode 0600, replaced atomically
sub write_key_file
{
	my ($path, $current, @pairs) = @_;
	my $tmp = "$path.tmp";
	my $old = umask(077);
	open(my $fh, '>', $tmp) or die "$tmp: $!";
	print $fh "# audiotricks master keys\n";
	while (my ($id, $hex) = splice(@pairs, 0, 2))
	{
		print $fh "key $id $hex\n";
	}
	print $fh "current $current\n";
	close($fh);
	umask($old);
	chmod(0600, $tmp) or die "chmod: $!";
	rename($tmp, $path) or die "rename: $!";
}

# psql_error(node, db, sql): the "ERROR:  SQLSTATE: message" line, or ''
sub psql_error
{
	my ($node, $db, $sql) = @_;
	my ($stdout, $stderr) = ('', '');
	$node->psql($db, "\\set VERBOSITY verbose\n$sql", stdout => \$stdout, stderr => \$stderr);
	return $stderr =~ /^(?:psql:[^:]*:\d+: )?(ERROR:.*)$/m ? $1 : '';
}

my $k1 = random_hex();
my $k2 = random_hex();

my $node = PostgreSQL::Test::Cluster->new('rotation');
$node->init;
my $keyfile = File::Spec->rel2abs($node->basedir . '/audiotricks.keys');
write_key_file($keyfile, 1, 1 => $k1);
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'audiotricks'
audiotricks.jwt_secret = 'tap-secret-@{[ 'x' x 40 ]}'
audiotricks.bcrypt_cost = 4
audiotricks.key_file = '$keyfile'
log_statement = none
log_min_messages = info
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE app');
$node->safe_psql('app', 'CREATE EXTENSION audiotricks CASCADE');

my $nusers = 20;
my %token;
for my $i (1 .. $nusers)
{
	$node->safe_psql('app',
		"SELECT audiotricks.at_register('u$i\@example.com', 'user$i', 'Passw0rd$i')");
	$token{$i} = $node->safe_psql('app',
		"SELECT token FROM audiotricks.at_login('user$i', 'Passw0rd$i')");
}

# as user i, in one transaction
sub as_user
{
	my ($i, $sql) = @_;
	return $node->safe_psql('app',
		"BEGIN; SELECT audiotricks.at_authenticate('$token{$i}') \\g /dev/null\n$sql; COMMIT;");
}

for my $i (1 .. $nusers)
{
	as_user($i, "SELECT audiotricks.at_set_api_key('openai', 'sk-openai-user$i')");
	as_user($i, "SELECT audiotricks.at_set_api_key('elevenlabs', 'el-user$i')") if $i % 2 == 0;
}
my $raw_under_1 = $node->safe_psql('app', "SELECT audiotricks.at_encrypt_key('raw secret')");

my $count_by_key = q{SELECT string_agg(k || ':' || n, ',' ORDER BY k) FROM (
  SELECT split_part(v, '.', 2) AS k, count(*) AS n FROM audiotricks.user_settings,
    LATERAL (VALUES (openai_api_key_encrypted), (elevenlabs_api_key_encrypted)) t(v)
  WHERE v IS NOT NULL GROUP BY 1) s};
is($node->safe_psql('app', $count_by_key), '1:30', '30 values stored under key 1');

# a long-lived session (a pooled connection) that has already loaded the keys
my $kid_sql = q{SELECT split_part(audiotricks.at_encrypt_key('x'), '.', 2)};
my $long = $node->background_psql('app');
is($long->query_safe($kid_sql), '1', 'a long-lived session encrypts under key 1');

# add key 2 as current; reload
write_key_file($keyfile, 2, 1 => $k1, 2 => $k2);
$node->reload;
my $kid = '';
for (1 .. 50)
{
	$kid = $long->query_safe($kid_sql);
	last if $kid eq '2';
	usleep(100_000);
}
is($kid, '2', 'the long-lived session uses key 2 after the reload, without reconnecting');
$long->quit;
as_user(1, "SELECT audiotricks.at_set_api_key('openai', 'sk-openai-user1-new')");
is($node->safe_psql('app', $count_by_key), '1:29,2:1', 'a value set after the reload uses key 2');
is(as_user(3, "SELECT audiotricks.at_get_api_key('openai')"), 'sk-openai-user3',
	'values under key 1 still read while both keys are present');

# rotate in batches of 4 rows, while another session holds one row locked
my $locked_user = $node->safe_psql('app',
	q{SELECT user_id FROM audiotricks.user_settings s JOIN audiotricks.users u ON u.id = s.user_id
	  WHERE u.username = 'user2'});
my $locker = $node->background_psql('app');
$locker->query_safe('BEGIN');
is($locker->query_safe("SELECT 'locked' FROM audiotricks.user_settings WHERE user_id = '$locked_user' FOR UPDATE"),
	'locked', 'another session holds user2\'s row');

my $first = $node->safe_psql('app', 'SELECT rotated || \',\' || remaining FROM audiotricks.at_rotate_api_keys(4)');
my ($r1, $rem1) = split /,/, $first;
ok($r1 > 0 && $r1 <= 8, "a batch of 4 rows rotates 1 to 8 values (got $r1)");
is($rem1, 29 - $r1, 'remaining counts the values still under key 1');

my $total = $r1;
my $rounds = 1;
my $remaining = $rem1;
while ($rounds < 50)
{
	my ($r, $rem) = split /,/, $node->safe_psql('app',
		'SELECT rotated || \',\' || remaining FROM audiotricks.at_rotate_api_keys(4)');
	$rounds++;
	$total += $r;
	$remaining = $rem;
	last if $r == 0;
}
is($remaining, 2, 'with user2\'s row locked, its 2 values remain (skipped, not waited for)');
is($total, 27, 'every other value was rotated');

$locker->query_safe('COMMIT');
$locker->quit;
is($node->safe_psql('app', 'SELECT rotated || \',\' || remaining FROM audiotricks.at_rotate_api_keys()'),
	'2,0', 'after the lock is released the last 2 values rotate');
is($node->safe_psql('app', $count_by_key), '2:30', 'all 30 values are under key 2');
is($node->safe_psql('app', 'SELECT rotated || \',\' || remaining FROM audiotricks.at_rotate_api_keys()'),
	'0,0', 'rotating again changes nothing');

# remove key 1; reload
write_key_file($keyfile, 2, 2 => $k2);
$node->reload;
my $ok = 0;
for my $i (1 .. $nusers)
{
	my $want = $i == 1 ? 'sk-openai-user1-new' : "sk-openai-user$i";
	my $got = as_user($i, "SELECT audiotricks.at_get_api_key('openai') || '|' || coalesce(audiotricks.at_get_api_key('elevenlabs'), '')");
	$ok++ if $got eq $want . '|' . ($i % 2 == 0 ? "el-user$i" : '');
}
is($ok, $nusers, 'after removing key 1 every user reads their keys');
is(psql_error($node, 'app', "SELECT audiotricks.at_decrypt_key('$raw_under_1')"),
	'ERROR:  55000: key 1 is not in audiotricks.key_file',
	'a value left under the removed key fails clearly');

# ---------------------------------------------------------------------
# the key file's failure modes: 55000 naming the setting, at use
# ---------------------------------------------------------------------
my $use = q{SELECT audiotricks.at_encrypt_key('x')};
chmod(0640, $keyfile);
is(psql_error($node, 'app', $use),
	'ERROR:  55000: audiotricks.key_file must not be accessible by group or others',
	'a key file readable by the group is refused');
chmod(0604, $keyfile);
is(psql_error($node, 'app', $use),
	'ERROR:  55000: audiotricks.key_file must not be accessible by group or others',
	'a key file readable by others is refused');
chmod(0600, $keyfile);
is(psql_error($node, 'app', $use), '', 'mode 0600 works again');

open(my $fh, '>', $keyfile) or die;
print $fh "key 2 $k2 extra\ncurrent 2\n";
close($fh);
chmod(0600, $keyfile);
is(psql_error($node, 'app', $use), 'ERROR:  55000: audiotricks.key_file is malformed',
	'a malformed key file is refused');
write_key_file($keyfile, 3, 2 => $k2);
is(psql_error($node, 'app', $use), 'ERROR:  55000: audiotricks.key_file is malformed',
	'a current key that is not in the file is refused');
write_key_file($keyfile, 2, 2 => $k2);

$node->append_conf('postgresql.conf', "audiotricks.key_file = '$keyfile.missing'\n");
$node->reload;
is(psql_error($node, 'app', $use), 'ERROR:  55000: audiotricks.key_file could not be read',
	'a missing key file is refused');
$node->append_conf('postgresql.conf', "audiotricks.key_file = ''\n");
$node->reload;
is(psql_error($node, 'app', $use), 'ERROR:  55000: audiotricks.key_file is not set',
	'an unset key file is refused');
is(psql_error($node, 'app', "BEGIN; SELECT audiotricks.at_authenticate('$token{3}'); SELECT audiotricks.at_get_api_key('openai');"),
	'ERROR:  55000: audiotricks.key_file is not set', 'at_get_api_key names the setting too');
$node->append_conf('postgresql.conf', "audiotricks.key_file = '$keyfile'\n");
$node->reload;
is(psql_error($node, 'app', $use), '', 'the key file is back');

like(psql_error($node, 'app', "SET audiotricks.key_file = '/tmp/x'"),
	qr/^ERROR:  55P02: parameter "audiotricks.key_file" cannot be changed now/,
	'the key file cannot be set by SET, only in the server configuration');
like(psql_error($node, 'app', "ALTER DATABASE app SET audiotricks.key_file = '/tmp/x'"),
	qr/^ERROR:  55P02: /, 'nor per database');

# non-superusers: no way to the key file's contents or path
$node->safe_psql('app', 'CREATE ROLE regress_tap_app LOGIN; GRANT audiotricks_user TO regress_tap_app;');
for my $sql ("SELECT pg_read_file('$keyfile')",
	"SELECT pg_read_binary_file('$keyfile')",
	"COPY (SELECT 1) TO '/tmp/x'",
	"CREATE TEMP TABLE t (l text); COPY t FROM '$keyfile'",
	"SHOW audiotricks.key_file",
	"SELECT audiotricks.at_decrypt_key('$raw_under_1')")
{
	like(psql_error($node, 'app', "SET ROLE regress_tap_app; $sql"), qr/^ERROR:  42501: /,
		"non-superuser: $sql is denied");
}
is($node->safe_psql('app', q{SET ROLE regress_tap_app;
  SELECT count(*) FROM pg_settings WHERE name = 'audiotricks.key_file'}), '0',
	'non-superuser: the key file is not in pg_settings');

# key material never reached the server log
my $log = slurp_file($node->logfile);
ok(index($log, $k1) < 0 && index($log, $k2) < 0, 'no master key in the server log');
ok(index($log, 'sk-openai-user') < 0, 'no API key in the server log');
like($log, qr/DETAIL:  line 1: expected "key <id> <64 hex digits>"/,
	'the server log says which line of the key file is wrong');

$node->stop;
done_testing();
