# test/t/035_pitr.pl
# Point-in-time recovery as README's "Backups and restore" describes it: WAL
# archiving, a base backup, and a new cluster restored from them to a time T
# with recovery_target_time, using the key file as it was at T.
#  - before the backup: users A, B, C; A and B logged in, A stores an API
#    key and adds history.  Between the backup and T (changes_before_T): A
#    adds history and stores a new key, C stores a key, B logs in again.
#  - T is taken after those commits (a digest of every table of the
#    extension is taken then, and the key file copied aside); after T
#    (changes_after_T): B deletes their account, the master keys are
#    rotated (key 3 added and current, at_rotate_api_keys until nothing
#    remains, keys 1 and 2 removed), A stores another key, adds history and
#    changes their password, D registers.
#  - the cluster recovered to T (check_recovered) holds exactly the rows of
#    T (the digest, table by table, before anything runs on it): B is there
#    and logs in, D is not; A's history count is that of T; A logs in with
#    the password of T (the later one is refused with 28P01); a token A got
#    before T works again; A reads the API key of T with the key file of T;
#    with today's key file that key fails with 55000 (keep every version of
#    the key file).
#  - after T a partition two periods further ahead is made and A adds an
#    entry there; at T that partition does not exist, and every audit chain
#    of T verifies (at_verify_audit_chain), without B's deletion.
use strict;
use warnings;
use File::Copy;
use File::Spec;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AtReliability;

my %password = (A => 'Passw0rdA', B => 'Passw0rdB', C => 'Passw0rdC', D => 'Passw0rdD');

my $primary = at_node('primary', allows_streaming => 1, has_archiving => 1);
$primary->start;
$primary->safe_psql('postgres', 'CREATE DATABASE app');
$primary->safe_psql('app', 'CREATE EXTENSION audiotricks CASCADE');
my $keyfile = $primary->{at_key_file};

# ---------------------------------------------------------------- helpers
sub register
{
	my ($node, $who) = @_;
	$node->safe_psql('app', sprintf(q{SELECT audiotricks.at_register('%s@example.com', 'user%s', '%s')},
		lc $who, lc $who, $password{$who}));
}

sub login
{
	my ($node, $who, $pw) = @_;
	return $node->safe_psql('app', sprintf(q{SELECT token FROM audiotricks.at_login('user%s', '%s')},
		lc $who, $pw // $password{$who}));
}

# as_user(NODE, TOKEN, SQL): SQL under that identity, in one transaction
sub as_user
{
	my ($node, $token, $sql) = @_;
	return $node->safe_psql('app',
		"BEGIN; SELECT audiotricks.at_authenticate('$token') \\g /dev/null\n$sql; COMMIT;");
}

sub add_history
{
	my ($node, $token, $label, $n) = @_;
	as_user($node, $token, join ";\n", map {
		"SELECT audiotricks.at_history_add(title => '$label $_', transcript => 'words of $label $_') IS NOT NULL"
	} 1 .. $n);
}

# every table of the extension (partitioned ones as a whole), one line
# each: name, rows, md5 of the rows in order
sub digest
{
	my ($node) = @_;
	my @tables = split /\n/, $node->safe_psql('app', q{SELECT c.oid::regclass FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname IN ('audiotricks', 'audiotricks_internal') AND c.relkind IN ('r', 'p')
   AND NOT c.relispartition});
	return $node->safe_psql('app', "SELECT string_agg(line, E'\\n' ORDER BY line) FROM (\n"
		. join("\nUNION ALL ", map {
			"SELECT '$_: ' || count(*) || ' ' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '-') FROM $_ t"
		  } @tables) . "\n) s(line)");
}

# key ids and hex of a key file, in order
sub keys_of
{
	my ($path) = @_;
	open my $fh, '<', $path or die "$path: $!";
	my @pairs = map { /^key (\d+) ([0-9a-f]{64})$/ ? ($1, $2) : () } <$fh>;
	close $fh;
	return @pairs;
}

sub write_keys
{
	my ($path, $current, @pairs) = @_;
	open my $fh, '>', "$path.tmp" or die "$path.tmp: $!";
	chmod 0600, "$path.tmp" or die "chmod: $!";
	print $fh "# audiotricks master keys\n";
	while (my ($id, $hex) = splice(@pairs, 0, 2)) { print $fh "key $id $hex\n" }
	print $fh "current $current\n";
	close $fh;
	rename "$path.tmp", $path or die "rename: $!";
}

# a new connection's current key id, once the reload has reached it
sub wait_current_key
{
	my ($node, $id) = @_;
	$node->poll_query_until('app',
		q{SELECT split_part(audiotricks.at_encrypt_key('x'), '.', 2)}, $id)
	  or die "key $id never became current";
}

sub wait_archived
{
	my ($node) = @_;
	my $walfile = $node->safe_psql('postgres', 'SELECT pg_walfile_name(pg_current_wal_lsn())');
	$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
	$node->poll_query_until('postgres',
		"SELECT last_archived_wal >= '$walfile' FROM pg_stat_archiver")
	  or die "$walfile was never archived";
}

# ---------------------------------------------------------------- before the backup
register($primary, $_) for qw(A B C);
my %token = map { $_ => login($primary, $_) } qw(A B);
as_user($primary, $token{A}, q{SELECT audiotricks.at_set_api_key('openai', 'sk-A-before-backup')});
add_history($primary, $token{A}, 'before backup', 3);
$primary->backup('base');

# ---------------------------------------------------------------- up to T
sub changes_before_T
{
	add_history($primary, $token{A}, 'before T', 2);
	as_user($primary, $token{A}, q{SELECT audiotricks.at_set_api_key('openai', 'sk-A-at-T')});
	my $c = login($primary, 'C');
	as_user($primary, $c, q{SELECT audiotricks.at_set_api_key('elevenlabs', 'el-C-at-T')});
	$token{B2} = login($primary, 'B');
}
changes_before_T();

my $history_at_T = as_user($primary, $token{A}, 'SELECT audiotricks.at_history_count()');
is($history_at_T, '5', 'A has 5 history entries at T');
my $digest_at_T = digest($primary);
like($digest_at_T, qr/^audiotricks\.audio_history: 5 .*^audiotricks\.audit_log: [1-9].*^audiotricks\.sessions: [1-9].*^audiotricks\.user_settings: 3 .*^audiotricks\.users: 3 /ms,
	'the digest at T covers history, audit log, sessions, settings and users');
my $T = $primary->safe_psql('app', 'SELECT clock_timestamp()');
my $keyfile_at_T = "$keyfile.at-T";
copy($keyfile, $keyfile_at_T) or die "copy: $!";
chmod 0600, $keyfile_at_T or die "chmod: $!";
# every commit from here on is clearly after T
$primary->safe_psql('app', 'SELECT pg_sleep(0.01)');

# ---------------------------------------------------------------- after T
sub changes_after_T
{
	as_user($primary, $token{B2}, "SELECT audiotricks.at_delete_account('$password{B}')");

	# master-key rotation as README's Key rotation: key 3 current, rotate,
	# drop keys 1 and 2
	my %old = keys_of($keyfile);
	my $k3 = join '', map { sprintf '%02x', int(rand(256)) } 1 .. 32;
	write_keys($keyfile, 3, %old, 3 => $k3);
	$primary->reload;
	wait_current_key($primary, 3);
	# in batches of one row, as many short transactions
	my ($remaining, $calls) = ('', 0);
	while ($remaining ne '0')
	{
		die 'rotation does not end' if ++$calls > 20;
		$remaining = $primary->safe_psql('app', 'SELECT remaining FROM audiotricks.at_rotate_api_keys(1)');
	}
	cmp_ok($calls, '>=', 2, 'on the primary: the rotation took several batches');
	write_keys($keyfile, 3, 3 => $k3);
	$primary->reload;

	as_user($primary, $token{A}, q{SELECT audiotricks.at_set_api_key('openai', 'sk-A-after-T')});
	add_history($primary, $token{A}, 'after T', 4);
	as_user($primary, $token{A},
		"SELECT audiotricks.at_change_password('$password{A}', 'Passw0rdA-after-T')");
	register($primary, 'D');

	# history across a new partition: two more periods made ahead, and an
	# entry of A in the last of them
	$primary->safe_psql('app', q{SET audiotricks.history_partitions_ahead = 5;
SELECT count(*) FROM audiotricks.at_maintain_history_partitions()});
	$primary->safe_psql('app', q{INSERT INTO audiotricks.audio_history (user_id, title, created_at)
  SELECT id, 'after T, new partition', date_trunc('month', now() AT TIME ZONE 'UTC') + interval '5 months 3 days'
    FROM audiotricks.users WHERE username = 'usera'});
}
changes_after_T();
my $new_partition = $primary->safe_psql('app', q{SELECT tableoid::regclass FROM audiotricks.audio_history
  WHERE title = 'after T, new partition'});
like($new_partition, qr/^audiotricks\.audio_history_p\d{6}$/, 'on the primary: the entry after T is in a month partition');
is($primary->safe_psql('app', q{SELECT count(*) FILTER (WHERE NOT ok) || '/' || (count(*) > 0)
  FROM audiotricks.at_verify_audit_chain()}), '0/true', 'on the primary: every audit chain verifies');
isnt(digest($primary), $digest_at_T, 'on the primary: the digest has moved on from T');

is($primary->safe_psql('app', q{SELECT string_agg(username, ',' ORDER BY username) FROM audiotricks.users}),
	'usera,userc,userd', 'on the primary: B deleted, D registered');
is(as_user($primary, login($primary, 'A', 'Passw0rdA-after-T'), 'SELECT audiotricks.at_get_api_key(\'openai\')'),
	'sk-A-after-T', 'on the primary: A has a new password and a new key, under key 3');
is($primary->safe_psql('app', q{SELECT count(*) FROM audiotricks.user_settings
  WHERE split_part(openai_api_key_encrypted, '.', 2) <> '3'
     OR split_part(elevenlabs_api_key_encrypted, '.', 2) <> '3'}), '0',
	'on the primary: every stored key is under key 3');
wait_archived($primary);

# ---------------------------------------------------------------- recovery to T
my $recovered = PostgreSQL::Test::Cluster->new('recovered');
$recovered->init_from_backup($primary, 'base', has_restoring => 1);
$recovered->append_conf('postgresql.conf', qq{
restore_command = 'cp "@{[ File::Spec->rel2abs($primary->archive_dir) ]}/%f" "%p"'
recovery_target_time = '$T'
recovery_target_action = 'promote'
archive_mode = off
audiotricks.key_file = '$keyfile_at_T'
});
$recovered->start;
$recovered->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'the recovered node never left recovery';

sub check_recovered
{
	my $node = $recovered;
	like(slurp_file($node->logfile), qr/recovery stopping before commit of transaction \d+, time /,
		'recovery stopped at the target time, before the first commit after T');
	is(digest($node), $digest_at_T, 'every table of the recovered cluster holds exactly the rows of T');
	is($node->safe_psql('app', q{SELECT string_agg(username, ',' ORDER BY username) FROM audiotricks.users}),
		'usera,userb,userc', 'B (deleted after T) is there, D (registered after T) is not');
	isnt(login($node, 'B'), '', 'B logs in');

	my $a = login($node, 'A');
	isnt($a, '', 'A logs in with the password of T');
	my ($ret, $state) = at_sqlstate($node, 'app', q{SELECT audiotricks.at_login('usera', 'Passw0rdA-after-T')});
	is($state, '28P01', 'the password A chose after T is refused');
	is(as_user($node, $token{A}, 'SELECT audiotricks.at_current_user_id() IS NOT NULL'), 't',
		'a token A got before T authenticates again');
	is(as_user($node, $a, 'SELECT audiotricks.at_history_count()'), $history_at_T,
		"A's history count is that of T");
	is(as_user($node, $a, q{SELECT string_agg(title, ',' ORDER BY title) FROM audiotricks.audio_history}),
		'before T 1,before T 2,before backup 1,before backup 2,before backup 3',
		"A's history entries are those of T");
	is(as_user($node, $a, q{SELECT audiotricks.at_get_api_key('openai')}), 'sk-A-at-T',
		"A's API key of T, with the key file of T");
	is(as_user($node, login($node, 'C'), q{SELECT audiotricks.at_get_api_key('elevenlabs')}), 'el-C-at-T',
		"C's API key of T");
	is($node->safe_psql('app', qq{SELECT to_regclass('$new_partition') IS NULL}), 't',
		'the partition made after T does not exist');
	is($node->safe_psql('app', q{SELECT count(*) FILTER (WHERE NOT ok) || '/' || (count(*) > 0)
  FROM audiotricks.at_verify_audit_chain()}), '0/true', 'every audit chain of T verifies');
	is($node->safe_psql('app', q{SELECT count(*) FROM audiotricks.audit_log
  WHERE event = 'account_deleted' OR (event = 'data_changed' AND table_name = 'users' AND operation = 'DELETE')}),
		'0', "B's deletion (after T) is not in the audit log");

	# today's key file has only key 3: the values of T (key 2) do not open
	$node->append_conf('postgresql.conf', "audiotricks.key_file = '$keyfile'\n");
	$node->reload;
	$node->poll_query_until('app', q{SELECT current_setting('audiotricks.key_file')}, $keyfile)
	  or die 'the key file setting never changed';
	($ret, $state, my $err) = at_sqlstate($node, 'app', qq{BEGIN; SELECT audiotricks.at_authenticate('$a');
SELECT audiotricks.at_get_api_key('openai'); COMMIT;});
	is($state, '55000', "with today's key file A's key of T fails with 55000");
	like($err, qr/key 2 is not in audiotricks\.key_file/, '... naming the missing key');
}
check_recovered();

$recovered->stop;
$primary->stop;
done_testing();
