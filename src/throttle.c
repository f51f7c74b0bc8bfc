/*
 * src/throttle.c
 *		Login throttling in shared memory.
 *
 * After audiotricks.max_failed_logins failures for one login within
 * audiotricks.failed_login_window, further attempts for it are refused
 * (by at_login, with the usual 28P01 after the usual bcrypt work) until the
 * window that began with the first counted failure has passed.  Counts live
 * in shared memory so that they survive the failing call's rollback; they are
 * per cluster and start empty at every server start.  A login is identified
 * by SipHash of its lower-cased text under a key drawn at server start, so
 * no login name is kept in memory.  The table holds THROTTLE_SLOTS logins; when
 * it is full the entry with the oldest window is reused.
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

#define THROTTLE_SLOTS	8192
#define THROTTLE_PROBE	32

typedef struct ThrottleEntry
{
	uint64		key;			/* 0 = free */
	int32		failures;
	TimestampTz window_start;
} ThrottleEntry;

typedef struct ThrottleShared
{
	LWLock	   *lock;
	unsigned char hash_key[crypto_shorthash_KEYBYTES];
	ThrottleEntry entries[THROTTLE_SLOTS];
} ThrottleShared;

int			audiotricks_max_failed_logins = 5;
int			audiotricks_failed_login_window = 15 * 60;	/* seconds */

static ThrottleShared *throttle = NULL;

/*
 * ThrottleShmemSize
 *		Shared memory the throttle table needs.
 */
Size
ThrottleShmemSize(void)
{
	return MAXALIGN(sizeof(ThrottleShared));
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
		randombytes_buf(throttle->hash_key, sizeof(throttle->hash_key));
	}
}

/*
 * ThrottleDefineGucs
 *		The throttle's settings; called from _PG_init.
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
}

static uint64
login_key(const char *login, int len)
{
	char	   *lower = palloc(len + 1);
	unsigned char h[crypto_shorthash_BYTES];
	uint64		key;

	for (int i = 0; i < len; i++)
		lower[i] = (login[i] >= 'A' && login[i] <= 'Z') ? login[i] + ('a' - 'A') : login[i];
	lower[len] = '\0';
	crypto_shorthash(h, (unsigned char *) lower, len, throttle->hash_key);
	pfree(lower);
	memcpy(&key, h, sizeof(key));
	return key ? key : 1;		/* 0 marks a free slot */
}

/* the entry of key (probing), or NULL; caller holds the lock */
static ThrottleEntry *
find_entry(uint64 key, bool create, TimestampTz now)
{
	uint32		start = (uint32) (key % THROTTLE_SLOTS);
	ThrottleEntry *victim = NULL;

	for (int i = 0; i < THROTTLE_PROBE; i++)
	{
		ThrottleEntry *e = &throttle->entries[(start + i) % THROTTLE_SLOTS];

		if (e->key == key)
			return e;
		if (!create)
			continue;
		if (e->key == 0 ||
			TimestampDifferenceExceeds(e->window_start, now,
									   audiotricks_failed_login_window * 1000))
		{
			if (victim == NULL || victim->key != 0)
				victim = e;		/* prefer a free or stale slot */
		}
		else if (victim == NULL ||
				 (victim->key != 0 && e->window_start < victim->window_start))
			victim = e;
	}
	if (victim != NULL)
	{
		victim->key = key;
		victim->failures = 0;
		victim->window_start = now;
	}
	return victim;
}

/*
 * ThrottleIsBlocked
 *		True when login has reached max_failed_logins failures within the
 *		current window.
 */
bool
ThrottleIsBlocked(const char *login, int len)
{
	TimestampTz now = GetCurrentTimestamp();
	uint64		key;
	ThrottleEntry *e;
	bool		blocked = false;

	if (throttle == NULL || audiotricks_max_failed_logins <= 0)
		return false;
	key = login_key(login, len);
	LWLockAcquire(throttle->lock, LW_SHARED);
	e = find_entry(key, false, now);
	if (e != NULL &&
		e->failures >= audiotricks_max_failed_logins &&
		!TimestampDifferenceExceeds(e->window_start, now,
									audiotricks_failed_login_window * 1000))
		blocked = true;
	LWLockRelease(throttle->lock);
	return blocked;
}

/*
 * ThrottleRecordFailure
 *		Counts one failed login (starting a new window if the old one passed).
 */
void
ThrottleRecordFailure(const char *login, int len)
{
	TimestampTz now = GetCurrentTimestamp();
	uint64		key;
	ThrottleEntry *e;

	if (throttle == NULL || audiotricks_max_failed_logins <= 0)
		return;
	key = login_key(login, len);
	LWLockAcquire(throttle->lock, LW_EXCLUSIVE);
	e = find_entry(key, true, now);
	if (e != NULL)
	{
		if (TimestampDifferenceExceeds(e->window_start, now,
									   audiotricks_failed_login_window * 1000))
		{
			e->failures = 0;
			e->window_start = now;
		}
		if (e->failures < PG_INT32_MAX)
			e->failures++;
	}
	LWLockRelease(throttle->lock);
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
	e = find_entry(key, false, 0);
	if (e != NULL)
		e->key = 0;
	LWLockRelease(throttle->lock);
}
