/*
 * src/history_partitions.c
 *		audio_history is partitioned by RANGE (created_at): its partitions,
 *		for the readers in history_page.c and history_search.c
 *		(AtHistoryParts), the maintenance function that makes future
 *		partitions and drops expired ones, and the background worker that
 *		runs it when an insert finds the horizon short.
 *
 * Partitions are named audio_history_pYYYYMM (a partition starting on the
 * first of a month, with a month interval) or audio_history_pYYYYMMDD, in
 * the extension's schema, owned by the extension's owner, with row-level
 * security enabled and no policy and no grant: an application role that
 * names one directly is refused (42501), and only the parent's policies
 * ever apply to its rows.  Bounds are UTC midnights.
 *
 * Dump and restore.  pg_dump cannot restore partitions of its own of a
 * table an extension makes: the extension's indexes and primary key on
 * audio_history exist before the dump's ATTACH PARTITION, which makes the
 * partition's copies, and the dump's own copies then fail.  So every
 * partition is a member of the extension (ALTER EXTENSION ADD TABLE), whose
 * definition pg_dump leaves to CREATE EXTENSION, and the rows of all of
 * them are dumped as the rows of the DEFAULT partition, the one
 * configuration table of the history: its pg_extension_config_dump filter
 * ends in UNION ALL over audio_history.  A restore loads them into the
 * DEFAULT partition (CREATE EXTENSION makes no range partition); the next
 * maintenance makes a partition for every period the default partition
 * holds rows of and moves them in.
 *
 * Maintenance: audiotricks.at_maintain_history_partitions() makes the
 * partitions of the period containing now() and the next
 * audiotricks.history_partitions_ahead periods that are missing, each with
 * CREATE TABLE, a CHECK constraint on its range (so ATTACH does not scan
 * it), the default partition's rows of that range moved in, then ATTACH
 * PARTITION (SHARE UPDATE EXCLUSIVE on the parent); and, when
 * audiotricks.history_retention is set, drops every partition whose range
 * ended before now() - retention (DROP TABLE: constant time whatever its
 * rows), recording a history_partition_dropped audit event for each.
 *
 * Without a scheduler: a statement trigger on inserts into audio_history
 * (at_history_partitions_due) checks, from the relcache's partition
 * descriptor, whether the last period maintenance should have made exists;
 * if not it starts a background worker (at most once a minute per backend)
 * that runs the maintenance as the extension's owner.  The trigger never
 * waits and never fails the insert; a row whose period has no partition
 * yet lands in the default partition, and the maintenance moves it.
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/extension.h"
#include "catalog/partition.h"
#include "catalog/pg_inherits.h"
#include "catalog/index.h"
#include "catalog/pg_class.h"
#include "catalog/dependency.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "audiotricks.h"
#include "audit.h"
#include "history_partitions.h"
#include "schema.h"
#include "spi.h"
#include "srf.h"

PG_FUNCTION_INFO_V1(at_maintain_history_partitions);
PG_FUNCTION_INFO_V1(at_history_partitions_due);
PGDLLEXPORT void at_partition_worker_main(Datum arg);

/* the settings, as text, and what they mean */
static char *partition_interval_text = NULL;
static char *retention_text = NULL;
static int	partitions_ahead = 3;

/* a length of time in whole months or whole days (never both) */
typedef struct AtSpan
{
	int32		months;
	int32		days;
} AtSpan;

static AtSpan partition_span = {1, 0};
static AtSpan retention_span = {0, 0};

#define SPAN_MONTHS_MAX		1200	/* 100 years */
#define SPAN_DAYS_MAX		36600
#define LAUNCH_EVERY_USECS	(60 * USECS_PER_SEC)

/*
 * parse_span
 *		"<n> <unit>" with unit day(s), week(s), month(s), mon(s) or year(s)
 *		(case-insensitive; spaces optional), or "0" / "" when zero_ok (off).
 *		False for anything else or a length over SPAN_*_MAX.
 */
static bool
parse_span(const char *s, bool zero_ok, AtSpan *out)
{
	long		n = 0;
	int			digits = 0;
	char		unit[16];
	int			u = 0;

	out->months = 0;
	out->days = 0;
	if (s == NULL)
		return zero_ok;
	while (*s == ' ')
		s++;
	while (*s >= '0' && *s <= '9' && digits < 6)
	{
		n = n * 10 + (*s++ - '0');
		digits++;
	}
	while (*s == ' ')
		s++;
	while (*s != '\0' && *s != ' ' && u < (int) sizeof(unit) - 1)
		unit[u++] = pg_ascii_tolower((unsigned char) *s++);
	unit[u] = '\0';
	while (*s == ' ')
		s++;
	if (*s != '\0')
		return false;
	if (digits == 0)
		return zero_ok && u == 0;
	if (n == 0)
		return zero_ok && u == 0;
	if (strcmp(unit, "day") == 0 || strcmp(unit, "days") == 0)
		out->days = (int32) n;
	else if (strcmp(unit, "week") == 0 || strcmp(unit, "weeks") == 0)
		out->days = (int32) n * 7;
	else if (strcmp(unit, "month") == 0 || strcmp(unit, "months") == 0 ||
			 strcmp(unit, "mon") == 0 || strcmp(unit, "mons") == 0)
		out->months = (int32) n;
	else if (strcmp(unit, "year") == 0 || strcmp(unit, "years") == 0)
		out->months = (int32) n * 12;
	else
		return false;
	return out->months <= SPAN_MONTHS_MAX && out->days <= SPAN_DAYS_MAX;
}

static bool
check_partition_interval(char **newval, void **extra, GucSource source)
{
	AtSpan		span;

	if (!parse_span(*newval, false, &span) || span.months > 12 || span.days > 366)
	{
		GUC_check_errdetail("Give whole days (1 to 366), weeks or months (1 to 12), such as '1 month' or '7 days'.");
		return false;
	}
	return true;
}

static void
assign_partition_interval(const char *newval, void *extra)
{
	if (!parse_span(newval, false, &partition_span))
	{
		partition_span.months = 1;
		partition_span.days = 0;
	}
}

static bool
check_retention(char **newval, void **extra, GucSource source)
{
	AtSpan		span;

	if (!parse_span(*newval, true, &span))
	{
		GUC_check_errdetail("Give 0 (keep everything) or whole days, weeks, months or years, such as '24 months'.");
		return false;
	}
	return true;
}

static void
assign_retention(const char *newval, void *extra)
{
	if (!parse_span(newval, true, &retention_span))
	{
		retention_span.months = 0;
		retention_span.days = 0;
	}
}

void
HistoryPartitionsDefineGucs(void)
{
	DefineCustomStringVariable("audiotricks.history_partition_interval",
							   "Length of a new audio_history partition.",
							   "Whole days (1 to 366), weeks or months (1 to 12); aligned to UTC months or days.",
							   &partition_interval_text,
							   "1 month",
							   PGC_SUSET,
							   0,
							   check_partition_interval, assign_partition_interval, NULL);
	DefineCustomIntVariable("audiotricks.history_partitions_ahead",
							"How many audio_history partitions past the current one maintenance keeps made.",
							NULL,
							&partitions_ahead,
							3,
							0,
							120,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);
	DefineCustomStringVariable("audiotricks.history_retention",
							   "audio_history partitions whose range ended longer ago than this are dropped by maintenance.",
							   "0 keeps everything.",
							   &retention_text,
							   "0",
							   PGC_SUSET,
							   0,
							   check_retention, assign_retention, NULL);
}

/* ---- time arithmetic (UTC) ---- */

static TimestampTz
utc_date(int year, int month, int day)
{
	return (TimestampTz) (date2j(year, month, day) - POSTGRES_EPOCH_JDATE) * USECS_PER_DAY;
}

static int64
floor_div(int64 a, int64 b)
{
	int64		q = a / b;

	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* the start of period k of span (months: months since year 0; days: since 2000-01-01) */
static TimestampTz
period_start(const AtSpan *span, int64 k)
{
	if (span->months > 0)
	{
		int64		m = k * span->months;

		return utc_date((int) floor_div(m, 12), (int) (m - floor_div(m, 12) * 12) + 1, 1);
	}
	return (TimestampTz) (k * span->days) * USECS_PER_DAY;
}

/* the period of span holding t */
static int64
period_of(const AtSpan *span, TimestampTz t)
{
	int64		day = floor_div(t, USECS_PER_DAY);

	if (span->months > 0)
	{
		int			year,
					month,
					mday;

		j2date((int) (day + POSTGRES_EPOCH_JDATE), &year, &month, &mday);
		return floor_div((int64) year * 12 + month - 1, span->months);
	}
	return floor_div(day, span->days);
}

/* t minus a span */
static TimestampTz
span_before(const AtSpan *span, TimestampTz t)
{
	Interval	iv;

	memset(&iv, 0, sizeof(iv));
	iv.month = span->months;
	iv.day = span->days;
	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval,
												   TimestampTzGetDatum(t),
												   IntervalPGetDatum(&iv)));
}

/* 'YYYY-MM-DD HH:MI:SS+00' of a UTC midnight-aligned or any timestamp */
static char *
utc_literal(TimestampTz t)
{
	int64		day = floor_div(t, USECS_PER_DAY);
	int64		usec = t - day * USECS_PER_DAY;
	int			year,
				month,
				mday;

	j2date((int) (day + POSTGRES_EPOCH_JDATE), &year, &month, &mday);
	return psprintf("%04d-%02d-%02d %02d:%02d:%02d.%06d+00", year, month, mday,
					(int) (usec / USECS_PER_HOUR),
					(int) ((usec / USECS_PER_MINUTE) % 60),
					(int) ((usec / USECS_PER_SEC) % 60),
					(int) (usec % USECS_PER_SEC));
}

/* ---- the partitions ---- */

static int
part_cmp_desc(const void *a, const void *b)
{
	const AtHistoryPart *x = a;
	const AtHistoryPart *y = b;

	if (x->is_default != y->is_default)
		return x->is_default ? 1 : -1;
	if (x->upper_inf != y->upper_inf)
		return x->upper_inf ? -1 : 1;
	if (x->upper != y->upper)
		return x->upper > y->upper ? -1 : 1;
	return 0;
}

/*
 * AtHistoryParts
 *		The partitions of audio_history (parent, locked by the caller) from
 *		its relcache partition descriptor, palloc'd in *parts: the ranges
 *		newest first, then the default partition if there is one.  Returns
 *		how many.  Partitions being detached concurrently are left out.
 */
int
AtHistoryParts(Relation parent, AtHistoryPart **parts)
{
	PartitionDesc pd;
	PartitionBoundInfo bi;
	AtHistoryPart *out;
	int			n = 0;

	if (parent->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		elog(ERROR, "audiotricks.audio_history is not partitioned");
	pd = RelationGetPartitionDesc(parent, true);
	out = palloc0(sizeof(AtHistoryPart) * Max(pd->nparts, 1));
	bi = pd->boundinfo;
	if (pd->nparts > 0 && bi != NULL)
	{
		if (bi->strategy != PARTITION_STRATEGY_RANGE)
			elog(ERROR, "audiotricks.audio_history is not partitioned by range");
		for (int i = 0; i < bi->ndatums; i++)
		{
			AtHistoryPart *p;

			if (bi->indexes[i] < 0)
				continue;
			p = &out[n++];
			p->relid = pd->oids[bi->indexes[i]];
			p->upper_inf = bi->kind[i][0] != PARTITION_RANGE_DATUM_VALUE;
			p->upper = p->upper_inf ? DT_NOEND : DatumGetTimestampTz(bi->datums[i][0]);
			p->lower_inf = i == 0 || bi->kind[i - 1][0] != PARTITION_RANGE_DATUM_VALUE;
			p->lower = p->lower_inf ? DT_NOBEGIN : DatumGetTimestampTz(bi->datums[i - 1][0]);
		}
		if (partition_bound_has_default(bi))
		{
			AtHistoryPart *p = &out[n++];

			p->relid = pd->oids[bi->default_index];
			p->is_default = true;
			p->lower_inf = p->upper_inf = true;
			p->lower = DT_NOBEGIN;
			p->upper = DT_NOEND;
		}
	}
	if (n > 1)
		qsort(out, n, sizeof(AtHistoryPart), part_cmp_desc);
	*parts = out;
	return n;
}

/*
 * Partition indexes by (partition, parent index), per backend: finding one
 * reads pg_inherits, which would cost a page more than its rows.  Any
 * relcache invalidation empties the map (attaching, detaching, dropping or
 * rebuilding a partition or an index sends one) and is counted.
 */
typedef struct PartIndexKey
{
	Oid			partition;
	Oid			parent_index;
} PartIndexKey;

typedef struct PartIndexEntry
{
	PartIndexKey key;
	Oid			index;
} PartIndexEntry;

static HTAB *part_index_map = NULL;
static bool part_index_callback = false;
static uint64 part_index_invals = 0;

static void
part_index_flush(Datum arg, Oid relid)
{
	part_index_invals++;
	if (part_index_map != NULL)
	{
		hash_destroy(part_index_map);
		part_index_map = NULL;
	}
}

/*
 * the child of parent_index whose table is partition, from pg_inherits
 * (index_get_partition instead asks each of the partition's indexes for its
 * parent, and raises for one that REINDEX CONCURRENTLY has just detached)
 */
static Oid
lookup_partition_index(Oid partition, Oid parent_index)
{
	List	   *children = find_inheritance_children(parent_index, NoLock);
	ListCell   *lc;
	Oid			result = InvalidOid;

	foreach(lc, children)
	{
		if (IndexGetRelation(lfirst_oid(lc), true) == partition)
		{
			result = lfirst_oid(lc);
			break;
		}
	}
	list_free(children);
	return result;
}

/*
 * AtPartitionIndex
 *		The index of partition (open) that is attached to parent_index (an
 *		index of audio_history), cached, and locked (AccessShareLock) for
 *		the caller to open; raises if there is none.  An invalidation that
 *		arrives while it locks (the index rebuilt or dropped meanwhile)
 *		makes it look again.
 */
Oid
AtPartitionIndex(Relation partition, Oid parent_index)
{
	PartIndexKey key;

	if (!part_index_callback)
	{
		CacheRegisterRelcacheCallback(part_index_flush, (Datum) 0);
		part_index_callback = true;
	}
	memset(&key, 0, sizeof(key));
	key.partition = RelationGetRelid(partition);
	key.parent_index = parent_index;
	for (;;)
	{
		uint64		seen = part_index_invals;
		PartIndexEntry *e = NULL;
		Oid			idx;
		bool		found;

		if (part_index_map != NULL)
			e = hash_search(part_index_map, &key, HASH_FIND, NULL);
		idx = e != NULL ? e->index : lookup_partition_index(key.partition, parent_index);
		if (!OidIsValid(idx))
			elog(ERROR, "partition %s has no index of %s",
				 RelationGetRelationName(partition), get_rel_name(parent_index));
		LockRelationOid(idx, AccessShareLock);
		if (seen != part_index_invals)
		{
			UnlockRelationOid(idx, AccessShareLock);
			continue;
		}
		if (part_index_map == NULL)
		{
			HASHCTL		ctl;

			ctl.keysize = sizeof(PartIndexKey);
			ctl.entrysize = sizeof(PartIndexEntry);
			ctl.hcxt = CacheMemoryContext;
			part_index_map = hash_create("audiotricks partition indexes", 64, &ctl,
										 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		}
		e = hash_search(part_index_map, &key, HASH_ENTER, &found);
		e->index = idx;
		return idx;
	}
}

/* the schema-qualified, quoted name of a relation */
static char *
qualified_name(Oid relid)
{
	char	   *nsp = get_namespace_name(get_rel_namespace(relid));
	char	   *rel = get_rel_name(relid);

	if (nsp == NULL || rel == NULL)
		elog(ERROR, "relation %u vanished", relid);
	return quote_qualified_identifier(nsp, rel);
}

/* true when [lo, hi) of a target period is covered by the ranges */
static bool
span_covered(const AtHistoryPart *parts, int n, TimestampTz lo, TimestampTz hi)
{
	TimestampTz cur = lo;
	bool		moved = true;

	/* the ranges are disjoint: extend cur while one starts at or before it */
	while (cur < hi && moved)
	{
		moved = false;
		for (int i = 0; i < n; i++)
		{
			if (parts[i].is_default)
				continue;
			if ((parts[i].lower_inf || parts[i].lower <= cur) &&
				(parts[i].upper_inf || parts[i].upper > cur))
			{
				cur = parts[i].upper_inf ? DT_NOEND : parts[i].upper;
				moved = true;
				break;
			}
		}
	}
	return cur >= hi;
}

/*
 * the first part of [lo, hi) not covered by a range: [*glo, *ghi); false
 * when all of it is covered
 */
static bool
first_gap(const AtHistoryPart *parts, int n, TimestampTz lo, TimestampTz hi,
		  TimestampTz *glo, TimestampTz *ghi)
{
	TimestampTz cur = lo;
	TimestampTz end = hi;
	bool		moved = true;

	while (cur < hi && moved)
	{
		moved = false;
		for (int i = 0; i < n; i++)
		{
			if (parts[i].is_default)
				continue;
			if ((parts[i].lower_inf || parts[i].lower <= cur) &&
				(parts[i].upper_inf || parts[i].upper > cur))
			{
				cur = parts[i].upper_inf ? DT_NOEND : parts[i].upper;
				moved = true;
				break;
			}
		}
	}
	if (cur >= hi)
		return false;
	for (int i = 0; i < n; i++)
	{
		if (!parts[i].is_default && !parts[i].lower_inf &&
			parts[i].lower > cur && parts[i].lower < end)
			end = parts[i].lower;
	}
	*glo = cur;
	*ghi = end;
	return true;
}

static void
run_sql(const char *sql, int expect)
{
	int			rc = SPI_execute(sql, false, 0);

	if (rc != expect)
		elog(ERROR, "audiotricks partition maintenance: \"%s\" failed: %s",
			 sql, SPI_result_code_string(rc));
}

static const char *const moved_cols =
	"id, user_id, title, audio_url, file_size_bytes, duration_seconds, transcript,"
	" summary, key_moments, processing_options, created_at, search_config";

/*
 * make_partition
 *		Makes the partition [lo, hi) of audio_history in schema nsp, moving
 *		the default partition's rows of that range into it first.  Returns
 *		how many rows moved.  Runs in SPI, as the owner.
 */
static uint64
make_partition(const char *nsp, Oid default_relid, const char *name,
			   TimestampTz lo, TimestampTz hi, TimestampTz now)
{
	char	   *qname = quote_qualified_identifier(nsp, name);
	const char *bound = quote_identifier(psprintf("%s_bound", name));
	char	   *slo = quote_literal_cstr(utc_literal(lo));
	char	   *shi = quote_literal_cstr(utc_literal(hi));
	uint64		moved = 0;
	bool		has_rows = false;
	bool		locked = false;
	char	   *qdef = NULL;
	char	   *range = psprintf("created_at OPERATOR(pg_catalog.>=) %s::pg_catalog.timestamptz"
								 " AND created_at OPERATOR(pg_catalog.<) %s::pg_catalog.timestamptz",
								 slo, shi);

	/*
	 * An insert routed to the default partition by a query planned before
	 * the ATTACH fails its partition check after it.  A future range
	 * receives no inserts, so SHARE UPDATE EXCLUSIVE (held) lets reads and
	 * writes go on; a range that does (the present or the past: a fresh
	 * install, an outage longer than the periods made ahead) or whose rows
	 * wait in the default partition is made under ACCESS EXCLUSIVE, for as
	 * long as it takes: inserts wait, never fail.  The default partition is
	 * read after the lock (each statement takes a new snapshot), so the rows
	 * of a transaction that was inserting meanwhile are moved too.
	 */
	if (lo <= now)
	{
		locked = true;
		run_sql(psprintf("LOCK TABLE %s.audio_history IN ACCESS EXCLUSIVE MODE",
						 quote_identifier(nsp)), SPI_OK_UTILITY);
	}
	if (OidIsValid(default_relid))
	{
		qdef = qualified_name(default_relid);
		run_sql(psprintf("SELECT FROM %s WHERE %s LIMIT 1", qdef, range), SPI_OK_SELECT);
		has_rows = SPI_processed > 0;
	}
	if (has_rows && !locked)
		run_sql(psprintf("LOCK TABLE %s.audio_history IN ACCESS EXCLUSIVE MODE",
						 quote_identifier(nsp)), SPI_OK_UTILITY);

	run_sql(psprintf("CREATE TABLE %s (LIKE %s.audio_history INCLUDING DEFAULTS"
					 " INCLUDING CONSTRAINTS INCLUDING GENERATED)",
					 qname, quote_identifier(nsp)), SPI_OK_UTILITY);
	run_sql(psprintf("ALTER TABLE %s ADD CONSTRAINT %s CHECK (created_at OPERATOR(pg_catalog.>=) %s"
					 "::pg_catalog.timestamptz AND created_at OPERATOR(pg_catalog.<) %s::pg_catalog.timestamptz)",
					 qname, bound, slo, shi), SPI_OK_UTILITY);
	if (has_rows)
	{
		/* under the parent's lock: no insert reaches the default meanwhile */
		/* a move, not a change: not audited row by row */
		AuditRowsPause(true);
		run_sql(psprintf("WITH m AS (DELETE FROM %s WHERE %s RETURNING %s)"
						 " INSERT INTO %s (%s) SELECT %s FROM m",
						 qdef, range, moved_cols, qname, moved_cols, moved_cols),
				SPI_OK_INSERT);
		AuditRowsPause(false);
		moved = SPI_processed;
	}
	run_sql(psprintf("ALTER TABLE %s.audio_history ATTACH PARTITION %s FOR VALUES FROM (%s) TO (%s)",
					 quote_identifier(nsp), qname, slo, shi), SPI_OK_UTILITY);
	run_sql(psprintf("ALTER TABLE %s DROP CONSTRAINT %s", qname, bound), SPI_OK_UTILITY);
	/* a member: pg_dump leaves its definition to CREATE EXTENSION */
	run_sql(psprintf("ALTER EXTENSION audiotricks ADD TABLE %s", qname), SPI_OK_UTILITY);
	run_sql(psprintf("ALTER TABLE %s ENABLE ROW LEVEL SECURITY", qname), SPI_OK_UTILITY);
	run_sql(psprintf("REVOKE ALL ON %s FROM PUBLIC", qname), SPI_OK_UTILITY);
	run_sql(psprintf("COMMENT ON TABLE %s IS %s", qname,
					 quote_literal_cstr(psprintf("Partition of audio_history for created_at in [%s, %s); read it through audio_history.",
												 utc_literal(lo), utc_literal(hi)))),
			SPI_OK_UTILITY);
	return moved;
}

/* audio_history_pYYYYMM for a month start with a month interval, else _pYYYYMMDD */
static char *
partition_name(const AtSpan *span, TimestampTz lo)
{
	int			year,
				month,
				mday;

	j2date((int) (floor_div(lo, USECS_PER_DAY) + POSTGRES_EPOCH_JDATE), &year, &month, &mday);
	if (span->months > 0 && mday == 1 && lo % USECS_PER_DAY == 0)
		return psprintf("audio_history_p%04d%02d", year, month);
	return psprintf("audio_history_p%04d%02d%02d", year, month, mday);
}

typedef struct MaintAction
{
	const char *action;
	char	   *partition;
	TimestampTz lo;
	TimestampTz hi;
	int64		moved;
	bool		has_moved;
} MaintAction;

/*
 * maintain
 *		The work of at_maintain_history_partitions, as the extension's
 *		owner inside SPI.  Returns the actions (a List of MaintAction *).
 */
static List *
maintain(void)
{
	Oid			nspoid = AtCheckSchema();
	char	   *nsp = get_namespace_name(nspoid);
	Oid			relid = get_relname_relid("audio_history", nspoid);
	Relation	parent;
	AtHistoryPart *parts;
	int			nparts;
	Oid			default_relid = InvalidOid;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	AtSpan		span = partition_span;
	int64		k0;
	List	   *actions = NIL;

	if (!OidIsValid(relid))
		elog(ERROR, "audiotricks.audio_history is missing");
	/* one maintenance at a time; inserts and reads go on */
	parent = table_open(relid, ShareUpdateExclusiveLock);
	nparts = AtHistoryParts(parent, &parts);
	table_close(parent, NoLock);
	for (int i = 0; i < nparts; i++)
		if (parts[i].is_default)
			default_relid = parts[i].relid;

	/* expired partitions first: a dropped range is never made again */
	if (retention_span.months > 0 || retention_span.days > 0)
	{
		TimestampTz cutoff = span_before(&retention_span, now);

		for (int i = 0; i < nparts; i++)
		{
			MaintAction *a;
			char	   *detail;

			if (parts[i].is_default || parts[i].upper_inf || parts[i].upper > cutoff)
				continue;
			a = palloc0(sizeof(MaintAction));
			a->action = "dropped";
			a->partition = qualified_name(parts[i].relid);
			a->lo = parts[i].lower;
			a->hi = parts[i].upper;
			if (getExtensionOfObject(RelationRelationId, parts[i].relid) ==
				get_extension_oid("audiotricks", false))
				run_sql(psprintf("ALTER EXTENSION audiotricks DROP TABLE %s", a->partition),
						SPI_OK_UTILITY);
			run_sql(psprintf("DROP TABLE %s", a->partition), SPI_OK_UTILITY);
			/* the names and bounds are ours: no quoting needed in JSON */
			detail = psprintf("{\"partition\": \"%s\", \"from\": \"%s\", \"to\": \"%s\"}",
							  a->partition, utc_literal(a->lo), utc_literal(a->hi));
			AuditEvent("history_partition_dropped", NULL, NULL, detail);
			actions = lappend(actions, a);
			parts[i].relid = InvalidOid;
		}
	}

	/*
	 * every period the default partition holds rows of (a restore, an
	 * import, a clock jump), oldest first, one scan of it each; periods
	 * past retention are left there
	 */
	if (OidIsValid(default_relid))
	{
		char	   *qdef = qualified_name(default_relid);
		TimestampTz cutoff = (retention_span.months > 0 || retention_span.days > 0) ?
		span_before(&retention_span, now) : DT_NOBEGIN;
		TimestampTz from = DT_NOBEGIN;

		for (;;)
		{
			bool		isnull;
			Datum		d;
			TimestampTz t;
			int64		k;
			TimestampTz lo,
						hi,
						glo,
						ghi;

			CHECK_FOR_INTERRUPTS();
			run_sql(psprintf("SELECT pg_catalog.min(created_at) FROM %s WHERE created_at"
							 " OPERATOR(pg_catalog.>=) %s::pg_catalog.timestamptz",
							 qdef, from == DT_NOBEGIN ? "'-infinity'" :
							 quote_literal_cstr(utc_literal(from))), SPI_OK_SELECT);
			if (SPI_processed != 1)
				break;
			d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			if (isnull)
				break;
			t = DatumGetTimestampTz(d);
			if (TIMESTAMP_NOT_FINITE(t))
				break;			/* infinities stay in the default partition */
			k = period_of(&span, t);
			lo = period_start(&span, k);
			hi = period_start(&span, k + 1);
			from = hi;
			if (hi <= cutoff)
				continue;
			while (first_gap(parts, nparts, lo, hi, &glo, &ghi))
			{
				MaintAction *a = palloc0(sizeof(MaintAction));
				char	   *name = partition_name(&span, glo);

				a->action = "created";
				a->partition = quote_qualified_identifier(nsp, name);
				a->lo = glo;
				a->hi = ghi;
				a->moved = (int64) make_partition(nsp, default_relid, name, glo, ghi, now);
				a->has_moved = true;
				actions = lappend(actions, a);
				parts = repalloc(parts, sizeof(AtHistoryPart) * (nparts + 1));
				memset(&parts[nparts], 0, sizeof(AtHistoryPart));
				parts[nparts].lower = glo;
				parts[nparts].upper = ghi;
				nparts++;
			}
		}
	}

	k0 = period_of(&span, now);
	for (int64 k = k0; k <= k0 + partitions_ahead; k++)
	{
		TimestampTz lo = period_start(&span, k);
		TimestampTz hi = period_start(&span, k + 1);
		TimestampTz glo,
					ghi;

		CHECK_FOR_INTERRUPTS();
		while (first_gap(parts, nparts, lo, hi, &glo, &ghi))
		{
			MaintAction *a = palloc0(sizeof(MaintAction));
			char	   *name = partition_name(&span, glo);

			a->action = "created";
			a->partition = quote_qualified_identifier(nsp, name);
			a->lo = glo;
			a->hi = ghi;
			a->moved = (int64) make_partition(nsp, default_relid, name, glo, ghi, now);
			a->has_moved = true;
			actions = lappend(actions, a);
			/* count it as made for the rest of the loop */
			parts = repalloc(parts, sizeof(AtHistoryPart) * (nparts + 1));
			memset(&parts[nparts], 0, sizeof(AtHistoryPart));
			parts[nparts].relid = InvalidOid;
			parts[nparts].lower = glo;
			parts[nparts].upper = ghi;
			nparts++;
		}
	}
	return actions;
}

/*
 * at_maintain_history_partitions()
 *		RETURNS TABLE(action text, partition text, range_from timestamptz,
 *					  range_to timestamptz, moved_rows bigint)
 *		Drops the partitions past audiotricks.history_retention (if set),
 *		recording an audit event for each, and makes the missing partitions
 *		of the current period and the next history_partitions_ahead, moving
 *		the default partition's rows of their ranges into them.  One row per
 *		action.  The extension's owner (or a superuser) only: 42501 else.
 */
Datum
at_maintain_history_partitions(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	Oid			owner;
	Oid			save_userid;
	int			save_sec;
	int			nestlevel;
	List	   *volatile actions = NIL;
	ListCell   *lc;

	owner = AtOwnerOid();
	if (!has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to maintain audio_history partitions"),
				 errdetail("Only the extension's owner or a superuser may.")));
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot maintain audio_history partitions during recovery")));
	store = AtMaterialize(fcinfo, &tupdesc);

	GetUserIdAndSecContext(&save_userid, &save_sec);
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		AtSpiConnect();
		actions = maintain();
		AtSpiFinish();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
	AtEOXact_GUC(true, nestlevel);

	foreach(lc, actions)
	{
		MaintAction *a = lfirst(lc);
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, !a->has_moved};

		values[0] = CStringGetTextDatum(a->action);
		values[1] = CStringGetTextDatum(a->partition);
		values[2] = TimestampTzGetDatum(a->lo);
		values[3] = TimestampTzGetDatum(a->hi);
		values[4] = Int64GetDatum(a->moved);
		nulls[2] = a->lo == DT_NOBEGIN;
		tuplestore_putvalues(store, tupdesc, values, nulls);
	}
	return (Datum) 0;
}

/* ---- starting maintenance without a scheduler ---- */

static TimestampTz last_launch = 0;

/* true when the last period maintenance keeps made has no partition */
static bool
horizon_short(Relation parent)
{
	AtHistoryPart *parts;
	int			nparts = AtHistoryParts(parent, &parts);
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	int64		k = period_of(&partition_span, now) + partitions_ahead;
	bool		covered = span_covered(parts, nparts, period_start(&partition_span, k),
									   period_start(&partition_span, k + 1)) &&
		span_covered(parts, nparts, now, now + 1);

	pfree(parts);
	return !covered;
}

static void
launch_worker(void)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	Oid			role = AtOwnerOid();

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "audiotricks", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "at_partition_worker_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "audiotricks partition maintenance");
	strlcpy(worker.bgw_type, "audiotricks partition maintenance", BGW_MAXLEN);
	worker.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
	memcpy(worker.bgw_extra, &role, sizeof(role));
	worker.bgw_notify_pid = 0;
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		ereport(LOG,
				(errmsg("audiotricks could not start partition maintenance"),
				 errhint("Raise max_worker_processes, or schedule audiotricks.at_maintain_history_partitions().")));
}

/*
 * at_history_partitions_due() RETURNS trigger
 *		BEFORE INSERT FOR EACH STATEMENT on audio_history: when the current
 *		period or the last one maintenance keeps made has no partition,
 *		starts a background worker that runs the maintenance (at most once a
 *		minute per backend).  Never waits, never raises for that.
 */
Datum
at_history_partitions_due(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TimestampTz now;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event))
		elog(ERROR, "at_history_partitions_due: must be fired for each statement");
	now = GetCurrentTransactionStartTimestamp();
	if (last_launch != 0 && now - last_launch < LAUNCH_EVERY_USECS && now >= last_launch)
		return PointerGetDatum(NULL);
	if (trigdata->tg_relation->rd_rel->relkind != RELKIND_PARTITIONED_TABLE ||
		RecoveryInProgress())
		return PointerGetDatum(NULL);
	if (horizon_short(trigdata->tg_relation))
	{
		last_launch = now;
		launch_worker();
	}
	return PointerGetDatum(NULL);
}

/*
 * at_partition_worker_main
 *		Background worker: runs at_maintain_history_partitions() once in the
 *		database it was started for, as the role in bgw_extra (the
 *		extension's owner), not waiting long for a lock, then exits.  An
 *		error is logged; the next insert that finds the horizon short starts
 *		another.
 */
void
at_partition_worker_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	Oid			role;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	memcpy(&role, MyBgworkerEntry->bgw_extra, sizeof(role));
	BackgroundWorkerInitializeConnectionByOid(dboid, role, 0);

	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("lock_timeout", "5000", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("statement_timeout", "600000", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_read_only", "off", PGC_SUSET, PGC_S_OVERRIDE);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "audiotricks partition maintenance");
	AtSpiConnect();
	if (get_extension_oid("audiotricks", true) != InvalidOid)
		run_sql("SELECT FROM audiotricks.at_maintain_history_partitions()", SPI_OK_SELECT);
	AtSpiFinish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}
