/*
 * src/history_maintain.c
 *		audio_history's partition maintenance: at_maintain_history_partitions
 *		(makes future partitions and those the default partition holds rows
 *		of, drops expired ones), and the statement trigger and background
 *		worker that start it without a scheduler.  The partitions, the
 *		settings and the time arithmetic are in history_partitions.c, whose
 *		header comment describes the design.
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
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

#define LAUNCH_EVERY_USECS	(60 * USECS_PER_SEC)
#define MAINT_LOCK_WAIT_MS	10000	/* lock_when_free's limit when lock_timeout is 0 */

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

/*
 * how far from lo the ranges cover without a gap, up to hi (the ranges are
 * disjoint: extend while one starts at or before the point reached)
 */
static TimestampTz
covered_until(const AtHistoryPart *parts, int n, TimestampTz lo, TimestampTz hi)
{
	TimestampTz cur = lo;
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
	return cur;
}

/* true when [lo, hi) of a target period is covered by the ranges */
static bool
span_covered(const AtHistoryPart *parts, int n, TimestampTz lo, TimestampTz hi)
{
	return covered_until(parts, n, lo, hi) >= hi;
}

/*
 * the first part of [lo, hi) not covered by a range: [*glo, *ghi); false
 * when all of it is covered
 */
static bool
first_gap(const AtHistoryPart *parts, int n, TimestampTz lo, TimestampTz hi,
		  TimestampTz *glo, TimestampTz *ghi)
{
	TimestampTz cur = covered_until(parts, n, lo, hi);
	TimestampTz end = hi;

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

/*
 * lock_when_free
 *		Takes mode on relid without joining its lock queue.  PostgreSQL
 *		grants a relation's locks in arrival order: a maintenance queued
 *		behind a transaction that holds audio_history (a user who read a page
 *		and sits idle) would make every later read and insert of it wait
 *		behind its own request, for as long as that transaction lasts.  So
 *		it asks without waiting, again every 10 ms, for lock_timeout (10 s
 *		when that is 0), and then raises 55P03 naming the table.
 */
static void
lock_when_free(Oid relid, LOCKMODE mode)
{
	int			wait_ms = LockTimeout > 0 ? LockTimeout : MAINT_LOCK_WAIT_MS;
	TimestampTz give_up = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);

	while (!ConditionalLockRelationOid(relid, mode))
	{
		if (GetCurrentTimestamp() >= give_up)
		{
			char	   *name = get_rel_name(relid);

			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("audiotricks partition maintenance could not lock \"%s\"",
							name ? name : "?"),
					 errdetail("Another transaction held a lock on it for %d ms; the maintenance never queues for one, so that no query of audio_history waits behind it.",
							   wait_ms),
					 errhint("The next insert that finds a partition missing starts it again; transactions left open on audio_history are in pg_stat_activity.")));
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
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
make_partition(const char *nsp, Oid parent_relid, Oid default_relid, const char *name,
			   TimestampTz lo, TimestampTz hi, TimestampTz now)
{
	char	   *qname = quote_qualified_identifier(nsp, name);
	const char *bound = quote_identifier(psprintf("%s_bound", name));
	char	   *slo = quote_literal_cstr(AtUtcLiteral(lo));
	char	   *shi = quote_literal_cstr(AtUtcLiteral(hi));
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
	 * receives no inserts, so SHARE UPDATE EXCLUSIVE on audio_history (held)
	 * lets reads and writes go on; a range that does (the present or the
	 * past: a fresh install, an outage longer than the periods made ahead)
	 * or whose rows wait in the default partition is made under ACCESS
	 * EXCLUSIVE: inserts wait for it, never fail.  ATTACH changes the
	 * default partition's constraint, under ACCESS EXCLUSIVE on it.  Both
	 * are taken when free (lock_when_free), the default partition read
	 * after them (each statement takes a new snapshot), so the rows of a
	 * transaction that was inserting meanwhile are moved too.
	 */
	if (lo <= now)
	{
		locked = true;
		lock_when_free(parent_relid, AccessExclusiveLock);
	}
	if (OidIsValid(default_relid))
	{
		lock_when_free(default_relid, AccessExclusiveLock);
		qdef = qualified_name(default_relid);
		run_sql(psprintf("SELECT FROM %s WHERE %s LIMIT 1", qdef, range), SPI_OK_SELECT);
		has_rows = SPI_processed > 0;
	}
	if (has_rows && !locked)
		lock_when_free(parent_relid, AccessExclusiveLock);

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
												 AtUtcLiteral(lo), AtUtcLiteral(hi)))),
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

	j2date((int) (AtFloorDiv(lo, USECS_PER_DAY) + POSTGRES_EPOCH_JDATE), &year, &month, &mday);
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
 * fill_gaps
 *		Makes a partition for every stretch of [lo, hi) no partition in
 *		*parts covers, appends a "created" action for each to actions and
 *		counts it in *parts for the rest of the run; returns actions.
 */
static List *
fill_gaps(List *actions, const AtSpan *span, const char *nsp, Oid parent_relid, Oid default_relid,
		  AtHistoryPart **parts, int *nparts, TimestampTz lo, TimestampTz hi,
		  TimestampTz now)
{
	TimestampTz glo,
				ghi;

	while (first_gap(*parts, *nparts, lo, hi, &glo, &ghi))
	{
		MaintAction *a = palloc0(sizeof(MaintAction));
		char	   *name = partition_name(span, glo);

		a->action = "created";
		a->partition = quote_qualified_identifier(nsp, name);
		a->lo = glo;
		a->hi = ghi;
		a->moved = (int64) make_partition(nsp, parent_relid, default_relid, name, glo, ghi, now);
		a->has_moved = true;
		actions = lappend(actions, a);
		*parts = repalloc(*parts, sizeof(AtHistoryPart) * (*nparts + 1));
		memset(&(*parts)[*nparts], 0, sizeof(AtHistoryPart));
		(*parts)[*nparts].relid = InvalidOid;
		(*parts)[*nparts].lower = glo;
		(*parts)[*nparts].upper = ghi;
		(*nparts)++;
	}
	return actions;
}

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
	AtSpan		span = at_partition_span;
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
	if (at_retention_span.months > 0 || at_retention_span.days > 0)
	{
		TimestampTz cutoff = AtSpanBefore(&at_retention_span, now);

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
			/* what DROP TABLE of a partition locks, taken when free */
			lock_when_free(relid, AccessExclusiveLock);
			if (OidIsValid(default_relid))
				lock_when_free(default_relid, AccessExclusiveLock);
			lock_when_free(parts[i].relid, AccessExclusiveLock);
			if (getExtensionOfObject(RelationRelationId, parts[i].relid) ==
				get_extension_oid("audiotricks", false))
				run_sql(psprintf("ALTER EXTENSION audiotricks DROP TABLE %s", a->partition),
						SPI_OK_UTILITY);
			run_sql(psprintf("DROP TABLE %s", a->partition), SPI_OK_UTILITY);
			/* the names and bounds are ours: no quoting needed in JSON */
			detail = psprintf("{\"partition\": \"%s\", \"from\": \"%s\", \"to\": \"%s\"}",
							  a->partition, AtUtcLiteral(a->lo), AtUtcLiteral(a->hi));
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
		TimestampTz cutoff = (at_retention_span.months > 0 || at_retention_span.days > 0) ?
		AtSpanBefore(&at_retention_span, now) : DT_NOBEGIN;
		TimestampTz from = DT_NOBEGIN;

		for (;;)
		{
			bool		isnull;
			Datum		d;
			TimestampTz t;
			int64		k;
			TimestampTz lo,
						hi;

			CHECK_FOR_INTERRUPTS();
			run_sql(psprintf("SELECT pg_catalog.min(created_at) FROM %s WHERE created_at"
							 " OPERATOR(pg_catalog.>=) %s::pg_catalog.timestamptz",
							 qdef, from == DT_NOBEGIN ? "'-infinity'" :
							 quote_literal_cstr(AtUtcLiteral(from))), SPI_OK_SELECT);
			if (SPI_processed != 1)
				break;
			d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			if (isnull)
				break;
			t = DatumGetTimestampTz(d);
			if (TIMESTAMP_NOT_FINITE(t))
				break;			/* infinities stay in the default partition */
			k = AtPeriodOf(&span, t);
			lo = AtPeriodStart(&span, k);
			hi = AtPeriodStart(&span, k + 1);
			from = hi;
			if (hi <= cutoff)
				continue;
			actions = fill_gaps(actions, &span, nsp, relid, default_relid, &parts, &nparts, lo, hi, now);
		}
	}

	k0 = AtPeriodOf(&span, now);
	for (int64 k = k0; k <= k0 + at_partitions_ahead; k++)
	{
		TimestampTz lo = AtPeriodStart(&span, k);
		TimestampTz hi = AtPeriodStart(&span, k + 1);

		CHECK_FOR_INTERRUPTS();
		actions = fill_gaps(actions, &span, nsp, relid, default_relid, &parts, &nparts, lo, hi, now);
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
		/* the list lives in SPI's memory: the rows are copied out before SPI_finish */
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
		AtSpiFinish();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
	AtEOXact_GUC(true, nestlevel);
	return (Datum) 0;
}

/* ---- starting maintenance without a scheduler ---- */

static TimestampTz last_launch = 0;

/*
 * One maintenance worker per database at a time, across backends: without
 * this, each backend whose insert finds a partition missing starts its own
 * once a minute, and while a user keeps the maintenance from its locks, a
 * few hundred connections would keep every background worker slot busy
 * (the audit writer, which carries failed logins and revocations, needs
 * one).  A database's slot holds when its worker was started; the worker
 * clears it when it exits, and a slot older than WORKER_STALE_USECS (a
 * worker that never started) no longer counts.
 */
#define LAUNCH_DB_SLOTS		8
#define WORKER_STALE_USECS	(15 * 60 * USECS_PER_SEC)

typedef struct PartitionLaunches
{
	slock_t		mutex;
	struct
	{
		Oid			dboid;		/* InvalidOid: free */
		TimestampTz since;
	}			slots[LAUNCH_DB_SLOTS];
} PartitionLaunches;

static PartitionLaunches *launches = NULL;

Size
PartitionShmemSize(void)
{
	return MAXALIGN(sizeof(PartitionLaunches));
}

/* called from the shmem startup hook with AddinShmemInitLock held */
void
PartitionShmemInit(void)
{
	bool		found;

	launches = ShmemInitStruct("audiotricks partition launches", PartitionShmemSize(), &found);
	if (!found)
	{
		memset(launches, 0, PartitionShmemSize());
		SpinLockInit(&launches->mutex);
	}
}

/*
 * true when this backend may start dboid's worker (and it counts as
 * started): none runs.  Without the shared memory (not preloaded), true.
 */
static bool
claim_launch(Oid dboid)
{
	TimestampTz now = GetCurrentTimestamp();
	int			slot = -1;
	bool		claimed = true;

	if (launches == NULL)
		return true;
	SpinLockAcquire(&launches->mutex);
	for (int i = 0; i < LAUNCH_DB_SLOTS; i++)
	{
		if (launches->slots[i].dboid == dboid)
		{
			slot = i;
			break;
		}
		/* a free slot, else the oldest */
		if (slot < 0 || (launches->slots[slot].dboid != InvalidOid &&
						 (launches->slots[i].dboid == InvalidOid ||
						  launches->slots[i].since < launches->slots[slot].since)))
			slot = i;
	}
	if (launches->slots[slot].dboid == dboid &&
		now >= launches->slots[slot].since &&
		now - launches->slots[slot].since < WORKER_STALE_USECS)
		claimed = false;
	else
	{
		launches->slots[slot].dboid = dboid;
		launches->slots[slot].since = now;
	}
	SpinLockRelease(&launches->mutex);
	return claimed;
}

/* dboid's worker has ended (or was never started) */
static void
release_launch(Oid dboid)
{
	if (launches == NULL)
		return;
	SpinLockAcquire(&launches->mutex);
	for (int i = 0; i < LAUNCH_DB_SLOTS; i++)
		if (launches->slots[i].dboid == dboid)
			launches->slots[i].dboid = InvalidOid;
	SpinLockRelease(&launches->mutex);
}

static void
worker_exit(int code, Datum arg)
{
	release_launch(DatumGetObjectId(arg));
}

/* true when the last period maintenance keeps made has no partition */
static bool
horizon_short(Relation parent)
{
	AtHistoryPart *parts;
	int			nparts = AtHistoryParts(parent, &parts);
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	int64		k = AtPeriodOf(&at_partition_span, now) + at_partitions_ahead;
	bool		covered = span_covered(parts, nparts, AtPeriodStart(&at_partition_span, k),
									   AtPeriodStart(&at_partition_span, k + 1)) &&
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
	if (!claim_launch(MyDatabaseId))
		return;					/* another backend's worker runs */
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		release_launch(MyDatabaseId);
		ereport(LOG,
				(errmsg("audiotricks could not start partition maintenance"),
				 errhint("Raise max_worker_processes, or schedule audiotricks.at_maintain_history_partitions().")));
	}
}

/*
 * at_history_partitions_due() RETURNS trigger
 *		BEFORE INSERT FOR EACH STATEMENT on audio_history: when the current
 *		period or the last one maintenance keeps made has no partition,
 *		starts a background worker that runs the maintenance (a backend
 *		looks at most once a minute; one worker per database at a time).
 *		Never waits, never raises for that.
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

	before_shmem_exit(worker_exit, ObjectIdGetDatum(dboid));
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
