# test/t/044_history_limits.pl
# Memory of one history write, largest accepted and oversized (issue 14,
# finding 3: an 86 MB transcript took a backend to 1.5 GB; a 21 MB one of
# distinct words to 485 MB, then failed).  Each case runs in a fresh backend
# of an application role under row-level security: the peak resident memory
# of that backend (VmHWM from /proc/<pg_backend_pid()>/status) is read before
# and after the statement, and its growth must stay under the case's bound.
# The value is made by the server in the same statement (string_agg or
# repeat), so the client does not send it; that making is counted in the
# growth too (string_agg's buffer doubles: up to twice the value).
#
# Cases:
# - the largest accepted entry: transcript of exactly 8 MiB of distinct
#   32-letter words (its search document is as large as it gets: at_history_tsv
#   reads its first 1 MB and keeps the words that fit a tsvector), a 64 kB
#   summary of distinct words, key_moments and processing_options near their
#   limits (4,000 key moments: 255,967 bytes); through at_history_add and
#   through a direct INSERT.  Bound 128 MB.
# - 21 MB of distinct words and 86 MB of repeated words: refused with 23514
#   "transcript must be at most 8388608 bytes", through at_history_add (the
#   size is read from the value's header before the INSERT, so the growth is
#   making the value: string_agg's buffer, or the planner's copy when it
#   folds repeat() into a constant; bound 2.5x the value + 32 MB) and a
#   direct INSERT (the executor also copies the row before the CHECK
#   constraint runs, and the search document parses its first 1 MB; bound
#   4x + 64 MB).  Measured on 2 cores, PostgreSQL 15: largest (8 MiB) 98 MB
#   both ways (68 MB when the limit was 4 MiB); 21 MB: 66 MB and 126 MB; 86 MB: 172 MB and 273 MB.  Before the
#   limits: the largest entry failed (54000, string is too long for tsvector)
#   and the 86 MB one reached 1.5 GB.
# No timings are asserted; they are printed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use AtReliability;

my $MB = 1024 * 1024;
my $PW = $AtReliability::PASSWORD;

my $node = at_node('limits');
$node->start;
my $db = 'postgres';
$node->safe_psql($db, qq{
CREATE EXTENSION audiotricks CASCADE;
CREATE ROLE lim_app LOGIN;
GRANT audiotricks_user TO lim_app;
CREATE SCHEMA mem;
GRANT USAGE ON SCHEMA mem TO lim_app;
-- the backend's peak resident memory so far, in bytes
CREATE FUNCTION mem.hwm() RETURNS bigint LANGUAGE sql SECURITY DEFINER
  SET search_path = pg_catalog AS \$\$
SELECT substring(pg_read_file('/proc/' || pg_backend_pid() || '/status') FROM 'VmHWM:\\s+(\\d+) kB')::bigint * 1024
\$\$;
GRANT EXECUTE ON FUNCTION mem.hwm() TO lim_app;
SELECT audiotricks.at_register('lim\@example.com', 'lim', '$PW');
});
my $token = $node->safe_psql($db, "SELECT token FROM audiotricks.at_login('lim', '$PW')");

# distinct words of 32 letters: n of them, joined by spaces
sub words
{
	my ($n, $from) = @_;
	$from //= 0;
	return "(SELECT string_agg(translate(md5(g::text), '0123456789', 'ghijklmnop'), ' ') "
	  . "FROM generate_series($from + 1, $from + $n) g)";
}

my $max_t = 8 * $MB;
my $largest_cols = "left(" . words(260000) . ", $max_t), left(" . words(2000, 500000) . ", 65536), "
  . "(SELECT jsonb_agg(jsonb_build_object('timestamp', '00:01:00', 'description', 'moment ' || g)) FROM generate_series(1, 4000) g), "
  . "jsonb_build_object('language', 'simple', 'notes', repeat('n', 60000))";

# name => [statement, bound in bytes, expected error (or undef), input bytes]
my @cases = (
	[ 'largest entry, at_history_add',
	  "SELECT audiotricks.at_history_add('largest', NULL, NULL, NULL, $largest_cols) IS NOT NULL",
	  128 * $MB, undef, $max_t ],
	[ 'largest entry, direct INSERT',
	  "INSERT INTO audiotricks.audio_history (title, transcript, summary, key_moments, processing_options) "
	  . "SELECT 'largest direct', $largest_cols",
	  128 * $MB, undef, $max_t ],
	[ '21 MB of distinct words, at_history_add',
	  "SELECT audiotricks.at_history_add(title => 'w21', transcript => " . words(650000) . ")",
	  2.5 * 21 * $MB + 32 * $MB, 'transcript must be at most 8388608 bytes', 21 * $MB ],
	[ '21 MB of distinct words, direct INSERT',
	  "INSERT INTO audiotricks.audio_history (title, transcript) VALUES ('w21', " . words(650000) . ")",
	  4 * 21 * $MB + 64 * $MB, 'transcript must be at most 8388608 bytes', 21 * $MB ],
	[ '86 MB transcript, at_history_add',
	  "SELECT audiotricks.at_history_add(title => 't86', transcript => repeat('we talked about the budget ', 3340000))",
	  2.5 * 86 * $MB + 32 * $MB, 'transcript must be at most 8388608 bytes', 86 * $MB ],
	[ '86 MB transcript, direct INSERT',
	  "INSERT INTO audiotricks.audio_history (title, transcript) VALUES ('t86', repeat('we talked about the budget ', 3340000))",
	  4 * 86 * $MB + 64 * $MB, 'transcript must be at most 8388608 bytes', 86 * $MB ],
);

for my $c (@cases)
{
	my ($name, $stmt, $bound, $error, $input) = @$c;
	# one fresh backend per case; JIT off (LLVM's own memory is not ours)
	my $script = qq{\\set VERBOSITY verbose
\\set ON_ERROR_ROLLBACK on
SET jit = off;
BEGIN;
SELECT 'auth ' || (audiotricks.at_authenticate('$token') IS NOT NULL);
SELECT 'before ' || mem.hwm();
\\echo start
$stmt;
\\echo end
SELECT 'after ' || mem.hwm();
COMMIT;
};
	my $t0 = time;
	my ($ret, $out, $err) = $node->psql($db, $script, extra_params => [ '-U', 'lim_app' ],
		on_error_stop => 0, timeout => 600);
	my $secs = time - $t0;
	my ($before) = $out =~ /^before (\d+)$/m;
	my ($after) = $out =~ /^after (\d+)$/m;
	ok(defined $before && defined $after, "$name: measured") or do { diag($out, $err); next; };
	if (defined $error)
	{
		like($err, qr/ERROR:\s+23514: \Q$error\E/, "$name: refused with 23514 ($error)");
	}
	else
	{
		unlike($err // '', qr/ERROR/, "$name: accepted") or diag($err);
	}
	my $growth = $after - $before;
	cmp_ok($growth, '<', $bound,
		sprintf('%s: peak memory grows by %.1f MB (< %.0f MB; value %.0f MB)',
			$name, $growth / $MB, $bound / $MB, $input / $MB));
	note(sprintf('%-42s VmHWM %.1f -> %.1f MB, %.2f s in all', $name, $before / $MB, $after / $MB, $secs));
}

# the largest entries are stored whole and searchable from their start
my $res = $node->safe_psql($db, q{
SELECT title, octet_length(transcript), octet_length(summary), length(search_tsv) > 25000,
       pg_column_size(search_tsv::text::tsvector) < 2 * 1024 * 1024
  FROM audiotricks.audio_history ORDER BY title});
is($res, "largest|8388608|65536|t|t\nlargest direct|8388608|65536|t|t",
	'both largest entries stored whole, each with a search document of over 25,000 lexemes');

$node->stop;
done_testing();
