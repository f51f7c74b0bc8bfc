# test/t/033_upgrade.pl
# Upgrades.  The versions come from the scripts in src/extension
# (audiotricks--X.sql installs X, audiotricks--A--B.sql updates A to B) and
# the current one from audiotricks.control, so a new audiotricks--0.1.0--0.2.0.sql
# is picked up without touching this test.  From every installable version
# (at least the first released one; with a single version that is the current
# one, so the test compares 0.1.0 with itself): install it, write data through
# its functions, ALTER EXTENSION audiotricks UPDATE, then require that the
# catalog equals a fresh install of the current version and that the data is
# still readable (old passwords log in, old tokens authenticate, history pages
# and settings are the same, the audit log is kept).  The catalog snapshot is
# shown to catch differences: each of a list of deliberate changes, made in a
# scratch database and rolled back, must change it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AtReliability;

my $root = $ENV{AT_ROOT} or die 'AT_ROOT is not set (run through test/run)';

sub vcmp
{
	my @a = split /\./, $_[0];
	my @b = split /\./, $_[1];
	while (@a || @b)
	{
		my $c = (shift(@a) // 0) <=> (shift(@b) // 0);
		return $c if $c;
	}
	return 0;
}

# versions and scripts from the source tree
my (%versions, %install, @updates);
for my $path (glob("$root/src/extension/audiotricks--*.sql"))
{
	my $file = $path =~ s{.*/}{}r;
	if ($file =~ /^audiotricks--([0-9.]+)--([0-9.]+)\.sql$/)
	{
		push @updates, [ $1, $2, $file ];
		$versions{$1} = $versions{$2} = 1;
	}
	elsif ($file =~ /^audiotricks--([0-9.]+)\.sql$/)
	{
		$install{$1} = $file;
		$versions{$1} = 1;
	}
	else
	{
		fail("unexpected script name $file");
	}
}
my ($current) = slurp_file("$root/audiotricks.control") =~ /^default_version\s*=\s*'([^']+)'/m;
my @all = sort { vcmp($a, $b) } keys %versions;
note('versions in src/extension: ' . join(', ', @all) . "; current: $current; update scripts: "
	  . (join(', ', map { $_->[2] } @updates) || 'none'));
ok(exists $versions{$current}, "the control file's version $current has a script");
is($all[-1], $current, 'the current version is the newest one');

my $node = at_node('upgrade');
$node->start;

# every script is installed (the Makefile's DATA lists it)
my $sharedir = `pg_config --sharedir`;
chomp $sharedir;
for my $s ((values %install), map { $_->[2] } @updates)
{
	ok(-f "$sharedir/extension/$s", "$s is installed");
}
my %available = map { $_ => 1 } split /\n/, $node->safe_psql('postgres',
	q{SELECT version FROM pg_available_extension_versions WHERE name = 'audiotricks'});
my @starts = grep { $available{$_} } @all;
is($starts[0], $all[0], "the first released version ($all[0]) can be installed");
for my $v (@starts)
{
	next if $v eq $current;
	isnt($node->safe_psql('postgres', qq{SELECT path FROM pg_extension_update_paths('audiotricks')
		WHERE source = '$v' AND target = '$current'}), '', "an update path leads from $v to $current");
}

# The catalog of the extension: every object in its schema and every member,
# with the properties an upgrade must get right.  One sorted line per fact,
# no OIDs.
my $snapshot_sql = q{
WITH ext AS (SELECT e.* FROM pg_extension e WHERE e.extname = 'audiotricks'),
     nsp AS (SELECT n.oid FROM pg_namespace n WHERE n.nspname IN ('audiotricks', 'audiotricks_internal', 'audiotricks_api'))
SELECT line FROM (
  SELECT 'version ' || extversion || ' relocatable=' || extrelocatable || ' owner=' || extowner::regrole
    || ' schema=' || extnamespace::regnamespace AS line FROM ext
  UNION ALL
  SELECT 'config ' || u.c::regclass::text || ' condition=' || coalesce(u.cond, '')
    FROM ext, unnest(ext.extconfig, ext.extcondition) AS u(c, cond)
  UNION ALL
  SELECT 'member ' || pg_describe_object(d.classid, d.objid, d.objsubid)
    FROM pg_depend d, ext
   WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
  UNION ALL
  SELECT 'schema ' || n.nspname || ' owner=' || n.nspowner::regrole || ' acl=' || coalesce(n.nspacl::text, '')
    || ' comment=' || coalesce(obj_description(n.oid, 'pg_namespace'), '')
    FROM pg_namespace n WHERE n.oid IN (SELECT oid FROM nsp)
  UNION ALL
  SELECT 'function ' || p.oid::regprocedure::text || ' args=(' || pg_get_function_arguments(p.oid)
    || ') returns=' || coalesce(pg_get_function_result(p.oid), '') || ' kind=' || p.prokind::text
    || ' lang=' || l.lanname || ' volatility=' || p.provolatile::text || ' security_definer=' || p.prosecdef
    || ' strict=' || p.proisstrict || ' leakproof=' || p.proleakproof || ' parallel=' || p.proparallel::text
    || ' cost=' || p.procost || ' rows=' || p.prorows || ' retset=' || p.proretset
    || ' config=' || coalesce(p.proconfig::text, '') || ' bin=' || coalesce(p.probin, '')
    || ' src=' || md5(p.prosrc) || ' sqlbody=' || md5(coalesce(pg_get_function_sqlbody(p.oid), ''))
    || ' owner=' || p.proowner::regrole
    || ' acl=' || coalesce(p.proacl::text, '') || ' comment=' || coalesce(obj_description(p.oid, 'pg_proc'), '')
    FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
   WHERE p.pronamespace IN (SELECT oid FROM nsp)
  UNION ALL
  SELECT 'relation ' || c.relname || ' kind=' || c.relkind::text || ' persistence=' || c.relpersistence::text
    || ' rls=' || c.relrowsecurity || ' force_rls=' || c.relforcerowsecurity
    || ' options=' || coalesce(c.reloptions::text, '') || ' owner=' || c.relowner::regrole
    || ' acl=' || coalesce(c.relacl::text, '') || ' comment=' || coalesce(obj_description(c.oid, 'pg_class'), '')
    FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM nsp)
  UNION ALL
  SELECT 'column ' || c.relname || '.' || a.attname
    || ' position=' || row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum)
    || ' type=' || format_type(a.atttypid, a.atttypmod) || ' not_null=' || a.attnotnull
    || ' default=' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '')
    || ' generated=' || a.attgenerated::text || ' identity=' || a.attidentity::text
    || ' collation=' || coalesce(co.collname, '') || ' storage=' || a.attstorage::text
    || ' statistics=' || a.attstattarget || ' acl=' || coalesce(a.attacl::text, '')
    || ' comment=' || coalesce(col_description(c.oid, a.attnum), '')
    FROM pg_class c
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
    LEFT JOIN pg_collation co ON co.oid = a.attcollation
   WHERE c.relnamespace IN (SELECT oid FROM nsp) AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')
  UNION ALL
  SELECT 'constraint ' || c.relname || '.' || k.conname || ' type=' || k.contype::text
    || ' def=' || pg_get_constraintdef(k.oid) || ' deferrable=' || k.condeferrable
    || ' deferred=' || k.condeferred || ' valid=' || k.convalidated
    || ' comment=' || coalesce(obj_description(k.oid, 'pg_constraint'), '')
    FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
   WHERE c.relnamespace IN (SELECT oid FROM nsp)
  UNION ALL
  SELECT 'index ' || pg_get_indexdef(i.indexrelid) || ' valid=' || i.indisvalid
    || ' clustered=' || i.indisclustered
    || ' comment=' || coalesce(obj_description(i.indexrelid, 'pg_class'), '')
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
   WHERE c.relnamespace IN (SELECT oid FROM nsp)
  UNION ALL
  SELECT 'trigger ' || pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text
    || ' comment=' || coalesce(obj_description(t.oid, 'pg_trigger'), '')
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
   WHERE c.relnamespace IN (SELECT oid FROM nsp) AND NOT t.tgisinternal
  UNION ALL
  SELECT 'policy ' || p.tablename || '.' || p.policyname || ' ' || p.permissive || ' roles=' || p.roles::text
    || ' cmd=' || p.cmd || ' using=' || coalesce(p.qual, '') || ' check=' || coalesce(p.with_check, '')
    FROM pg_policies p WHERE p.schemaname = 'audiotricks'
  UNION ALL
  SELECT 'sequence ' || s.seqrelid::regclass::text || ' type=' || format_type(s.seqtypid, NULL)
    || ' start=' || s.seqstart || ' increment=' || s.seqincrement || ' cycle=' || s.seqcycle
    FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
   WHERE c.relnamespace IN (SELECT oid FROM nsp)
  UNION ALL
  SELECT 'type ' || format_type(t.oid, NULL) || ' type=' || t.typtype::text || ' owner=' || t.typowner::regrole
    || ' acl=' || coalesce(t.typacl::text, '') || ' comment=' || coalesce(obj_description(t.oid, 'pg_type'), '')
    FROM pg_type t WHERE t.typnamespace IN (SELECT oid FROM nsp)
) s ORDER BY line};

sub snapshot { return $node->safe_psql($_[0], $snapshot_sql) }

sub compare_snapshots
{
	my ($got, $want, $what) = @_;
	my %g = map { $_ => 1 } split /\n/, $got;
	my %w = map { $_ => 1 } split /\n/, $want;
	my @only_got = grep { !$w{$_} } sort keys %g;
	my @only_want = grep { !$g{$_} } sort keys %w;
	ok(!@only_got && !@only_want, $what)
	  or diag(join "\n", (map { "upgraded only: $_" } @only_got), (map { "fresh only:    $_" } @only_want));
}

# the fresh install of the current version
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION audiotricks CASCADE');
# audio_history's partitions, as the maintenance makes them (an insert starts
# it in the background; here it is run, as below after the update)
$node->safe_psql('fresh', 'SELECT count(*) FROM audiotricks.at_maintain_history_partitions()');
my $fresh = snapshot('fresh');
my $nlines = () = $fresh =~ /\n/g;
cmp_ok($nlines, '>', 150, "the snapshot of a fresh install has many facts ($nlines lines)");
for my $kind (qw(version config member schema function relation column constraint index trigger policy type))
{
	like($fresh, qr/^$kind /m, "the snapshot includes '$kind' lines");
}

# what a user can read, as the application role: the contract's columns
# (a later version may add columns)
sub user_view
{
	my ($db, $token, $with_keys) = @_;
	my $sql = qq{BEGIN;
SELECT audiotricks.at_authenticate('$token');
SELECT p.id, p.title, p.audio_url, p.file_size_bytes, p.duration_seconds, p.transcript, p.summary,
       p.key_moments, p.processing_options, p.created_at FROM audiotricks.at_history_page(20) p;
SELECT h.title FROM audiotricks.at_history_search('upgrade', 20) h;
SELECT s.preferred_language, s.summary_quality, s.settings_json, s.updated_at FROM audiotricks.at_get_settings() s;
SELECT event, session_id IS NOT NULL, created_at FROM audiotricks.audit_log ORDER BY id;
};
	$sql .= "SELECT audiotricks.at_get_api_key('openai');\n" if $with_keys;
	$sql .= "COMMIT;\n";
	return $node->safe_psql($db, $sql, extra_params => [ '-U', 'app' ]);
}

$node->safe_psql('postgres', 'CREATE ROLE app LOGIN; GRANT audiotricks_user TO app');
for my $v (@starts)
{
	my $db = 'up_' . ($v =~ tr/./_/r);
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, "CREATE EXTENSION audiotricks VERSION '$v' CASCADE");
	is($node->safe_psql($db, q{SELECT extversion FROM pg_extension WHERE extname = 'audiotricks'}), $v,
		"$v installed");

	# data written through version $v's functions
	my $keys_before = at_have_api_keys($node, $db);
	my %token;
	for my $u (1 .. 3)
	{
		$node->safe_psql($db, "SELECT audiotricks.at_register('up$u\@example.com', 'up$u', 'Passw0rd$u')",
			extra_params => [ '-U', 'app' ]);
		$token{$u} = $node->safe_psql($db, "SELECT token FROM audiotricks.at_login('up$u', 'Passw0rd$u')",
			extra_params => [ '-U', 'app' ]);
		$node->safe_psql($db, "BEGIN; SELECT audiotricks.at_authenticate('$token{$u}');
			SELECT count(audiotricks.at_history_add(title => 'upgrade talk ' || g,
			  transcript => 'words before the upgrade ' || g, duration_seconds => g,
			  key_moments => ('[{\"timestamp\": \"00:00:0' || (g % 10) || '\", \"description\": \"d\", \"confidence\": 0.5}]')::jsonb,
			  processing_options => '{\"language\": \"en\"}'))
			  FROM generate_series(1, 25) g;
			SELECT count(*) FROM audiotricks.at_update_settings(summary_quality => 'detailed',
			  settings_json => '{\"theme\": \"dark\", \"autoSave\": true}');"
			  . ($keys_before ? " SELECT audiotricks.at_set_api_key('openai', 'sk-upgrade-$u');" : '')
			  . ' COMMIT;', extra_params => [ '-U', 'app' ]);
	}
	# a logged-out session, and a failed login (a detached audit event)
	my $gone = $node->safe_psql($db, q{SELECT token FROM audiotricks.at_login('up1', 'Passw0rd1')});
	$node->safe_psql($db, "SELECT audiotricks.at_logout('$gone')");
	$node->psql($db, q{SELECT * FROM audiotricks.at_login('up2', 'wrong')});
	$node->poll_query_until($db, q{SELECT count(*) = 1 FROM audiotricks.audit_log WHERE event = 'login_failed'})
	  or die 'the failed login was not audited';
	my %before = map { $_ => user_view($db, $token{$_}, $keys_before) } 1 .. 3;
	my $rows_before = $node->safe_psql($db, q{SELECT (SELECT count(*) FROM audiotricks.users) || ',' ||
		(SELECT count(*) FROM audiotricks.sessions) || ',' || (SELECT count(*) FROM audiotricks.audio_history)
		|| ',' || (SELECT count(*) FROM audiotricks.audit_log)});

	$node->safe_psql($db, 'ALTER EXTENSION audiotricks UPDATE');
	$node->safe_psql($db, 'SELECT count(*) FROM audiotricks.at_maintain_history_partitions()');
	is($node->safe_psql($db, q{SELECT extversion FROM pg_extension WHERE extname = 'audiotricks'}),
		$current, "$v updated to $current");
	compare_snapshots(snapshot($db), $fresh,
		"$v updated to $current: the catalog equals a fresh install of $current");

	is($node->safe_psql($db, q{SELECT (SELECT count(*) FROM audiotricks.users) || ',' ||
		(SELECT count(*) FROM audiotricks.sessions) || ',' || (SELECT count(*) FROM audiotricks.audio_history)
		|| ',' || (SELECT count(*) FROM audiotricks.audit_log)}), $rows_before,
		"$v -> $current: every row kept");
	for my $u (1 .. 3)
	{
		is(user_view($db, $token{$u}, $keys_before), $before{$u},
			"$v -> $current: the token of user $u authenticates and history, search, settings, audit"
			  . ($keys_before ? ' and API key' : '') . ' read the same');
		is($node->safe_psql($db, "SELECT count(*) FROM audiotricks.at_login('UP$u\@example.com', 'Passw0rd$u')",
			extra_params => [ '-U', 'app' ]), '1', "$v -> $current: user $u logs in with the old password");
	}
	my ($r, $state) = at_sqlstate($node, $db, "SELECT audiotricks.at_authenticate('$gone')", 'app');
	is($state, '28000', "$v -> $current: a token logged out before the upgrade stays refused");
}

# the snapshot catches a difference: each change below, made in a scratch
# copy of the fresh install and rolled back, must show in it
$node->safe_psql('postgres', 'CREATE DATABASE scratch');
$node->safe_psql('scratch', 'CREATE EXTENSION audiotricks CASCADE');
$node->safe_psql('scratch', 'SELECT count(*) FROM audiotricks.at_maintain_history_partitions()');
is(snapshot('scratch'), $fresh, 'two fresh installs have the same snapshot');
my @changes = (
	[ 'function volatility', 'ALTER FUNCTION audiotricks.at_history_count() VOLATILE' ],
	[ 'function security', 'ALTER FUNCTION audiotricks.at_register(text, text, text) SECURITY INVOKER' ],
	[ 'function config', 'ALTER FUNCTION audiotricks.at_login(text, text) RESET search_path' ],
	[ 'function body', q{CREATE OR REPLACE FUNCTION audiotricks.at_history_count() RETURNS bigint
		LANGUAGE sql STABLE PARALLEL RESTRICTED AS 'SELECT 0::bigint'} ],
	[ 'stored function body', q{CREATE OR REPLACE FUNCTION audiotricks.at_history_count() RETURNS bigint
		LANGUAGE sql STABLE PARALLEL RESTRICTED BEGIN ATOMIC SELECT 0::bigint; END} ],
	[ 'function strictness', 'ALTER FUNCTION audiotricks_internal.at_check_key_moments(jsonb) CALLED ON NULL INPUT' ],
	[ 'new function', q{CREATE FUNCTION audiotricks.at_extra() RETURNS int LANGUAGE sql AS 'SELECT 1'} ],
	[ 'function grant', 'GRANT EXECUTE ON FUNCTION audiotricks.at_purge_expired_sessions() TO audiotricks_user' ],
	[ 'function comment', q{COMMENT ON FUNCTION audiotricks.at_uuid_v7() IS 'changed'} ],
	[ 'column default', 'ALTER TABLE audiotricks.users ALTER COLUMN is_active SET DEFAULT false' ],
	# (not a column the SQL functions' stored bodies or the audiotricks_api
	# views use: those refuse it)
	[ 'column type', 'ALTER TABLE audiotricks.revoked_families ALTER COLUMN revoked_at TYPE timestamp' ],
	[ 'column nullability', 'ALTER TABLE audiotricks.sessions ALTER COLUMN refreshed_at SET NOT NULL' ],
	[ 'new column', 'ALTER TABLE audiotricks.audio_history ADD COLUMN extra integer' ],
	[ 'column grant', 'GRANT SELECT (password_hash) ON audiotricks.users TO audiotricks_user' ],
	[ 'column comment', q{COMMENT ON COLUMN audiotricks.audio_history.title IS 'changed'} ],
	[ 'table grant', 'GRANT INSERT ON audiotricks.audit_log TO audiotricks_user' ],
	[ 'table comment', q{COMMENT ON TABLE audiotricks.sessions IS 'changed'} ],
	[ 'forced RLS', 'ALTER TABLE audiotricks.audio_history NO FORCE ROW LEVEL SECURITY' ],
	[ 'constraint', 'ALTER TABLE audiotricks.audio_history DROP CONSTRAINT audio_history_file_size_bytes_check' ],
	[ 'foreign key action', q{ALTER TABLE audiotricks.sessions DROP CONSTRAINT sessions_user_id_fkey,
		ADD CONSTRAINT sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES audiotricks.users (id)} ],
	[ 'index', 'DROP INDEX audiotricks.sessions_family_id_idx' ],
	[ 'index definition', q{DROP INDEX audiotricks.audio_history_user_created_idx;
		CREATE INDEX audio_history_user_created_idx ON audiotricks.audio_history (user_id, created_at)} ],
	[ 'trigger', 'DROP TRIGGER users_touch_updated_at ON audiotricks.users' ],
	[ 'policy', 'ALTER POLICY users_own ON audiotricks.users USING (true)' ],
	[ 'policy roles', 'ALTER POLICY audio_history_own ON audiotricks.audio_history TO audiotricks_user' ],
	[ 'schema grant', 'GRANT CREATE ON SCHEMA audiotricks TO audiotricks_user' ],
	[ 'dump configuration', q{UPDATE pg_extension SET extcondition[1] = 'WHERE true' WHERE extname = 'audiotricks'} ],
	[ 'extension membership', 'ALTER EXTENSION audiotricks DROP FUNCTION audiotricks.at_uuid_v7()' ],
);
for my $c (@changes)
{
	my ($what, $sql) = @$c;
	# only the snapshot is printed (\o), so any difference is in the catalog
	my $changed = $node->safe_psql('scratch',
		"BEGIN;\n\\o /dev/null\n$sql;\n\\o\n$snapshot_sql;\nROLLBACK;");
	isnt($changed, $fresh, "the snapshot shows the change: $what");
}
is(snapshot('scratch'), $fresh, 'the scratch database is unchanged after the rollbacks');

$node->stop;
done_testing();
