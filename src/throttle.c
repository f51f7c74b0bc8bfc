/*
 * src/throttle.c
 *		Login throttling in shared memory.
 *
 * After audiotricks.max_failed_logins failures for one login within
 * audiotricks.failed_login_window, further attempts for it are refused
 * (by at_login, with the usual 28P01 after the usual bcrypt work) until the
 * window that began with the first counted failure has passed.  Counts live
 * in shared memory so that they survive the failing call's rollback; they are
 * per cluster and start empty at every server start.
 *
 * Reserve, then check: ThrottleReserve counts an attempt as a failure under
 * the lock before its password is checked, and refuses it when the count has
 * already reached the limit; a success then forgets the count
 * (ThrottleReset), a failure has nothing left to do.  So however many
 * attempts run in parallel, at most max_failed_logins of them per window
 * reach the stored hash (a check that counted first and then compared would
 * let every concurrent attempt through).  An attempt that errors out after
 * its reservation stays counted.
 *
 * The caller chooses the key, prefix included, and the limit: at_login
 * counts 'u', the user id and the client address (client_addr.c) against
 * max_failed_logins, and 'a' and the user id against
 * max_failed_logins_per_account (or 'l'/'m' and the login text of an unknown
 * login; see LoginThrottleKeys in session.c); each entry carries the
 * account's key as its group, so that an administrator can see and clear
 * all of one account's entries (throttle_sql.c).  The password
 * re-check behind a token (check_own_password in src/accounts.c) counts 'r'
 * and the user id, so anonymous failures do not block a session's owner and
 * the two limits are kept apart.  All share max_failed_logins and the window.
 *
 * An entry is identified by SipHash, under a key drawn at server start, of
 * the database's OID and the lower-cased login key, so no login name is kept
 * in memory and one database can neither read nor clear another's counts.
 * The table holds audiotricks.throttle_slots entries; a key lives in one of
 * THROTTLE_PROBE slots from its hash.  A live entry (its window has not
 * passed) is never reused for another key, whatever its count: reusing it
 * would let junk logins wipe the count of the account they attack.  Only an
 * entry of an unknown login may be taken over, by an account's key: counting
 * unknown logins guards no password (it only makes them behave like known
 * ones), and letting them hold slots would let a flood of junk names lock
 * every account out.  When a new key finds no free, expired or (for an
 * account) unknown-login slot, the attempt is refused as if throttled and
 * nothing is counted or cleared: fail closed.  That takes live failures of
 * THROTTLE_PROBE different accounts in every slot range, i.e. failed logins
 * for about throttle_slots accounts within one window.
 */
#include "postgres.h"

#include <sodium.h>

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "audiotricks.h"
#include "client_addr.h"
#include "throttle.h"

#define THROTTLE_PROBE	32

typedef struct ThrottleEntry
{
	uint64		key;			/* 0 = free */
	uint64		group;			/* the account's group (ThrottleClearGroup) */
	int32		failures;		/* attempts counted in this window */
	bool		account;		/* an account's key (else an unknown login) */
	TimestampTz window_start;
} ThrottleEntry;

typedef struct ThrottleShared
{
	LWLock	   *lock;
	int			nslots;
	unsigned char hash_key[crypto_shorthash_KEYBYTES];
	ThrottleEntry entries[FLEXIBLE_ARRAY_MEMBER];
} ThrottleShared;

int			audiotricks_max_failed_logins = 5;
int			audiotricks_failed_login_window = 15 * 60;	/* seconds */
int			audiotricks_throttle_slots = 65536;
int			audiotricks_max_failed_logins_per_account = 100;

static ThrottleShared *throttle = NULL;

/*
 * ThrottleShmemSize
 *		Shared memory the throttle table needs (audiotricks.throttle_slots
 *		entries).
 */
Size
ThrottleShmemSize(void)
{
	return MAXALIGN(add_size(offsetof(ThrottleShared, entries),
							 mul_size(audiotricks_throttle_slots,
									  sizeof(ThrottleEntry))));
}

/*
 * ThrottleShmemInit
 *		Attaches to (creating if needed) the throttle table.  Called from the
 *		shmem startup hook with AddinShmemInitLock held.
 */
void
ThrottleShmemInit(void)
{
	bool		found;

	throttle = ShmemInitStruct("audiotricks throttle", ThrottleShmemSize(), &found);
	if (!found)
	{
		memset(throttle, 0, ThrottleShmemSize());
		throttle->lock = &(GetNamedLWLockTranche("audiotricks"))[0].lock;
		throttle->nslots = audiotricks_throttle_slots;
		randombytes_buf(throttle->hash_key, sizeof(throttle->hash_key));
	}
}

/*
 * ThrottleDefineGucs
 *		The throttle's settings; called from _PG_init.  throttle_slots exists
 *		only when the library is preloaded (without that there is no table).
 */
void
ThrottleDefineGucs(void)
{
	DefineCustomIntVariable("audiotricks.max_failed_logins",
							"Failed logins for one login within the window after which it is refused.",
							"0 turns throttling off.",
							&audiotricks_max_failed_logins,
							5, 0, 1000000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("audiotricks.failed_login_window",
							"Window over which failed logins are counted, and how long a login stays refused.",
							NULL,
							&audiotricks_failed_login_window,
							15 * 60, 1, 7 * 24 * 60 * 60,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("audiotricks.max_failed_logins_per_account",
							"Failed logins for one account within the window, from all client addresses together, after which it is refused.",
							"The ceiling against guessing from many addresses; 0 turns it off.",
							&audiotricks_max_failed_logins_per_account,
							100, 0, 1000000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	ClientAddrDefineGucs();
	/* a postmaster setting may only be defined while preloading (else FATAL) */
	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomIntVariable("audiotricks.throttle_slots",
							"Logins the throttle can count at once (shared memory, 32 bytes each).",
							"When full of live entries, new logins are refused until windows pass.",
							&audiotricks_throttle_slots,
							65536, THROTTLE_PROBE, 1 << 22,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);
}

/* SipHash of this database's OID and the lower-cased login key; never 0 */
static uint64
login_key(const char *login, int len)
{
	char	   *buf = palloc(sizeof(Oid) + len);
	unsigned char h[crypto_shorthash_BYTES];
	uint64		key;

	memcpy(buf, &MyDatabaseId, sizeof(Oid));
	for (int i = 0; i < len; i++)
		buf[sizeof(Oid) + i] = (login[i] >= 'A' && login[i] <= 'Z') ?
			login[i] + ('a' - 'A') : login[i];
	crypto_shorthash(h, (unsigned char *) buf, sizeof(Oid) + len,
					 throttle->hash_key);
	pfree(buf);
	memcpy(&key, h, sizeof(key));
	return key ? key : 1;		/* 0 marks a free slot */
}

/* true when e holds a key whose window has not passed */
static bool
entry_live(const ThrottleEntry *e, TimestampTz now)
{
	return e->key != 0 &&
		!TimestampDifferenceExceeds(e->window_start, now,
									audiotricks_failed_login_window * 1000);
}

/* the entry of key, or NULL; caller holds the lock */
static ThrottleEntry *
find_entry(uint64 key)
{
	uint32		start = (uint32) (key % throttle->nslots);

	for (int i = 0; i < THROTTLE_PROBE; i++)
	{
		ThrottleEntry *e = &throttle->entries[(start + i) % throttle->nslots];

		if (e->key == key)
			return e;
	}
	return NULL;
}

/*
 * A slot for a new key, emptied, or NULL when none may be taken: a free or
 * expired slot, else (for an account) the unknown-login entry with the
 * oldest window.  Never a live entry of an account.  Caller holds the lock
 * exclusively.
 */
static ThrottleEntry *
claim_entry(uint64 key, uint64 group, bool account, TimestampTz now)
{
	uint32		start = (uint32) (key % throttle->nslots);
	ThrottleEntry *victim = NULL;

	for (int i = 0; i < THROTTLE_PROBE; i++)
	{
		ThrottleEntry *e = &throttle->entries[(start + i) % throttle->nslots];

		if (!entry_live(e, now))
		{
			victim = e;
			break;
		}
		if (account && !e->account &&
			(victim == NULL || e->window_start < victim->window_start))
			victim = e;
	}
	if (victim != NULL)
	{
		victim->key = key;
		victim->group = group;
		victim->account = account;
		victim->failures = 0;
		victim->window_start = now;
	}
	return victim;
}

/*
 * ThrottleReserve
 *		Counts one attempt for login as a failure, before its password is
 *		checked, and returns true; or returns false (counting nothing) when
 *		the login has already reached max_failed_logins within its window or
 *		the table has no slot for it (fail closed).  account says whether the
 *		key names an account (see the file header).  Call ThrottleReset when
 *		the attempt succeeds.  Raises only on out-of-memory.
 */
bool
ThrottleReserve(const char *login, int len, bool account)
{
	return ThrottleReserveLimit(login, len, NULL, 0, account,
								audiotricks_max_failed_logins);
}

/*
 * ThrottleReserveLimit
 *		ThrottleReserve with the limit given (0 or less: no limit, nothing
 *		counted) and the entry tagged with a group key (group, group_len;
 *		NULL for none), so that ThrottleClearGroup and ThrottleGroupStatus
 *		find every entry of one account whatever client address its key
 *		carries.
 */
bool
ThrottleReserveLimit(const char *login, int len, const char *group,
					 int group_len, bool account, int limit)
{
	TimestampTz now = GetCurrentTimestamp();
	uint64		key;
	uint64		gkey;
	ThrottleEntry *e;
	bool		reserved = false;

	if (throttle == NULL || limit <= 0)
		return true;
	key = login_key(login, len);
	gkey = group ? login_key(group, group_len) : 0;
	LWLockAcquire(throttle->lock, LW_EXCLUSIVE);
	e = find_entry(key);
	if (e != NULL && !entry_live(e, now))
	{
		e->failures = 0;		/* a new window */
		e->window_start = now;
		e->group = gkey;
	}
	if (e == NULL)
		e = claim_entry(key, gkey, account, now);
	if (e != NULL && e->failures < limit)
	{
		e->failures++;
		reserved = true;
	}
	LWLockRelease(throttle->lock);
	return reserved;
}

/*
 * ThrottleCount
 *		The failures counted for login in its live window (0 when none), and
 *		in *window_end when that window ends (0 when none).
 */
int
ThrottleCount(const char *login, int len, TimestampTz *window_end)
{
	TimestampTz now = GetCurrentTimestamp();
	ThrottleEntry *e;
	int			n = 0;

	*window_end = 0;
	if (throttle == NULL)
		return 0;
	LWLockAcquire(throttle->lock, LW_SHARED);
	e = find_entry(login_key(login, len));
	if (e != NULL && entry_live(e, now))
	{
		n = e->failures;
		*window_end = TimestampTzPlusMilliseconds(e->window_start,
												  audiotricks_failed_login_window * 1000);
	}
	LWLockRelease(throttle->lock);
	return n;
}

/*
 * ThrottleGroupStatus
 *		How many live entries of group, but the group's own key, have
 *		reached limit (client addresses of one account that are refused
 *		now).  Scans the whole table.
 */
int
ThrottleGroupStatus(const char *group, int group_len, int limit)
{
	TimestampTz now = GetCurrentTimestamp();
	uint64		gkey;
	int			n = 0;

	if (throttle == NULL || limit <= 0)
		return 0;
	gkey = login_key(group, group_len);
	LWLockAcquire(throttle->lock, LW_SHARED);
	for (int i = 0; i < throttle->nslots; i++)
	{
		ThrottleEntry *e = &throttle->entries[i];

		if (e->group == gkey && e->key != gkey && entry_live(e, now) &&
			e->failures >= limit)
			n++;
	}
	LWLockRelease(throttle->lock);
	return n;
}

/*
 * ThrottleClearGroup
 *		Forgets every entry tagged with group; returns how many were live.
 *		Scans the whole table.
 */
int
ThrottleClearGroup(const char *group, int group_len)
{
	TimestampTz now = GetCurrentTimestamp();
	uint64		gkey;
	int			n = 0;

	if (throttle == NULL)
		return 0;
	gkey = login_key(group, group_len);
	LWLockAcquire(throttle->lock, LW_EXCLUSIVE);
	for (int i = 0; i < throttle->nslots; i++)
	{
		ThrottleEntry *e = &throttle->entries[i];

		if (e->key != 0 && e->group == gkey)
		{
			if (entry_live(e, now))
				n++;
			e->key = 0;
			e->group = 0;
		}
	}
	LWLockRelease(throttle->lock);
	return n;
}

/*
 * ThrottleReset
 *		Forgets the failures of login (after a successful login).
 */
void
ThrottleReset(const char *login, int len)
{
	uint64		key;
	ThrottleEntry *e;

	if (throttle == NULL)
		return;
	key = login_key(login, len);
	LWLockAcquire(throttle->lock, LW_EXCLUSIVE);
	e = find_entry(key);
	if (e != NULL)
		e->key = 0;
	LWLockRelease(throttle->lock);
}

/*
 * ThrottleRefund
 *		Takes back the failure that ThrottleReserve counted for login when
 *		the attempt never reached its password check (no place for the hash:
 *		src/admission.c), unless the login's window began after reserved_by
 *		(a time at or after the reservation: the count is then another
 *		window's).  Raises only on out-of-memory.
 */
void
ThrottleRefund(const char *login, int len, TimestampTz reserved_by)
{
	uint64		key;
	ThrottleEntry *e;

	if (throttle == NULL)
		return;
	key = login_key(login, len);
	LWLockAcquire(throttle->lock, LW_EXCLUSIVE);
	e = find_entry(key);
	if (e != NULL && e->failures > 0 && e->window_start <= reserved_by)
		e->failures--;
	LWLockRelease(throttle->lock);
}
