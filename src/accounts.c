/*
 * src/accounts.c
 *		Accounts and sessions: at_register, at_login, at_authenticate,
 *		at_logout, at_logout_all, at_change_password,
 *		at_purge_expired_sessions, at_postgrest_pre_request, and TokenVerify,
 *		the one token check everything else uses.
 *
 * Every query goes through SPI with parameters and fully qualified names
 * (schema-qualified relations and functions, OPERATOR(pg_catalog.x)), so the
 * caller's search_path cannot change its meaning.  bcrypt comes from
 * pgcrypto's crypt() and gen_salt(), looked up in pgcrypto's own schema.
 */
#include "postgres.h"

#include <sodium.h>

#include "access/genam.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/uuid.h"

#include "audiotricks.h"
#include "jwt.h"

PG_FUNCTION_INFO_V1(at_register);
PG_FUNCTION_INFO_V1(at_login);
PG_FUNCTION_INFO_V1(at_authenticate);
AT_AS_OWNER_FUNCTION(at_logout);
AT_AS_OWNER_FUNCTION(at_logout_all);
AT_AS_OWNER_FUNCTION(at_change_password);
PG_FUNCTION_INFO_V1(at_purge_expired_sessions);
PG_FUNCTION_INFO_V1(at_postgrest_pre_request);
PG_FUNCTION_INFO_V1(at_refresh);
AT_AS_OWNER_FUNCTION(at_list_sessions);
AT_AS_OWNER_FUNCTION(at_logout_session);
AT_AS_OWNER_FUNCTION(at_deactivate_account);
AT_AS_OWNER_FUNCTION(at_delete_account);
PG_FUNCTION_INFO_V1(at_end_sessions_on_deactivate);
PG_FUNCTION_INFO_V1(at_revoked_families_changed);

#define BCRYPT_MAX_BYTES	72
#define EMAIL_MAX_CHARS		255
#define USERNAME_MAX_CHARS	100
#define PASSWORD_MIN_CHARS	8
#define SHA256_HEX_LEN		(JWT_SHA256_BYTES * 2)

/* ---------------------------------------------------------------------
 * Prepared plans, kept for the life of the backend
 * --------------------------------------------------------------------- */


static AtPlan plan_register = {
	"WITH u AS (INSERT INTO audiotricks.users (email, username, password_hash)"
	"           VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING id),"
	"     s AS (INSERT INTO audiotricks.user_settings (user_id) SELECT id FROM u)"
	" SELECT id FROM u",
	3, {TEXTOID, TEXTOID, TEXTOID}, NULL
};

static AtPlan plan_email_taken = {
	"SELECT 1 FROM audiotricks.users"
	" WHERE pg_catalog.lower(email) OPERATOR(pg_catalog.=) pg_catalog.lower($1)",
	1, {TEXTOID}, NULL
};

static AtPlan plan_user_by_email = {
	"SELECT id, password_hash, is_active FROM audiotricks.users"
	" WHERE pg_catalog.lower(email) OPERATOR(pg_catalog.=) pg_catalog.lower($1)",
	1, {TEXTOID}, NULL
};

static AtPlan plan_user_by_username = {
	"SELECT id, password_hash, is_active FROM audiotricks.users"
	" WHERE pg_catalog.lower(username) OPERATOR(pg_catalog.=) pg_catalog.lower($1)",
	1, {TEXTOID}, NULL
};

static AtPlan plan_user_by_id = {
	"SELECT id, password_hash, is_active FROM audiotricks.users"
	" WHERE id OPERATOR(pg_catalog.=) $1",
	1, {UUIDOID}, NULL
};

static AtPlan plan_insert_session = {
	"INSERT INTO audiotricks.sessions (id, user_id, token_hash, expires_at, family_id)"
	" VALUES ($1, $2, $3, $4, $5)",
	5, {UUIDOID, UUIDOID, TEXTOID, TIMESTAMPTZOID, UUIDOID}, NULL
};

/*
 * Both lock the user's row (FOR NO KEY UPDATE, as deactivating it does) and
 * re-check is_active on its newest version before a session is issued: a
 * login or refresh racing a deactivation either sees it and refuses, or
 * makes it wait until the new session is committed, which the deactivation
 * trigger then deletes.
 */
static AtPlan plan_touch_login = {
	"UPDATE audiotricks.users SET last_login_at = pg_catalog.now()"
	" WHERE id OPERATOR(pg_catalog.=) $1 AND is_active RETURNING 1",
	1, {UUIDOID}, NULL
};

static AtPlan plan_lock_active_user = {
	"SELECT 1 FROM audiotricks.users"
	" WHERE id OPERATOR(pg_catalog.=) $1 AND is_active FOR NO KEY UPDATE",
	1, {UUIDOID}, NULL
};

/*
 * A session by token hash (or by id and user), unlocked: id, user_id,
 * family_id, refreshed?, live? (unexpired, not refreshed, family not
 * revoked).
 */
#define SESSION_COLUMNS \
	"SELECT s.id, s.user_id, s.family_id, s.refreshed_at IS NOT NULL," \
	"       s.expires_at OPERATOR(pg_catalog.>) pg_catalog.now() AND s.refreshed_at IS NULL" \
	"       AND NOT EXISTS (SELECT 1 FROM audiotricks.revoked_families r" \
	"                        WHERE r.family_id OPERATOR(pg_catalog.=) s.family_id)" \
	" FROM audiotricks.sessions s"

static AtPlan plan_session_by_hash = {
	SESSION_COLUMNS " WHERE s.token_hash OPERATOR(pg_catalog.=) $1",
	1, {TEXTOID}, NULL
};

static AtPlan plan_session_by_id = {
	SESSION_COLUMNS " WHERE s.id OPERATOR(pg_catalog.=) $1 AND s.user_id OPERATOR(pg_catalog.=) $2",
	2, {UUIDOID, UUIDOID}, NULL
};

/* the same session again, locked, after its user's row was locked */
static AtPlan plan_lock_session = {
	SESSION_COLUMNS " WHERE s.id OPERATOR(pg_catalog.=) $1 FOR UPDATE OF s",
	1, {UUIDOID}, NULL
};

/*
 * Every path that ends a user's sessions (log out everywhere, a password
 * change) first takes the same lock on the user's row as login and refresh
 * do before they create a session: a session being created commits before
 * the sessions are ended, or is created after them and sees that.
 */
static AtPlan plan_lock_user = {
	"SELECT 1 FROM audiotricks.users"
	" WHERE id OPERATOR(pg_catalog.=) $1 FOR NO KEY UPDATE",
	1, {UUIDOID}, NULL
};

static AtPlan plan_mark_refreshed = {
	"UPDATE audiotricks.sessions SET refreshed_at = pg_catalog.now()"
	" WHERE id OPERATOR(pg_catalog.=) $1",
	1, {UUIDOID}, NULL
};

static AtPlan plan_list_sessions = {
	"SELECT s.id, s.created_at, s.expires_at, s.id OPERATOR(pg_catalog.=) $2"
	" FROM audiotricks.sessions s"
	" WHERE s.user_id OPERATOR(pg_catalog.=) $1 AND s.refreshed_at IS NULL"
	"   AND s.expires_at OPERATOR(pg_catalog.>) pg_catalog.now()"
	"   AND NOT EXISTS (SELECT 1 FROM audiotricks.revoked_families r"
	"                    WHERE r.family_id OPERATOR(pg_catalog.=) s.family_id)"
	" ORDER BY s.created_at DESC, s.id DESC",
	2, {UUIDOID, UUIDOID}, NULL
};

static AtPlan plan_deactivate = {
	"UPDATE audiotricks.users SET is_active = false WHERE id OPERATOR(pg_catalog.=) $1",
	1, {UUIDOID}, NULL
};

static AtPlan plan_anonymize_audit = {
	"UPDATE audiotricks.audit_log SET user_id = NULL, client_addr = NULL"
	" WHERE user_id OPERATOR(pg_catalog.=) $1",
	1, {UUIDOID}, NULL
};

static AtPlan plan_delete_user = {
	"DELETE FROM audiotricks.users WHERE id OPERATOR(pg_catalog.=) $1",
	1, {UUIDOID}, NULL
};

static AtPlan plan_set_password = {
	"UPDATE audiotricks.users SET password_hash = $2"
	" WHERE id OPERATOR(pg_catalog.=) $1",
	2, {UUIDOID, TEXTOID}, NULL
};

/*
 * Ends one session that was not refreshed: a refreshed session's row is the
 * evidence that lets reuse of its token be detected, and is never deleted
 * by a logout (a refresh committed meanwhile makes this delete nothing).
 */
static AtPlan plan_logout_session = {
	"DELETE FROM audiotricks.sessions WHERE id OPERATOR(pg_catalog.=) $1"
	" AND refreshed_at IS NULL",
	1, {UUIDOID}, NULL
};

static AtPlan plan_logout_all = {
	"DELETE FROM audiotricks.sessions WHERE user_id OPERATOR(pg_catalog.=) $1",
	1, {UUIDOID}, NULL
};

static AtPlan plan_logout_others = {
	"DELETE FROM audiotricks.sessions WHERE user_id OPERATOR(pg_catalog.=) $1"
	" AND id OPERATOR(pg_catalog.<>) $2",
	2, {UUIDOID, UUIDOID}, NULL
};

static AtPlan plan_purge = {
	"DELETE FROM audiotricks.sessions"
	" WHERE expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()",
	0, {InvalidOid}, NULL
};

/*
 * A revoked family with no session left can never get one again (sessions
 * of a family come only from refreshing one of its visible rows).
 */
static AtPlan plan_purge_revoked = {
	"DELETE FROM audiotricks.revoked_families r"
	" WHERE NOT EXISTS (SELECT 1 FROM audiotricks.sessions s"
	"                    WHERE s.family_id OPERATOR(pg_catalog.=) r.family_id)",
	0, {InvalidOid}, NULL
};

static void
spi_connect(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

static void
spi_finish(void)
{
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
}

/* ---------------------------------------------------------------------
 * Small helpers
 * --------------------------------------------------------------------- */

/* seconds since 1970 (JWT time) of a PostgreSQL timestamp */
static int64
unix_seconds(TimestampTz t)
{
	return (int64) (t / USECS_PER_SEC) +
		(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;
}

static int64
unix_now(void)
{
	return unix_seconds(GetCurrentTimestamp());
}

static TimestampTz
unix_to_timestamptz(int64 secs)
{
	return (TimestampTz) (secs - (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY) * USECS_PER_SEC;
}

static void
token_hash_hex(const char *token, size_t len, char hex[SHA256_HEX_LEN + 1])
{
	unsigned char digest[JWT_SHA256_BYTES];

	JwtSha256(token, len, digest);
	sodium_bin2hex(hex, SHA256_HEX_LEN + 1, digest, sizeof(digest));
}

static Datum
uuid_datum(const pg_uuid_t *u)
{
	pg_uuid_t  *copy = palloc(sizeof(pg_uuid_t));

	*copy = *u;
	return UUIDPGetDatum(copy);
}

static void
raise_bad_token(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
			 errmsg("invalid or expired token"),
			 errhidestmt(true)));
}

static void
raise_bad_login(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PASSWORD),
			 errmsg("invalid login or password"),
			 errhidestmt(true)));
}


/* ---------------------------------------------------------------------
 * bcrypt through pgcrypto
 * --------------------------------------------------------------------- */

static Oid
pgcrypto_func(const char *schema, const char *name, int nargs, Oid *argtypes)
{
	List	   *qname = list_make2(makeString(pstrdup(schema)), makeString(pstrdup(name)));

	return LookupFuncName(qname, nargs, argtypes, false);
}

/* a fresh bcrypt setting ("$2a$NN$" + salt) at the given cost */
static text *
bcrypt_salt(const char *schema, int cost)
{
	Oid			argtypes[2] = {TEXTOID, INT4OID};
	Oid			fn = pgcrypto_func(schema, "gen_salt", 2, argtypes);

	return DatumGetTextPP(OidFunctionCall2(fn, CStringGetTextDatum("bf"),
										   Int32GetDatum(cost)));
}

/*
 * crypt(password, setting), the one place that hashes a password: first
 * takes a place among audiotricks.max_concurrent_password_checks (see
 * src/admission.c), given back however the hash ends.  cls and key (what an
 * anonymous caller typed, key_len bytes, or NULL) order the waiters.  When
 * no place comes in time, raises 53400 after taking back the throttle
 * failure reserved under refund (refund_len bytes; NULL when none was
 * reserved): the password was never checked, so a client retrying on 53400
 * does not lock its account.  Call it before taking any row lock: a waiter
 * would hold it for as long as it waits.
 */
static text *
bcrypt_crypt(const char *schema, text *password, text *setting,
			 AdmissionClass cls, const char *key, int key_len,
			 const char *refund, int refund_len)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Oid			fn = pgcrypto_func(schema, "crypt", 2, argtypes);
	TimestampTz reserved_by = GetCurrentTimestamp();
	volatile Datum result = (Datum) 0;

	if (!AdmissionEnter(cls, key, key_len))
	{
		if (refund != NULL)
			ThrottleRefund(refund, refund_len, reserved_by);
		AdmissionRefuse();
	}
	PG_TRY();
	{
		result = OidFunctionCall2(fn, PointerGetDatum(password),
								  PointerGetDatum(setting));
	}
	PG_FINALLY();
	{
		AdmissionLeave();
	}
	PG_END_TRY();
	return DatumGetTextPP(result);
}

/* cost of a "$2?$NN$..." hash, or -1 if it is not bcrypt */
static int
bcrypt_cost_of(const char *hash, size_t len)
{
	if (len < 7 || hash[0] != '$' || hash[1] != '2' || hash[3] != '$' ||
		hash[6] != '$' || hash[4] < '0' || hash[4] > '9' ||
		hash[5] < '0' || hash[5] > '9')
		return -1;
	return (hash[4] - '0') * 10 + (hash[5] - '0');
}

/*
 * bcrypt_pad
 *		After a failed comparison against a stored hash of stored_cost (the
 *		work of cost c is about 2^c rounds), more bcrypt work so that the
 *		total equals one hash at the configured cost C: dummies at costs C-1,
 *		C-2, ..., stored_cost, which add up to 2^C - 2^stored_cost.  So a
 *		wrong password for a user whose hash predates a raise of bcrypt_cost
 *		(or was imported at a lower cost) takes as long as an unknown login,
 *		which hashes once at cost C.  Nothing when the stored cost is not
 *		lower; a hash that is not bcrypt (cost -1) is padded as from cost 4,
 *		bcrypt's least.  The padding takes no admission place (see
 *		bcrypt_crypt): a second wait could end in 53400, which an unknown
 *		login never gets after its one hash, and so tell the account
 *		exists; its work is bounded by the admitted attempt it follows.
 */
static void
bcrypt_pad(const char *schema, text *password, int stored_cost)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Oid			fn = pgcrypto_func(schema, "crypt", 2, argtypes);

	for (int c = audiotricks_bcrypt_cost - 1; c >= Max(stored_cost, 4); c--)
		(void) OidFunctionCall2(fn, PointerGetDatum(password),
								PointerGetDatum(bcrypt_salt(schema, c)));
}

static bool
text_equal_ct(text *a, const char *b, size_t blen)
{
	return VARSIZE_ANY_EXHDR(a) == blen &&
		sodium_memcmp(VARDATA_ANY(a), b, blen) == 0;
}

/* ---------------------------------------------------------------------
 * Validation
 * --------------------------------------------------------------------- */

/*
 * Non-ASCII code points that users_email_check's [:space:] and [:cntrl:]
 * classes match (glibc's tables in a UTF-8 database): C1 controls and the
 * Unicode spaces other than the no-break ones.  Rejected here so that such an
 * address gets 22023 like every other invalid one, not the table's 23514.
 */
static bool
email_space_or_control(pg_wchar u)
{
	return (u >= 0x80 && u <= 0x9f) || u == 0x1680 ||
		(u >= 0x2000 && u <= 0x200a && u != 0x2007) ||
		u == 0x2028 || u == 0x2029 || u == 0x205f || u == 0x3000;
}

static void
validate_email(const char *s, int len)
{
	const char *at = NULL;
	int			nat = 0;
	bool		ok = true;
	int			local_len;
	const char *domain;
	int			domain_len;

	if (len < 3 || pg_mbstrlen_with_len(s, len) > EMAIL_MAX_CHARS)
		ok = false;
	for (int i = 0; ok && i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c <= 0x20 || c == 0x7f || strchr("\"(),:;<>[\\]", c) != NULL)
			ok = false;
		else if (c >= 0x80 && GetDatabaseEncoding() == PG_UTF8)
		{
			int			l = pg_utf_mblen((const unsigned char *) s + i);

			if (i + l > len ||
				email_space_or_control(utf8_to_unicode((const unsigned char *) s + i)))
				ok = false;
			i += l - 1;
		}
		else if (c == '@')
		{
			nat++;
			at = s + i;
		}
	}
	if (ok && nat != 1)
		ok = false;
	if (ok)
	{
		local_len = (int) (at - s);
		domain = at + 1;
		domain_len = len - local_len - 1;
		if (local_len < 1 || local_len > 64 || s[0] == '.' ||
			s[local_len - 1] == '.' || domain_len < 3 ||
			memchr(domain, '.', domain_len) == NULL ||
			domain[0] == '.' || domain[0] == '-' ||
			domain[domain_len - 1] == '.' || domain[domain_len - 1] == '-')
			ok = false;
		for (int i = 0; ok && i + 1 < len; i++)
			if (s[i] == '.' && s[i + 1] == '.')
				ok = false;
		for (int i = 0; ok && i < domain_len; i++)
		{
			unsigned char c = (unsigned char) domain[i];

			if (!(c >= 0x80 || isalnum(c) || c == '-' || c == '.'))
				ok = false;
		}
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid email address"),
				 errhidestmt(true)));
}

static void
validate_username(const char *s, int len)
{
	if (len < 1 || len > USERNAME_MAX_CHARS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("username must be 1 to %d characters long", USERNAME_MAX_CHARS),
				 errhidestmt(true)));
	for (int i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '_' || c == '-'))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("username may contain only ASCII letters, digits, \"_\" and \"-\""),
					 errhidestmt(true)));
	}
}

static void
validate_password(const char *s, int len)
{
	bool		lower = false,
				upper = false,
				digit = false;

	if (len > BCRYPT_MAX_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("password must be at most %d bytes long", BCRYPT_MAX_BYTES),
				 errdetail("bcrypt uses only the first %d bytes; longer passwords are refused rather than truncated.",
						   BCRYPT_MAX_BYTES),
				 errhidestmt(true)));
	if (pg_mbstrlen_with_len(s, len) < PASSWORD_MIN_CHARS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("password must be at least %d characters long", PASSWORD_MIN_CHARS),
				 errhidestmt(true)));
	for (int i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		lower |= (c >= 'a' && c <= 'z');
		upper |= (c >= 'A' && c <= 'Z');
		digit |= (c >= '0' && c <= '9');
	}
	if (!lower)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("password must contain a lowercase letter"),
				 errhidestmt(true)));
	if (!upper)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("password must contain an uppercase letter"),
				 errhidestmt(true)));
	if (!digit)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("password must contain a digit"),
				 errhidestmt(true)));
}

static void
require_arg(FunctionCallInfo fcinfo, int n, const char *what)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be null", what),
				 errhidestmt(true)));
}


/* ---------------------------------------------------------------------
 * Token verification
 * --------------------------------------------------------------------- */

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
		nsp = AtSchemaOid();
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
	char		hex[SHA256_HEX_LEN + 1];
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
static bool
role_claim_ok(const JwtClaims *claims)
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
 *		(AtCheckSchema).  read_only is accepted for callers' clarity; the
 *		lookup never writes.
 */
bool
TokenVerify(const char *token, size_t len, pg_uuid_t *user_id,
			pg_uuid_t *session_id, bool read_only)
{
	const JwtKey *key = AtJwtKey();
	uint64		generation = audiotricks_jwt_secret_generation + 1;	/* never 0 */
	TimestampTz now_ts = GetCurrentTimestamp();
	int64		now = unix_seconds(now_ts);
	JwtClaims	claims;
	TokenCacheEntry *e;
	unsigned char mac[crypto_shorthash_siphashx24_BYTES];

	if (token == NULL || len == 0 || len > AT_TOKEN_MAX_LEN)
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

	if (!JwtVerifyKey(key, token, len, now, &claims) || !role_claim_ok(&claims))
		return false;
	if (!JwtParseUuid(claims.sub, strlen(claims.sub), user_id->data) ||
		!JwtParseUuid(claims.sid, strlen(claims.sid), session_id->data))
		return false;

	e->generation = generation;
	memcpy(e->mac, mac, sizeof(mac));
	e->exp = claims.exp;
	e->user_id = *user_id;
	e->session_id = *session_id;
	token_hash_hex(token, len, e->hex);
	return session_is_live(e->hex, session_id, user_id, now_ts);
}

/* ---------------------------------------------------------------------
 * SQL-callable functions
 * --------------------------------------------------------------------- */

/*
 * at_register(email text, username text, password text) RETURNS uuid
 *		Creates the user and their user_settings row.  Raises 22023 on a bad
 *		input (naming the rule), 23505 on a taken email or username.
 */
Datum
at_register(PG_FUNCTION_ARGS)
{
	ErrorContextCallback hide;
	text	   *email;
	text	   *username;
	text	   *password;
	char	   *schema;
	text	   *hash;
	Datum		values[3];
	pg_uuid_t  *result = NULL;
	bool		email_taken = false;

	AtHideStatementPush(&hide);
	require_arg(fcinfo, 0, "email");
	require_arg(fcinfo, 1, "username");
	require_arg(fcinfo, 2, "password");
	email = PG_GETARG_TEXT_PP(0);
	username = PG_GETARG_TEXT_PP(1);
	password = AtSecretArg(fcinfo, 2);

	validate_email(VARDATA_ANY(email), VARSIZE_ANY_EXHDR(email));
	validate_username(VARDATA_ANY(username), VARSIZE_ANY_EXHDR(username));
	validate_password(VARDATA_ANY(password), VARSIZE_ANY_EXHDR(password));

	schema = AtPgcryptoSchema();
	hash = bcrypt_crypt(schema, password, bcrypt_salt(schema, audiotricks_bcrypt_cost),
						ADMISSION_ANONYMOUS, VARDATA_ANY(email), VARSIZE_ANY_EXHDR(email),
						NULL, 0);

	values[0] = PointerGetDatum(email);
	values[1] = PointerGetDatum(username);
	values[2] = PointerGetDatum(hash);

	spi_connect();
	if (AtRunPlan(&plan_register, values, NULL, false, 0) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		bool		isnull;
		Datum		id = SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull);

		result = SPI_palloc(sizeof(pg_uuid_t));
		*result = *DatumGetUUIDP(id);
	}
	else
	{
		AtRunPlan(&plan_email_taken, values, NULL, true, 1);
		email_taken = SPI_processed > 0;
	}
	spi_finish();

	if (result == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg(email_taken ? "email already registered" : "username already taken"),
				 errhidestmt(true)));
	AuditEvent("registered", result, NULL, NULL);

	AtHideStatementPop(&hide);
	PG_RETURN_UUID_P(result);
}

/*
 * family_deadline
 *		When a session family must end whatever its refreshes (unix seconds):
 *		audiotricks.session_max_lifetime after its login.  The family id is
 *		the login session's UUIDv7, whose first 48 bits are its creation time
 *		in Unix milliseconds.
 */
static int64
family_deadline(const pg_uuid_t *family)
{
	uint64		ms = 0;

	for (int i = 0; i < 6; i++)
		ms = (ms << 8) | family->data[i];
	return (int64) (ms / 1000) + audiotricks_session_max_lifetime;
}

/*
 * issue_session
 *		Creates a session for user_id (in family, or a new family when NULL)
 *		and signs its token.  Fills the output row of at_login/at_refresh:
 *		out[0] token (text), out[1] user id, out[2] session id, out[3]
 *		expires_at.  Runs inside an open SPI connection.
 */
static void
issue_session(const pg_uuid_t *user_id, const pg_uuid_t *family,
			  pg_uuid_t *session_id, Datum *out)
{
	JwtClaims	claims;
	char		token[JWT_MAX_LEN];
	size_t		token_len;
	char		hex[SHA256_HEX_LEN + 1];
	uint8		jti[16];
	int64		iat;
	TimestampTz expires_at;
	Datum		values[5];

	UuidV7Generate(session_id);
	iat = unix_now();
	memset(&claims, 0, sizeof(claims));
	JwtFormatUuid(user_id->data, claims.sub);
	JwtFormatUuid(session_id->data, claims.sid);
	strlcpy(claims.role, audiotricks_jwt_role ? audiotricks_jwt_role : "", sizeof(claims.role));
	randombytes_buf(jti, sizeof(jti));
	JwtB64Encode(jti, sizeof(jti), claims.jti);
	sodium_memzero(jti, sizeof(jti));
	claims.iat = iat;
	claims.exp = Min(iat + audiotricks_session_ttl,
					 family ? family_deadline(family) : iat + audiotricks_session_max_lifetime);
	expires_at = unix_to_timestamptz(claims.exp);

	token_len = JwtSignKey(AtJwtKey(), &claims, token, sizeof(token));
	if (token_len == 0)
		elog(ERROR, "could not sign the session token");
	token_hash_hex(token, token_len, hex);

	values[0] = UUIDPGetDatum(session_id);
	values[1] = UUIDPGetDatum(user_id);
	values[2] = CStringGetTextDatum(hex);
	values[3] = TimestampTzGetDatum(expires_at);
	values[4] = UUIDPGetDatum(family ? family : session_id);
	if (AtRunPlan(&plan_insert_session, values, NULL, false, 0) != SPI_OK_INSERT || SPI_processed != 1)
		elog(ERROR, "could not record the session");

	/* the result row outlives SPI: allocate it in the caller's context */
	out[0] = PointerGetDatum(SPI_palloc(VARHDRSZ + token_len));
	SET_VARSIZE(DatumGetPointer(out[0]), VARHDRSZ + token_len);
	memcpy(VARDATA(DatumGetPointer(out[0])), token, token_len);
	sodium_memzero(token, sizeof(token));
	out[1] = PointerGetDatum(SPI_palloc(sizeof(pg_uuid_t)));
	*DatumGetUUIDP(out[1]) = *user_id;
	out[2] = PointerGetDatum(SPI_palloc(sizeof(pg_uuid_t)));
	*DatumGetUUIDP(out[2]) = *session_id;
	out[3] = TimestampTzGetDatum(expires_at);
}

/*
 * check_own_password
 *		Inside an open SPI connection: true when password is the current
 *		password of user_id and the user is active.  A failure does the
 *		bcrypt work of one hash at the configured cost, whatever the stored
 *		hash's cost (bcrypt_pad) and also when throttled.
 *
 *		Throttled like at_login but with a count of its own ('r' and the
 *		user id, where at_login counts 'u' and the user id): a token's holder
 *		gets max_failed_logins wrong re-checks per window, and anonymous
 *		failures at at_login, which anyone can cause, do not lock the
 *		session's owner out of changing their password or ending their
 *		account.  Neither count blocks or resets the other: a success here
 *		must not clear the login count (a stolen token would then reset it),
 *		and a thief's wrong re-checks do not lock the owner's login.  A
 *		failure is counted and audited even though the caller then raises.
 */
static bool
check_own_password(const char *schema, const pg_uuid_t *user_id, text *password)
{
	Datum		values[1];
	text	   *stored = NULL;
	bool		active = false;
	bool		blocked;
	bool		ok;
	text	   *computed;
	char		tkey[1 + UUID_LEN];

	AuditReserve(1);			/* a failure is recorded, whatever happens */
	tkey[0] = 'r';				/* the re-check count, not at_login's 'u' */
	memcpy(tkey + 1, user_id->data, UUID_LEN);
	blocked = !ThrottleReserve(tkey, sizeof(tkey), true);	/* counted now */

	values[0] = UUIDPGetDatum(user_id);
	AtRunPlan(&plan_user_by_id, values, NULL, true, 1);
	if (SPI_processed == 1)
	{
		bool		isnull;

		stored = DatumGetTextPCopy(SPI_getbinval(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc, 2, &isnull));
		active = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 3, &isnull));
	}
	computed = bcrypt_crypt(schema, password,
							(stored && !blocked) ? stored :
							bcrypt_salt(schema, audiotricks_bcrypt_cost),
							ADMISSION_AUTHENTICATED, tkey, sizeof(tkey),
							blocked ? NULL : tkey, sizeof(tkey));
	ok = stored != NULL && active && !blocked &&
		VARSIZE_ANY_EXHDR(password) <= BCRYPT_MAX_BYTES &&
		text_equal_ct(computed, VARDATA_ANY(stored), VARSIZE_ANY_EXHDR(stored));
	if (!ok)
	{
		if (stored && !blocked)
			bcrypt_pad(schema, password,
					   bcrypt_cost_of(VARDATA_ANY(stored), VARSIZE_ANY_EXHDR(stored)));
		if (blocked)
			AuditEventDetached("login_throttled", user_id);
		else
			AuditEventDetached("login_failed", user_id);
	}
	else
		ThrottleReset(tkey, sizeof(tkey));
	return ok;
}

/* throttle key: the account when the login names one, else the login text */
static void
throttle_key(bool found, const pg_uuid_t *user_id, text *login,
			 const char **key, int *keylen)
{
	if (found)
	{
		char	   *k = palloc(1 + UUID_LEN);

		k[0] = 'u';
		memcpy(k + 1, user_id->data, UUID_LEN);
		*key = k;
		*keylen = 1 + UUID_LEN;
	}
	else
	{
		int			n = VARSIZE_ANY_EXHDR(login);
		char	   *k = palloc(1 + n);

		k[0] = 'l';
		memcpy(k + 1, VARDATA_ANY(login), n);
		*key = k;
		*keylen = 1 + n;
	}
}

/*
 * refuse_if_read_only
 *		Raises 25006 in a read-only transaction, notably every transaction on
 *		a hot standby, before a call that must write looks at a password or
 *		token.  Otherwise a standby would check it and only then fail on the
 *		write, answering a right password with 25006 and a wrong one with
 *		28P01: for at_login a password oracle with its own throttling counters
 *		(each replica adding max_failed_logins guesses per window) whose
 *		failed-login events and refresh-reuse revocations would wait in the
 *		standby's queue for an audit writer that starts only on promotion;
 *		for at_change_password, at_deactivate_account and at_delete_account a
 *		harmless way for a token's holder to test passwords.
 */
static void
refuse_if_read_only(const char *what)
{
	if (XactReadOnly)
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot %s in a read-only transaction", what),
				 errhint("Send calls that write to the primary server, outside read-only transactions.")));
}

/*
 * at_login(login text, password text)
 *		RETURNS TABLE(token text, user_id uuid, session_id uuid, expires_at timestamptz)
 *		login is an email or a username, either case-insensitively.  Unknown
 *		users, wrong passwords, inactive users, over-long passwords and
 *		throttled logins all do the bcrypt work of one hash at the configured
 *		cost (a stored hash of a lower cost is padded: bcrypt_pad) and raise
 *		28P01.  Failures are counted (shared memory) and audited even though
 *		the call's transaction aborts.
 */
Datum
at_login(PG_FUNCTION_ARGS)
{
	ErrorContextCallback hide;
	text	   *login;
	text	   *password;
	char	   *schema;
	Datum		values[4];
	bool		found = false;
	bool		active = false;
	bool		blocked;
	pg_uuid_t	user_id;
	text	   *stored = NULL;
	text	   *computed;
	bool		ok;
	pg_uuid_t	session_id;
	const char *tkey;
	int			tkeylen;
	Datum		out[4];
	bool		outnull[4] = {false, false, false, false};

	AtHideStatementPush(&hide);
	refuse_if_read_only("log in");
	(void) AtJwtKey();			/* 55000 now if the secret is missing */
	schema = AtPgcryptoSchema();

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		raise_bad_login();
	login = PG_GETARG_TEXT_PP(0);
	password = AtSecretArg(fcinfo, 1);
	AuditReserve(1);			/* a failure is recorded, whatever happens */

	spi_connect();
	if (VARSIZE_ANY_EXHDR(password) <= BCRYPT_MAX_BYTES &&
		VARSIZE_ANY_EXHDR(login) <= EMAIL_MAX_CHARS * MAX_MULTIBYTE_CHAR_LEN)
	{
		bool		is_email = memchr(VARDATA_ANY(login), '@', VARSIZE_ANY_EXHDR(login)) != NULL;

		values[0] = PointerGetDatum(login);
		AtRunPlan(is_email ? &plan_user_by_email : &plan_user_by_username,
				  values, NULL, true, 1);
		if (SPI_processed == 1)
		{
			bool		isnull;
			HeapTuple	tup = SPI_tuptable->vals[0];
			TupleDesc	desc = SPI_tuptable->tupdesc;

			found = true;
			user_id = *DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull));
			stored = DatumGetTextPCopy(SPI_getbinval(tup, desc, 2, &isnull));
			active = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
		}
	}

	throttle_key(found, &user_id, login, &tkey, &tkeylen);
	/* counted as a failure before the check: see src/throttle.c */
	blocked = !ThrottleReserve(tkey, tkeylen, found);

	/*
	 * The same bcrypt work whether or not the user exists or is throttled; a
	 * throttled login's password is hashed against a fresh salt, never
	 * checked.
	 */
	computed = bcrypt_crypt(schema, password,
							(found && !blocked) ? stored :
							bcrypt_salt(schema, audiotricks_bcrypt_cost),
							ADMISSION_ANONYMOUS, VARDATA_ANY(login), VARSIZE_ANY_EXHDR(login),
							blocked ? NULL : tkey, tkeylen);
	ok = found && active && !blocked &&
		VARSIZE_ANY_EXHDR(password) <= BCRYPT_MAX_BYTES &&
		text_equal_ct(computed, VARDATA_ANY(stored), VARSIZE_ANY_EXHDR(stored));
	if (!ok)
	{
		if (found && !blocked)
			bcrypt_pad(schema, password,
					   bcrypt_cost_of(VARDATA_ANY(stored), VARSIZE_ANY_EXHDR(stored)));
		if (blocked)
			AuditEventDetached("login_throttled", found ? &user_id : NULL);
		else
			AuditEventDetached("login_failed", found ? &user_id : NULL);
		raise_bad_login();
	}

	/*
	 * a stored hash of another cost is re-hashed at the configured one:
	 * raising bcrypt_cost upgrades users as they log in, and lowering it (or
	 * imported costlier hashes) converges too, so that fewer accounts stay
	 * slower to refuse than an unknown login (bcrypt_pad cannot pad those)
	 */
	if (bcrypt_cost_of(VARDATA_ANY(stored), VARSIZE_ANY_EXHDR(stored)) != audiotricks_bcrypt_cost)
	{
		values[0] = UUIDPGetDatum(&user_id);
		values[1] = PointerGetDatum(bcrypt_crypt(schema, password,
												 bcrypt_salt(schema, audiotricks_bcrypt_cost),
												 ADMISSION_AUTHENTICATED, NULL, 0, NULL, 0));
		AtRunPlan(&plan_set_password, values, NULL, false, 0);
	}

	values[0] = UUIDPGetDatum(&user_id);
	AtRunPlan(&plan_touch_login, values, NULL, false, 0);
	if (SPI_processed != 1)
		raise_bad_login();		/* deactivated meanwhile */
	/* the reservation stays counted until the login has been recorded */
	ThrottleReset(tkey, tkeylen);
	issue_session(&user_id, NULL, &session_id, out);
	spi_finish();
	AuditEvent("login", &user_id, &session_id, NULL);

	AtHideStatementPop(&hide);
	return AtReturnOneRow(fcinfo, out, outnull);
}

/* a session row as the SESSION_COLUMNS plans return it */
typedef struct SessionRow
{
	pg_uuid_t	id;
	pg_uuid_t	user_id;
	pg_uuid_t	family_id;
	bool		refreshed;
	bool		live;			/* unexpired, not refreshed, family not revoked */
} SessionRow;

/* runs a SESSION_COLUMNS plan; false when it found no row */
static bool
fetch_session(AtPlan *plan, Datum *values, SessionRow *row)
{
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;

	AtRunPlan(plan, values, NULL, false, 1);
	if (SPI_processed != 1)
		return false;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	row->id = *DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull));
	row->user_id = *DatumGetUUIDP(SPI_getbinval(tup, desc, 2, &isnull));
	row->family_id = *DatumGetUUIDP(SPI_getbinval(tup, desc, 3, &isnull));
	row->refreshed = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
	row->live = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
	return true;
}

/*
 * reuse_detected
 *		A refreshed session's token (or id) was presented again: a thief and
 *		the victim both hold tokens of this family, and nobody can tell which
 *		is which, so the whole family ends.  The revocation is written by the
 *		audit writer in its own transaction, because the caller's transaction
 *		is about to abort (at_refresh raises) or belongs to whoever presented
 *		the token (who could roll it back); this waits for that commit.  The
 *		caller reserved two audit slots (AuditReserve) before it started.
 */
static void
reuse_detected(const SessionRow *row)
{
	AuditEventDetached("refresh_reuse", &row->user_id);
	(void) AuditRevokeFamilyDetached(&row->family_id);
}

/*
 * at_refresh(token text)
 *		RETURNS TABLE(token text, user_id uuid, session_id uuid, expires_at timestamptz)
 *		Exchanges a valid token for a new one of the same user and session
 *		family, ending the old session.  A token that was already refreshed
 *		is refused (28000), and its reuse ends the whole family: a stolen
 *		token that the victim (or the thief) already refreshed is worthless,
 *		and so is every token descended from it.  Locks the user's row before
 *		the session's (the order every path that ends sessions uses).
 */
Datum
at_refresh(PG_FUNCTION_ARGS)
{
	ErrorContextCallback hide;
	text	   *token;
	size_t		len;
	JwtClaims	claims;
	pg_uuid_t	claim_user;
	pg_uuid_t	claim_session;
	char		hex[SHA256_HEX_LEN + 1];
	Datum		values[1];
	SessionRow	row;
	pg_uuid_t	session_id;
	Datum		out[4];
	bool		outnull[4] = {false, false, false, false};

	AtHideStatementPush(&hide);
	refuse_if_read_only("refresh a token");
	if (PG_ARGISNULL(0))
		raise_bad_token();
	token = PG_GETARG_TEXT_PP(0);
	len = VARSIZE_ANY_EXHDR(token);
	if (len == 0 || len > AT_TOKEN_MAX_LEN ||
		!JwtVerifyKey(AtJwtKey(), VARDATA_ANY(token), len, unix_now(), &claims) ||
		!role_claim_ok(&claims) ||
		!JwtParseUuid(claims.sub, strlen(claims.sub), claim_user.data) ||
		!JwtParseUuid(claims.sid, strlen(claims.sid), claim_session.data))
		raise_bad_token();
	token_hash_hex(VARDATA_ANY(token), len, hex);
	AuditReserve(2);			/* a reuse must be recorded and revoked */

	spi_connect();
	values[0] = CStringGetTextDatum(hex);
	if (!fetch_session(&plan_session_by_hash, values, &row) ||
		memcmp(row.id.data, claim_session.data, UUID_LEN) != 0 ||
		memcmp(row.user_id.data, claim_user.data, UUID_LEN) != 0)
		raise_bad_token();
	if (row.refreshed)
	{
		reuse_detected(&row);
		raise_bad_token();
	}
	if (!row.live)
		raise_bad_token();

	values[0] = UUIDPGetDatum(&row.user_id);
	AtRunPlan(&plan_lock_active_user, values, NULL, false, 0);
	if (SPI_processed != 1)
		raise_bad_token();		/* deactivated meanwhile */
	values[0] = UUIDPGetDatum(&row.id);
	if (!fetch_session(&plan_lock_session, values, &row))
		raise_bad_token();		/* logged out meanwhile */
	if (row.refreshed)
	{
		/* a concurrent refresh of the same token won: that is reuse too */
		reuse_detected(&row);
		raise_bad_token();
	}
	if (!row.live || family_deadline(&row.family_id) <= unix_now())
		raise_bad_token();		/* or the family reached its lifetime cap */

	values[0] = UUIDPGetDatum(&row.id);
	AtRunPlan(&plan_mark_refreshed, values, NULL, false, 0);
	issue_session(&row.user_id, &row.family_id, &session_id, out);
	spi_finish();
	IdentityForgetSession(&row.id);
	AuditEvent("refresh", &row.user_id, &session_id, NULL);

	AtHideStatementPop(&hide);
	return AtReturnOneRow(fcinfo, out, outnull);
}

/*
 * at_authenticate(token text) RETURNS uuid
 *		Verifies the token and makes its user the identity of this
 *		transaction.  Raises 28000 for any bad, expired or revoked token.
 */
Datum
at_authenticate(PG_FUNCTION_ARGS)
{
	ErrorContextCallback hide;
	text	   *token;
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;

	AtHideStatementPush(&hide);
	if (PG_ARGISNULL(0))
		raise_bad_token();
	token = PG_GETARG_TEXT_PP(0);
	if (!TokenVerify(VARDATA_ANY(token), VARSIZE_ANY_EXHDR(token),
					 &user_id, &session_id, false))
		raise_bad_token();
	IdentitySet(&user_id, &session_id);
	AtHideStatementPop(&hide);
	PG_RETURN_UUID_P(DatumGetUUIDP(uuid_datum(&user_id)));
}

/*
 * end_one_session
 *		Inside an open SPI connection: ends the session found by plan, unless
 *		it was refreshed, in which case presenting it is reuse and its family
 *		ends instead.  True when a live session was ended; fills row.
 */
static bool
end_one_session(AtPlan *plan, Datum *values, SessionRow *row, bool *found)
{
	Datum		id[1];

	*found = fetch_session(plan, values, row);
	if (!*found)
		return false;
	if (row->refreshed)
	{
		reuse_detected(row);
		return false;
	}
	id[0] = UUIDPGetDatum(&row->id);
	AtRunPlan(&plan_logout_session, id, NULL, false, 0);
	return row->live && SPI_processed == 1;
}

/*
 * at_logout(token text DEFAULT NULL) RETURNS boolean
 *		Ends the token's session (holding the token is the proof), or with
 *		NULL the current identity's session (42501 without one).  Returns
 *		false when there was no live session to end.  A token that was
 *		already refreshed is reuse, as in at_refresh: its family ends, and
 *		its row (the evidence) stays.
 */
static Datum
at_logout_as_owner(PG_FUNCTION_ARGS)
{
	ErrorContextCallback hide;
	Datum		values[2];
	bool		ended = false;
	bool		found = false;
	SessionRow	row;
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;

	AtHideStatementPush(&hide);
	if (!PG_ARGISNULL(0))
	{
		text	   *token = PG_GETARG_TEXT_PP(0);
		size_t		len = VARSIZE_ANY_EXHDR(token);
		char		hex[SHA256_HEX_LEN + 1];

		if (len > 0 && len <= AT_TOKEN_MAX_LEN)
		{
			token_hash_hex(VARDATA_ANY(token), len, hex);
			AuditReserve(2);
			spi_connect();
			values[0] = CStringGetTextDatum(hex);
			ended = end_one_session(&plan_session_by_hash, values, &row, &found);
			spi_finish();
		}
	}
	else
	{
		IdentityRequire(&user_id, &session_id);
		AuditReserve(2);
		spi_connect();
		values[0] = UUIDPGetDatum(&session_id);
		values[1] = UUIDPGetDatum(&user_id);
		ended = end_one_session(&plan_session_by_id, values, &row, &found);
		spi_finish();
	}

	if (found)
	{
		IdentityForgetSession(&row.id);
		if (ended)
			AuditEvent("logout", &row.user_id, &row.id, NULL);
	}
	AtHideStatementPop(&hide);
	PG_RETURN_BOOL(ended);
}

/*
 * at_logout_session(session_id uuid) RETURNS boolean
 *		Ends one of the current user's sessions (42501 without an identity);
 *		false when it is not theirs or not live.  A refreshed session's id is
 *		reuse, as in at_logout: its family ends, its row stays.
 */
static Datum
at_logout_session_as_owner(PG_FUNCTION_ARGS)
{
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;
	pg_uuid_t	target;
	Datum		values[2];
	SessionRow	row;
	bool		found;
	bool		ended;

	IdentityRequire(&user_id, &session_id);
	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	target = *PG_GETARG_UUID_P(0);
	AuditReserve(2);
	spi_connect();
	values[0] = UUIDPGetDatum(&target);
	values[1] = UUIDPGetDatum(&user_id);
	ended = end_one_session(&plan_session_by_id, values, &row, &found);
	spi_finish();
	if (ended)
	{
		IdentityForgetSession(&target);
		AuditEvent("logout_session", &user_id, &target, NULL);
	}
	PG_RETURN_BOOL(ended);
}

/*
 * at_list_sessions()
 *		RETURNS TABLE(id uuid, created_at timestamptz, expires_at timestamptz, is_current boolean)
 *		The current user's live sessions, newest first (42501 without an
 *		identity).  Never the token hash.
 */
static Datum
at_list_sessions_as_owner(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;
	Datum		values[2];
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	MemoryContext oldcxt;

	IdentityRequire(&user_id, &session_id);
	store = AtMaterialize(fcinfo, &tupdesc);

	spi_connect();
	values[0] = UUIDPGetDatum(&user_id);
	values[1] = UUIDPGetDatum(&session_id);
	AtRunPlan(&plan_list_sessions, values, NULL, true, 0);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		Datum		row[4];
		bool		nulls[4];

		for (int c = 0; c < 4; c++)
			row[c] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
								   c + 1, &nulls[c]);
		oldcxt = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
		tuplestore_putvalues(store, tupdesc, row, nulls);
		MemoryContextSwitchTo(oldcxt);
	}
	spi_finish();
	return (Datum) 0;
}

/*
 * at_logout_all() RETURNS integer
 *		Ends every session of the current user (42501 without an identity);
 *		returns how many were ended.  The identity ends with them.  Locks the
 *		user's row first, so a login or refresh in flight either commits its
 *		session before (and it is ended here) or runs after (and sees none).
 */
static Datum
at_logout_all_as_owner(PG_FUNCTION_ARGS)
{
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;
	Datum		values[1];
	uint64		n;

	IdentityRequire(&user_id, &session_id);
	spi_connect();
	values[0] = UUIDPGetDatum(&user_id);
	AtRunPlan(&plan_lock_user, values, NULL, false, 0);
	AtRunPlanLatest(&plan_logout_all, values);
	n = SPI_processed;
	spi_finish();
	IdentityForgetSession(NULL);
	AuditEvent("logout_all", &user_id, &session_id, NULL);
	PG_RETURN_INT32((int32) Min(n, (uint64) PG_INT32_MAX));
}

/*
 * at_change_password(current_password text, new_password text) RETURNS void
 *		Checks the current password (28P01 if wrong), applies the password
 *		rules to the new one (22023), re-hashes it, and ends every other
 *		session of the user.  42501 without an identity.
 */
static Datum
at_change_password_as_owner(PG_FUNCTION_ARGS)
{
	ErrorContextCallback hide;
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;
	text	   *current;
	text	   *newpw;
	char	   *schema;
	Datum		values[2];

	AtHideStatementPush(&hide);
	refuse_if_read_only("change a password");
	IdentityRequire(&user_id, &session_id);
	require_arg(fcinfo, 0, "current_password");
	require_arg(fcinfo, 1, "new_password");
	current = AtSecretArg(fcinfo, 0);
	newpw = AtSecretArg(fcinfo, 1);
	schema = AtPgcryptoSchema();

	spi_connect();
	if (!check_own_password(schema, &user_id, current))
		raise_bad_login();
	validate_password(VARDATA_ANY(newpw), VARSIZE_ANY_EXHDR(newpw));

	values[0] = UUIDPGetDatum(&user_id);
	values[1] = PointerGetDatum(bcrypt_crypt(schema, newpw,
											 bcrypt_salt(schema, audiotricks_bcrypt_cost),
											 ADMISSION_AUTHENTICATED, NULL, 0, NULL, 0));
	AtRunPlan(&plan_set_password, values, NULL, false, 0);

	values[0] = UUIDPGetDatum(&user_id);
	values[1] = UUIDPGetDatum(&session_id);
	AtRunPlanLatest(&plan_logout_others, values);	/* the UPDATE locked the user */
	spi_finish();
	AuditEvent("password_changed", &user_id, &session_id, NULL);

	AtHideStatementPop(&hide);
	PG_RETURN_VOID();
}

/*
 * end_account
 *		Shared by at_deactivate_account and at_delete_account: refuses on a
 *		standby (25006), needs an identity (42501) and the user's password in
 *		argument 0 (22023 if NULL, 28P01 if wrong, throttled like at_login),
 *		then runs the two plans with the user id as $1, ends the identity and
 *		records the event (for deletion, without the user).
 */
static void
end_account(FunctionCallInfo fcinfo, const char *what, AtPlan *first,
			AtPlan *second, const char *event, bool anonymous)
{
	ErrorContextCallback hide;
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;
	text	   *password;
	char	   *schema;
	Datum		values[1];

	AtHideStatementPush(&hide);
	refuse_if_read_only(what);
	IdentityRequire(&user_id, &session_id);
	require_arg(fcinfo, 0, "password");
	password = AtSecretArg(fcinfo, 0);
	schema = AtPgcryptoSchema();

	spi_connect();
	if (!check_own_password(schema, &user_id, password))
		raise_bad_login();
	values[0] = UUIDPGetDatum(&user_id);
	AtRunPlan(first, values, NULL, false, 0);
	AtRunPlan(second, values, NULL, false, 0);
	spi_finish();
	IdentityForgetSession(NULL);
	if (anonymous)
		AuditEvent(event, NULL, NULL, NULL);
	else
		AuditEvent(event, &user_id, &session_id, NULL);
	AtHideStatementPop(&hide);
}

/*
 * at_deactivate_account(password text) RETURNS void
 *		Checks the password (28P01 if wrong), marks the user inactive and
 *		ends all their sessions; login is refused from then on with the usual
 *		28P01.  42501 without an identity.
 */
static Datum
at_deactivate_account_as_owner(PG_FUNCTION_ARGS)
{
	end_account(fcinfo, "deactivate an account", &plan_deactivate,
				&plan_logout_all, "account_deactivated", false);
	PG_RETURN_VOID();
}

/*
 * at_delete_account(password text) RETURNS void
 *		Checks the password (28P01 if wrong) and deletes the user and, by
 *		cascade, their sessions, settings and history.  Their audit events
 *		stay, stripped of the user id and client address (anonymised after
 *		the delete, so that events its cascades wrote are cleared too).
 *		42501 without an identity.
 */
static Datum
at_delete_account_as_owner(PG_FUNCTION_ARGS)
{
	end_account(fcinfo, "delete an account", &plan_delete_user,
				&plan_anonymize_audit, "account_deleted", true);
	PG_RETURN_VOID();
}

/*
 * at_purge_expired_sessions() RETURNS integer
 *		Deletes expired sessions; returns how many.  Also forgets revoked
 *		families that have no session left.
 */
Datum
at_purge_expired_sessions(PG_FUNCTION_ARGS)
{
	uint64		n;

	spi_connect();
	AtRunPlan(&plan_purge, NULL, NULL, false, 0);
	n = SPI_processed;
	AtRunPlan(&plan_purge_revoked, NULL, NULL, false, 0);
	spi_finish();
	PG_RETURN_INT32((int32) Min(n, (uint64) PG_INT32_MAX));
}

/*
 * at_postgrest_pre_request() RETURNS void
 *		For PostgREST's db-pre-request: raises 28000 when the request carries
 *		an Authorization header that is not a valid, live bearer token, so a
 *		revoked token gets an error rather than an empty result.  Requests
 *		without the header pass (they run as the anonymous role).
 */
Datum
at_postgrest_pre_request(PG_FUNCTION_ARGS)
{
	const char *headers = GetConfigOption("request.headers", true, false);
	const char *token;
	size_t		token_len;
	int			r;
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;

	if (headers == NULL || headers[0] == '\0')
		PG_RETURN_VOID();
	r = BearerFromHeaders(headers, strlen(headers), &token, &token_len);
	if (r == JWT_BEARER_NONE)
		PG_RETURN_VOID();
	/* IdentityGet verifies the same header and caches the answer */
	if (r == JWT_BEARER_BAD || !IdentityGet(&user_id, &session_id))
		raise_bad_token();
	PG_RETURN_VOID();
}

/*
 * at_end_sessions_on_deactivate() RETURNS trigger
 *		AFTER UPDATE OF is_active ON users FOR EACH ROW, WHEN the user goes
 *		from active to inactive: deletes the user's sessions, whatever made
 *		the change (at_deactivate_account, an administrator's UPDATE).  The
 *		token check relies on it and reads only sessions.  Reactivating the
 *		user does not bring the sessions back: they log in again.
 */
Datum
at_end_sessions_on_deactivate(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	int			attnum;
	Datum		values[1];
	bool		isnull;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		elog(ERROR, "at_end_sessions_on_deactivate must run as an AFTER UPDATE row trigger");
	desc = RelationGetDescr(trigdata->tg_relation);
	attnum = SPI_fnumber(desc, "id");
	if (attnum <= 0)
		elog(ERROR, "at_end_sessions_on_deactivate: the table has no column id");
	values[0] = heap_getattr(trigdata->tg_newtuple, attnum, desc, &isnull);
	if (isnull || TupleDescAttr(desc, attnum - 1)->atttypid != UUIDOID)
		elog(ERROR, "at_end_sessions_on_deactivate: id must be a non-null uuid");

	spi_connect();
	AtRunPlanLatest(&plan_logout_all, values);	/* the UPDATE locked the user */
	spi_finish();
	return PointerGetDatum(NULL);
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
