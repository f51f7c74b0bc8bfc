# test/t/014_pg_cron.pl
# The scheduled jobs of README's "Scheduled cleanup with pg_cron", run by
# pg_cron itself (Debian's postgresql-15-cron, preloaded beside audiotricks),
# never by calling the functions by hand:
#  - README's pg_cron block is taken from README.md and run as it stands
#    (CREATE EXTENSION, cron.schedule_in_database into "app" with README's job
#    names and schedules); every job it schedules has an entry in %JOBS below
#    (what to prepare before it runs, what to check after), and every entry
#    is scheduled by README (a partition-maintenance job goes in both).
#  - each job is then moved to '* * * * *' (pg_cron 1.4 has minute
#    schedules only) and the test polls cron.job_run_details until it has
#    run once (at most about a minute and a half; the poll's bound is the
#    TAP timeout, never an assertion); it must have succeeded, as the
#    scheduling superuser, with the effect its entry checks.
#  - a job scheduled for a role without EXECUTE on the purge fails, says so
#    in cron.job_run_details ("permission denied"), and deletes nothing.
use strict;
use warnings;
use File::Basename;
use File::Spec;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AtReliability;

my $root = $ENV{AT_ROOT} // File::Spec->rel2abs(dirname(__FILE__) . '/../..');
my $pkglib = `pg_config --pkglibdir`;
chomp $pkglib;
-f "$pkglib/pg_cron.so"
  or BAIL_OUT("pg_cron is not installed in $pkglib (apt-get install postgresql-15-cron; test/run does)");

# ---------------------------------------------------------------- README's block
open(my $fh, '<:encoding(UTF-8)', "$root/README.md") or die "$root/README.md: $!";
my $readme = do { local $/; <$fh> };
close($fh);
my ($cron_sql) = $readme =~
  /<!--\s*readme-check:\s*skip needs pg_cron[^>]*-->\s*\n```sql\n(.*?)```/s;
ok(defined $cron_sql, "README.md has the pg_cron block") or BAIL_OUT('no pg_cron block in README.md');
my %readme_jobs = $cron_sql =~ /cron\.schedule_in_database\('([^']+)',\s*'([^']+)'/g;

# ---------------------------------------------------------------- the jobs
# Every job README schedules, by name: prepare (before pg_cron runs it, on
# the node, returns a state) and check (after its run succeeded, given that
# state).  A job added to README (partition maintenance, ...) needs an entry
# here, or the test fails.
my %JOBS = (
	'audiotricks-purge-sessions' => {
		prepare => \&prepare_sessions,
		check => \&check_sessions,
	},
	'audiotricks-purge-audit' => {
		prepare => \&prepare_audit,
		check => \&check_audit,
	},
	'audiotricks-partitions' => {
		prepare => \&prepare_partitions,
		check => \&check_partitions,
	},
);

is_deeply([ sort keys %readme_jobs ], [ sort keys %JOBS ],
	'README schedules exactly the jobs this test checks');

# ---------------------------------------------------------------- the node
my $node = at_node('cron', extra_conf => qq{
shared_preload_libraries = 'audiotricks,pg_cron'
cron.database_name = 'postgres'
});
# as README says, but this node's socket directory (its pg_hba trusts local)
$node->append_conf('postgresql.conf', "cron.host = '" . $node->host . "'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE app');
$node->safe_psql('app', 'CREATE EXTENSION audiotricks CASCADE');
like($node->safe_psql('postgres', q{SELECT default_version FROM pg_available_extensions WHERE name = 'pg_cron'}),
	qr/^1\.(?:[4-9]|\d\d)/, 'pg_cron 1.4 or newer');

# "app" database: SQL as superuser
sub app { return $node->safe_psql('app', $_[0]) }
sub cron { return $node->safe_psql('postgres', $_[0]) }

# run_of(NAME, SINCE): "status|return_message|username|database" of the
# job's latest run started after SINCE, once one has finished (polls:
# pg_cron starts jobs at the minute)
sub run_of
{
	my ($name, $since) = @_;
	my $runs = qq{FROM cron.job_run_details d JOIN cron.job j USING (jobid)
 WHERE j.jobname = '$name' AND d.start_time > '$since' AND d.status IN ('succeeded', 'failed')};
	$node->poll_query_until('postgres', "SELECT EXISTS (SELECT 1 $runs)")
	  or die "job $name never finished a run";
	return cron("SELECT d.status || '|' || coalesce(d.return_message, '') || '|' || d.username
  || '|' || d.database $runs ORDER BY d.start_time DESC LIMIT 1");
}

# ---------------------------------------------------------------- README's block, as it stands
cron($cron_sql);
for my $name (sort keys %readme_jobs)
{
	is(cron(qq{SELECT schedule || '|' || database || '|' || username || '|' || active
  FROM cron.job WHERE jobname = '$name'}),
		"$readme_jobs{$name}|app|postgres|true",
		"$name: scheduled as README says, in app, as the scheduling superuser");
}
# paused while the data is prepared and the failing job runs (README's own
# schedules could fire meanwhile)
cron(q{SELECT cron.alter_job(jobid, active => false) FROM cron.job WHERE jobname LIKE 'audiotricks-%'});

# ---------------------------------------------------------------- prepare
# two users, each logged in (their events feed the audit job)
app(q{SELECT audiotricks.at_register('cron1@example.com', 'cron1', 'Passw0rd1'),
  audiotricks.at_register('cron2@example.com', 'cron2', 'Passw0rd2')});
my %session_of = map { $_ => app(qq{SELECT session_id FROM audiotricks.at_login('cron$_', 'Passw0rd$_')}) } 1, 2;
my %state;
$state{$_} = $JOBS{$_}{prepare}->() for sort keys %JOBS;

# ---------------------------------------------------------------- a job without the privilege
# scheduled by the superuser for "ops", a login role with USAGE on the
# schema but not EXECUTE on the purge: it runs as ops, fails, and says so;
# the expired session is still there
app('CREATE ROLE ops LOGIN; GRANT USAGE ON SCHEMA audiotricks TO ops');
my $since = cron('SELECT now()');
cron(q{SELECT cron.schedule_in_database('ops-purge-sessions', '* * * * *',
  'SELECT audiotricks.at_purge_expired_sessions()', 'app', 'ops')});
my ($status, $message, $user, $db) = split /\|/, run_of('ops-purge-sessions', $since), 4;
is("$status|$user|$db", 'failed|ops|app', 'a job for a role without EXECUTE fails, run as that role');
like($message, qr/permission denied for function at_purge_expired_sessions/,
	'its run details say permission denied for the function');
cron(q{SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'ops-purge-sessions'});
is(app(qq{SELECT count(*) FROM audiotricks.sessions WHERE id = '$state{'audiotricks-purge-sessions'}{expired}'}),
	'1', 'the failed job deleted nothing');

# ---------------------------------------------------------------- README's jobs, run by pg_cron
# (only runs from now on count: README's schedules may have fired earlier)
$since = cron('SELECT now()');
cron(q{SELECT cron.alter_job(jobid, schedule => '* * * * *', active => true)
  FROM cron.job WHERE jobname LIKE 'audiotricks-%'});
for my $name (sort keys %JOBS)
{
	my ($status, $message, $user, $db) = split /\|/, run_of($name, $since), 4;
	is("$status|$user|$db", 'succeeded|postgres|app', "$name: pg_cron ran it, as postgres in app")
	  or diag("return_message: $message");
	$JOBS{$name}{check}->($state{$name});
}
cron(q{SELECT cron.unschedule(jobid) FROM cron.job});

# ---------------------------------------------------------------- sessions
# cron1's session expired a minute ago, cron2's is live
sub prepare_sessions
{
	my ($expired, $live) = @session_of{1, 2};
	app(qq{UPDATE audiotricks.sessions SET expires_at = now() - interval '1 minute' WHERE id = '$expired'});
	is(app(q{SELECT count(*) FROM audiotricks.sessions WHERE expires_at < now()}), '1',
		'sessions: one expired session before the job');
	return { expired => $expired, live => $live };
}

sub check_sessions
{
	my ($s) = @_;
	is(app(q{SELECT count(*) FROM audiotricks.sessions WHERE expires_at < now()}), '0',
		'sessions: no expired session after the job');
	is(app(qq{SELECT count(*) FROM audiotricks.sessions WHERE id = '$s->{expired}'}), '0',
		'sessions: the expired one is gone');
	is(app(qq{SELECT count(*) FROM audiotricks.sessions WHERE id = '$s->{live}'}), '1',
		'sessions: the live one stays');
}

# ---------------------------------------------------------------- audit retention
# README's window is 1 year: events an hour past it go, an event an hour
# inside it and every younger one stay
sub prepare_audit
{
	my $old = app(q{WITH o AS (UPDATE audiotricks.audit_log SET created_at = now() - interval '1 year 1 hour'
  WHERE user_id = (SELECT id FROM audiotricks.users WHERE username = 'cron1') RETURNING id)
SELECT string_agg(id::text, ',' ORDER BY id) FROM o});
	my $inside = app(q{UPDATE audiotricks.audit_log SET created_at = now() - interval '1 year' + interval '1 hour'
  WHERE id = (SELECT id FROM audiotricks.audit_log
              WHERE user_id = (SELECT id FROM audiotricks.users WHERE username = 'cron2') ORDER BY id LIMIT 1)
RETURNING id});
	my @old = split /,/, $old // '';
	cmp_ok(scalar(@old), '>=', 2, 'audit: events older than the window before the job');
	my $young = app(q{SELECT string_agg(id::text, ',' ORDER BY id) FROM audiotricks.audit_log
  WHERE created_at > now() - interval '1 year'});
	like($young, qr/\Q$inside\E/, 'audit: the event an hour inside the window is among the younger ones');
	return { old => \@old, young => $young };
}

sub check_audit
{
	my ($s) = @_;
	is(app(q{SELECT count(*) FROM audiotricks.audit_log WHERE created_at < now() - interval '1 year'}), '0',
		'audit: nothing older than the window after the job');
	my $list = join ',', map { "'$_'" } @{ $s->{old} };
	is(app("SELECT count(*) FROM audiotricks.audit_log WHERE id IN ($list)"), '0',
		'audit: the old events are gone');
	my $young = join ',', map { "'$_'" } split /,/, $s->{young};
	is(app("SELECT count(*) FROM audiotricks.audit_log WHERE id IN ($young)"),
		scalar(split /,/, $s->{young}), 'audit: every younger event stays, the one an hour inside too');
}

# ---------------------------------------------------------------- partitions
# the last of the partitions made ahead is missing, and with a retention of
# 12 months (set for the database, as an operator would) a partition of
# 2000 has expired: the job makes the one and drops the other, recording it
sub prepare_partitions
{
	app(q{SELECT count(*) FROM audiotricks.at_maintain_history_partitions()});
	my $last = app(q{SELECT 'audiotricks.audio_history_p'
  || to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 months', 'YYYYMM')});
	# (the insert first: one that found a partition missing would start the
	# maintenance in the background)
	app(q{CREATE TABLE audiotricks.audio_history_p200001 PARTITION OF audiotricks.audio_history
  FOR VALUES FROM ('2000-01-01') TO ('2000-02-01');
INSERT INTO audiotricks.audio_history (user_id, title, created_at)
  SELECT id, 'expired', '2000-01-15' FROM audiotricks.users WHERE username = 'cron1'});
	app(qq{ALTER EXTENSION audiotricks DROP TABLE $last; DROP TABLE $last});
	app(q{ALTER DATABASE app SET audiotricks.history_retention = '12 months'});
	is(app(qq{SELECT to_regclass('$last') IS NULL}), 't', 'partitions: the last one ahead is missing before the job');
	is(app(q{SELECT count(*) FROM audiotricks.audit_log WHERE event = 'history_partition_dropped'}), '0',
		'partitions: no drop recorded before the job');
	return { last => $last };
}

sub check_partitions
{
	my ($s) = @_;
	is(app(qq{SELECT to_regclass('$s->{last}') IS NOT NULL}), 't', 'partitions: the job made the missing one');
	is(app(q{SELECT to_regclass('audiotricks.audio_history_p200001') IS NULL}), 't',
		'partitions: the job dropped the expired one');
	is(app(q{SELECT count(*) FROM audiotricks.audio_history WHERE title = 'expired'}), '0',
		'partitions: its rows went with it');
	is(app(q{SELECT count(*) FROM audiotricks.audit_log WHERE event = 'history_partition_dropped'}), '1',
		'partitions: the drop is recorded in the audit log');
	app(q{ALTER DATABASE app RESET audiotricks.history_retention});
}

$node->stop;
done_testing();
