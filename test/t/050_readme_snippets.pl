# test/t/050_readme_snippets.pl
# README.md stays true: its SQL walk-through runs, and every file it names
# exists.
#
# 1. Every ```sql block of README.md carries a marker on the line before its
#    fence, and an unmarked one fails this test (so a new block is a
#    decision, not an accident):
#        <!-- readme-check: run as ROLE -->   run it, connected as ROLE
#        <!-- readme-check: skip REASON -->   not run (placeholders, pg_cron, ...)
#    Fences and markers may be indented (a block inside a list item).
#    The "run" blocks are joined in README order into one psql script (psql
#    variables such as :'token' carry from block to block; "\connect - ROLE"
#    is inserted where the role changes) and run with ON_ERROR_STOP against
#    a fresh cluster configured as README's install section says (preloaded
#    library, jwt_secret, a 0600 key file, log_parameter_max_length = 0), in
#    a database "app" that the test creates.  Any error fails, naming the
#    README line of the block it came from.
# 2. Every #anchor link of README.md names a heading, and headings are
#    unique.
# 3. Every repository path that README.md, test/README.md or
#    test/bench/README.md names (src/..., test/..., sql/..., expected/...,
#    .ci/..., and the top-level files) exists.  Paths with a placeholder
#    (NAME, A--B) and generated output (test/fuzz/build, test/bench/results,
#    prisma/generated, node_modules) are not checked.
#
# Needs the repository copy test/run gives TAP (AT_ROOT) to include README.md,
# src, sql, expected and .ci.
use strict;
use warnings;
use File::Basename;
use File::Spec;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $root = $ENV{AT_ROOT} // File::Spec->rel2abs(dirname(__FILE__) . '/../..');
my $readme = "$root/README.md";
ok(-f $readme, "README.md is in the repository copy ($root)")
  or BAIL_OUT("no README.md under $root");

sub slurp_lines
{
	my ($path) = @_;
	open(my $fh, '<:encoding(UTF-8)', $path) or die "$path: $!";
	my @lines = <$fh>;
	close($fh);
	return @lines;
}

# ---------------------------------------------------------------- blocks
# (lang, marker, first line number, text) of every fenced block
my @lines = slurp_lines($readme);
my @blocks;
for (my $i = 0; $i < @lines; $i++)
{
	next unless $lines[$i] =~ /^\s*```(\S*)\s*$/;
	my $lang = $1;
	my $marker = '';
	for (my $j = $i - 1; $j >= 0; $j--)
	{
		next if $lines[$j] =~ /^\s*$/;
		$marker = $1 if $lines[$j] =~ /^\s*<!--\s*readme-check:\s*(.*?)\s*-->\s*$/;
		last;
	}
	my $start = $i + 1;
	my $text = '';
	for ($i++; $i < @lines && $lines[$i] !~ /^\s*```\s*$/; $i++)
	{
		$text .= $lines[$i];
	}
	push @blocks, { lang => $lang, marker => $marker, line => $start, text => $text };
}

my @sql = grep { $_->{lang} eq 'sql' } @blocks;
my @unmarked = grep { $_->{marker} !~ /^(?:run as \w+|skip\b.*)$/ } @sql;
is(scalar(@unmarked), 0, 'every ```sql block of README.md has a readme-check marker')
  or diag(join("\n", map { "README.md line $_->{line}: ```sql block without "
			  . "<!-- readme-check: run as ROLE --> or <!-- readme-check: skip REASON -->" } @unmarked));

# every in-page link [..](#anchor) names a heading (GitHub's slugs)
my %slug;
my $in_code = 0;
for my $l (@lines)
{
	$in_code = !$in_code if $l =~ /^\s*```/;
	next if $in_code || $l !~ /^#+\s+(.*?)\s*$/;
	(my $h = lc $1) =~ s/[^\w\- ]//g;
	$h =~ s/ /-/g;
	$slug{$h}++;
}
my @dangling = grep { !$slug{$_} } (join('', @lines) =~ /\]\(#([^)]+)\)/g);
is(scalar(@dangling), 0, 'every in-page link of README.md names a heading')
  or diag(join("\n", map { "no heading for #$_" } @dangling));
my @dup = grep { $slug{$_} > 1 } sort keys %slug;
is(scalar(@dup), 0, 'README.md headings are unique') or diag(join("\n", @dup));

my @run = grep { $_->{marker} =~ /^run as \w+$/ } @sql;
cmp_ok(scalar(@run), '>=', 3, 'README.md has a runnable walk-through (' . scalar(@run) . ' blocks)');

# ---------------------------------------------------------------- cluster
sub random_hex
{
	open(my $fh, '<:raw', '/dev/urandom') or die "urandom: $!";
	read($fh, my $buf, 32) == 32 or die "short read";
	close($fh);
	return unpack('H*', $buf);
}

my $node = PostgreSQL::Test::Cluster->new('readme');
$node->init;
my $keyfile = File::Spec->rel2abs($node->basedir . '/master.keys');
{
	my $old = umask(077);
	open(my $fh, '>', $keyfile) or die "$keyfile: $!";
	print $fh "# audiotricks master keys\nkey 1 " . random_hex() . "\ncurrent 1\n";
	close($fh);
	umask($old);
	chmod(0600, $keyfile) or die "chmod: $!";
}
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'audiotricks'
audiotricks.jwt_secret = '@{[ random_hex() ]}'
audiotricks.key_file = '$keyfile'
audiotricks.bcrypt_cost = 4
log_parameter_max_length = 0
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE app');

# ---------------------------------------------------------------- run
my $script = "\\set ON_ERROR_STOP 1\n\\set VERBOSITY verbose\n";
my $role = '';
for my $b (@run)
{
	my ($as) = $b->{marker} =~ /^run as (\w+)$/;
	if ($as ne $role)
	{
		# the superuser of the test cluster is the OS user running the test
		my $who = $as eq 'postgres' ? getpwuid($<) : $as;
		$script .= "\\connect - $who\n";
		$role = $as;
	}
	$script .= "\\echo readme-block $b->{line}\n$b->{text}";
}
my ($stdout, $stderr) = ('', '');
my $rc = $node->psql('app', $script, stdout => \$stdout, stderr => \$stderr,
	on_error_stop => 1);
my ($last) = $stdout =~ /.*^readme-block (\d+)$/ms;
is($rc, 0, 'the README walk-through runs without error')
  or diag("failed in the block at README.md line " . ($last // '?') . ":\n$stderr");
unlike($stderr, qr/ERROR|FATAL/, 'no error message from the walk-through')
  or diag($stderr);
note($stdout);

# ---------------------------------------------------------------- paths
my %seen;
my @missing;
for my $doc ('README.md', 'test/README.md', 'test/bench/README.md')
{
	next unless -f "$root/$doc";
	my $n = 0;
	for my $l (slurp_lines("$root/$doc"))
	{
		$n++;
		while ($l =~ m{(?<![\w/.\$~-])((?:src|test|sql|expected|\.ci)/[A-Za-z0-9_./-]*[A-Za-z0-9_/]|Makefile|LICENSE|META\.json|audiotricks\.control)(?![\w/])}g)
		{
			my $p = $1;
			$p =~ s{/\.+$}{};
			next if $p =~ /NAME|A--B|X\.Y\.Z|node_modules|test\/fuzz\/build|test\/bench\/results|prisma\/generated/;
			next if $seen{$p}++;
			push @missing, "$doc line $n: $p" unless -e "$root/$p";
		}
	}
}
cmp_ok(scalar(keys %seen), '>', 20, 'the READMEs name repository files (' . scalar(keys %seen) . ')');
is(scalar(@missing), 0, 'every repository path the READMEs name exists')
  or diag(join("\n", @missing));

$node->stop;
done_testing();
