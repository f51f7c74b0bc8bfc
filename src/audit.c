/*
 * src/audit.c
 *		The audit trail: audiotricks.audit_log.
 *
 * AuditEvent() writes an event in the caller's transaction (it commits or
 * rolls back with the change it records).  Events that must survive the
 * failing call's rollback — a failed or throttled login raises 28P01, so its
 * transaction aborts — go through AuditEventDetached(): a ring buffer in
 * shared memory, drained by a short-lived background worker per database
 * that inserts them in its own transactions and exits after a few idle
 * seconds.  Detached events are lost if the server stops before the worker
 * has written them (at most a fraction of a second of events).
 *
 * Never put a password, token, key or plaintext in an event: callers pass
 * only ids, an event name and a small JSON detail built from fixed strings.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/inet.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/uuid.h"

#include "audiotricks.h"

PG_FUNCTION_INFO_V1(at_purge_audit_log);
PG_FUNCTION_INFO_V1(at_audit_history_delete);
PGDLLEXPORT void at_audit_worker_main(Datum arg);

#define AUDIT_QUEUE_SIZE	1024
#define AUDIT_EVENT_LEN		32
#define AUDIT_ADDR_LEN		64
#define AUDIT_MAX_WORKERS	8
#define AUDIT_IDLE_EXIT_MS	5000

typedef struct AuditQueued
{
	Oid			dboid;
	char		kind;			/* 'e' an event, 'r' end a session family */
	bool		has_user;
	pg_uuid_t	user_id;
	char		event[AUDIT_EVENT_LEN];
	char		addr[AUDIT_ADDR_LEN];	/* text form, '' if none */
	TimestampTz at;
} AuditQueued;

typedef struct AuditShared
{
	LWLock	   *lock;
	uint32		head;			/* next to read */
	uint32		count;
	uint64		dropped;
	Oid			worker_db[AUDIT_MAX_WORKERS];	/* databases with a worker */
	AuditQueued queue[AUDIT_QUEUE_SIZE];
} AuditShared;

static AuditShared *audit = NULL;

/*
 * AuditShmemSize / AuditShmemInit
 *		Shared memory for the detached-event queue; Init is called from the
 *		shmem startup hook with AddinShmemInitLock held.
 */
Size
AuditShmemSize(void)
{
	return MAXALIGN(sizeof(AuditShared));
}

void
AuditShmemInit(void)
{
	bool		found;

	audit = ShmemInitStruct("audiotricks audit queue", AuditShmemSize(), &found);
	if (!found)
	{
		memset(audit, 0, AuditShmemSize());
		audit->lock = &(GetNamedLWLockTranche("audiotricks"))[1].lock;
	}
}

/* the client's IP address as text, or '' (Unix socket, background worker) */
static void
client_addr(char *buf, size_t len)
{
	LOCAL_FCINFO(fcinfo, 0);
	Datum		addr;

	buf[0] = '\0';
	InitFunctionCallInfoData(*fcinfo, NULL, 0, InvalidOid, NULL, NULL);
	addr = inet_client_addr(fcinfo);
	if (!fcinfo->isnull)
		strlcpy(buf, DatumGetCString(DirectFunctionCall1(inet_out, addr)), len);
}

static SPIPlanPtr insert_plan = NULL;

static void
insert_event(const char *event, const pg_uuid_t *user_id,
			 const pg_uuid_t *session_id, const char *detail,
			 const char *addr, TimestampTz at)
{
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	Oid			types[6] = {TEXTOID, UUIDOID, UUIDOID, TEXTOID, TEXTOID, TIMESTAMPTZOID};

	if (insert_plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(
			"INSERT INTO audiotricks.audit_log (event, user_id, session_id, detail, client_addr, created_at)"
			" VALUES ($1, $2, $3, pg_catalog.jsonb_in($4::pg_catalog.cstring),"
			"         pg_catalog.inet_in($5::pg_catalog.cstring), $6)",
			6, types);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "could not prepare the audit insert: %s",
				 SPI_result_code_string(SPI_result));
		insert_plan = p;
	}
	values[0] = CStringGetTextDatum(event);
	if (user_id)
		values[1] = UUIDPGetDatum(user_id);
	else
		nulls[1] = 'n';
	if (session_id)
		values[2] = UUIDPGetDatum(session_id);
	else
		nulls[2] = 'n';
	values[3] = CStringGetTextDatum(detail ? detail : "{}");
	if (addr && addr[0])
		values[4] = CStringGetTextDatum(addr);
	else
		nulls[4] = 'n';
	values[5] = TimestampTzGetDatum(at);
	if (SPI_execute_plan(insert_plan, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write an audit event");
}

/*
 * AuditEvent
 *		Writes one event in the current transaction, as the extension's
 *		owner (callers may be application roles, who cannot write the log).
 *		detail is a JSON object text built by the caller from fixed strings,
 *		or NULL.  Raises on failure.
 */
void
AuditEvent(const char *event, const pg_uuid_t *user_id,
		   const pg_uuid_t *session_id, const char *detail)
{
	Oid			save_userid;
	int			save_sec;
	char		addr[AUDIT_ADDR_LEN];

	client_addr(addr, sizeof(addr));
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(AtOwnerOid(),
						   save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		insert_event(event, user_id, session_id, detail, addr,
					 GetCurrentTransactionStartTimestamp());
		if (SPI_finish() != SPI_OK_FINISH)
			elog(ERROR, "SPI_finish failed");
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
}

static void
launch_worker_if_needed(Oid dboid)
{
	int			free_slot = -1;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	/* caller holds audit->lock exclusively */
	for (int i = 0; i < AUDIT_MAX_WORKERS; i++)
	{
		if (audit->worker_db[i] == dboid)
			return;
		if (audit->worker_db[i] == InvalidOid && free_slot < 0)
			free_slot = i;
	}
	if (free_slot < 0)
		return;					/* a running worker will come back for it */

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "audiotricks", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "at_audit_worker_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "audiotricks audit writer");
	strlcpy(worker.bgw_type, "audiotricks audit writer", BGW_MAXLEN);
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	worker.bgw_notify_pid = 0;
	if (RegisterDynamicBackgroundWorker(&worker, &handle))
		audit->worker_db[free_slot] = dboid;
	else
		ereport(LOG,
				(errmsg("audiotricks could not start its audit writer; events stay queued"),
				 errhint("Raise max_worker_processes.")));
}

/* caller holds audit->lock exclusively; returns a slot to fill */
static AuditQueued *
queue_slot(void)
{
	AuditQueued *q;

	if (audit->count == AUDIT_QUEUE_SIZE)
	{
		audit->head = (audit->head + 1) % AUDIT_QUEUE_SIZE;
		audit->count--;
		audit->dropped++;
	}
	q = &audit->queue[(audit->head + audit->count) % AUDIT_QUEUE_SIZE];
	audit->count++;
	memset(q, 0, sizeof(*q));
	q->dboid = MyDatabaseId;
	q->at = GetCurrentTimestamp();
	return q;
}

/*
 * AuditRevokeFamilyDetached
 *		Queues the end of every session of a refresh family, for the audit
 *		writer to carry out in its own transaction (used when the calling
 *		transaction is about to abort).
 */
void
AuditRevokeFamilyDetached(const pg_uuid_t *family_id)
{
	AuditQueued *q;

	if (audit == NULL)
		return;
	LWLockAcquire(audit->lock, LW_EXCLUSIVE);
	q = queue_slot();
	q->kind = 'r';
	q->has_user = true;
	q->user_id = *family_id;
	launch_worker_if_needed(MyDatabaseId);
	LWLockRelease(audit->lock);
}

/*
 * AuditEventDetached
 *		Queues an event that must be recorded even if the current transaction
 *		aborts; a background worker writes it shortly.  Never raises for a
 *		full queue (the oldest event is dropped and counted in the log).
 */
void
AuditEventDetached(const char *event, const pg_uuid_t *user_id)
{
	AuditQueued *q;

	if (audit == NULL)
		return;
	LWLockAcquire(audit->lock, LW_EXCLUSIVE);
	q = queue_slot();
	q->kind = 'e';
	q->has_user = user_id != NULL;
	if (user_id)
		q->user_id = *user_id;
	strlcpy(q->event, event, sizeof(q->event));
	client_addr(q->addr, sizeof(q->addr));
	launch_worker_if_needed(MyDatabaseId);
	LWLockRelease(audit->lock);
}

static void
worker_exit(int code, Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);

	if (audit == NULL)
		return;
	LWLockAcquire(audit->lock, LW_EXCLUSIVE);
	for (int i = 0; i < AUDIT_MAX_WORKERS; i++)
		if (audit->worker_db[i] == dboid)
			audit->worker_db[i] = InvalidOid;
	LWLockRelease(audit->lock);
}

/* takes up to max queued events of dboid out of the queue */
static int
take_events(Oid dboid, AuditQueued *out, int max)
{
	int			n = 0;
	uint32		kept = 0;

	LWLockAcquire(audit->lock, LW_EXCLUSIVE);
	for (uint32 i = 0; i < audit->count; i++)
	{
		AuditQueued *q = &audit->queue[(audit->head + i) % AUDIT_QUEUE_SIZE];

		if (q->dboid == dboid && n < max)
			out[n++] = *q;
		else
		{
			if (kept != i)
				audit->queue[(audit->head + kept) % AUDIT_QUEUE_SIZE] = *q;
			kept++;
		}
	}
	audit->count = kept;
	LWLockRelease(audit->lock);
	return n;
}

/*
 * True when the user still exists; the row is locked FOR KEY SHARE until the
 * writer commits, so a concurrent at_delete_account either waits for this
 * event (and then anonymises it with the user's other events) or has already
 * deleted the user (and the event is written without id and address).
 */
static bool
user_still_exists(const pg_uuid_t *user_id)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {UUIDOID};
	Datum		values[1];

	if (plan == NULL)
	{
		plan = SPI_prepare("SELECT 1 FROM audiotricks.users"
						   " WHERE id OPERATOR(pg_catalog.=) $1 FOR KEY SHARE", 1, types);
		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "could not prepare the user check");
	}
	values[0] = UUIDPGetDatum(user_id);
	if (SPI_execute_plan(plan, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not check a user");
	return SPI_processed == 1;
}

static void
revoke_family(const pg_uuid_t *family_id)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {UUIDOID};
	Datum		values[1];

	if (plan == NULL)
	{
		plan = SPI_prepare("DELETE FROM audiotricks.sessions"
						   " WHERE family_id OPERATOR(pg_catalog.=) $1", 1, types);
		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "could not prepare the family revocation");
	}
	values[0] = UUIDPGetDatum(family_id);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not end a session family");
}

/*
 * at_audit_worker_main
 *		Background worker: writes the detached events of one database, then
 *		exits after AUDIT_IDLE_EXIT_MS without any.
 */
void
at_audit_worker_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	AuditQueued batch[64];
	int			idle_ms = 0;

	before_shmem_exit(worker_exit, arg);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

	while (idle_ms < AUDIT_IDLE_EXIT_MS)
	{
		int			n;

		CHECK_FOR_INTERRUPTS();
		n = take_events(dboid, batch, lengthof(batch));
		if (n > 0)
		{
			idle_ms = 0;
			StartTransactionCommand();
			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "SPI_connect failed");
			PushActiveSnapshot(GetTransactionSnapshot());
			pgstat_report_activity(STATE_RUNNING, "writing audit events");
			for (int i = 0; i < n; i++)
			{
				if (batch[i].kind == 'r')
					revoke_family(&batch[i].user_id);
				else if (batch[i].has_user && !user_still_exists(&batch[i].user_id))
					/* deleted meanwhile: keep the event, not the person */
					insert_event(batch[i].event, NULL, NULL, NULL, NULL, batch[i].at);
				else
					insert_event(batch[i].event,
								 batch[i].has_user ? &batch[i].user_id : NULL,
								 NULL, NULL, batch[i].addr, batch[i].at);
			}
			SPI_finish();
			PopActiveSnapshot();
			CommitTransactionCommand();
			pgstat_report_activity(STATE_IDLE, NULL);
			continue;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		idle_ms += 100;
	}
	proc_exit(0);
}

/*
 * at_purge_audit_log(older_than interval DEFAULT '1 year', batch_size integer
 *		DEFAULT 10000) RETURNS bigint
 *		Deletes events older than older_than, batch_size rows per statement,
 *		until none is left; returns how many.  For pg_cron.
 */
Datum
at_purge_audit_log(PG_FUNCTION_ARGS)
{
	Interval   *older_than;
	int32		batch;
	Datum		values[2];
	Oid			types[2] = {INTERVALOID, INT4OID};
	uint64		total = 0;
	SPIPlanPtr	plan;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("older_than and batch_size must not be null")));
	older_than = PG_GETARG_INTERVAL_P(0);
	batch = PG_GETARG_INT32(1);
	if (batch < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be at least 1")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare("DELETE FROM audiotricks.audit_log WHERE id OPERATOR(pg_catalog.=) ANY ("
					   " SELECT id FROM audiotricks.audit_log"
					   "  WHERE created_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) $1)"
					   "  ORDER BY created_at LIMIT $2)",
					   2, types);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed");
	values[0] = IntervalPGetDatum(older_than);
	values[1] = Int32GetDatum(batch);
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not purge the audit log");
		total += SPI_processed;
		if (SPI_processed < (uint64) batch)
			break;
	}
	SPI_finish();
	PG_RETURN_INT64((int64) total);
}

/*
 * at_audit_history_delete() RETURNS trigger
 *		AFTER DELETE ... FOR EACH STATEMENT on audio_history, with the old rows
 *		as transition table "deleted": records one history_deleted event per
 *		statement (how many entries), for the current identity.  (A deletion
 *		cascaded from at_delete_account is recorded too, then anonymised with
 *		the user's other events.)
 */
Datum
at_audit_history_delete(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	uint64		n;
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;
	bool		have;
	char		detail[64];

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BY_DELETE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		trigdata->tg_oldtable == NULL)
		elog(ERROR, "at_audit_history_delete: must be fired after delete for each statement with an old table");

	n = tuplestore_tuple_count(trigdata->tg_oldtable);
	if (n > 0)
	{
		have = IdentityGet(&user_id, &session_id);
		snprintf(detail, sizeof(detail), "{\"entries\": " UINT64_FORMAT "}", n);
		AuditEvent("history_deleted", have ? &user_id : NULL,
				   have ? &session_id : NULL, detail);
	}
	return PointerGetDatum(NULL);
}
