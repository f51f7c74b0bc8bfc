# test/t/010_pgbouncer_identity.pl
# A real pgbouncer in transaction mode with ONE server connection in front of
# the server: two clients, as a non-superuser member of audiotricks_user,
# interleave 500 transactions each (authenticated, unauthenticated,
# autocommit, ROLLBACK, failing statements, bad tokens, rolled-back
# savepoints, PostgREST-style request.headers) on that one backend.  No
# transaction may see the other client's identity or rows, and no
# unauthenticated one may see any.  A session-level request.headers gives no
# identity.  Then at_logout / at_logout_all end tokens for every later
# transaction.
#
# Two phases: lockstep (Perl alternates the clients statement batch by
# statement batch and checks each transaction as it goes) and concurrent
# (two psql -f scripts race for the one server connection; a sequence
# records the global order, proving they really interleaved).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;

my $PGBOUNCER = '/usr/sbin/pgbouncer';
plan skip_all => "$PGBOUNCER not installed" unless -x $PGBOUNCER;

my $TXNS = 500;								# per client and phase
my $seed = $ENV{AT_SEED} // time();
srand($seed);
note "random seed $seed (rerun with AT_SEED=$seed)";

my $secret = 'pgbouncer-tap-secret-' . ('s' x 32);
my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'audiotricks'
audiotricks.jwt_secret = '$secret'
audiotricks.bcrypt_cost = 4
log_min_error_statement = error
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE app');
$node->safe_psql('app', q{
CREATE EXTENSION audiotricks CASCADE;
CREATE ROLE app LOGIN IN ROLE audiotricks_user;
CREATE SEQUENCE public.txn_order;
GRANT USAGE ON SEQUENCE public.txn_order TO app;
});
is($node->safe_psql('app', q{SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = 'app'}),
	'f', 'client role is neither superuser nor BYPASSRLS');

# three users; carol is never used by any client and must never be seen
my %user;
for my $u ([ 'alice', 3 ], [ 'bob', 5 ], [ 'carol', 2 ])
{
	my ($name, $rows) = @$u;
	my $id = $node->safe_psql('app',
		"SELECT audiotricks.at_register('$name\@example.com', '$name', 'Pass-$name-1')");
	$node->safe_psql('app', qq{
INSERT INTO audiotricks.audio_history (user_id, title)
  SELECT '$id', '$name talk ' || g FROM generate_series(1, $rows) g});
	$user{$name} = { id => $id, rows => $rows };
}

# ------------------------------------------------------------ pgbouncer
my $bdir = $node->basedir . '/pgbouncer';
mkdir $bdir or die "mkdir $bdir: $!";
my $bport = PostgreSQL::Test::Cluster::get_free_port();
my ($nhost, $nport) = ($node->host, $node->port);
open my $fh, '>', "$bdir/userlist.txt" or die;
print $fh qq{"app" ""\n"postgres" ""\n};
close $fh;
open $fh, '>', "$bdir/pgbouncer.ini" or die;
print $fh <<"EOF";
[databases]
app = host=$nhost port=$nport dbname=app

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bport
unix_socket_dir =
auth_type = trust
auth_file = $bdir/userlist.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = 1
min_pool_size = 0
reserve_pool_size = 0
max_db_connections = 1
max_client_conn = 50
; transaction mode never runs the reset query between clients: the
; extension itself must end every identity with its transaction
server_reset_query = DISCARD ALL
server_reset_query_always = 0
logfile = $bdir/pgbouncer.log
pidfile = $bdir/pgbouncer.pid
EOF
close $fh;

my ($bout, $berr) = ('', '');
my $bouncer = IPC::Run::start([ $PGBOUNCER, "$bdir/pgbouncer.ini" ],
	'>', \$bout, '2>', \$berr);
END { $bouncer->kill_kill if $bouncer && $bouncer->pumpable; }

my @psql = ('psql', '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=0',
	'-h', '127.0.0.1', '-p', $bport, '-U', 'app', '-d', 'app');

my $up = 0;
for (1 .. 300)
{
	my ($o, $e) = ('', '');
	IPC::Run::run([ @psql, '-c', 'SELECT 1' ], '>', \$o, '2>', \$e);
	if ($o =~ /^1$/m) { $up = 1; last; }
	select(undef, undef, undef, 0.1);
}
ok($up, 'pgbouncer accepts connections') or BAIL_OUT("pgbouncer did not start: $berr");

# ------------------------------------------------------------ a psql session
# A psql process fed batch by batch: run() sends SQL and waits for a marker
# on both stdout and stderr, and returns what the batch printed on each.
{
	package Session;

	sub new
	{
		my ($class, @cmd) = @_;
		my $s = bless { in => '', out => '', err => '', n => 0 }, $class;
		$s->{timer} = IPC::Run::timeout(600);
		$s->{h} = IPC::Run::start(\@cmd, '<', \$s->{in}, '>', \$s->{out},
			'2>', \$s->{err}, $s->{timer});
		return $s;
	}

	sub run
	{
		my ($s, $sql) = @_;
		my $m = '@@batch ' . ++$s->{n} . '@@';
		$s->{in} .= "$sql\n\\echo '$m'\n\\warn '$m'\n";
		$s->{h}->pump
		  until ($s->{out} =~ /\Q$m\E\n/ && $s->{err} =~ /\Q$m\E\n/)
		  || $s->{timer}->is_expired;
		die "psql session timed out" if $s->{timer}->is_expired;
		my ($o, $e) = ($s->{out}, $s->{err});
		$o =~ s/\Q$m\E\n//;
		$e =~ s/\Q$m\E\n//;
		($s->{out}, $s->{err}) = ('', '');
		return ($o, $e);
	}

	sub quit
	{
		my ($s) = @_;
		$s->{in} .= "\\q\n";
		$s->{h}->finish;
	}
}

# one-shot psql through pgbouncer: (stdout, stderr)
sub bpsql
{
	my ($sql) = @_;
	my ($o, $e) = ('', '');
	IPC::Run::run([ @psql, '-c', $sql ], '>', \$o, '2>', \$e,
		IPC::Run::timeout(120));
	chomp $o;
	return ($o, $e);
}

sub login
{
	my ($name) = @_;
	my ($tok, $err) = bpsql(
		"SELECT token FROM audiotricks.at_login('$name', 'Pass-$name-1')");
	die "login $name failed: $err" unless $tok =~ /^[\w-]+\.[\w-]+\.[\w-]+$/;
	return $tok;
}

# ------------------------------------------------------------ transactions
my %client = (
	A => { name => 'alice', token => login('alice') },
	B => { name => 'bob',   token => login('bob') });
pass('at_login through pgbouncer as the application role');
for my $c (values %client)
{
	$c->{id} = $user{ $c->{name} }{id};
	$c->{rows} = $user{ $c->{name} }{rows};
	# correctly signed shape, wrong signature
	(my $bad = $c->{token}) =~ s/(.)$/$1 eq 'A' ? 'B' : 'A'/e;
	$c->{bad} = $bad;
}

# One statement that reports what the transaction sees:
# R|tag|expect|order|backend pid|identity|history rows|history owners|users|settings rows
sub report_sql
{
	my ($tag, $expect) = @_;
	return qq{SELECT 'R|$tag|$expect|' || nextval('public.txn_order') || '|' || pg_backend_pid()
  || '|' || coalesce(audiotricks.at_current_user_id()::text, 'none')
  || '|' || (SELECT count(*) FROM audiotricks.audio_history)
  || '|' || coalesce((SELECT string_agg(DISTINCT user_id::text, ',') FROM audiotricks.audio_history), '')
  || '|' || coalesce((SELECT string_agg(id::text, ',') FROM audiotricks.users), '')
  || '|' || (SELECT count(*) FROM audiotricks.user_settings);};
}

my @KINDS = qw(auth anon autocommit auth_rollback auth_error bad_token
  savepoint auth_autocommit headers headers_bad);

# (sql, number of reports it prints, errors it must raise)
sub txn_sql
{
	my ($cname, $i, $kind) = @_;
	my $c = $client{$cname};
	my $tag = "$cname:$i:$kind";
	my $auth = "SELECT 'A|$tag|' || audiotricks.at_authenticate('$c->{token}');";
	my %err = (division => 0, token => 0);
	my $sql;
	if ($kind eq 'auth')
	{
		$sql = join "\n", 'BEGIN;', $auth, report_sql($tag, 'own'), 'COMMIT;';
	}
	elsif ($kind eq 'anon')
	{
		$sql = join "\n", 'BEGIN;', report_sql($tag, 'none'), 'COMMIT;';
	}
	elsif ($kind eq 'autocommit')
	{
		$sql = report_sql($tag, 'none');
	}
	elsif ($kind eq 'auth_rollback')
	{
		$sql = join "\n", 'BEGIN;', $auth, report_sql($tag, 'own'), 'ROLLBACK;';
	}
	elsif ($kind eq 'auth_error')
	{
		$sql = join "\n", 'BEGIN;', $auth, report_sql($tag, 'own'),
		  'SELECT 1/0;', 'COMMIT;';
		$err{division} = 1;
	}
	elsif ($kind eq 'bad_token')
	{
		my $bad = $i % 2 ? $c->{bad} : 'eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.e30.';
		$sql = join "\n", 'BEGIN;', report_sql($tag, 'none'),
		  "SELECT audiotricks.at_authenticate('$bad');", 'COMMIT;';
		$err{token} = 1;
	}
	elsif ($kind eq 'savepoint')
	{
		$sql = join "\n", 'BEGIN;', 'SAVEPOINT s;', $auth,
		  'ROLLBACK TO SAVEPOINT s;', report_sql($tag, 'none'), 'COMMIT;';
	}
	elsif ($kind eq 'headers' || $kind eq 'headers_bad')
	{
		# PostgREST's way: the bearer token in a transaction-local request.headers
		my $tok = $kind eq 'headers' ? $c->{token} : $c->{bad};
		$sql = join "\n", 'BEGIN;',
		  qq{SELECT set_config('request.headers', '{"accept":"*/*","authorization":"Bearer $tok"}', true) IS NOT NULL;},
		  report_sql($tag, $kind eq 'headers' ? 'own' : 'none'), 'COMMIT;';
	}
	elsif ($kind eq 'auth_autocommit')
	{
		# at_authenticate in its own implicit transaction, then a new one
		$sql = join "\n", $auth, report_sql($tag, 'none');
	}
	return ($sql, 1, \%err);
}

my %pids;
# checks one report line; returns a complaint or ''
sub check_report
{
	my ($line) = @_;
	my ($r, $tag, $expect, $order, $pid, $uid, $n, $owners, $users, $settings) =
	  split /\|/, $line, -1;
	return "malformed report: $line" unless defined $settings;
	my ($cname) = split /:/, $tag;
	my $c = $client{$cname} or return "unknown client in: $line";
	$pids{$pid}++;
	if ($expect eq 'own')
	{
		return "$tag: identity $uid, expected $c->{id}" if $uid ne $c->{id};
		return "$tag: $n history rows, expected $c->{rows}" if $n != $c->{rows};
		return "$tag: sees history of $owners" if $owners ne $c->{id};
		return "$tag: sees users $users" if $users ne $c->{id};
		return "$tag: sees $settings settings rows" if $settings != 1;
	}
	else
	{
		return "$tag: identity $uid, expected none" if $uid ne 'none';
		return "$tag: $n history rows without identity ($owners)"
		  if $n != 0 || $owners ne '';
		return "$tag: sees users $users without identity" if $users ne '';
		return "$tag: sees $settings settings rows" if $settings != 0;
	}
	return '';
}

sub check_auth_lines
{
	my ($out, $problems) = @_;
	for my $line (grep { /^A\|/ } split /\n/, $out)
	{
		my (undef, $tag, $uid) = split /\|/, $line;
		my ($cname) = split /:/, $tag;
		push @$problems, "$tag: at_authenticate returned $uid"
		  if $uid ne $client{$cname}{id};
	}
}

# ------------------------------------------------------------ phase 1: lockstep
my %sess = map { $_ => Session->new(@psql) } qw(A B);
my @problems;
my (%kinds_seen, $reports, %errs_expected, %errs_seen);
for my $i (1 .. $TXNS)
{
	for my $cname (rand() < 0.5 ? qw(A B) : qw(B A))
	{
		my $kind = $KINDS[ int(rand(@KINDS)) ];
		$kinds_seen{$kind}++;
		my ($sql, $nrep, $err) = txn_sql($cname, $i, $kind);
		my ($out, $stderr) = $sess{$cname}->run($sql);
		my @rep = grep { /^R\|/ } split /\n/, $out;
		push @problems, "$cname:$i:$kind printed " . scalar(@rep) . " reports"
		  if @rep != $nrep;
		for (@rep)
		{
			my $p = check_report($_);
			push @problems, $p if $p;
		}
		$reports += @rep;
		check_auth_lines($out, \@problems);
		my $div = () = $stderr =~ /division by zero/g;
		my $tok = () = $stderr =~ /invalid or expired token/g;
		push @problems, "$cname:$i:$kind: unexpected stderr: $stderr"
		  if $div != $err->{division} || $tok != $err->{token}
		  || ($stderr ne '' && !$div && !$tok);
		$errs_seen{division} += $div;
		$errs_seen{token} += $tok;
	}
}
is(scalar(@problems), 0, "lockstep: 2 x $TXNS transactions, none sees another identity or rows")
  or diag(join("\n", @problems[ 0 .. ($#problems < 20 ? $#problems : 19) ]));
is($reports, 2 * $TXNS, 'lockstep: every transaction reported');
is(scalar(keys %pids), 1, 'lockstep: all transactions ran on one server backend')
  or diag(explain \%pids);
is(scalar(keys %kinds_seen), scalar(@KINDS), 'lockstep: every kind of transaction ran')
  or diag(explain \%kinds_seen);
ok($errs_seen{division} > 0 && $errs_seen{token} > 0,
	"lockstep: failing statements ran ($errs_seen{division} errors, $errs_seen{token} bad tokens)");

# ------------------------------------------------------------ phase 2: concurrent
my %script;
my %expect_err = (A => { division => 0, token => 0 }, B => { division => 0, token => 0 });
for my $cname (qw(A B))
{
	my $file = "$bdir/client_$cname.sql";
	open my $sf, '>', $file or die;
	for my $i (1 .. $TXNS)
	{
		my ($sql, undef, $err) = txn_sql($cname, $i, $KINDS[ int(rand(@KINDS)) ]);
		$expect_err{$cname}{$_} += $err->{$_} for keys %$err;
		print $sf "$sql\n";
	}
	close $sf;
	$script{$cname} = $file;
}
my %run;
for my $cname (qw(A B))
{
	$run{$cname} = { out => '', err => '' };
	$run{$cname}{h} = IPC::Run::start([ @psql, '-f', $script{$cname} ],
		'>', \$run{$cname}{out}, '2>', \$run{$cname}{err},
		IPC::Run::timeout(600));
}
$run{$_}{h}->finish for qw(A B);

%pids = ();
@problems = ();
my @all;
for my $cname (qw(A B))
{
	my @rep = grep { /^R\|/ } split /\n/, $run{$cname}{out};
	is(scalar(@rep), $TXNS, "concurrent: client $cname reported every transaction");
	for (@rep)
	{
		my $p = check_report($_);
		push @problems, $p if $p;
		push @problems, "client $cname printed another client's report: $_"
		  unless /^R\|$cname:/;
		push @all, [ (split /\|/)[3], $cname ];
	}
	check_auth_lines($run{$cname}{out}, \@problems);
	my $div = () = $run{$cname}{err} =~ /division by zero/g;
	my $tok = () = $run{$cname}{err} =~ /invalid or expired token/g;
	is("$div/$tok", "$expect_err{$cname}{division}/$expect_err{$cname}{token}",
		"concurrent: client $cname got exactly its expected errors");
}
is(scalar(@problems), 0, "concurrent: 2 x $TXNS transactions, none sees another identity or rows")
  or diag(join("\n", @problems[ 0 .. ($#problems < 20 ? $#problems : 19) ]));
is(scalar(keys %pids), 1, 'concurrent: all transactions ran on one server backend');
my @order = sort { $a->[0] <=> $b->[0] } @all;
my $switches = grep { $order[$_][1] ne $order[ $_ - 1 ][1] } 1 .. $#order;
note "concurrent: the server switched between clients $switches times";
cmp_ok($switches, '>=', 20, 'concurrent: the clients really interleaved on the backend');

# ------------------------------------------------------------ request.headers
# PostgREST's way (set_config(..., true)) works through pgbouncer; a
# session-level SET of request.headers outlives the transaction on the
# shared backend and must not hand A's identity to the next transactions.
{
	my ($A, $B) = @sess{qw(A B)};
	my $hdr = qq({"authorization":"Bearer $client{A}{token}"});
	my ($o, $e) = $A->run("BEGIN;\nSELECT set_config('request.headers', '$hdr', true) IS NOT NULL;\n"
		  . report_sql('A:local-headers:x', 'own') . "\nCOMMIT;");
	is(check_report((grep { /^R\|/ } split /\n/, $o)[0] // "none: $e"), '',
		'transaction-local request.headers bearer gives the identity through pgbouncer');
	($o, $e) = $B->run(report_sql('B:after-local-headers:x', 'none'));
	is(check_report((grep { /^R\|/ } split /\n/, $o)[0] // "none: $e"), '',
		'... and the next transaction (other client) has none');

	($o, $e) = $A->run("SET request.headers = '$hdr';");
	is($e, '', 'client A sets request.headers at session level');
	for my $c (qw(B A))
	{
		($o, $e) = $sess{$c}->run(report_sql("$c:session-headers:x", 'none'));
		is(check_report((grep { /^R\|/ } split /\n/, $o)[0] // "none: $e"), '',
			"a session-level request.headers gives no identity to later transactions (client $c)");
	}
	$A->run('RESET request.headers;');
}

# ------------------------------------------------------------ logout
sub auth_check
{
	my ($sess, $tok) = @_;
	my ($o, $e) = $sess->run(
		"BEGIN;\nSELECT 'A|x|' || audiotricks.at_authenticate('$tok');\nCOMMIT;");
	return $e =~ /invalid or expired token/ ? 'rejected'
	  : $o =~ /^A\|x\|(\S+)$/m ? $1
	  : "unexpected: $o $e";
}

my ($A, $B) = @sess{qw(A B)};
my $alice = $client{A}{id};
my $t2 = login('alice');
is(auth_check($A, $t2), $alice, 'a second alice token works');
my ($o, $e) = $A->run("BEGIN;\nSELECT audiotricks.at_authenticate('$t2');\n"
	  . "SELECT 'L|' || audiotricks.at_logout();\n"
	  . "SELECT 'C|' || coalesce(audiotricks.at_current_user_id()::text, 'none');\nCOMMIT;");
like($o, qr/^L\|true$/m, 'at_logout() through pgbouncer ends the current session');
like($o, qr/^C\|none$/m, 'identity is gone right after at_logout()');
is(auth_check($B, $t2), 'rejected', 'logged-out token rejected in the next transaction (other client)');
is(auth_check($A, $t2), 'rejected', 'logged-out token rejected in a later transaction (same client)');
is(auth_check($A, $client{A}{token}), $alice, "alice's other token still works");

my $t3 = login('alice');
($o, $e) = $B->run("SELECT 'L|' || audiotricks.at_logout('$t3');");
like($o, qr/^L\|true$/m, 'at_logout(token) without an identity ends that session');
is(auth_check($A, $t3), 'rejected', 'token ended by at_logout(token) is rejected');
($o, $e) = $B->run("SELECT 'L|' || audiotricks.at_logout('$t3');");
like($o, qr/^L\|false$/m, 'at_logout(token) of an ended session returns false');

my $t4 = login('alice');
my $t5 = login('alice');
my $live = $node->safe_psql('app',
	"SELECT count(*) FROM audiotricks.sessions WHERE user_id = '$alice' AND expires_at > now()");
($o, $e) = $A->run("BEGIN;\nSELECT audiotricks.at_authenticate('$t4');\n"
	  . "SELECT 'N|' || audiotricks.at_logout_all();\n"
	  . "SELECT 'C|' || coalesce(audiotricks.at_current_user_id()::text, 'none');\nCOMMIT;");
like($o, qr/^N\|$live$/m, "at_logout_all() through pgbouncer ends all $live of alice's sessions");
like($o, qr/^C\|none$/m, 'identity is gone right after at_logout_all()');
is(auth_check($B, $_), 'rejected', 'every alice token rejected after at_logout_all()')
  for ($client{A}{token}, $t4, $t5);
is(auth_check($B, $client{B}{token}), $client{B}{id}, "bob's token is unaffected");
($o, $e) = $A->run(report_sql('A:end:x', 'none'));
is(check_report((grep { /^R\|/ } split /\n/, $o)[0] // 'none'), '',
	'after logout an unauthenticated transaction still sees nothing');

$_->quit for values %sess;
$bouncer->kill_kill;
$node->stop;
done_testing();
