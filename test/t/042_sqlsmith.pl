# test/t/042_sqlsmith.pl
# sqlsmith (random SQL from the catalog: any table, column, function and
# operator the role can see) as a non-superuser member of audiotricks_user,
# against a database with the extension and data (users, sessions, history,
# API keys, audit events), bounded by --max-queries and a timeout.  sqlsmith's
# own errors (type mismatches, permission denied, division by zero...) are
# expected; what must not happen is a backend crash: the server log shows no
# backend terminated by a signal and no PANIC, and the server still works.
#
# The role needs nothing more than its membership: sqlsmith reads only
# catalogs every role can read (pg_type, pg_proc, pg_operator, pg_class,
# pg_attribute, ...).  --exclude-catalog keeps its queries on the extension's
# tables rather than on the system catalogs; it still calls every function it
# can type, the extension's among them.  Each query is bounded by the role's
# statement_timeout (1 s), so a generated pg_sleep() cannot stall the run.
# track_functions = 'all' counts the calls that reached the extension's C
# functions.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use AtReliability;

my $QUERIES = $ENV{SQLSMITH_QUERIES} // 8000;
my $seed = $ENV{SQLSMITH_SEED} // int(rand(2**31 - 1));
note("sqlsmith seed: $seed (SQLSMITH_SEED=$seed replays it)");

my ($sqlsmith) = grep { -x $_ } map { "$_/sqlsmith" } split /:/, $ENV{PATH};
$sqlsmith //= '';
ok($sqlsmith ne '', 'sqlsmith is installed (test/run installs the Debian package)')
  or BAIL_OUT('sqlsmith is missing');

my $node = at_node('sqlsmith', extra_conf => "track_functions = 'all'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE smith');
$node->safe_psql('smith', 'CREATE EXTENSION audiotricks CASCADE');
at_bench_setup($node, 'smith', 20, 20);
$node->safe_psql('smith', q{
CREATE ROLE smith LOGIN;
GRANT audiotricks_user TO smith;
ALTER ROLE smith SET statement_timeout = '1s';
SELECT pg_stat_reset();
});

my $log_start = -s $node->logfile;
my ($out, $err) = ('', '');
my $ok = IPC::Run::run(
	[ $sqlsmith, '--target=host=' . $node->host . ' port=' . $node->port . ' dbname=smith user=smith',
	  "--max-queries=$QUERIES", "--seed=$seed", '--exclude-catalog', '--verbose' ],
	'>', \$out, '2>', \$err, IPC::Run::timeout(300));
my ($rate) = ($out . $err) =~ /error rate: ([\d.]+)/;
ok($ok, 'sqlsmith ran to the end and exited successfully') or diag(substr($err, -3000));
ok(defined $rate, "sqlsmith generated and ran $QUERIES queries (error rate " . ($rate // '?') . ')');

my $log = slurp_file($node->logfile, $log_start);
my @crash = $log =~ /^.*(?:terminated by signal|server process .* was terminated|PANIC).*$/mg;
is(scalar @crash, 0, 'no backend terminated by a signal and no PANIC in the server log')
  or diag(join "\n", @crash[ 0 .. ($#crash < 9 ? $#crash : 9) ]);
my $errors = () = $log =~ /^.*\bERROR:/mg;
note("sqlsmith: $errors ERROR lines in the server log (expected: random SQL)");

# how far into the extension the queries went
$node->safe_psql('smith', 'SELECT pg_stat_force_next_flush()');
my $reached = $node->safe_psql('smith', q{
SELECT coalesce(sum(calls), 0) || ' ' || count(*) FROM pg_stat_user_functions WHERE schemaname = 'audiotricks' AND calls > 0});
my ($calls, $funcs) = split / /, $reached;
note("sqlsmith called $funcs functions of the extension $calls times in all");
note($node->safe_psql('smith', q{
SELECT string_agg(funcname || ' ' || calls, ', ' ORDER BY calls DESC) FROM pg_stat_user_functions
 WHERE schemaname = 'audiotricks' AND calls > 0}));

is($node->safe_psql('smith', q{
BEGIN;
SELECT audiotricks.at_authenticate(token) IS NOT NULL FROM bench.tokens WHERE i = 1;
SELECT count(*) > 0 FROM audiotricks.at_history_page(5);
COMMIT;}), "t\nt", 'afterwards the server still authenticates and pages history');

$node->stop;
done_testing();
