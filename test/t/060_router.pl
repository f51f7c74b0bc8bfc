# test/t/060_router.pl
# Past one machine: three shard servers, each holding audiotricks and
# audiotricks_shard, behind one pgbouncer in transaction mode (a pool of at
# most 2 server connections per shard), and a router server holding
# audiotricks_router (PL/Proxy) that clients call as an application role.
#
# Starts with two shards, registers a few users, adds the third shard (new
# users go there at once), registers 300 users in all through the router and
# checks that every shard holds at least 20% of them, that each shard holds
# exactly the users the directory places there, and that a user's rows live
# on one shard only.  Runs the client flow (register, login, settings, API
# key, history add/page/search/delete, logout) through the router; a token
# sent straight to another shard is refused there; duplicate emails and
# usernames are refused across shards; an unknown login answers like a wrong
# password; weights steer new users; at_repair removes a user a failed
# registration left on a shard; the router's log holds no password or token;
# the shards see at most the pool's connections from the router.  Then one
# shard is stopped: only its users' calls fail, the others' work in the same
# router session, and after a restart its users work again.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use AtReliability;

my $PGBOUNCER = '/usr/sbin/pgbouncer';
plan skip_all => "$PGBOUNCER not installed" unless -x $PGBOUNCER;
my $sharedir = `pg_config --sharedir`;
chomp $sharedir;
plan skip_all => 'PL/Proxy (postgresql-15-plproxy) not installed'
  unless -f "$sharedir/extension/plproxy.control";

my $PW = $AtReliability::PASSWORD;
my $POOL = 2;								# server connections per shard

# ------------------------------------------------------------ shards
my @shard;
for my $i (0 .. 2)
{
	my $n = at_node("shard$i");
	$n->start;
	$n->safe_psql('postgres', qq{
CREATE DATABASE app;
CREATE ROLE rconn LOGIN;
});
	$n->safe_psql('app', q{
CREATE EXTENSION audiotricks CASCADE;
CREATE EXTENSION audiotricks_shard;
GRANT audiotricks_router TO rconn;
});
	push @shard, $n;
}
is($shard[0]->safe_psql('app',
	q{SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = 'rconn'}),
	'f', "the router's role on the shards is neither superuser nor BYPASSRLS");

# ------------------------------------------------------------ pgbouncer
my $bdir = $shard[0]->basedir . '/pgbouncer';
mkdir $bdir or die "mkdir $bdir: $!";
my $bport = PostgreSQL::Test::Cluster::get_free_port();
open my $fh, '>', "$bdir/userlist.txt" or die;
print $fh qq{"rconn" ""\n"postgres" ""\n};
close $fh;
my $dbs = join '', map {
	sprintf "s%d = host=%s port=%d dbname=app\n", $_, $shard[$_]->host, $shard[$_]->port
} 0 .. 2;
open $fh, '>', "$bdir/pgbouncer.ini" or die;
print $fh <<"EOF";
[databases]
$dbs
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bport
unix_socket_dir =
auth_type = trust
auth_file = $bdir/userlist.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = $POOL
max_db_connections = $POOL
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 200
server_login_retry = 1
server_connect_timeout = 3
; a client waits at most this long for a server connection (default 120 s)
query_wait_timeout = 10
logfile = $bdir/pgbouncer.log
pidfile = $bdir/pgbouncer.pid
EOF
close $fh;
my ($bout, $berr) = ('', '');
my $bouncer = IPC::Run::start([ $PGBOUNCER, "$bdir/pgbouncer.ini" ], '>', \$bout, '2>', \$berr);
END { $bouncer->kill_kill if $bouncer && $bouncer->pumpable; }
my $up = 0;
for (1 .. 300)
{
	my ($o, $e) = ('', '');
	IPC::Run::run([ 'psql', '-X', '-A', '-t', '-h', '127.0.0.1', '-p', $bport, '-U', 'rconn',
		'-d', 's0', '-c', 'SELECT 1' ], '>', \$o, '2>', \$e);
	if ($o =~ /^1$/m) { $up = 1; last; }
	select(undef, undef, undef, 0.1);
}
ok($up, 'pgbouncer accepts connections') or BAIL_OUT("pgbouncer did not start: $berr");

# ------------------------------------------------------------ router
my $router = PostgreSQL::Test::Cluster->new('router');
$router->init;
$router->append_conf('postgresql.conf', "log_min_error_statement = error\nlog_statement = none\n");
$router->start;
$router->safe_psql('postgres', q{
CREATE DATABASE router;
CREATE ROLE app LOGIN;
});
$router->safe_psql('router', q{
CREATE EXTENSION audiotricks_router CASCADE;
GRANT audiotricks_user TO app;
});
sub conninfo { "host=127.0.0.1 port=$bport dbname=s$_[0] user=rconn connect_timeout=5" }
is($router->safe_psql('router',
	"SELECT audiotricks_router.at_add_shard('" . conninfo(0) . "'), audiotricks_router.at_add_shard('"
	  . conninfo(1) . "')"), '0|1', 'two shards added');

sub rq { my ($sql) = @_; return $router->safe_psql('router', $sql, extra_params => [ '-U', 'app' ]); }
sub rstate { my ($sql) = @_; return at_sqlstate($router, 'router', $sql, 'app'); }
sub su { my ($sql) = @_; return $router->safe_psql('router', $sql); }

sub register_sql
{
	my ($from, $to) = @_;
	return join "\n", map {
		"SELECT audiotricks.at_register('user$_\@example.com', 'user$_', '$PW');" } $from .. $to;
}
rq(register_sql(1, 6));
is(su(q{SELECT count(*) FILTER (WHERE shard = 2), count(*) FROM audiotricks_router.directory}),
	'0|6', 'six users on the first two shards');
is(su("SELECT audiotricks_router.at_add_shard('" . conninfo(2) . "')"), '2', 'third shard added');
rq(register_sql(7, 300));

my @per = split /\n/, su(q{SELECT count(*) FROM audiotricks_router.directory
  WHERE user_id IS NOT NULL GROUP BY shard ORDER BY shard});
is(scalar(@per), 3, '300 users over 3 shards');
is(eval { my $s = 0; $s += $_ for @per; $s }, 300, 'all 300 registered');
ok($_ >= 60, "a shard holds $_ of 300 (at least 20%)") for @per;
note "users per shard: @per";

# each shard holds exactly the users the directory places there
for my $i (0 .. 2)
{
	my $dir = su("SELECT string_agg(user_id::text, ',' ORDER BY user_id) FROM audiotricks_router.directory WHERE shard = $i");
	my $has = $shard[$i]->safe_psql('app', q{SELECT string_agg(id::text, ',' ORDER BY id) FROM audiotricks.users});
	is($has, $dir, "shard $i holds exactly its directory users");
}

# ------------------------------------------------------------ client flow
my $flow_id = rq(qq{SELECT audiotricks.at_register('Flow\@Example.com', 'FlowUser', '$PW')});
like($flow_id, qr/^[0-9a-f-]{36}$/, 'register through the router');
my $fs = su("SELECT shard FROM audiotricks_router.directory WHERE user_id = '$flow_id'");
my ($tok, $uid) = split /\|/, rq(qq{SELECT token, user_id FROM audiotricks.at_login('flowuser', '$PW')});
is($uid, $flow_id, 'login by username (another case) through the router');
my ($tok2) = split /\|/, rq(qq{SELECT token FROM audiotricks.at_login('FLOW\@example.com', '$PW')});
ok($tok2 && $tok2 ne $tok, 'login by email through the router');

is(rq(qq{SELECT summary_quality FROM audiotricks.at_update_settings('$tok', summary_quality => 'detailed', preferred_language => 'de')}),
	'detailed', 'settings updated');
is(rq(qq{SELECT preferred_language || ',' || summary_quality FROM audiotricks.at_get_settings('$tok')}),
	'de,detailed', 'settings read back');
rq(qq{SELECT audiotricks.at_set_api_key('$tok', 'openai', 'sk-router-secret-9876')});
is(rq(qq{SELECT audiotricks.at_get_api_key('$tok', 'openai')}), 'sk-router-secret-9876', 'API key set and read');
is(rq(qq{SELECT string_agg(provider || ':' || is_set || ':' || coalesce(last4, '-') || ':' || (set_at IS NOT NULL), ',' ORDER BY provider)
           FROM audiotricks.at_api_key_status('$tok')}),
	'elevenlabs:false:-:false,openai:true:9876:true', 'API key status through the router: set, last 4, when; never the key');

my @ids = map {
	rq(qq{SELECT audiotricks.at_history_add('$tok', title => 'talk $_', transcript => 'words about topic$_ and more')})
} 1 .. 5;
is(scalar(grep { /^[0-9a-f-]{36}$/ } @ids), 5, 'five history entries added');
my @p1 = split /\n/, rq(qq{SELECT title || '|' || cursor FROM audiotricks.at_history_page('$tok', 3)});
is(join(',', map { (split /\|/)[0] } @p1), 'talk 5,talk 4,talk 3', 'page 1, newest first');
my $cur = (split /\|/, $p1[-1])[1];
is(rq(qq{SELECT string_agg(title, ',') FROM audiotricks.at_history_page('$tok', 3, '$cur')}),
	'talk 2,talk 1', 'page 2 after the cursor');
is(rq(qq{SELECT string_agg(title, ',') FROM audiotricks.at_history_search('$tok', 'topic3')}),
	'talk 3', 'search');
is(rq(qq{SELECT audiotricks.at_history_delete('$tok', '$ids[2]')}), 't', 'delete an entry');
is(rq(qq{SELECT audiotricks.at_history_delete('$tok', '$ids[2]')}), 'f', 'deleting it again finds nothing');
is(rq(qq{SELECT audiotricks.at_history_count('$tok')}), '4', 'four entries left');
my ($ret, $st) = rstate(qq{SELECT * FROM audiotricks.at_history_page('$tok', 101)});
is($st, '22023', 'page size 101 refused by the shard, SQLSTATE unchanged');
($ret, $st) = rstate(qq{SELECT * FROM audiotricks.at_history_page('$tok', 3, 'not-a-cursor')});
is($st, '22023', 'malformed cursor refused');

# the user's rows live on exactly one shard
for my $i (0 .. 2)
{
	my $n = $shard[$i]->safe_psql('app', qq{SELECT
  (SELECT count(*) FROM audiotricks.users WHERE id = '$flow_id') || ',' ||
  (SELECT count(*) FROM audiotricks.audio_history WHERE user_id = '$flow_id') || ',' ||
  (SELECT count(*) FROM audiotricks.sessions WHERE user_id = '$flow_id') || ',' ||
  (SELECT count(*) FROM audiotricks.user_settings WHERE user_id = '$flow_id')});
	is($n, $i == $fs ? '1,4,2,1' : '0,0,0,0',
		$i == $fs ? "the flow user's rows are on shard $i" : "shard $i has none of the flow user's rows");
}

# a token is refused when sent straight to another shard (same JWT secret)
my $other = ($fs + 1) % 3;
is($shard[$fs]->safe_psql('app', qq{SELECT audiotricks.at_authenticate('$tok')}), $flow_id,
	"the token works on its own shard directly");
($ret, $st) = at_sqlstate($shard[$other], 'app', qq{SELECT audiotricks.at_authenticate('$tok')});
is($st, '28000', 'the token is refused by another shard (no session row there)');
($ret, $st) = at_sqlstate($shard[$other], 'app', qq{SELECT audiotricks_shard.at_history_count('$tok')}, 'rconn');
is($st, '28000', "another shard's entry point refuses it too");

# bad tokens on the router
($ret, $st) = rstate(q{SELECT audiotricks.at_history_count('garbage')});
is($st, '28000', 'malformed token: 28000 on the router');
($ret, $st) = rstate(q{SELECT audiotricks.at_history_count('eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIwMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDAifQ.x')});
is($st, '28000', 'token of a user the directory does not know: 28000');
(my $forged = $tok) =~ s/\.[^.]+$/.AAAA/;
($ret, $st) = rstate(qq{SELECT audiotricks.at_history_count('$forged')});
is($st, '28000', 'wrong signature: 28000 from the shard');

# logout
is(rq(qq{SELECT audiotricks.at_logout('$tok')}), 't', 'logout');
($ret, $st) = rstate(qq{SELECT audiotricks.at_history_count('$tok')});
is($st, '28000', 'the token is refused after logout');
is(rq(qq{SELECT audiotricks.at_logout('$tok')}), 'f', 'logout again: false');
is(rq(q{SELECT audiotricks.at_logout('x.y.z')}), 'f', 'logout of a malformed token: false');
is(rq(qq{SELECT audiotricks.at_logout_all('$tok2')}), '1', 'logout_all ends the other session');

# ------------------------------------------------------------ directory
($ret, $st, my $err) = rstate(qq{SELECT audiotricks.at_register('USER7\@example.com', 'someone_new', '$PW')});
is($st, '23505', 'duplicate email (other case) refused');
like($err, qr/email already registered/, '... as email already registered');
# a new email whose placement is another shard than user7's
my $u7 = su(q{SELECT shard FROM audiotricks_router.directory WHERE username = 'user7'});
my ($newmail) = grep {
	su("SELECT audiotricks_router.at_place('$_')") != $u7 } map { "fresh$_\@example.com" } 1 .. 50;
($ret, $st, $err) = rstate(qq{SELECT audiotricks.at_register('$newmail', 'User7', '$PW')});
is($st, '23505', 'duplicate username refused although the new user would go to another shard');
like($err, qr/username already taken/, '... as username already taken');
($ret, $st) = rstate(qq{SELECT audiotricks.at_register('$newmail', 'fresh_user', 'short')});
is($st, '22023', 'invalid password: the shard refuses');
is(su(qq{SELECT count(*) FROM audiotricks_router.directory WHERE email = '$newmail'}), '0',
	'... and no directory row stays');
($ret, $st) = rstate(qq{SELECT audiotricks.at_register(NULL, 'x', '$PW')});
is($st, '22023', 'NULL email: 22023');

# unknown login and wrong password answer alike
my (undef, $s1, $e1) = rstate(qq{SELECT * FROM audiotricks.at_login('nobody_here', '$PW')});
my (undef, $s2, $e2) = rstate(q{SELECT * FROM audiotricks.at_login('user8', 'Wrong-Pass-1')});
my (undef, $s3, $e3) = rstate(qq{SELECT * FROM audiotricks.at_login('nobody\@nowhere.org', '$PW')});
is("$s1 $s2 $s3", '28P01 28P01 28P01', 'unknown login, wrong password, unknown email: 28P01');
my ($m1) = $e1 =~ /ERROR:\s+(.*)/;
my ($m2) = $e2 =~ /ERROR:\s+(.*)/;
is($m1, $m2, 'with the same message');
unlike($e1 . $e2, qr/\[|REMOTE|NOTICE/, 'no shard name, no PL/Proxy notice');

# ------------------------------------------------------------ placement
su(q{SELECT audiotricks_router.at_set_weight(2, 0)});
rq(register_sql(301, 320));
is(su(q{SELECT count(*) FROM audiotricks_router.directory d WHERE shard = 2
  AND email ~ '^user3(0[1-9]|1[0-9]|20)@'}), '0', 'weight 0: shard 2 takes no new user');
su(q{SELECT audiotricks_router.at_set_weight(0, 0), audiotricks_router.at_set_weight(1, 0)});
($ret, $st) = rstate(qq{SELECT audiotricks.at_register('noplace\@example.com', 'noplace', '$PW')});
is($st, '55000', 'all weights 0: 55000');
su(q{SELECT audiotricks_router.at_set_weight(0, 1), audiotricks_router.at_set_weight(1, 1),
  audiotricks_router.at_set_weight(2, 1)});
($ret, $st) = at_sqlstate($router, 'router', q{SELECT audiotricks_router.at_set_weight(7, 1)});
is($st, '22023', 'unknown shard: 22023');
($ret, $st) = rstate(q{SELECT audiotricks_router.at_set_weight(0, 5)});
is($st, '42501', 'the application role may not change weights');
($ret, $st) = rstate(q{SELECT * FROM audiotricks_router.directory});
is($st, '42501', 'nor read the directory');

# ------------------------------------------------------------ repair
# a registration whose router transaction failed after the shard committed:
# the user exists on shard 0 only
my $orphan = $shard[0]->safe_psql('app',
	qq{SELECT audiotricks.at_register('orphan\@example.com', 'orphan', '$PW')});
is(su(q{SELECT audiotricks_router.at_repair()}), '0', 'repair leaves a recent registration alone');
$_->safe_psql('app', q{UPDATE audiotricks.users SET created_at = created_at - interval '2 hours'}) for @shard;
is(su(q{SELECT audiotricks_router.at_repair('1 hour')}), '1', 'repair removes the unrouted user');
is($shard[0]->safe_psql('app', qq{SELECT count(*) FROM audiotricks.users WHERE id = '$orphan'}), '0',
	'... from its shard');
my $on_shards = 0;
$on_shards += $_->safe_psql('app', 'SELECT count(*) FROM audiotricks.users') for @shard;
is($on_shards, su(q{SELECT count(*) FROM audiotricks_router.directory}),
	'... and every user the directory knows stays');
like(rq(qq{SELECT audiotricks.at_register('orphan\@example.com', 'orphan', '$PW')}), qr/^[0-9a-f-]{36}$/,
	'the email registers through the router after the repair');

# ------------------------------------------------------------ logs, connections
my $rlog = slurp_file($router->logfile);
unlike($rlog, qr/\Q$PW\E|Wrong-Pass-1|sk-router-secret|\Q$tok\E/, "the router's log holds no password, key or token");
for my $i (0 .. 2)
{
	my $c = $shard[$i]->safe_psql('app', q{SELECT count(*) FROM pg_stat_activity WHERE usename = 'rconn'});
	ok($c <= $POOL, "shard $i: $c connections from the router (pool $POOL)");
}

# ------------------------------------------------------------ failure isolation
# one user per shard, logged in; one router session runs all calls
my %tokof;
for my $i (0 .. 2)
{
	my $name = su("SELECT username FROM audiotricks_router.directory WHERE shard = $i AND username ~ '^user' ORDER BY username LIMIT 1");
	($tokof{$i}) = split /\|/, rq(qq{SELECT token FROM audiotricks.at_login('$name', '$PW')});
	rq(qq{SELECT audiotricks.at_history_add('$tokof{$i}', title => 'before')});
}
my $down = 1;
$shard[$down]->stop('fast');
my $script = join "\n", '\set VERBOSITY verbose', map {
	"SELECT 'shard$_ ' || audiotricks.at_history_count('$tokof{$_}');" } (0, 1, 2, 1, 0, 2);
my ($r, $out, $serr) = $router->psql('router', $script, on_error_stop => 0, extra_params => [ '-U', 'app' ]);
my @okrows = $out =~ /^shard(\d) 1$/mg;
is(join(',', @okrows), '0,2,0,2', 'with shard 1 down, the users of shards 0 and 2 keep working in the same session');
my @errs = $serr =~ /ERROR:\s+([0-9A-Z]{5}):\s*(.*)/g;
is(scalar(@errs) / 2, 2, "shard 1's user fails twice");
note "down-shard errors: $serr";
like($serr, qr/ERROR:\s+08P01: .*\[s1\]/, 'the error is 08P01 and names the shard');
my $mail = su(qq{SELECT email FROM audiotricks_router.directory WHERE shard = 1 LIMIT 1});
($ret, $st) = rstate(qq{SELECT * FROM audiotricks.at_login('$mail', '$PW')});
isnt($st, '', "shard 1's users cannot log in");
isnt($st, '28P01', '... and are not told their password is wrong');
my ($m0) = grep { su("SELECT audiotricks_router.at_place('$_')") == 0 } map { "late$_\@example.com" } 1 .. 50;
like(rq(qq{SELECT audiotricks.at_register('$m0', 'late_user', '$PW')}), qr/^[0-9a-f-]{36}$/,
	'a registration placed on a live shard works');

$shard[$down]->start;
my $back = '';
for (1 .. 50)
{
	$back = eval { rq(qq{SELECT audiotricks.at_history_count('$tokof{1}')}) } // '';
	last if $back eq '1';
	sleep 1;
}
is($back, '1', "after the restart, shard 1's user works again");
is(rq(qq{SELECT audiotricks.at_history_count('$tokof{0}')}), '1', "shard 0's user too");

$bouncer->kill_kill;
$router->stop;
$_->stop for @shard;
done_testing();
