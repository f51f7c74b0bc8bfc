# test/t/002_settings.pl
# Settings that must come from the server configuration: a call that needs
# audiotricks.jwt_secret fails with 55000 naming it when it is missing or
# shorter than 32 bytes, works after a reload that sets it, and the secret
# is never shown to a non-superuser.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('settings');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'audiotricks'
audiotricks.bcrypt_cost = 4
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION audiotricks CASCADE');
$node->safe_psql('postgres',
	q{SELECT audiotricks.at_register('a@example.com', 'alice', 'Passw0rdA')});

sub sqlstate_of
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres',
		"\\set VERBOSITY verbose\n$sql", on_error_stop => 1);
	return ($ret, $err);
}

# no secret at all
my ($ret, $err) = sqlstate_of(q{SELECT * FROM audiotricks.at_login('alice', 'Passw0rdA')});
isnt($ret, 0, 'login without a secret fails');
like($err, qr/55000/, 'missing secret is SQLSTATE 55000');
like($err, qr/audiotricks\.jwt_secret is not set/, 'the error names the setting');
($ret, $err) = sqlstate_of(q{SELECT audiotricks.at_authenticate('x.y.z')});
like($err, qr/55000.*audiotricks\.jwt_secret/s, 'authenticate without a secret: 55000 naming it');

# too short a secret counts as not set
$node->append_conf('postgresql.conf', "audiotricks.jwt_secret = 'only-31-bytes-long-xxxxxxxxxxx'\n");
$node->reload;
($ret, $err) = sqlstate_of(q{SELECT * FROM audiotricks.at_login('alice', 'Passw0rdA')});
like($err, qr/55000.*audiotricks\.jwt_secret is not set/s, 'a 31-byte secret counts as not set');

# a proper secret, by reload: works
my $secret = 'a-proper-secret-of-more-than-32-bytes-' . int(rand(1e9));
$node->append_conf('postgresql.conf', "audiotricks.jwt_secret = '$secret'\n");
$node->reload;
is($node->safe_psql('postgres',
	q{SELECT count(*) FROM audiotricks.at_login('alice', 'Passw0rdA')}), '1',
	'login works after the secret is set and reloaded');

# a token verified (and cached) by a backend stops working in that same
# backend once the secret changes
my $bg = $node->background_psql('postgres', on_error_stop => 0);
my $tok = $node->safe_psql('postgres',
	q{SELECT token FROM audiotricks.at_login('alice', 'Passw0rdA')});
like($bg->query_safe("SELECT audiotricks.at_authenticate('$tok') IS NOT NULL"), qr/^t$/m,
	'token accepted (and cached) before the secret changes');
$node->append_conf('postgresql.conf', "audiotricks.jwt_secret = '${secret}-rotated'\n");
$node->reload;
$bg->query_safe('SELECT pg_sleep(0.2)');
my $after = $bg->query("SELECT audiotricks.at_authenticate('$tok') IS NOT NULL");
unlike($after // '', qr/^t$/m, 'the same backend refuses the token after the secret changed');
like($bg->{stderr}, qr/invalid or expired token/, 'with 28000 invalid or expired token');
$bg->quit;

# cannot be set per session, per database or per role
($ret, $err) = sqlstate_of(q{SET audiotricks.jwt_secret = 'x'});
like($err, qr/55P02/, 'SET of the secret is refused');
($ret, $err) = sqlstate_of(q{ALTER DATABASE postgres SET audiotricks.jwt_secret = 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'});
isnt($ret, 0, 'ALTER DATABASE SET of the secret is refused');

# hidden from non-superusers
$node->safe_psql('postgres', 'CREATE ROLE plain LOGIN; GRANT audiotricks_user TO plain');
my ($r2, $out2, $err2) = $node->psql('postgres', 'SHOW audiotricks.jwt_secret',
	extra_params => [ '-U', 'plain' ]);
isnt($r2, 0, 'SHOW of the secret fails for a non-superuser');
unlike($out2 . $err2, qr/\Q$secret\E/, 'SHOW does not reveal the secret');
is($node->safe_psql('postgres',
	q{SELECT count(*) FROM pg_settings WHERE name = 'audiotricks.jwt_secret'},
	extra_params => [ '-U', 'plain' ]), '0', 'pg_settings hides the secret from non-superusers');
($r2, $out2, $err2) = $node->psql('postgres',
	q{SELECT current_setting('audiotricks.jwt_secret')}, extra_params => [ '-U', 'plain' ]);
unlike($out2 . $err2, qr/\Q$secret\E/, 'current_setting does not reveal the secret');
is($node->safe_psql('postgres',
	q{SELECT count(*) FROM pg_settings WHERE name LIKE 'audiotricks.%' AND setting LIKE '%} . $secret . q{%'},
	extra_params => [ '-U', 'plain' ]), '0', 'no setting shows the secret to non-superusers');

# a typo in an audiotricks.* setting is reported, not silently kept as a placeholder
($ret, $err) = sqlstate_of(q{SET audiotricks.jwt_secrte = 'x'});
isnt($ret, 0, 'unknown audiotricks.* settings are refused (prefix reserved)');

$node->stop;
done_testing();
