# test/t/041_memory.pl
# Memory: one backend calls each function many times and must not grow.
# For every case, in one transaction: a warm-up (a tenth of the calls), a
# measurement, the calls, a measurement, then COMMIT and a last measurement.
# Measured: the total of pg_backend_memory_contexts and, from
# /proc/self/status of the backend, RssAnon (private memory: palloc and
# malloc) and VmRSS (which also counts the shared buffers the backend has
# touched, so it is printed but not asserted).  Growth of the contexts total
# and of RssAnon, both inside the transaction and after COMMIT, must stay
# below 4 MB.  Each statement's result is checked too, so the calls really
# did their work.
#
# Calls: 1,000,000 each for at_authenticate (100 tokens in turn, more than
# the 64-entry token cache), at_current_user_id (identity from
# at_authenticate, and from PostgREST's request.headers with 100 different
# headers in turn), at_uuid_v7, at_encrypt_key + at_decrypt_key,
# at_get_api_key, at_history_page; 50,000 for at_history_search (about
# 100-200 us a call: a million would take minutes); 1,000 each for at_register
# and at_login at bcrypt cost 4 (bcrypt-bound).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AtReliability;

my $MB = 1024 * 1024;
my $LIMIT = 4 * $MB;
my $PW = $AtReliability::PASSWORD;

my $node = at_node('memory');
$node->start;
my $db = 'postgres';
$node->safe_psql($db, 'CREATE EXTENSION audiotricks CASCADE');

$node->safe_psql($db, qq{
CREATE SCHEMA mem;
CREATE FUNCTION mem.snapshot() RETURNS text LANGUAGE sql VOLATILE AS \$\$
SELECT (SELECT sum(total_bytes) FROM pg_backend_memory_contexts)::text
    || ' ' || coalesce(substring(pg_read_file('/proc/self/status') FROM 'RssAnon:\\s+(\\d+) kB'), '-1')
    || ' ' || coalesce(substring(pg_read_file('/proc/self/status') FROM 'VmRSS:\\s+(\\d+) kB'), '-1')
\$\$;
SELECT audiotricks.at_register('mem\@example.com', 'mem', '$PW');
CREATE TABLE mem.tokens AS
  SELECT g AS i, l.token FROM generate_series(0, 99) g, LATERAL audiotricks.at_login('mem', '$PW') l;
CREATE TABLE mem.headers AS
  SELECT array_agg(json_build_object('authorization', 'Bearer ' || token)::text ORDER BY i) AS h FROM mem.tokens;
BEGIN;
SELECT audiotricks.at_authenticate(token) FROM mem.tokens WHERE i = 0;
SELECT count(audiotricks.at_history_add(title => 'talk ' || g, transcript => 'seed words number ' || (g % 50),
  summary => 'summary of talk ' || g)) FROM generate_series(1, 300) g;
} . "SELECT audiotricks.at_set_api_key('openai', 'sk-memory-test');\n" . q{
COMMIT;
});

# name => [calls, statement (N = the number of calls), expected result, needs identity]
my @cases = (
	[ 'at_authenticate', 1_000_000,
	  'SELECT count(audiotricks.at_authenticate(t.token)) FROM generate_series(1, N / 100) g, mem.tokens t',
	  'N', 0 ],
	[ 'at_current_user_id (at_authenticate)', 1_000_000,
	  'SELECT count(audiotricks.at_current_user_id()) FROM generate_series(1, N)', 'N', 1 ],
	[ 'at_current_user_id (request.headers)', 1_000_000,
	  q{SELECT count(audiotricks.at_current_user_id()) FROM mem.headers, generate_series(1, N) g,
	      LATERAL (SELECT set_config('request.headers', h[g % 100 + 1], true)) s}, 'N', 0 ],
	[ 'at_uuid_v7', 1_000_000,
	  'SELECT count(DISTINCT audiotricks.at_uuid_v7()) FROM generate_series(1, N)', 'N', 0 ],
	[ 'at_encrypt_key + at_decrypt_key', 1_000_000,
	  q{SELECT count(*) FILTER (WHERE audiotricks.at_decrypt_key(audiotricks.at_encrypt_key('sk-' || g, 'ctx'), 'ctx') = 'sk-' || g)
	      FROM generate_series(1, N) g}, 'N', 0 ],
	[ 'at_get_api_key', 1_000_000,
	  q{SELECT count(*) FILTER (WHERE audiotricks.at_get_api_key('openai') = 'sk-memory-test') FROM generate_series(1, N)},
	  'N', 1 ],
	[ 'at_history_page', 1_000_000,
	  q{SELECT count(DISTINCT g) FROM (SELECT array_agg(cursor) AS a FROM audiotricks.at_history_page(100)) c,
	      generate_series(1, N) g,
	      LATERAL audiotricks.at_history_page(g % 20 + 1, c.a[g % 100 + 1]) p}, 'N', 1 ],
	[ 'at_history_search', 50_000,
	  q{SELECT count(DISTINCT g) FROM generate_series(1, N) g,
	      LATERAL audiotricks.at_history_search('seed words number ' || (g % 50), g % 10 + 1,
	        CASE WHEN g % 2 = 0 THEN (SELECT s.cursor FROM audiotricks.at_history_search('seed words number ' || (g % 50), 1) s) END) p},
	  'N', 1 ],
	[ 'at_register', 1_000,
	  q{SELECT count(audiotricks.at_register('r' || (g + OFFSET) || '@example.com', 'r' || (g + OFFSET), 'Passw0rdA'))
	      FROM generate_series(1, N) g}, 'N', 0 ],
	[ 'at_login', 1_000,
	  qq{SELECT count(*) FROM generate_series(1, N) g, LATERAL audiotricks.at_login('mem' || left(g::text, 0), '$PW') l},
	  'N', 0 ],
);

# one backend for everything
# JIT off: a statement over the JIT cost threshold loads LLVM, whose ~10 MB
# of malloc'd memory (once per backend, outside the memory contexts) would
# show in RssAnon as if a function had leaked it
my $script = "SET client_min_messages = warning;\nSET jit = off;\nSELECT 'pid ' || pg_backend_pid();\n";
my $offset = 1_000_000;
for my $c (@cases)
{
	my ($name, $n, $stmt, $expect, $ident) = @$c;
	my $warm = int($n / 10);
	my $begin = "BEGIN;\n"
	  . ($ident ? "SELECT audiotricks.at_authenticate(token) IS NOT NULL FROM mem.tokens WHERE i = 0;\n" : '');
	my $mk = sub {
		my ($count) = @_;
		(my $s = $stmt) =~ s/\bN\b/$count/g;
		$s =~ s/\bOFFSET\b/$offset/g;
		$offset += $count;
		return "$s;\n";
	};
	$script .= "\\echo case $name\n$begin" . $mk->($warm)
	  . "SELECT 'before ' || mem.snapshot();\n"
	  . $mk->($n)
	  . "SELECT 'inside ' || mem.snapshot();\nCOMMIT;\n"
	  . "SELECT 'after ' || mem.snapshot();\n";
}
my $started = time;
my ($ret, $out, $err) = $node->psql($db, $script, on_error_stop => 1, timeout => 900);
is($ret, 0, 'the whole script ran in one backend without error') or diag($err);
note(sprintf('one backend, %d s in all', time - $started));

my %res;
my $cur;
my @lines = split /\n/, $out;
my ($pid) = map { /^pid (\d+)/ ? $1 : () } @lines;
for my $line (@lines)
{
	if ($line =~ /^case (.*)$/) { $cur = $1; $res{$cur} = { results => [] }; next; }
	next unless defined $cur;
	if ($line =~ /^(before|inside|after) (\d+) (-?\d+) (-?\d+)$/)
	{
		$res{$cur}{$1} = { ctx => $2, anon => $3 * 1024, rss => $4 * 1024 };
	}
	elsif ($line =~ /^\d+$/) { push @{ $res{$cur}{results} }, $line; }
}
note("all in backend $pid") if defined $pid;

for my $c (@cases)
{
	my ($name, $n) = @$c;
	my $r = $res{$name};
	ok($r && $r->{before} && $r->{inside} && $r->{after}, "$name: measured") or next;
	# results: [warm-up, main] (the identity check prints t, not a number)
	is($r->{results}[-1], $n, "$name: $n calls, each did its work");
	my ($b, $i, $a) = @$r{qw(before inside after)};
	note(sprintf('%-40s %9d calls  contexts %.2f -> %.2f (in xact) -> %.2f MB  RssAnon %.2f -> %.2f -> %.2f MB  VmRSS %.2f -> %.2f -> %.2f MB',
		$name, $n, map { $_ / $MB } $b->{ctx}, $i->{ctx}, $a->{ctx}, $b->{anon}, $i->{anon}, $a->{anon},
		$b->{rss}, $i->{rss}, $a->{rss}));
	for my $what ([ 'contexts', 'ctx' ], [ 'RssAnon', 'anon' ])
	{
		my ($label, $key) = @$what;
		my $growth = ($i->{$key} > $a->{$key} ? $i->{$key} : $a->{$key}) - $b->{$key};
		cmp_ok($growth, '<', $LIMIT, sprintf('%s: %s grows by %.2f MB (< 4 MB)', $name, $label, $growth / $MB));
	}
}

$node->stop;
done_testing();
