/*
 * src/token.c
 *		TokenVerify, the one token check everything else uses: the HMAC key
 *		built from audiotricks.jwt_secret, a per-backend cache of verified
 *		tokens, the session lookup read straight from the token_hash index
 *		(with its cache of OIDs and attribute numbers), and the per-backend
 *		copy of revoked_families with the trigger that invalidates it.
 *		Below the identity (identity.c) and the session functions
 *		(session.c), which both verify tokens through it.
 */
#include "postgres.h"

#include <sodium.h>

#include "access/genam.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "audiotricks.h"
#include "jwt.h"
#include "schema.h"
#include "token.h"

PG_FUNCTION_INFO_V1(at_revoked_families_changed);

#define JWT_SECRET_MIN		32		/* bytes */

/*
 * jwt_secret
 *		The JWT secret and its length.  Raises 55000 when it is unset or
 *		shorter than 32 bytes.  The returned pointer is the GUC's own string:
 *		never modify or free it.
 */
static const char *
jwt_secret(size_t *len)
{
	size_t		l;

	AtRequirePreload();
	l = audiotricks_jwt_secret ? strlen(audiotricks_jwt_secret) : 0;
	if (l < JWT_SECRET_MIN)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("audiotricks.jwt_secret is not set"),
				 errdetail("The secret must be at least %d bytes long.", JWT_SECRET_MIN),
				 errhint("Set it in postgresql.conf and reload the server.")));
	*len = l;
	return audiotricks_jwt_secret;
}

/*
 * AtJwtKey
 *		The HMAC key prepared from audiotricks.jwt_secret, rebuilt (and the
 *		old one wiped) whenever the secret changes.  Raises like jwt_secret.
 *		The result lives in static memory: never modify it.
 */
const JwtKey *
AtJwtKey(void)
{
	static JwtKey key;
	static uint64 key_generation = 0;
	static bool key_valid = false;
	size_t		len;
	const char *secret = jwt_secret(&len);

	if (!key_valid || key_generation != audiotricks_jwt_secret_generation)
	{
		sodium_memzero(&key, sizeof(key));
		JwtKeyInit(&key, (const uint8_t *) secret, len);
		key_generation = audiotricks_jwt_secret_generation;
		key_valid = true;
	}
	return &key;
}

/*
 * TokenHashHex
 *		The SHA-256 of a token in hex: what sessions.token_hash stores.
 */
void
TokenHashHex(const char *token, size_t len, char hex[TOKEN_HASH_HEX_LEN + 1])
{
	unsigned char digest[JWT_SHA256_BYTES];

	JwtSha256(token, len, digest);
	sodium_bin2hex(hex, TOKEN_HASH_HEX_LEN + 1, digest, sizeof(digest));
}

/*
 * What the token check needs to find its way: the OIDs of sessions, its
 * token_hash unique index and revoked_families, and the attribute numbers of
 * the columns it reads.
 * Resolved by name once per backend and kept until a relcache invalidation
 * touches one of them (DROP/CREATE EXTENSION, ALTER TABLE, ...), so the hot
 * path does no catalog name lookup.
 *
 * The lookups and locks of a fill can themselves process invalidations, the
 * very ones that make what was just read stale (an index rebuilt under a new
 * OID, a table recreated).  So the callback counts every relcache
 * invalidation, and a fill marks the cache valid only when none arrived
 * while it ran, retrying otherwise.  An invalidation can also arrive after
 * the check of valid and before the token check opens the relations (when
 * it takes its locks): so valid lasts one transaction (cleared at its end,
 * and at a subtransaction's abort, which releases locks), and each
 * transaction's first fill locks the cached OIDs and keeps them if no
 * invalidation touched them, without any name lookup.
 */
typedef struct LookupCache
{
	bool		valid;			/* checked, and locked in this transaction */
	bool		known;			/* the fields were resolved once */
	Oid			sessions_relid;
	Oid			token_hash_idx;
	AttrNumber	s_id;
	AttrNumber	s_user_id;
	AttrNumber	s_expires_at;
	AttrNumber	s_refreshed_at;
	AttrNumber	s_family_id;
	AttrNumber	r_family_id;
	Oid			revoked_relid;
} LookupCache;

static LookupCache lookup_cache;

/* the revoked families, copied per backend (see family_is_revoked) */
static pg_uuid_t *revoked_set = NULL;
static int	revoked_n = 0;
static int	revoked_cap = 0;
static bool revoked_valid = false;

static AttrNumber
attnum_of(Oid relid, const char *name)
{
	AttrNumber	a = get_attnum(relid, name);

	if (a == InvalidAttrNumber)
		elog(ERROR, "column %s of relation %u does not exist", name, relid);
	return a;
}
static bool lookup_callback_registered = false;
static uint64 lookup_cache_inval_count = 0;

static void
lookup_cache_invalidate(Datum arg, Oid relid)
{
	/* any relation: a fill in progress may not have stored its OIDs yet */
	lookup_cache_inval_count++;
	if (relid == InvalidOid ||
		relid == lookup_cache.sessions_relid ||
		relid == lookup_cache.token_hash_idx ||
		relid == lookup_cache.revoked_relid)
		lookup_cache.valid = lookup_cache.known = false;
	/* also every change of its rows (trigger revoked_families_changed) */
	if (relid == InvalidOid || relid == lookup_cache.revoked_relid)
		revoked_valid = false;
}

static Oid
relid_of(const char *name, Oid nsp)
{
	Oid			relid = get_relname_relid(name, nsp);

	if (!OidIsValid(relid))
		elog(ERROR, "relation audiotricks.%s does not exist", name);
	return relid;
}

static void
lookup_cache_xact_end(XactEvent event, void *arg)
{
	lookup_cache.valid = false;
}

static void
lookup_cache_subxact_end(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		lookup_cache.valid = false;
}

/*
 * lookup_cache_fill
 *		Called once per transaction.  If the OIDs were resolved before, locks
 *		them and keeps them when no invalidation touched them.  Otherwise
 *		resolves sessions and its token_hash index by name, locks both
 *		(AccessShareLock, kept to the end of the transaction as the token
 *		check keeps it), then reads the attribute numbers; marks the cache
 *		valid only if no invalidation arrived meanwhile, else starts over.
 *		Once the locks are held, DDL that changes the OIDs or attribute numbers
 *		waits for this transaction, so what was read holds until its end.
 *		Raises (elog) if a relation or column is missing.
 */
static void
lookup_cache_fill(void)
{
	if (!lookup_callback_registered)
	{
		CacheRegisterRelcacheCallback(lookup_cache_invalidate, (Datum) 0);
		RegisterXactCallback(lookup_cache_xact_end, NULL);
		RegisterSubXactCallback(lookup_cache_subxact_end, NULL);
		lookup_callback_registered = true;
	}
	if (lookup_cache.known)
	{
		/* locking processes what arrived since; the callback clears known */
		LockRelationOid(lookup_cache.sessions_relid, AccessShareLock);
		LockRelationOid(lookup_cache.token_hash_idx, AccessShareLock);
		LockRelationOid(lookup_cache.revoked_relid, AccessShareLock);
		if (lookup_cache.known)
		{
			lookup_cache.valid = true;
			return;
		}
	}
	for (;;)
	{
		uint64		seen = lookup_cache_inval_count;
		Oid			nsp;

		lookup_cache.valid = lookup_cache.known = false;
		nsp = AtCheckSchema();
		lookup_cache.sessions_relid = relid_of("sessions", nsp);
		lookup_cache.token_hash_idx = relid_of("sessions_token_hash_key", nsp);
		lookup_cache.revoked_relid = relid_of("revoked_families", nsp);
		LockRelationOid(lookup_cache.sessions_relid, AccessShareLock);
		LockRelationOid(lookup_cache.token_hash_idx, AccessShareLock);
		LockRelationOid(lookup_cache.revoked_relid, AccessShareLock);
		lookup_cache.s_id = attnum_of(lookup_cache.sessions_relid, "id");
		lookup_cache.s_user_id = attnum_of(lookup_cache.sessions_relid, "user_id");
		lookup_cache.s_expires_at = attnum_of(lookup_cache.sessions_relid, "expires_at");
		lookup_cache.s_refreshed_at = attnum_of(lookup_cache.sessions_relid, "refreshed_at");
		lookup_cache.s_family_id = attnum_of(lookup_cache.sessions_relid, "family_id");
		lookup_cache.r_family_id = attnum_of(lookup_cache.revoked_relid, "family_id");
		revoked_valid = false;
		if (seen == lookup_cache_inval_count)
			break;
	}
	lookup_cache.valid = lookup_cache.known = true;
}

/*
 * The revoked families, copied per backend: normally none or a few (a row
 * lives from a reuse until its family has no session left).  Every change
 * to revoked_families invalidates every backend's copy when it commits
 * (statement trigger revoked_families_changed), and the token check takes
 * pending invalidations first, so a revocation committed elsewhere is in
 * force at once, also in a transaction that already checked a token.
 * Sorted, for bsearch.
 */

static int
family_cmp(const void *a, const void *b)
{
	return memcmp(((const pg_uuid_t *) a)->data, ((const pg_uuid_t *) b)->data, UUID_LEN);
}

static void
revoked_load(Snapshot snapshot)
{
	Relation	rel;
	TableScanDesc scan;
	TupleTableSlot *slot;

	rel = table_open(lookup_cache.revoked_relid, AccessShareLock);
	/*
	 * An invalidation from here on (none is taken during the scan) resets
	 * it.  In a parallel query the statement's snapshot is read, and the
	 * copy is not kept.
	 */
	revoked_valid = !IsInParallelMode();
	revoked_n = 0;
	scan = table_beginscan(rel, snapshot, 0, NULL);
	slot = table_slot_create(rel, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, lookup_cache.r_family_id, &isnull);

		if (isnull)
			continue;
		if (revoked_n == revoked_cap)
		{
			int			cap = revoked_cap ? revoked_cap * 2 : 16;

			revoked_set = revoked_set
				? repalloc(revoked_set, sizeof(pg_uuid_t) * cap)
				: MemoryContextAlloc(TopMemoryContext, sizeof(pg_uuid_t) * cap);
			revoked_cap = cap;
		}
		revoked_set[revoked_n++] = *DatumGetUUIDP(d);
	}
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	table_close(rel, NoLock);
	if (revoked_n > 1)
		qsort(revoked_set, revoked_n, sizeof(pg_uuid_t), family_cmp);
}

/*
 * family_is_revoked
 *		True when revoked_families lists the family.  A reuse revocation is
 *		in force for a session even while a refresh in flight holds its row
 *		locked, and for a session that refresh commits afterwards.
 */
static bool
family_is_revoked(Datum family_id, Snapshot snapshot)
{
	if (!revoked_valid)
		revoked_load(snapshot);
	return revoked_n > 0 &&
		bsearch(DatumGetUUIDP(family_id), revoked_set, revoked_n,
				sizeof(pg_uuid_t), family_cmp) != NULL;
}

/*
 * session_is_live
 *		True when sessions has a row with this token hash whose id and user
 *		match, that expires after now, and that was not refreshed.  Reads the
 *		token_hash unique index directly (no SPI, no planner): this is the hot
 *		path of every authenticated request.  The user's is_active is not
 *		read: deactivating a user deletes their sessions in the same
 *		transaction (trigger users_end_sessions_on_deactivate), and a login
 *		or refresh racing it re-checks is_active under the row lock, so a
 *		live session always belongs to an active user.  Row-level security
 *		and column privileges do not apply here by design: the caller proved
 *		nothing yet, and the function reveals only whether the token is
 *		valid.  The lock on sessions is kept to the end of the transaction,
 *		as a query's is.
 */
static bool
session_is_live(const char *hex, const pg_uuid_t *session_id,
				const pg_uuid_t *user_id, TimestampTz now)
{
	Relation	srel;
	Relation	irel;
	IndexScanDesc scan;
	ScanKeyData skey;
	TupleTableSlot *slot;
	Snapshot	snapshot;
	bool		ok = false;

	/* a revocation committed elsewhere is seen now, not at the next lock */
	AcceptInvalidationMessages();
	if (!lookup_cache.valid)
		lookup_cache_fill();

	/*
	 * The newest committed state: a logout elsewhere takes effect at once.
	 * In a parallel query (the header check of at_current_user_id, in the
	 * leader) no new snapshot may be taken: the statement's one is read.
	 */
	snapshot = RegisterSnapshot(IsInParallelMode() ? GetActiveSnapshot() :
								GetLatestSnapshot());
	srel = table_open(lookup_cache.sessions_relid, AccessShareLock);
	irel = index_open(lookup_cache.token_hash_idx, AccessShareLock);
	slot = table_slot_create(srel, NULL);
	ScanKeyEntryInitialize(&skey, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   irel->rd_indcollation[0], F_TEXTEQ,
						   CStringGetTextDatum(hex));
	scan = index_beginscan(srel, irel, snapshot, 1, 0);
	index_rescan(scan, &skey, 1, NULL, 0);
	if (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		bool		not_refreshed;
		Datum		sid = slot_getattr(slot, lookup_cache.s_id, &isnull);
		Datum		uid = slot_getattr(slot, lookup_cache.s_user_id, &isnull);
		Datum		exp = slot_getattr(slot, lookup_cache.s_expires_at, &isnull);

		(void) slot_getattr(slot, lookup_cache.s_refreshed_at, &not_refreshed);
		ok = !isnull && not_refreshed &&
			memcmp(DatumGetUUIDP(sid)->data, session_id->data, UUID_LEN) == 0 &&
			memcmp(DatumGetUUIDP(uid)->data, user_id->data, UUID_LEN) == 0 &&
			DatumGetTimestampTz(exp) > now;
		if (ok)
		{
			Datum		fam = slot_getattr(slot, lookup_cache.s_family_id, &isnull);

			ok = !isnull && !family_is_revoked(fam, snapshot);
		}
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(irel, NoLock);
	table_close(srel, NoLock);
	UnregisterSnapshot(snapshot);
	return ok;
}

/*
 * A small per-backend cache of tokens whose signature and claims were already
 * verified, so that a connection serving the same client again skips the
 * HMAC and SHA-256 work.  It never skips the session lookup (revocation and
 * deactivation take effect at once) nor the expiry check.  An entry holds no
 * token, only a 128-bit keyed hash of it (SipHash-128 under a per-backend
 * random key), compared in constant time: without the key nobody can make
 * another string collide, and timing reveals nothing about cached tokens.
 * A change of the secret empties it.
 */
#define TOKEN_CACHE_SIZE		64		/* a power of two */

typedef struct TokenCacheEntry
{
	uint64		generation;		/* secret generation; 0 = empty */
	unsigned char mac[crypto_shorthash_siphashx24_BYTES];
	int64		exp;
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;
	char		hex[TOKEN_HASH_HEX_LEN + 1];
} TokenCacheEntry;

static TokenCacheEntry *token_cache = NULL;
static unsigned char token_cache_key[crypto_shorthash_siphashx24_KEYBYTES];

static TokenCacheEntry *
token_cache_slot(const char *token, size_t len,
				 unsigned char mac[crypto_shorthash_siphashx24_BYTES])
{
	uint64		v;

	if (token_cache == NULL)
	{
		token_cache = MemoryContextAllocZero(TopMemoryContext,
											 sizeof(TokenCacheEntry) * TOKEN_CACHE_SIZE);
		randombytes_buf(token_cache_key, sizeof(token_cache_key));
	}
	crypto_shorthash_siphashx24(mac, (const unsigned char *) token, len,
								token_cache_key);
	memcpy(&v, mac, sizeof(v));
	return &token_cache[v & (TOKEN_CACHE_SIZE - 1)];
}

/* true when the token names the role tokens are issued for now */
bool
TokenRoleClaimOk(const JwtClaims *claims)
{
	return audiotricks_jwt_role != NULL &&
		strcmp(claims->role, audiotricks_jwt_role) == 0;
}

/*
 * TokenVerify
 *		True when token is a valid, unexpired token of this extension whose
 *		session row (matched by SHA-256, id and user) is live and whose user is
 *		active; fills the ids.  Never raises for a bad token; raises 55000 if
 *		the secret is unset or the schema was renamed or replaced
 *		(AtCheckSchema).
 */
bool
TokenVerify(const char *token, size_t len, pg_uuid_t *user_id,
			pg_uuid_t *session_id)
{
	const JwtKey *key = AtJwtKey();
	uint64		generation = audiotricks_jwt_secret_generation + 1;	/* never 0 */
	TimestampTz now_ts = GetCurrentTimestamp();
	int64		now = UnixSeconds(now_ts);
	JwtClaims	claims;
	TokenCacheEntry *e;
	unsigned char mac[crypto_shorthash_siphashx24_BYTES];

	if (token == NULL || len == 0 || len > JWT_MAX_LEN)
		return false;
	/* fail closed on a squatted schema, also with the token cached */
	(void) AtCheckSchema();

	e = token_cache_slot(token, len, mac);
	if (e->generation == generation && crypto_verify_16(e->mac, mac) == 0)
	{
		if (e->exp <= now)
			return false;
		*user_id = e->user_id;
		*session_id = e->session_id;
		return session_is_live(e->hex, session_id, user_id, now_ts);
	}

	if (!JwtVerifyKey(key, token, len, now, &claims) || !TokenRoleClaimOk(&claims))
		return false;
	if (!JwtParseUuid(claims.sub, strlen(claims.sub), user_id->data) ||
		!JwtParseUuid(claims.sid, strlen(claims.sid), session_id->data))
		return false;

	e->generation = generation;
	memcpy(e->mac, mac, sizeof(mac));
	e->exp = claims.exp;
	e->user_id = *user_id;
	e->session_id = *session_id;
	TokenHashHex(token, len, e->hex);
	return session_is_live(e->hex, session_id, user_id, now_ts);
}

/*
 * at_revoked_families_changed() RETURNS trigger
 *		AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ... FOR EACH STATEMENT on
 *		revoked_families: invalidates every backend's copy of the table (see
 *		family_is_revoked) when the change commits, whoever made it.
 */
Datum
at_revoked_families_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event))
		elog(ERROR, "at_revoked_families_changed must run as a statement trigger");
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}
