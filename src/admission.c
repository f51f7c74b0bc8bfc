/*
 * src/admission.c
 *		Admission control for password hashing: at most
 *		audiotricks.max_concurrent_password_checks bcrypt computations at once
 *		in the whole server.
 *
 * A bcrypt hash at the default cost keeps a core busy for about a quarter of
 * a second, and anonymous clients can ask for as many as they like (at_login
 * with any name).  Without a bound, a flood of logins takes every core and
 * everything else the database serves slows down with it.  So every hash
 * (src/password.c, BcryptCrypt) first takes a place here; a caller over the
 * cap waits, at most audiotricks.password_check_wait, and then fails with
 * 53400 ("too many logins in progress, retry").  Token checks, pages, keys
 * and search never come here.
 *
 * Waiting: one ConditionVariable; every waiter has an entry in a per-process
 * array (indexed by pgprocno) with its class and a ticket.  A place goes to
 * the best waiter: lowest class, then earliest ticket.  The classes
 * (AdmissionClass) use only signals that say nothing about whether an
 * account exists:
 *	 0 authenticated: a caller that proved a token (at_change_password,
 *	   at_deactivate_account, at_delete_account) or the password (at_login's
 *	   re-hash at a raised cost);
 *	 1 anonymous: at_login and at_register, known and unknown names alike;
 *	 2 repeated: either of the above whose key was hashed at least
 *	   max_failed_logins times in the current or the previous window of
 *	   failed_login_window.
 * The key of an anonymous call is the text the caller typed (the login or
 * the registration's email), lower-cased, never the account it resolves to:
 * counting by account would let an attacker who failed on a username see,
 * from queueing times under load, whether an email belongs to the same
 * account.  Counts are kept in a count-min sketch (two rows of 16-bit
 * counters per window, two windows), so no name is stored and a count can
 * only be overestimated; they count hashes actually run, so a client that is
 * refused with 53400 and retries is not demoted by its retries.
 *
 * Within a class, a key refused with 53400 keeps its ticket for its next
 * attempt (SENIOR_SLOTS entries, for SENIOR_TTL_MS after the refusal; one
 * attempt at a time takes it): a client that retries goes before those that
 * came after it, instead of queueing again behind a flood of first attempts.
 * A flood that retries its own names gets the same, so it is a fair share
 * among retrying clients, never a way to jump the line with many
 * connections.
 *
 * Nothing is held while waiting: callers wait before any row lock of the
 * call (at_login and check_own_password look the user up with plain
 * SELECTs; the UPDATEs come after the hash).  A place is released by the
 * caller (PG_FINALLY in BcryptCrypt), and, should that be skipped, at
 * transaction abort and at backend exit; a waiter that is cancelled or
 * terminated leaves the queue the same ways.  A backend killed outright
 * makes the postmaster reinitialise shared memory, counts included.
 *
 * Without shared_preload_libraries there is no shared state and no cap.
 */
#include "postgres.h"

#include <unistd.h>
#include <sodium.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_authid_d.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "audiotricks.h"
#include "admission.h"

#define SKETCH_WIDTH	32768	/* counters per row */
#define SKETCH_ROWS		2
#define REPEAT_DEFAULT	5		/* when max_failed_logins is 0 */
#define SENIOR_SLOTS	4096	/* keys refused lately that keep their ticket */
#define SENIOR_TTL_MS	60000	/* how long after its last refusal */

typedef struct AdmissionWaiter
{
	uint64		ticket;
	int32		cls;
	bool		waiting;
} AdmissionWaiter;

typedef struct AdmissionSketch
{
	int64		epoch;			/* window number it counts; -1 = none */
	uint16		counts[SKETCH_ROWS][SKETCH_WIDTH];
} AdmissionSketch;

/* a key refused with 53400 lately: its retry keeps its first ticket */
typedef struct AdmissionSenior
{
	uint64		hash;			/* 0 = free */
	uint64		ticket;
	TimestampTz refused_at;		/* last refusal */
} AdmissionSenior;

typedef struct AdmissionShared
{
	LWLock	   *lock;
	ConditionVariable cv;
	int			running;		/* hashes in progress */
	int			waiting;		/* callers queued */
	uint64		next_ticket;
	unsigned char hash_key[crypto_shorthash_KEYBYTES];
	AdmissionSketch sketch[2];	/* by epoch % 2 */
	AdmissionSenior senior[SENIOR_SLOTS];
	int			nprocs;
	AdmissionWaiter procs[FLEXIBLE_ARRAY_MEMBER];
} AdmissionShared;

int			audiotricks_max_concurrent_password_checks = 1;
int			audiotricks_password_check_wait = 2000;		/* ms */

static AdmissionShared *adm = NULL;

/* this backend's state */
static bool holding = false;	/* counted in adm->running */
static bool queued = false;		/* adm->procs[MyProc->pgprocno].waiting */
static bool cleanup_registered = false;

/*
 * AdmissionShmemSize
 *		Shared memory for the counters, the sketch and one waiter entry per
 *		backend.
 */
Size
AdmissionShmemSize(void)
{
	return MAXALIGN(add_size(offsetof(AdmissionShared, procs),
							 mul_size(MaxBackends, sizeof(AdmissionWaiter))));
}

/*
 * AdmissionShmemInit
 *		Attaches to (creating if needed) the shared state.  Called from the
 *		shmem startup hook with AddinShmemInitLock held.
 */
void
AdmissionShmemInit(void)
{
	bool		found;

	adm = ShmemInitStruct("audiotricks admission", AdmissionShmemSize(), &found);
	if (!found)
	{
		memset(adm, 0, AdmissionShmemSize());
		adm->lock = &(GetNamedLWLockTranche("audiotricks admission"))[0].lock;
		ConditionVariableInit(&adm->cv);
		adm->sketch[0].epoch = -1;
		adm->sketch[1].epoch = -1;
		adm->nprocs = MaxBackends;
		randombytes_buf(adm->hash_key, sizeof(adm->hash_key));
	}
}

/*
 * AdmissionDefineGucs
 *		The settings; called from _PG_init.  The cap's default is half the
 *		cores the postmaster saw at start (at least 1).
 */
void
AdmissionDefineGucs(void)
{
	long		cores = sysconf(_SC_NPROCESSORS_ONLN);
	int			boot = (int) Max(1, Min(cores, 2048) / 2);

	DefineCustomIntVariable("audiotricks.max_concurrent_password_checks",
							"Password hashes (bcrypt) the whole server runs at once.",
							"Further logins, registrations and password checks wait for a place. The default is half the server's cores.",
							&audiotricks_max_concurrent_password_checks,
							boot, 1, 1024,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("audiotricks.password_check_wait",
							"Longest a password hash waits for a place before failing with 53400.",
							"0 fails at once when every place is taken.",
							&audiotricks_password_check_wait,
							2000, 0, 10 * 60 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
}

/*
 * SipHash of (class, lower-cased key) in this database, never 0, and its two
 * sketch positions
 */
static uint64
key_hash(int cls, const char *key, int len, uint32 pos[SKETCH_ROWS])
{
	uint64		hash;
	char	   *buf;
	unsigned char h[crypto_shorthash_BYTES];

	/* a login longer than any account's can only be junk: its start will do */
	len = Min(len, 1024);
	buf = palloc(sizeof(Oid) + 1 + len);

	memcpy(buf, &MyDatabaseId, sizeof(Oid));
	buf[sizeof(Oid)] = (char) cls;
	for (int i = 0; i < len; i++)
		buf[sizeof(Oid) + 1 + i] = (key[i] >= 'A' && key[i] <= 'Z') ?
			key[i] + ('a' - 'A') : key[i];
	crypto_shorthash(h, (unsigned char *) buf, sizeof(Oid) + 1 + len,
					 adm->hash_key);
	pfree(buf);
	for (int r = 0; r < SKETCH_ROWS; r++)
	{
		uint32		v;

		memcpy(&v, h + 4 * r, sizeof(v));
		pos[r] = v % SKETCH_WIDTH;
	}
	memcpy(&hash, h, sizeof(hash));
	return hash ? hash : 1;
}

static int64
current_epoch(void)
{
	TimestampTz now = GetCurrentTimestamp();

	return (int64) (now / USECS_PER_SEC) / Max(audiotricks_failed_login_window, 1);
}

/* hashes counted for the positions in this and the previous window; lock held */
static int
sketch_estimate(const uint32 pos[SKETCH_ROWS], int64 epoch)
{
	int			best = INT_MAX;

	for (int r = 0; r < SKETCH_ROWS; r++)
	{
		int			n = 0;

		for (int g = 0; g < 2; g++)
		{
			AdmissionSketch *s = &adm->sketch[g];

			if (s->epoch == epoch || s->epoch == epoch - 1)
				n += s->counts[r][pos[r]];
		}
		best = Min(best, n);
	}
	return best;
}

/* counts one hash at the positions; lock held exclusively */
static void
sketch_add(const uint32 pos[SKETCH_ROWS], int64 epoch)
{
	AdmissionSketch *s = &adm->sketch[epoch % 2];

	if (s->epoch != epoch)
	{
		memset(s->counts, 0, sizeof(s->counts));
		s->epoch = epoch;
	}
	for (int r = 0; r < SKETCH_ROWS; r++)
		if (s->counts[r][pos[r]] < PG_UINT16_MAX)
			s->counts[r][pos[r]]++;
}

/* true when no queued waiter goes before w; lock held */
static bool
first_in_line(const AdmissionWaiter *w)
{
	for (int i = 0; i < adm->nprocs; i++)
	{
		const AdmissionWaiter *o = &adm->procs[i];

		if (o == w || !o->waiting)
			continue;
		if (o->cls < w->cls || (o->cls == w->cls && o->ticket < w->ticket))
			return false;
	}
	return true;
}

/* takes this backend out of the queue, if it is in it, and wakes the rest */
static void
leave_queue(void)
{
	if (!queued)
		return;
	LWLockAcquire(adm->lock, LW_EXCLUSIVE);
	adm->procs[MyProc->pgprocno].waiting = false;
	adm->waiting--;
	queued = false;
	LWLockRelease(adm->lock);
	/* the next in line may be able to go now */
	ConditionVariableBroadcast(&adm->cv);
}

/*
 * AdmissionLeave
 *		Gives back this backend's place, if it holds one.  Never raises.
 */
void
AdmissionLeave(void)
{
	bool		wake;

	if (!holding)
		return;
	LWLockAcquire(adm->lock, LW_EXCLUSIVE);
	adm->running--;
	holding = false;
	wake = adm->waiting > 0;
	LWLockRelease(adm->lock);
	if (wake)
		ConditionVariableBroadcast(&adm->cv);
}

/* a place or a queue entry left behind by an error is given back */
static void
admission_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		leave_queue();
		AdmissionLeave();
	}
}

static void
admission_exit(int code, Datum arg)
{
	ConditionVariableCancelSleep();
	leave_queue();
	AdmissionLeave();
}

/*
 * AdmissionEnter
 *		Takes a place for one password hash, waiting up to
 *		audiotricks.password_check_wait behind callers of a better class or
 *		an earlier ticket.  cls is ADMISSION_AUTHENTICATED or
 *		ADMISSION_ANONYMOUS; key (len bytes, or NULL) is what the caller
 *		typed, and demotes it to ADMISSION_REPEATED when hashed often
 *		recently.  Returns true with a place taken: the caller must call
 *		AdmissionLeave once the hash is done, also on error; false when no
 *		place came in time (the caller then raises AdmissionRefuse).  Raises
 *		what CHECK_FOR_INTERRUPTS raises when cancelled or terminated while
 *		waiting (the queue entry is then given back).
 */
bool
AdmissionEnter(AdmissionClass cls, const char *key, int len)
{
	uint32		pos[SKETCH_ROWS];
	volatile uint64 hash = 0;
	AdmissionSenior *volatile senior = NULL;
	volatile int64 epoch;
	int			repeat;
	AdmissionWaiter *me;
	TimestampTz deadline;
	volatile bool got = false;

	if (adm == NULL)
		return true;
	if (holding)
		elog(ERROR, "password check admitted twice");
	if (MyProc == NULL || MyProc->pgprocno < 0 || MyProc->pgprocno >= adm->nprocs)
		elog(ERROR, "password check from a process without a slot");
	if (!cleanup_registered)
	{
		before_shmem_exit(admission_exit, 0);
		RegisterXactCallback(admission_xact_callback, NULL);
		cleanup_registered = true;
	}

	if (key != NULL)
		hash = key_hash((int) cls, key, len, pos);
	repeat = audiotricks_max_failed_logins > 0 ?
		audiotricks_max_failed_logins : REPEAT_DEFAULT;
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   audiotricks_password_check_wait);
	me = &adm->procs[MyProc->pgprocno];

	LWLockAcquire(adm->lock, LW_EXCLUSIVE);
	epoch = current_epoch();
	if (key != NULL && sketch_estimate(pos, epoch) >= repeat)
		cls = ADMISSION_REPEATED;
	me->cls = (int32) cls;
	me->ticket = adm->next_ticket++;
	if (key != NULL)
	{
		/*
		 * A retry after 53400 keeps its place in line; one retry only: the
		 * entry is taken, and put back if this attempt is refused too.
		 */
		senior = &adm->senior[hash % SENIOR_SLOTS];
		if (senior->hash == hash &&
			!TimestampDifferenceExceeds(senior->refused_at, GetCurrentTimestamp(),
										SENIOR_TTL_MS))
		{
			me->ticket = senior->ticket;
			senior->hash = 0;
		}
	}
	me->waiting = true;
	adm->waiting++;
	queued = true;

	PG_TRY();
	{
		bool		sleeping = false;

		for (;;)
		{
			bool		more = false;

			if (!LWLockHeldByMe(adm->lock))
				LWLockAcquire(adm->lock, LW_EXCLUSIVE);
			if (adm->running < audiotricks_max_concurrent_password_checks &&
				first_in_line(me))
			{
				me->waiting = false;
				adm->waiting--;
				queued = false;
				adm->running++;
				holding = true;
				got = true;
				if (key != NULL)
					sketch_add(pos, epoch);
				/* a raised cap can admit the next one too */
				more = adm->waiting > 0 &&
					adm->running < audiotricks_max_concurrent_password_checks;
			}
			else if (GetCurrentTimestamp() >= deadline)
			{
				/* refused: leave the line, remembering the place in it */
				if (key != NULL)
				{
					senior->hash = hash;
					senior->ticket = me->ticket;
					senior->refused_at = GetCurrentTimestamp();
				}
				me->waiting = false;
				adm->waiting--;
				queued = false;
				more = adm->waiting > 0;
			}
			LWLockRelease(adm->lock);
			if (more)
				ConditionVariableBroadcast(&adm->cv);
			if (got || !queued)
				break;
			if (!sleeping)
			{
				/* check again before the first sleep (see condition_variable.c) */
				ConditionVariablePrepareToSleep(&adm->cv);
				sleeping = true;
				continue;
			}
			(void) ConditionVariableTimedSleep(&adm->cv,
											   Max(1, (long) ((deadline - GetCurrentTimestamp()) / 1000)),
											   PG_WAIT_EXTENSION);
		}
		ConditionVariableCancelSleep();
	}
	PG_CATCH();
	{
		if (LWLockHeldByMe(adm->lock))
			LWLockRelease(adm->lock);
		ConditionVariableCancelSleep();
		leave_queue();
		PG_RE_THROW();
	}
	PG_END_TRY();

	return got;
}

/*
 * AdmissionRefuse
 *		Raises 53400: no place came in time.
 */
void
AdmissionRefuse(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("too many logins in progress, retry"),
			 errdetail("Every place for a password check stayed taken for %d ms.",
					   audiotricks_password_check_wait),
			 errhint("Retry after a short delay.")));
}

/*
 * at_password_checks() RETURNS TABLE(running integer, waiting integer)
 *		Password hashes in progress and callers waiting for a place, now.
 *		Superusers and members of pg_monitor only (42501); NULLs without
 *		shared_preload_libraries.
 */
PG_FUNCTION_INFO_V1(at_password_checks);
Datum
at_password_checks(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (!superuser() && !has_privs_of_role(GetUserId(), ROLE_PG_MONITOR))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to read password check counts"),
				 errdetail("Only superusers and members of pg_monitor may read them.")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	if (adm == NULL)
	{
		nulls[0] = nulls[1] = true;
		values[0] = values[1] = (Datum) 0;
	}
	else
	{
		LWLockAcquire(adm->lock, LW_SHARED);
		values[0] = Int32GetDatum(adm->running);
		values[1] = Int32GetDatum(adm->waiting);
		LWLockRelease(adm->lock);
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
