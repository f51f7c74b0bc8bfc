/*
 * src/session.c
 *		Sessions: at_login, at_refresh, at_authenticate, at_logout,
 *		at_logout_session, at_logout_all, at_list_sessions,
 *		at_purge_expired_sessions and at_postgrest_pre_request, and the
 *		issuing of a session's token.  Tokens are checked by TokenVerify
 *		(token.c).
 *
 * Every query goes through SPI with parameters and fully qualified names
 * (schema-qualified relations and functions, OPERATOR(pg_catalog.x)), so the
 * caller's search_path cannot change its meaning.
 */
#include "postgres.h"

#include <sodium.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/uuid.h"

#include "admission.h"
#include "audiotricks.h"
#include "audit.h"
#include "client_addr.h"
#include "identity.h"
#include "jwt.h"
#include "password.h"
#include "recovery.h"
#include "schema.h"
#include "secret.h"
#include "session.h"
#include "spi.h"
#include "srf.h"
#include "throttle.h"
#include "token.h"
#include "uuid.h"

PG_FUNCTION_INFO_V1(at_login);
PG_FUNCTION_INFO_V1(at_authenticate);
AT_AS_OWNER_FUNCTION(at_logout);
AT_AS_OWNER_FUNCTION(at_logout_all);
PG_FUNCTION_INFO_V1(at_purge_expired_sessions);
PG_FUNCTION_INFO_V1(at_postgrest_pre_request);
PG_FUNCTION_INFO_V1(at_refresh);
AT_AS_OWNER_FUNCTION(at_list_sessions);
AT_AS_OWNER_FUNCTION(at_logout_session);

/* ---------------------------------------------------------------------
 * Prepared plans, kept for the life of the backend
 * --------------------------------------------------------------------- */

static AtPlan plan_user_by_email = {
	"SELECT id, password_hash, is_active, email_verified_at IS NOT NULL FROM audiotricks.users"
	" WHERE pg_catalog.lower(email) OPERATOR(pg_catalog.=) pg_catalog.lower($1)",
	1, {TEXTOID}, NULL
};

static AtPlan plan_user_by_username = {
	"SELECT id, password_hash, is_active, email_verified_at IS NOT NULL FROM audiotricks.users"
	" WHERE pg_catalog.lower(username) OPERATOR(pg_catalog.=) pg_catalog.lower($1)",
	1, {TEXTOID}, NULL
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

/*
 * SessionsEndAll
 *		Inside an open SPI connection: deletes every session of user_id (a
 *		uuid Datum), on the newest committed state when latest (see
 *		AtRunPlanLatest: the caller holds the user's row lock).  Returns how
 *		many it deleted.
 */
uint64
SessionsEndAll(Datum user_id, bool latest)
{
	Datum		values[1];

	values[0] = user_id;
	if (latest)
		AtRunPlanLatest(&plan_logout_all, values);
	else
		AtRunPlan(&plan_logout_all, values, NULL, false, 0);
	return SPI_processed;
}

/* ---------------------------------------------------------------------
 * Helpers
 * --------------------------------------------------------------------- */

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
	char		hex[TOKEN_HASH_HEX_LEN + 1];
	uint8		jti[16];
	int64		iat;
	TimestampTz expires_at;
	Datum		values[5];

	UuidV7Generate(session_id);
	iat = UnixNow();
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
	expires_at = UnixToTimestamptz(claims.exp);

	token_len = JwtSignKey(AtJwtKey(), &claims, token, sizeof(token));
	if (token_len == 0)
		elog(ERROR, "could not sign the session token");
	TokenHashHex(token, token_len, hex);

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
 * LoginThrottleKeys
 *		The two throttle keys of a login attempt (see src/throttle.c): the
 *		pair key ('u', the account id, NUL, the client address) counted
 *		against audiotricks.max_failed_logins, and the account key ('a' and
 *		the account id) counted against max_failed_logins_per_account and
 *		tagging the pair's entry as the account's.  A login that names no
 *		account counts the same way under 'l' and 'm' and the login text, so
 *		it behaves like a known one.  Both palloc'd.
 */
void
LoginThrottleKeys(bool found, const pg_uuid_t *user_id, const char *login,
				  int login_len, const char *addr, LoginThrottle *t)
{
	const char *id = found ? (const char *) user_id->data : login;
	int			idlen = found ? UUID_LEN : login_len;
	int			alen = strlen(addr);

	t->pair_len = 1 + idlen + 1 + alen;
	t->pair = palloc(t->pair_len);
	t->pair[0] = found ? 'u' : 'l';
	memcpy(t->pair + 1, id, idlen);
	t->pair[1 + idlen] = '\0';
	memcpy(t->pair + 2 + idlen, addr, alen);
	t->account_len = 1 + idlen;
	t->account = palloc(t->account_len);
	t->account[0] = found ? 'a' : 'm';
	memcpy(t->account + 1, id, idlen);
	t->found = found;
}

/*
 * LoginThrottleReserve
 *		Reserves a failure under both keys, before the password is checked;
 *		false (nothing left counted) when either limit is reached.
 */
bool
LoginThrottleReserve(LoginThrottle *t)
{
	if (!ThrottleReserveLimit(t->pair, t->pair_len, t->account, t->account_len,
							  t->found, audiotricks_max_failed_logins))
		return false;
	if (!ThrottleReserveLimit(t->account, t->account_len, t->account,
							  t->account_len, t->found,
							  audiotricks_max_failed_logins_per_account))
	{
		ThrottleRefund(t->pair, t->pair_len, GetCurrentTimestamp());
		return false;
	}
	t->reserved_by = GetCurrentTimestamp();
	return true;
}

/*
 * LoginThrottleSucceeded
 *		After a successful login: forgets the pair's failures and takes back
 *		the attempt's reservation from the account's ceiling (the owner's
 *		success must not wipe failures that others caused from elsewhere).
 */
void
LoginThrottleSucceeded(LoginThrottle *t)
{
	ThrottleReset(t->pair, t->pair_len);
	ThrottleRefund(t->account, t->account_len, t->reserved_by);
}

/* ---------------------------------------------------------------------
 * SQL-callable functions
 * --------------------------------------------------------------------- */

/*
 * at_login(login text, password text)
 *		RETURNS TABLE(token text, user_id uuid, session_id uuid, expires_at timestamptz)
 *		login is an email or a username, either case-insensitively.  Unknown
 *		users, wrong passwords, inactive users, over-long passwords and
 *		throttled logins all do the bcrypt work of one hash at the configured
 *		cost (a stored hash of a lower cost is padded: BcryptPad) and raise
 *		28P01.  Failures are counted (shared memory) and audited even though
 *		the call's transaction aborts.  With audiotricks.allow_unverified_login
 *		off, an account whose address is not verified gets 28P01 too, with a
 *		detail saying so only after its password matched.
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
	bool		verified = false;
	bool		blocked;
	pg_uuid_t	user_id;
	text	   *stored = NULL;
	text	   *computed;
	bool		ok;
	pg_uuid_t	session_id;
	LoginThrottle tk;
	char		addr[CLIENT_ADDR_LEN];
	Datum		out[4];
	bool		outnull[4] = {false, false, false, false};

	AtHideStatementPush(&hide);
	AtRefuseIfReadOnly("log in");
	(void) AtJwtKey();			/* 55000 now if the secret is missing */
	schema = AtPgcryptoSchema();

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		RaiseBadLogin();
	login = PG_GETARG_TEXT_PP(0);
	password = AtSecretArg(fcinfo, 1);
	AuditReserve(1);			/* a failure is recorded, whatever happens */

	AtSpiConnect();
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
			verified = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
		}
	}

	ClientAddr(addr);
	LoginThrottleKeys(found, &user_id, VARDATA_ANY(login),
					  VARSIZE_ANY_EXHDR(login), addr, &tk);
	/* counted as a failure before the check: see src/throttle.c */
	blocked = !LoginThrottleReserve(&tk);

	/*
	 * The same bcrypt work whether or not the user exists or is throttled; a
	 * throttled login's password is hashed against a fresh salt, never
	 * checked.
	 */
	computed = BcryptCrypt(schema, password,
							(found && !blocked) ? stored :
							BcryptSalt(schema, audiotricks_bcrypt_cost),
							ADMISSION_ANONYMOUS, VARDATA_ANY(login), VARSIZE_ANY_EXHDR(login),
							blocked ? NULL : tk.pair, tk.pair_len);
	ok = found && active && !blocked &&
		VARSIZE_ANY_EXHDR(password) <= BCRYPT_MAX_BYTES &&
		BcryptHashMatches(computed, VARDATA_ANY(stored), VARSIZE_ANY_EXHDR(stored));
	if (!ok)
	{
		if (found && !blocked)
			BcryptPad(schema, password,
					   BcryptCostOf(VARDATA_ANY(stored), VARSIZE_ANY_EXHDR(stored)));
		if (blocked)
			AuditEventDetached("login_throttled", found ? &user_id : NULL);
		else
			AuditEventDetached("login_failed", found ? &user_id : NULL);
		RaiseBadLogin();
	}

	/*
	 * audiotricks.allow_unverified_login off: the same 28P01, whose detail
	 * says why only to whoever gave the right password; not a failure for
	 * the throttle (the password was right)
	 */
	if (!verified && !audiotricks_allow_unverified_login)
	{
		LoginThrottleSucceeded(&tk);
		AuditEventDetached("login_unverified", &user_id);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PASSWORD),
				 errmsg("invalid login or password"),
				 errdetail("The account's email address is not verified."),
				 errhint("Use the token mailed to it, or reset the password, which verifies the address too."),
				 errhidestmt(true)));
	}

	/*
	 * a stored hash of another cost is re-hashed at the configured one:
	 * raising bcrypt_cost upgrades users as they log in, and lowering it (or
	 * imported costlier hashes) converges too, so that fewer accounts stay
	 * slower to refuse than an unknown login (BcryptPad cannot pad those)
	 */
	if (BcryptCostOf(VARDATA_ANY(stored), VARSIZE_ANY_EXHDR(stored)) != audiotricks_bcrypt_cost)
		PasswordStore(schema, &user_id, password);

	values[0] = UUIDPGetDatum(&user_id);
	AtRunPlan(&plan_touch_login, values, NULL, false, 0);
	if (SPI_processed != 1)
		RaiseBadLogin();		/* deactivated meanwhile */
	/* the reservation stays counted until the login has been recorded */
	LoginThrottleSucceeded(&tk);
	issue_session(&user_id, NULL, &session_id, out);
	AtSpiFinish();
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
	char		hex[TOKEN_HASH_HEX_LEN + 1];
	Datum		values[1];
	SessionRow	row;
	pg_uuid_t	session_id;
	Datum		out[4];
	bool		outnull[4] = {false, false, false, false};

	AtHideStatementPush(&hide);
	AtRefuseIfReadOnly("refresh a token");
	if (PG_ARGISNULL(0))
		raise_bad_token();
	token = PG_GETARG_TEXT_PP(0);
	len = VARSIZE_ANY_EXHDR(token);
	if (len == 0 || len > JWT_MAX_LEN ||
		!JwtVerifyKey(AtJwtKey(), VARDATA_ANY(token), len, UnixNow(), &claims) ||
		!TokenRoleClaimOk(&claims) ||
		!JwtParseUuid(claims.sub, strlen(claims.sub), claim_user.data) ||
		!JwtParseUuid(claims.sid, strlen(claims.sid), claim_session.data))
		raise_bad_token();
	TokenHashHex(VARDATA_ANY(token), len, hex);
	AuditReserve(2);			/* a reuse must be recorded and revoked */

	AtSpiConnect();
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
	if (!row.live || family_deadline(&row.family_id) <= UnixNow())
		raise_bad_token();		/* or the family reached its lifetime cap */

	values[0] = UUIDPGetDatum(&row.id);
	AtRunPlan(&plan_mark_refreshed, values, NULL, false, 0);
	issue_session(&row.user_id, &row.family_id, &session_id, out);
	AtSpiFinish();
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
					 &user_id, &session_id))
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
		char		hex[TOKEN_HASH_HEX_LEN + 1];

		if (len > 0 && len <= JWT_MAX_LEN)
		{
			TokenHashHex(VARDATA_ANY(token), len, hex);
			AuditReserve(2);
			AtSpiConnect();
			values[0] = CStringGetTextDatum(hex);
			ended = end_one_session(&plan_session_by_hash, values, &row, &found);
			AtSpiFinish();
		}
	}
	else
	{
		IdentityRequire(&user_id, &session_id);
		AuditReserve(2);
		AtSpiConnect();
		values[0] = UUIDPGetDatum(&session_id);
		values[1] = UUIDPGetDatum(&user_id);
		ended = end_one_session(&plan_session_by_id, values, &row, &found);
		AtSpiFinish();
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
	AtSpiConnect();
	values[0] = UUIDPGetDatum(&target);
	values[1] = UUIDPGetDatum(&user_id);
	ended = end_one_session(&plan_session_by_id, values, &row, &found);
	AtSpiFinish();
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

	AtSpiConnect();
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
	AtSpiFinish();
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
	AtSpiConnect();
	values[0] = UUIDPGetDatum(&user_id);
	AtRunPlan(&plan_lock_user, values, NULL, false, 0);
	n = SessionsEndAll(values[0], true);
	AtSpiFinish();
	IdentityForgetSession(NULL);
	AuditEvent("logout_all", &user_id, &session_id, NULL);
	PG_RETURN_INT32((int32) Min(n, (uint64) PG_INT32_MAX));
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

	AtSpiConnect();
	AtRunPlan(&plan_purge, NULL, NULL, false, 0);
	n = SPI_processed;
	AtRunPlan(&plan_purge_revoked, NULL, NULL, false, 0);
	AtSpiFinish();
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
