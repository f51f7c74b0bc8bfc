# test/t/016_partition_lock_queue.pl
# The partition maintenance never makes the application wait behind it.
#
# A user opens a transaction, reads audio_history and sits idle: they hold
# ACCESS SHARE on it and on each partition, the default one included.  The
# maintenance needs ACCESS EXCLUSIVE on the default partition (to attach a
# partition ahead), and on audio_history (to drop an expired partition).
# PostgreSQL's lock queue is first come first served: a maintenance that
# queued its request behind the idle user would make every later page read
# and history add of every other user wait behind it, for as long as the
# idle user likes.  So it must take those locks only when they are free:
#  - while a maintenance is trying (by hand, as pg_cron runs it, and in the
#    background worker an insert starts), another user's page read and
#    history add complete; each runs with lock_timeout 1s, so one queued
#    behind the maintenance would fail with 55P03 rather than hang;
#  - a maintenance that cannot get its locks within its lock_timeout fails
#    with 55P03, changing nothing; the next one, after the idle user is
#    gone, does the work.
#  - however many connections find a partition missing, one maintenance
#    worker at a time runs for the database.
# Nothing here depends on elapsed time, except that the maintenance tries
# for 30 s (5 s in the worker), far longer than the statements that run
# meanwhile; the count of workers allows for a slow run.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use AtReliability;

my $node = at_node('partition_lock_queue');
$node->start;
$node->safe_psql('postgres', q{CREATE EXTENSION audiotricks CASCADE;
CREATE ROLE app LOGIN; GRANT audiotricks_user TO app;});

sub q1 { return $node->safe_psql('postgres', $_[0]); }

q1(q{SELECT audiotricks.at_register('idle@example.com', 'idle', 'Pass-word-1')});
q1(q{SELECT audiotricks.at_register('busy@example.com', 'busy', 'Pass-word-1')});
my $idle = q1(q{SELECT token FROM audiotricks.at_login('idle', 'Pass-word-1')});
my $busy = q1(q{SELECT token FROM audiotricks.at_login('busy', 'Pass-word-1')});
q1(q{SELECT count(*) FROM audiotricks.at_maintain_history_partitions()});

my $last = q1(q{SELECT 'audiotricks.audio_history_p'
  || to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 months', 'YYYYMM')});
my $default = 'audiotricks.audio_history_default';

# the last partition ahead goes missing; a partition of 2000 is there to expire
sub prepare
{
	q1(qq{ALTER EXTENSION audiotricks DROP TABLE $last; DROP TABLE $last;
CREATE TABLE IF NOT EXISTS audiotricks.audio_history_p200001 PARTITION OF audiotricks.audio_history
  FOR VALUES FROM ('2000-01-01') TO ('2000-02-01')});
	is(q1(qq{SELECT to_regclass('$last') IS NULL}), 't', "$_[0]: the last partition ahead is missing");
}

sub state
{
	return q1(qq{SELECT (to_regclass('$last') IS NOT NULL)::text || ','
  || (to_regclass('audiotricks.audio_history_p200001') IS NOT NULL)::text});
}

# the idle user: a page and a count read, then nothing; returns the session
sub idle_user
{
	my ($what) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 1,
		extra_params => [ '-U', 'app' ]);
	$s->query_safe(qq{BEGIN;
SELECT audiotricks.at_authenticate('$idle') IS NOT NULL;
SELECT count(*) FROM audiotricks.at_history_page(20);
SELECT count(*) FROM audiotricks.audio_history;});
	my $pid = $s->query_safe('SELECT pg_backend_pid()');
	is(q1(qq{SELECT count(*) FROM pg_locks WHERE pid = $pid
  AND relation IN ('audiotricks.audio_history'::regclass, '$default'::regclass)}), '2',
		"$what: the idle user holds locks on audio_history and its default partition");
	return $s;
}

# another user's page read and history add, each allowed to wait 1 s for a lock
sub busy_user
{
	my ($ret, $out, $err) = $node->psql('postgres', qq{SET lock_timeout = '1s';
BEGIN;
SELECT audiotricks.at_authenticate('$busy') IS NOT NULL;
SELECT count(*) >= 0 FROM audiotricks.at_history_page(20);
SELECT audiotricks.at_history_add(title => 'while maintenance tries') IS NOT NULL;
COMMIT;}, extra_params => [ '-U', 'app', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose' ]);
	return $ret == 0 ? $out : "failed: $err";
}

# waits until a backend running $like is trying: waiting on a lock, or in
# the maintenance's pause between attempts
sub wait_trying
{
	my ($like, $what) = @_;
	$node->poll_query_until('postgres', qq{SELECT count(*) > 0 FROM pg_stat_activity
  WHERE ($like) AND (wait_event_type = 'Lock' OR wait_event_type = 'Extension')})
	  or die "$what never started to wait";
}

# -------------------------------------------------- a maintenance by hand
prepare('by hand');
{
	my $holder = idle_user('by hand');
	my ($o, $e) = ('', '');
	my $m = IPC::Run::start(
		[ 'psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose',
		  '-d', $node->connstr('postgres'), '-c',
		  q{SET lock_timeout = '30s'; SET audiotricks.history_retention = '12 months';
SELECT action || ' ' || partition FROM audiotricks.at_maintain_history_partitions() ORDER BY 1} ],
		'>', \$o, '2>', \$e);
	wait_trying(q{query LIKE '%at_maintain_history_partitions%'}, 'the maintenance');
	is(busy_user(), "t\nt\nt", 'by hand: another user reads a page and adds an entry while the maintenance tries');
	is(state(), 'false,true', 'by hand: nothing changed yet');
	$holder->query_safe('COMMIT');
	$m->finish;
	ok(!$m->result, 'by hand: the maintenance succeeds once the idle user is gone') or diag($e);
	like($o, qr/^created \Q$last\E$/m, 'by hand: it made the missing partition');
	like($o, qr/^dropped audiotricks\.audio_history_p200001$/m, 'by hand: it dropped the expired one');
	is(state(), 'true,false', 'by hand: both are done');
	$holder->quit;
}

# -------------------------------------------------- giving up
prepare('giving up');
{
	my $holder = idle_user('giving up');
	my ($ret, $state, $err) = at_sqlstate($node, 'postgres', q{SET lock_timeout = '200ms';
SET audiotricks.history_retention = '12 months';
SELECT count(*) FROM audiotricks.at_maintain_history_partitions()});
	is($state, '55P03', 'giving up: the maintenance fails with 55P03 within its lock_timeout');
	like($err, qr/could not lock "audio_history(_default)?"/, 'giving up: naming the table it could not lock');
	is(state(), 'false,true', 'giving up: nothing changed');
	is(busy_user(), "t\nt\nt", 'giving up: the application goes on');
	$holder->query_safe('COMMIT');
	$holder->quit;
	q1(q{SELECT count(*) FROM audiotricks.at_maintain_history_partitions()});
	is(substr(state(), 0, 4), 'true', 'giving up: the next maintenance makes the partition');
}

# -------------------------------------------------- the background worker
{
	q1(qq{ALTER EXTENSION audiotricks DROP TABLE $last; DROP TABLE $last});
	my $holder = idle_user('worker');
	my $log_at = -s $node->logfile;
	# a new backend's first insert finds the partition missing: it starts
	# the worker (lock_timeout 5 s), and goes on without waiting for it
	is(busy_user(), "t\nt\nt", 'worker: the insert that starts the maintenance completes');
	wait_trying(q{backend_type = 'audiotricks partition maintenance'}, 'the worker');
	is(busy_user(), "t\nt\nt", 'worker: another user reads and adds while the worker tries');
	$node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity
  WHERE backend_type = 'audiotricks partition maintenance'}) or die 'the worker did not end';
	my $log = slurp_file($node->logfile, $log_at);
	like($log, qr/could not lock "audio_history(_default)?"/, 'worker: it gave up and said why in the log');
	is(substr(state(), 0, 5), 'false', 'worker: nothing changed');
	$holder->query_safe('COMMIT');
	$holder->quit;
	is(busy_user(), "t\nt\nt", 'worker: the next insert after the idle user is gone');
	$node->poll_query_until('postgres', qq{SELECT to_regclass('$last') IS NOT NULL})
	  or die 'the worker never made the partition';
	pass('worker: the worker started by the next insert made the partition');
}

# -------------------------------------------------- many connections
# each new connection's insert finds the partition missing; the idle user
# keeps every worker from its locks for its 5 s: one worker at a time runs
# for the database, however many connections asked (each asking started
# its own before, filling max_worker_processes, which the audit writer of
# failed logins and revocations needs too)
{
	q1(qq{ALTER EXTENSION audiotricks DROP TABLE $last; DROP TABLE $last});
	my $holder = idle_user('many');
	my $log_at = -s $node->logfile;
	my $t0 = time;
	is(busy_user(), "t\nt\nt", "many: insert $_ completes") for 1 .. 6;
	my $elapsed = time - $t0;
	$node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity
  WHERE backend_type = 'audiotricks partition maintenance'}) or die 'the workers did not end';
	my $log = slurp_file($node->logfile, $log_at);
	my $ran = () = $log =~ /partition maintenance could not lock/g;
	# a worker tries for 5 s: one after another, at most 1 + elapsed / 5 ran
	ok($ran >= 1 && $ran <= 1 + int($elapsed / 5),
		"many: one worker at a time for 6 connections ($ran ran in ${elapsed}s)");
	unlike($log, qr/could not start partition maintenance/, 'many: no worker slot ran out');
	$holder->query_safe('COMMIT');
	$holder->quit;
	q1(q{SELECT count(*) FROM audiotricks.at_maintain_history_partitions()});
}

$node->stop;
done_testing();
