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


/* the settings, as text, and what they mean */
static char *partition_interval_text = NULL;
static char *retention_text = NULL;
int			at_partitions_ahead = 3;

AtSpan		at_partition_span = {1, 0};
AtSpan		at_retention_span = {0, 0};

#define SPAN_MONTHS_MAX		1200	/* 100 years */
#define SPAN_DAYS_MAX		36600

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
	if (!parse_span(newval, false, &at_partition_span))
	{
		at_partition_span.months = 1;
		at_partition_span.days = 0;
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
	if (!parse_span(newval, true, &at_retention_span))
	{
		at_retention_span.months = 0;
		at_retention_span.days = 0;
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
							&at_partitions_ahead,
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

int64
AtFloorDiv(int64 a, int64 b)
{
	int64		q = a / b;

	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* the start of period k of span (months: months since year 0; days: since 2000-01-01) */
TimestampTz
AtPeriodStart(const AtSpan *span, int64 k)
{
	if (span->months > 0)
	{
		int64		m = k * span->months;

		return utc_date((int) AtFloorDiv(m, 12), (int) (m - AtFloorDiv(m, 12) * 12) + 1, 1);
	}
	return (TimestampTz) (k * span->days) * USECS_PER_DAY;
}

/* the period of span holding t */
int64
AtPeriodOf(const AtSpan *span, TimestampTz t)
{
	int64		day = AtFloorDiv(t, USECS_PER_DAY);

	if (span->months > 0)
	{
		int			year,
					month,
					mday;

		j2date((int) (day + POSTGRES_EPOCH_JDATE), &year, &month, &mday);
		return AtFloorDiv((int64) year * 12 + month - 1, span->months);
	}
	return AtFloorDiv(day, span->days);
}

/* t minus a span */
TimestampTz
AtSpanBefore(const AtSpan *span, TimestampTz t)
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
char *
AtUtcLiteral(TimestampTz t)
{
	int64		day = AtFloorDiv(t, USECS_PER_DAY);
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
		/* the bounds ascend: newest first is from the last */
		for (int i = bi->ndatums - 1; i >= 0; i--)
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

