/*
 * src/audit_writer.c
 *		The detached half of the audit trail: the queue in shared memory,
 *		the slot reservations that keep it from ever dropping an item, and
 *		the background writer that drains it, one per database.
 *
 * What must survive the failing call's rollback — a failed or throttled
 * login raises 28P01, so its transaction aborts; a refresh-token reuse
 * raises 28000 and must end the token's family — goes through the queue
 * (AuditEventDetached, AuditRevokeFamilyDetached), drained by a background
 * writer per database that writes each batch in its own transaction and
 * exits after a second with nothing to do.  The queue never drops an item: callers
 * that may queue one reserve a slot first (AuditReserve) and are refused
 * with 53400 when none is free.  The writer never waits on a lock an
 * application transaction can hold.  A revocation's caller waits for the
 * writer's commit, so a revocation that was answered is durable; other
 * events still queued when the server stops are lost (a fraction of a
 * second of failed logins).
 */
#include "postgres.h"


#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "audiotricks.h"
#include "audit.h"
#include "identity.h"
#include "schema.h"
#include "spi.h"

PGDLLEXPORT void at_audit_worker_main(Datum arg);

#define AUDIT_QUEUE_SIZE	8192	/* detached items, all databases */
#define AUDIT_EVENT_LEN		32
#define AUDIT_MAX_WORKERS	8
#define AUDIT_IDLE_EXIT_MS	1000
#define AUDIT_RESERVE_WAIT_MS	2000	/* a full queue: wait this long, then 53400 */
#define AUDIT_REVOKE_WAIT_MS	10000	/* a revocation: wait this long for its commit */
#define AUDIT_RETRY_MS		200		/* an event whose user row is locked */

typedef struct AuditQueued
{
	uint64		seq;			/* unique, increasing */
	Oid			dboid;
	char		kind;			/* 'e' an event, 'r' end a session family */
	bool		has_user;
	pg_uuid_t	user_id;		/* for 'r': the family id */
	char		event[AUDIT_EVENT_LEN];
	char		addr[AUDIT_ADDR_LEN];	/* text form, '' if none */
	char		role[NAMEDATALEN];	/* the role that ran the statement */
	TimestampTz at;
	TimestampTz not_before;		/* deferred until then (0: now) */
} AuditQueued;

typedef struct AuditWorkerSlot
{
	Oid			dboid;			/* InvalidOid: free */
	int			pgprocno;		/* the writer's PGPROC, -1 until it runs */
} AuditWorkerSlot;

/*
 * The queue is an array of count items in arrival order (items are removed
 * from anywhere, after their transaction committed, and the rest moved up).
 * reserved slots are promised to backends that will queue an item whatever
 * happens (a login that may fail): nothing is ever dropped, a caller that
 * cannot get a slot is refused before it does anything.
 */
typedef struct AuditShared
{
	LWLock	   *lock;
	uint64		next_seq;
	uint32		count;
	uint32		reserved;
	ConditionVariable cv;		/* broadcast when items leave the queue */
	AuditWorkerSlot workers[AUDIT_MAX_WORKERS];
	AuditQueued queue[AUDIT_QUEUE_SIZE];
} AuditShared;

static AuditShared *audit = NULL;

/* slots this backend reserved and has not used yet */
static uint32 my_reserved = 0;
static bool reserve_callback_registered = false;

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
		audit->next_seq = 1;
		ConditionVariableInit(&audit->cv);
		for (int i = 0; i < AUDIT_MAX_WORKERS; i++)
			audit->workers[i].pgprocno = -1;
	}
}

/*
 * The role the writer of this database connects as: the extension's owner
 * (who owns the tables it writes), so that nothing it runs has more rights
 * than the extension's own functions.  When that role cannot log in
 * (rolcanlogin, which background workers of PostgreSQL 15 cannot bypass),
 * InvalidOid: the bootstrap superuser.  Either way the writer checks the
 * schema (AtCheckSchema) before each batch.  Raises 55000 as AtCheckSchema
 * does; call it before taking audit->lock.
 */
static Oid
writer_role(void)
{
	Oid			owner = AtOwnerOid();
	HeapTuple	tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(owner));
	bool		can_login = false;

	if (HeapTupleIsValid(tup))
	{
		can_login = ((Form_pg_authid) GETSTRUCT(tup))->rolcanlogin;
		ReleaseSysCache(tup);
	}
	return can_login ? owner : InvalidOid;
}

/*
 * Starts the writer of dboid, connecting as role (writer_role), if none is
 * registered; caller holds audit->lock exclusively.  With a writer registered, wakes it.  A writer clears its
 * registration only under the same lock and only when the queue holds
 * nothing of its database, so an item queued under the lock is always
 * either seen by the running writer or followed by a new one.
 */
static void
wake_or_launch_writer(Oid dboid, Oid role)
{
	int			free_slot = -1;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	for (int i = 0; i < AUDIT_MAX_WORKERS; i++)
	{
		if (audit->workers[i].dboid == dboid)
		{
			if (audit->workers[i].pgprocno >= 0)
				SetLatch(&ProcGlobal->allProcs[audit->workers[i].pgprocno].procLatch);
			return;
		}
		if (audit->workers[i].dboid == InvalidOid && free_slot < 0)
			free_slot = i;
	}
	if (free_slot < 0)
	{
		/* a writer of another database takes this slot when it exits */
		ereport(LOG,
				(errmsg("audiotricks: every audit writer slot is busy; %u queued items wait", audit->count)));
		return;
	}

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	/* an error exits with code 1: the postmaster starts it again */
	worker.bgw_restart_time = 1;
	strlcpy(worker.bgw_library_name, "audiotricks", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "at_audit_worker_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "audiotricks audit writer");
	strlcpy(worker.bgw_type, "audiotricks audit writer", BGW_MAXLEN);
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	memcpy(worker.bgw_extra, &role, sizeof(role));
	worker.bgw_notify_pid = 0;
	if (RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		audit->workers[free_slot].dboid = dboid;
		audit->workers[free_slot].pgprocno = -1;
	}
	else
		ereport(LOG,
				(errmsg("audiotricks could not start its audit writer; %u items stay queued", audit->count),
				 errhint("Raise max_worker_processes.")));
}

/* gives back the slots this backend reserved but did not use */
static void
release_reservation(void)
{
	if (my_reserved == 0 || audit == NULL)
		return;
	LWLockAcquire(audit->lock, LW_EXCLUSIVE);
	Assert(audit->reserved >= my_reserved);
	audit->reserved -= Min(audit->reserved, my_reserved);
	my_reserved = 0;
	LWLockRelease(audit->lock);
	ConditionVariableBroadcast(&audit->cv);
}

static void
reserve_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PARALLEL_ABORT)
		release_reservation();
}

static void
reserve_exit_callback(int code, Datum arg)
{
	release_reservation();
}

/*
 * AuditReserve
 *		Promises this backend n queue slots until its transaction ends, so
 *		that the detached events and revocations it may queue are never lost
 *		to a full queue.  Called before a login, password check or refresh
 *		does any work.  Slots still held from an earlier call count: a
 *		backend never holds more than the largest n (calls repeated in one
 *		transaction cannot hoard the queue).  When the queue stays full for
 *		AUDIT_RESERVE_WAIT_MS (its writer cannot keep up or cannot start),
 *		raises 53400 and says so in the log: the call is refused rather than
 *		run unrecorded.
 */
void
AuditReserve(int n)
{
	TimestampTz deadline;
	Oid			role;

	if (audit == NULL || my_reserved >= (uint32) n)
		return;
	role = writer_role();		/* checks the schema first */
	n -= my_reserved;
	if (!reserve_callback_registered)
	{
		RegisterXactCallback(reserve_xact_callback, NULL);
		before_shmem_exit(reserve_exit_callback, (Datum) 0);
		reserve_callback_registered = true;
	}
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), AUDIT_RESERVE_WAIT_MS);
	for (;;)
	{
		bool		ok;
		uint32		pending;

		LWLockAcquire(audit->lock, LW_EXCLUSIVE);
		ok = audit->count + audit->reserved + n <= AUDIT_QUEUE_SIZE;
		if (ok)
		{
			audit->reserved += n;
			my_reserved += n;
		}
		else
			wake_or_launch_writer(MyDatabaseId, role);
		pending = audit->count;
		LWLockRelease(audit->lock);
		if (ok)
			break;
		if (GetCurrentTimestamp() >= deadline)
		{
			ConditionVariableCancelSleep();
			ereport(LOG,
					(errmsg("audiotricks: the audit queue is full (%u items pending); a call that records account events was refused", pending)));
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("too many account events pending, retry"),
					 errhint("The audiotricks audit writer is behind or cannot start (max_worker_processes).")));
		}
		(void) ConditionVariableTimedSleep(&audit->cv, 50, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
}

/*
 * Queues one item, using a reserved slot when this backend holds one;
 * without one it waits for room like AuditReserve.  Returns its sequence
 * number.
 */
static uint64
enqueue(char kind, const char *event, const pg_uuid_t *user_id, bool with_addr)
{
	AuditQueued *q;
	uint64		seq;
	char		addr[AUDIT_ADDR_LEN];
	Oid			role = writer_role();
	char	   *role_name = AuditDbRole();

	if (role_name == NULL)
		role_name = "";
	addr[0] = '\0';
	if (with_addr)
		AuditClientAddr(addr, sizeof(addr));
	if (my_reserved == 0)
		AuditReserve(1);
	LWLockAcquire(audit->lock, LW_EXCLUSIVE);
	if (audit->count >= AUDIT_QUEUE_SIZE || audit->reserved == 0)
	{
		/* cannot happen: this backend holds a reserved slot */
		LWLockRelease(audit->lock);
		elog(ERROR, "audiotricks audit queue accounting is inconsistent");
	}
	my_reserved--;
	audit->reserved--;
	q = &audit->queue[audit->count++];
	memset(q, 0, sizeof(*q));
	q->seq = seq = audit->next_seq++;
	q->dboid = MyDatabaseId;
	q->kind = kind;
	q->at = GetCurrentTimestamp();
	q->has_user = user_id != NULL;
	if (user_id)
		q->user_id = *user_id;
	if (event)
		strlcpy(q->event, event, sizeof(q->event));
	strlcpy(q->addr, addr, sizeof(q->addr));
	strlcpy(q->role, role_name, sizeof(q->role));
	wake_or_launch_writer(MyDatabaseId, role);
	LWLockRelease(audit->lock);
	return seq;
}

/* true while the item seq is still in the queue (not yet committed) */
static bool
still_queued(uint64 seq)
{
	bool		found = false;

	LWLockAcquire(audit->lock, LW_SHARED);
	for (uint32 i = 0; i < audit->count && !found; i++)
		found = audit->queue[i].seq == seq;
	LWLockRelease(audit->lock);
	return found;
}

/*
 * AuditRevokeFamilyDetached
 *		Ends a refresh family from outside the calling transaction (which is
 *		about to abort, or is a thief's that could roll back): the audit
 *		writer inserts the family into revoked_families and deletes its
 *		sessions in its own transaction.  Waits up to AUDIT_REVOKE_WAIT_MS
 *		for that commit, so that when the caller returns the revocation is
 *		durable and in force; if the writer is slower (or this wait is
 *		cancelled) the item stays queued, is written later, and the log says
 *		so.  Returns whether it was committed in time.
 */
bool
AuditRevokeFamilyDetached(const pg_uuid_t *family_id)
{
	uint64		seq;
	TimestampTz deadline;
	bool		done = false;

	if (audit == NULL)
		return false;
	seq = enqueue('r', NULL, family_id, false);
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), AUDIT_REVOKE_WAIT_MS);
	for (;;)
	{
		if (!still_queued(seq))
		{
			done = true;
			break;
		}
		if (GetCurrentTimestamp() >= deadline)
			break;
		(void) ConditionVariableTimedSleep(&audit->cv, 100, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	if (!done)
		ereport(LOG,
				(errmsg("audiotricks: a session family revocation is still queued after %d ms; the audit writer will write it",
						AUDIT_REVOKE_WAIT_MS)));
	return done;
}

/*
 * AuditEventDetached
 *		Queues an event that must be recorded even if the current transaction
 *		aborts; the database's audit writer writes it shortly.  Uses a slot
 *		reserved by AuditReserve (callers that may fail reserve before they
 *		start); never drops an event.
 */
void
AuditEventDetached(const char *event, const pg_uuid_t *user_id)
{
	if (audit == NULL)
		return;
	(void) enqueue('e', event, user_id, true);
}

/* clears this writer's registration (error exit; normal exits do it earlier) */
static void
worker_exit(int code, Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);

	if (audit == NULL)
		return;
	LWLockAcquire(audit->lock, LW_EXCLUSIVE);
	for (int i = 0; i < AUDIT_MAX_WORKERS; i++)
		if (audit->workers[i].dboid == dboid &&
			audit->workers[i].pgprocno == MyProc->pgprocno)
		{
			audit->workers[i].dboid = InvalidOid;
			audit->workers[i].pgprocno = -1;
		}
	LWLockRelease(audit->lock);
}

/*
 * Registers this process as dboid's writer.  False when another live writer
 * of dboid is registered (a restarted writer finding a newer one).
 */
static bool
claim_writer_slot(Oid dboid)
{
	bool		ok = false;
	int			free_slot = -1;

	LWLockAcquire(audit->lock, LW_EXCLUSIVE);
	for (int i = 0; i < AUDIT_MAX_WORKERS; i++)
	{
		if (audit->workers[i].dboid == dboid)
		{
			if (audit->workers[i].pgprocno < 0)
			{
				audit->workers[i].pgprocno = MyProc->pgprocno;
				ok = true;
			}
			free_slot = -2;
			break;
		}
		if (audit->workers[i].dboid == InvalidOid && free_slot == -1)
			free_slot = i;
	}
	if (free_slot >= 0)
	{
		audit->workers[free_slot].dboid = dboid;
		audit->workers[free_slot].pgprocno = MyProc->pgprocno;
		ok = true;
	}
	LWLockRelease(audit->lock);
	return ok;
}

/*
 * Copies up to max items of dboid that are due out of the queue (they stay
 * in it until remove_items after their commit).  When none is queued at all
 * and exit_if_idle, unregisters the writer in the same critical section.
 * Returns the number copied, or -1 when the writer unregistered.
 */
static int
take_items(Oid dboid, AuditQueued *out, int max, bool exit_if_idle)
{
	int			n = 0;
	bool		any = false;
	TimestampTz now = GetCurrentTimestamp();

	LWLockAcquire(audit->lock, LW_EXCLUSIVE);
	for (uint32 i = 0; i < audit->count && n < max; i++)
	{
		AuditQueued *q = &audit->queue[i];

		if (q->dboid != dboid)
			continue;
		any = true;
		if (q->not_before <= now)
			out[n++] = *q;
	}
	if (!any && exit_if_idle)
	{
		for (int i = 0; i < AUDIT_MAX_WORKERS; i++)
			if (audit->workers[i].dboid == dboid)
			{
				audit->workers[i].dboid = InvalidOid;
				audit->workers[i].pgprocno = -1;
			}
		n = -1;
	}
	LWLockRelease(audit->lock);
	return n;
}

/* removes the written items, defers the others; wakes whoever waits */
static void
remove_items(AuditQueued *items, bool *written, int n)
{
	uint32		kept = 0;
	TimestampTz retry = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), AUDIT_RETRY_MS);

	LWLockAcquire(audit->lock, LW_EXCLUSIVE);
	for (uint32 i = 0; i < audit->count; i++)
	{
		AuditQueued *q = &audit->queue[i];
		bool		drop = false;

		for (int j = 0; j < n; j++)
			if (items[j].seq == q->seq)
			{
				if (written[j])
					drop = true;
				else
					q->not_before = retry;
				break;
			}
		if (drop)
			continue;
		if (kept != i)
			audit->queue[kept] = *q;
		kept++;
	}
	audit->count = kept;
	LWLockRelease(audit->lock);
	ConditionVariableBroadcast(&audit->cv);
}

static AtPlan plan_lock_user = {
	"SELECT 1 FROM audiotricks.users WHERE id OPERATOR(pg_catalog.=) $1"
	" FOR KEY SHARE SKIP LOCKED",
	1, {UUIDOID}, NULL
};

static AtPlan plan_user_exists = {
	"SELECT 1 FROM audiotricks.users WHERE id OPERATOR(pg_catalog.=) $1",
	1, {UUIDOID}, NULL
};

static AtPlan plan_revoke_family = {
	"INSERT INTO audiotricks.revoked_families (family_id) VALUES ($1)"
	" ON CONFLICT DO NOTHING",
	1, {UUIDOID}, NULL
};

static AtPlan plan_end_family = {
	"DELETE FROM audiotricks.sessions WHERE id OPERATOR(pg_catalog.=) ANY ("
	" SELECT id FROM audiotricks.sessions"
	"  WHERE family_id OPERATOR(pg_catalog.=) $1 FOR UPDATE SKIP LOCKED)",
	1, {UUIDOID}, NULL
};

/*
 * The user of an event: 'y' exists (and is now locked FOR KEY SHARE until
 * the writer commits, so a concurrent at_delete_account either waits for
 * this event and anonymises it with the user's others, or already deleted
 * the user), 'n' deleted (the event is written without id and address),
 * 'w' the row is locked by a transaction that may delete it (never wait on
 * a lock a user can hold: the event is retried shortly).
 */
static char
user_state(const pg_uuid_t *user_id)
{
	Datum		values[1];

	values[0] = UUIDPGetDatum(user_id);
	if (AtRunPlan(&plan_lock_user, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not check a user");
	if (SPI_processed == 1)
		return 'y';
	if (AtRunPlan(&plan_user_exists, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not check a user");
	return SPI_processed == 1 ? 'w' : 'n';
}

/*
 * Ends a family: lists it in revoked_families (only this writer inserts
 * there, so that never waits on an application transaction), then deletes
 * the family's sessions that nobody has locked.  A locked one (a refresh in
 * flight) is refused anyway by the token check and at_refresh, which read
 * revoked_families, and is purged once it expires.
 */
static void
revoke_family(const pg_uuid_t *family_id)
{
	Datum		values[1];

	values[0] = UUIDPGetDatum(family_id);
	if (AtRunPlan(&plan_revoke_family, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record a family revocation");
	if (AtRunPlan(&plan_end_family, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not end a session family");
}

/* writes a batch in one transaction; written[i] says which are done */
static void
write_batch(AuditQueued *batch, bool *written, int n)
{
	StartTransactionCommand();
	AtSpiConnect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "writing audit events");
	/* its queries name audiotricks.<table>: never write into another schema */
	(void) AtCheckSchema();
	for (int i = 0; i < n; i++)
	{
		AuditQueued *q = &batch[i];

		written[i] = true;
		if (q->kind == 'r')
			revoke_family(&q->user_id);
		else if (!q->has_user)
			written[i] = AuditInsertEvent(q->event, NULL, NULL, NULL, q->addr, q->at,
										  q->role[0] ? q->role : NULL, true);
		else
			switch (user_state(&q->user_id))
			{
				case 'y':
					/* false: its chain head is held (deferred like a locked user) */
					written[i] = AuditInsertEvent(q->event, &q->user_id, NULL, NULL,
												  q->addr, q->at, q->role[0] ? q->role : NULL, true);
					break;
				case 'n':
					/* deleted meanwhile: keep the event, not the person */
					written[i] = AuditInsertEvent(q->event, NULL, NULL, NULL, NULL, q->at,
												  q->role[0] ? q->role : NULL, true);
					break;
				default:
					written[i] = false;
					break;
			}
	}
	AtSpiFinish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * at_audit_worker_main
 *		Background worker: writes the detached events and revocations of one
 *		database, each batch in its own transaction, and exits when nothing
 *		of its database has been queued for AUDIT_IDLE_EXIT_MS.  It never
 *		waits on a lock an application transaction can hold (events of a
 *		user whose row is locked are retried; lock_timeout guards the rest);
 *		an error is logged, the batch stays queued and is retried.  It
 *		connects as the role its starter passed in bgw_extra (writer_role:
 *		the extension's owner), keeps search_path pinned, and checks the
 *		schema before each batch (AtCheckSchema).
 */
void
at_audit_worker_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	Oid			role;
	AuditQueued batch[64];
	bool		written[64];
	volatile int idle_ms = 0;
	MemoryContext cxt;

	before_shmem_exit(worker_exit, arg);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	memcpy(&role, MyBgworkerEntry->bgw_extra, sizeof(role));
	BackgroundWorkerInitializeConnectionByOid(dboid, role, 0);
	if (!claim_writer_slot(dboid))
		proc_exit(0);

	/* whatever the database's or role's defaults say */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("synchronous_commit", "on", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("lock_timeout", "1000", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("statement_timeout", "10000", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_read_only", "off", PGC_SUSET, PGC_S_OVERRIDE);

	cxt = AllocSetContextCreate(TopMemoryContext, "audiotricks audit writer",
								ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		int			n;

		CHECK_FOR_INTERRUPTS();
		n = take_items(dboid, batch, lengthof(batch), idle_ms >= AUDIT_IDLE_EXIT_MS);
		if (n < 0)
			break;				/* unregistered: nothing of ours is queued */
		if (n > 0)
		{
			volatile bool ok = true;

			idle_ms = 0;
			MemoryContextSwitchTo(cxt);
			PG_TRY();
			{
				write_batch(batch, written, n);
			}
			PG_CATCH();
			{
				HOLD_INTERRUPTS();
				MemoryContextSwitchTo(cxt);
				EmitErrorReport();
				FlushErrorState();
				AbortOutOfAnyTransaction();
				RESUME_INTERRUPTS();
				ok = false;
			}
			PG_END_TRY();
			MemoryContextSwitchTo(cxt);
			MemoryContextReset(cxt);
			if (ok)
				remove_items(batch, written, n);
			else
			{
				ereport(LOG,
						(errmsg("audiotricks audit writer: %d queued items could not be written; retrying", n)));
				for (int i = 0; i < n; i++)
					written[i] = false;
				remove_items(batch, written, n);	/* defers them */
			}
			/* deferred items only: do not spin on them */
			for (int i = 0; i < n; i++)
				if (!written[i])
				{
					(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
									 AUDIT_RETRY_MS, PG_WAIT_EXTENSION);
					ResetLatch(MyLatch);
					break;
				}
			continue;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		idle_ms += 100;
	}
	proc_exit(0);
}

