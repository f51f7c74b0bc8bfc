# test/t/022_keys_log.pl
# Encrypted API keys (src/keys.c) and the server log, with log_statement = all
# and the calls made with bind parameters (pgbench -M extended):
#  - PostgreSQL itself logs bind parameter values (DETAIL: parameters: $1 =
#    ...) unless log_parameter_max_length = 0: shown first, so that the
#    README's required setting is proven necessary, not assumed;
#  - with log_parameter_max_length = 0 (and the default
#    log_parameter_max_length_on_error = 0) neither the API key nor any master
#    key appears in the log: not from statements, parameters, nor errors
#    raised while handling the key.
use strict;
use warnings;
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

my $master = random_hex();
my $node = PostgreSQL::Test::Cluster->new('log');
$node->init;
my $keyfile = File::Spec->rel2abs($node->basedir . '/audiotricks.keys');
{
	my $old = umask(077);
	open(my $fh, '>', $keyfile) or die;
	print $fh "key 1 $master\ncurrent 1\n";
	close($fh);
	umask($old);
	chmod(0600, $keyfile);
}
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'audiotricks'
audiotricks.jwt_secret = 'tap-secret-@{[ 'x' x 40 ]}'
audiotricks.bcrypt_cost = 4
audiotricks.key_file = '$keyfile'
log_statement = 'all'
log_min_error_statement = 'error'
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE app');
$node->safe_psql('app', 'CREATE EXTENSION audiotricks CASCADE');
$node->safe_psql('app', q{SELECT audiotricks.at_register('a@example.com', 'alice', 'Passw0rdA')});
my $token = $node->safe_psql('app', q{SELECT token FROM audiotricks.at_login('alice', 'Passw0rdA')});

my $script = $node->basedir . '/set_get.sql';
open(my $fh, '>', $script) or die;
print $fh q{BEGIN;
SELECT audiotricks.at_authenticate(:token);
SELECT audiotricks.at_set_api_key(:provider, :apikey);
SELECT audiotricks.at_get_api_key(:provider);
SELECT audiotricks.at_decrypt_key(audiotricks.at_encrypt_key(:apikey, :provider), :provider);
COMMIT;
};
close($fh);

# run the script once over the extended protocol (every :var is a $n parameter)
sub run_script
{
	my ($canary, $provider) = @_;
	my ($stdout, $stderr) = ('', '');
	local %ENV = %ENV;
	$ENV{PGHOST} = $node->host;
	$ENV{PGPORT} = $node->port;
	my $ok = IPC::Run::run [ 'pgbench', '-n', '-t', '1', '-M', 'extended', '-f', $script,
		'-D', "token=$token", '-D', "provider=$provider", '-D', "apikey=$canary", 'app' ],
		'>', \$stdout, '2>', \$stderr;
	return ($ok, $stderr);
}

# 1. PostgreSQL's default: bind values are logged
my $canary1 = 'sk-CANARY1-' . substr(random_hex(), 0, 24);
my $pos = -s $node->logfile;
my ($ok) = run_script($canary1, 'openai');
ok($ok, 'pgbench -M extended: set, get, encrypt and decrypt succeed');
my $log = substr(slurp_file($node->logfile), $pos);
like($log, qr/execute [^:]*: SELECT audiotricks\.at_set_api_key\(\$1, \$2\)/,
	'log_statement = all logs the call, with placeholders instead of values');
ok(index($log, $canary1) >= 0,
	'with the default log_parameter_max_length = -1 PostgreSQL logs the bind values (hence the required setting)');

# 2. the documented setting: no bind values in the log
$node->append_conf('postgresql.conf', "log_parameter_max_length = 0\n");
$node->reload;
my $canary2 = 'sk-CANARY2-' . substr(random_hex(), 0, 24);
$pos = -s $node->logfile;
($ok) = run_script($canary2, 'openai');
ok($ok, 'the same calls with log_parameter_max_length = 0');
$log = substr(slurp_file($node->logfile), $pos);
like($log, qr/at_set_api_key\(\$1, \$2\)/, 'the statements are still logged');
ok(index($log, $canary2) < 0, 'the API key is not in the log');

# 3. errors while handling the key: the statement and the values stay out
my $canary3 = 'sk-CANARY3-' . substr(random_hex(), 0, 24);
$pos = -s $node->logfile;
my $err;
($ok, $err) = run_script($canary3, 'no-such-provider');
ok(!$ok, 'an unknown provider fails');
$log = substr(slurp_file($node->logfile), $pos);
like($log, qr/ERROR:  unknown provider/, 'the error is logged');
ok(index($log, $canary3) < 0, 'the API key is not in the log on error');
ok(index($err, $canary3) < 0, 'nor in the message sent to the client');

# a literal in a simple-protocol statement cannot be kept out by the extension
# (log_statement logs it before execution): README says to use bind
# parameters; errors raised by the extension still hide the statement
$pos = -s $node->logfile;
my ($out, $stderr) = ('', '');
$node->psql('app', "SELECT audiotricks.at_encrypt_key('sk-CANARY4', repeat('c', 2000))",
	stdout => \$out, stderr => \$stderr);
$log = substr(slurp_file($node->logfile), $pos);
like($log, qr/ERROR:  context is too long/, 'an error raised with a literal key');
unlike($log, qr/STATEMENT:.*CANARY4/, 'is logged without the statement');

$log = slurp_file($node->logfile);
ok(index($log, $master) < 0, 'the master key never appears in the log');
ok(index(lc($log), lc($master)) < 0, 'not even in another case');

$node->stop;
done_testing();
