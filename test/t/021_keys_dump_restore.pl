# test/t/021_keys_dump_restore.pl
# Encrypted API keys (src/keys.c) survive pg_dump / pg_restore only together
# with their key file:
#  - restored into a database of the same cluster (same key file): readable;
#  - into a cluster with a different key under the same id: the clear 55000
#    "key 1 does not match the key that encrypted this value", never garbage;
#  - into a cluster whose key file lacks the id: 55000 "key 1 is not in
#    audiotricks.key_file";
#  - once the original key file is installed there, readable again.
use strict;
use warnings;
use File::Copy;
use File::Spec;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

sub random_hex
{
	open(my $fh, '<:raw', '/dev/urandom') or die "urandom: $!";
	read($fh, my $buf, 32) == 32 or die "short read";
	close($fh);
	return unpack('H*', $buf);
}

sub write_key_file
{
	my ($path, $current, @pairs) = @_;
	my $old = umask(077);
	open(my $fh, '>', $path) or die "$path: $!";
	while (my ($id, $hex) = splice(@pairs, 0, 2))
	{
		print $fh "key $id $hex\n";
	}
	print $fh "current $current\n";
	close($fh);
	umask($old);
	chmod(0600, $path) or die "chmod: $!";
}

sub new_node
{
	my ($name, $current, @pairs) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	my $keyfile = File::Spec->rel2abs($node->basedir . '/audiotricks.keys');
	write_key_file($keyfile, $current, @pairs);
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'audiotricks'
audiotricks.jwt_secret = 'tap-secret-@{[ 'x' x 40 ]}'
audiotricks.bcrypt_cost = 4
audiotricks.key_file = '$keyfile'
log_statement = none
});
	$node->start;
	return ($node, $keyfile);
}

# user i's two keys, read through a fresh login: "openai|elevenlabs", or the error
sub read_keys
{
	my ($node, $db, $i) = @_;
	my ($stdout, $stderr) = ('', '');
	$node->psql($db, qq{\\set VERBOSITY verbose
SELECT token AS t FROM audiotricks.at_login('user$i', 'Passw0rd$i') \\gset
BEGIN;
SELECT audiotricks.at_authenticate(:'t') \\g /dev/null
SELECT audiotricks.at_get_api_key('openai') || '|' || audiotricks.at_get_api_key('elevenlabs');
COMMIT;},
		stdout => \$stdout, stderr => \$stderr);
	return $stderr =~ /^(?:psql:[^:]*:\d+: )?(ERROR:.*)$/m ? $1 : $stdout;
}

my $key = random_hex();
my ($node, $keyfile) = new_node('source', 1, 1 => $key);
$node->safe_psql('postgres', 'CREATE DATABASE app');
$node->safe_psql('app', 'CREATE EXTENSION audiotricks CASCADE');
for my $i (1 .. 5)
{
	$node->safe_psql('app', qq{
SELECT audiotricks.at_register('u$i\@example.com', 'user$i', 'Passw0rd$i');
SELECT token AS t FROM audiotricks.at_login('user$i', 'Passw0rd$i') \\gset
BEGIN;
SELECT audiotricks.at_authenticate(:'t');
SELECT audiotricks.at_set_api_key('openai', 'sk-openai-$i');
SELECT audiotricks.at_set_api_key('elevenlabs', 'el-$i');
COMMIT;});
}
is(read_keys($node, 'app', 3), 'sk-openai-3|el-3', 'source: user3 reads their keys');

my $dump = $node->basedir . '/app.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('app'), '-f', $dump ], 'pg_dump -Fc');

# same cluster, same key file
$node->safe_psql('postgres', 'CREATE DATABASE app2');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('app2'), $dump ],
	'restore into a new database of the same cluster');
my $all = 0;
$all += read_keys($node, 'app2', $_) eq "sk-openai-$_|el-$_" ? 1 : 0 for 1 .. 5;
is($all, 5, 'same key file: every user reads their keys after the restore');

# another cluster, another key under the same id
my ($other, $other_keyfile) = new_node('other', 1, 1 => random_hex());
$other->safe_psql('postgres', 'CREATE DATABASE app');
$other->command_ok([ 'pg_restore', '--exit-on-error', '-d', $other->connstr('app'), $dump ],
	'restore into a cluster with a different key file');
is(read_keys($other, 'app', 3),
	'ERROR:  55000: key 1 does not match the key that encrypted this value',
	'different key under the same id: a clear error, not garbage');
is($other->safe_psql('app', q{SELECT count(*) FROM audiotricks.user_settings
  WHERE openai_api_key_encrypted LIKE 'at1.1.%'}), '5', 'the ciphertexts were restored unchanged');
my ($out, $err) = ('', '');
$other->psql('app', q{\set VERBOSITY verbose
SELECT * FROM audiotricks.at_rotate_api_keys()}, stdout => \$out, stderr => \$err);
like($err, qr/ERROR:  55000: key 1 does not match the key that encrypted this value/,
	'rotation refuses to touch values it cannot authenticate');

# another cluster whose key file lacks the id
my ($third) = new_node('third', 5, 5 => random_hex());
$third->safe_psql('postgres', 'CREATE DATABASE app');
$third->command_ok([ 'pg_restore', '--exit-on-error', '-d', $third->connstr('app'), $dump ],
	'restore into a cluster whose key file lacks key 1');
is(read_keys($third, 'app', 3), 'ERROR:  55000: key 1 is not in audiotricks.key_file',
	'missing key id: a clear error');

# install the source's key file on the other cluster: readable again
copy($keyfile, $other_keyfile) or die "copy: $!";
chmod(0600, $other_keyfile);
$other->reload;
is(read_keys($other, 'app', 3), 'sk-openai-3|el-3', 'with the original key file the keys read again');

my $log = slurp_file($other->logfile) . slurp_file($node->logfile) . slurp_file($third->logfile);
ok(index($log, $key) < 0, 'no master key in any server log');
ok(index($log, 'sk-openai-') < 0, 'no API key in any server log');

$node->stop;
$other->stop;
$third->stop;
done_testing();
