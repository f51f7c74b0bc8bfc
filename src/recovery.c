/*
 * src/recovery.c
 *		Account recovery: at_request_password_reset and at_reset_password,
 *		and the settings of recovery and identity changes.
 *
 * A reset token is 32 random bytes sent as unpadded base64url; only its
 * SHA-256 (hex) is stored, in audiotricks.account_tokens, and the plaintext
 * goes to the mailer role alone, sealed in the outbox (mailer.c).  A token
 * is single use (at_reset_password deletes it as it uses it), expires after
 * audiotricks.reset_ttl, and a new request overwrites the account's earlier
 * token of the same purpose (one live token per account and purpose).
 *
 * The request is open to anonymous callers, so it must tell them nothing:
 * it returns void, and a login that names no account (or that is over
 * audiotricks.max_reset_requests within the throttle window) does the same
 * statements as one that does: a token is drawn and hashed, one token row
 * is written (without a user: it can never be used), a mail is sealed and
 * queued (a decoy of kind 'none' that the mailer never sees) and an event
 * is recorded.  No bcrypt runs in either case.
 *
 * Email verification and identity changes use the same tokens and outbox:
 * at_request_email_verification (purpose verify), at_change_email in
 * accounts.c (purpose email_change; the new address is reserved until the
 * token is used or expires), at_register with require_email_verification on
 * (purpose register: the pending account, created by at_verify_email), and
 * at_verify_email, which takes all three.  Each token row names the address
 * it was mailed to, so a token for an address the account no longer has is
 * dead, and a password reset that reached the current address verifies it.
 *
 * Every query goes through SPI with parameters and schema-qualified names.
 */
#include "postgres.h"

#include <sodium.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/uuid.h"

#include "audiotricks.h"
#include "audit.h"
#include "identity.h"
#include "keyring.h"
#include "ciphertext.h"
#include "jwt.h"
#include "password.h"
#include "recovery.h"
#include "schema.h"
#include "secret.h"
#include "session.h"
#include "spi.h"
#include "throttle.h"
#include "token.h"

PG_FUNCTION_INFO_V1(at_request_password_reset);
PG_FUNCTION_INFO_V1(at_reset_password);
PG_FUNCTION_INFO_V1(at_purge_expired_tokens);
PG_FUNCTION_INFO_V1(at_verify_email);
AT_AS_OWNER_FUNCTION(at_request_email_verification);

int			audiotricks_reset_ttl = 60 * 60;
int			audiotricks_max_reset_requests = 3;
bool		audiotricks_allow_unverified_login = true;
bool		audiotricks_require_email_verification = false;
int			audiotricks_max_registrations_per_address = 0;

static AtPlan plan_account_by_login = {
	"SELECT id, email FROM audiotricks.users"
	" WHERE (pg_catalog.lower(email) OPERATOR(pg_catalog.=) pg_catalog.lower($1)"
	"     OR pg_catalog.lower(username) OPERATOR(pg_catalog.=) pg_catalog.lower($1))"
	"   AND is_active LIMIT 1",
	1, {TEXTOID}, NULL
};

/* a new request (or a reset) replaces the user's earlier reset tokens */
static AtPlan plan_drop_resets = {
	"DELETE FROM audiotricks.account_tokens"
	" WHERE user_id OPERATOR(pg_catalog.=) $1 AND purpose OPERATOR(pg_catalog.=) 'reset'",
	1, {UUIDOID}, NULL
};

/*
 * A new token replaces the account's token of that purpose in place: one
 * row written either way (a non-HOT update writes every index, as an insert
 * does), so a request for an account costs what a decoy's insert (a NULL
 * user, which never conflicts) costs.  A DELETE of the old token followed
 * by an INSERT did measurably more work than the decoy's INSERT alone.
 */
static AtPlan plan_insert_token = {
	"INSERT INTO audiotricks.account_tokens (user_id, purpose, token_hash, new_email, expires_at)"
	" VALUES ($1, $2, $3, $4, pg_catalog.now() OPERATOR(pg_catalog.+)"
	"         pg_catalog.make_interval(secs => $5))"
	" ON CONFLICT (user_id, purpose) DO UPDATE"
	" SET token_hash = excluded.token_hash, new_email = excluded.new_email,"
	"     expires_at = excluded.expires_at, created_at = excluded.created_at",
	5, {UUIDOID, TEXTOID, TEXTOID, TEXTOID, FLOAT8OID}, NULL
};

/* uses a live reset token of an active user: deleted, so used once */
static AtPlan plan_use_reset = {
	"DELETE FROM audiotricks.account_tokens t USING audiotricks.users u"
	" WHERE t.token_hash OPERATOR(pg_catalog.=) $1"
	"   AND t.purpose OPERATOR(pg_catalog.=) 'reset'"
	"   AND t.expires_at OPERATOR(pg_catalog.>) pg_catalog.now()"
	"   AND u.id OPERATOR(pg_catalog.=) t.user_id AND u.is_active"
	" RETURNING t.user_id,"
	"   pg_catalog.lower(u.email) OPERATOR(pg_catalog.=) pg_catalog.lower(t.new_email)",
	1, {TEXTOID}, NULL
};

/* a reset token mailed to the current address proves that mailbox too */
static AtPlan plan_verified_by_reset = {
	"UPDATE audiotricks.users SET email_verified_at = pg_catalog.now()"
	" WHERE id OPERATOR(pg_catalog.=) $1 AND email_verified_at IS NULL",
	1, {UUIDOID}, NULL
};

static AtPlan plan_lock_user = {
	"SELECT 1 FROM audiotricks.users"
	" WHERE id OPERATOR(pg_catalog.=) $1 FOR NO KEY UPDATE",
	1, {UUIDOID}, NULL
};

/*
 * A pending registration, keyed by a hash of its address (RecoveryDecoyId):
 * a newer registration of the address replaces it.  Its id is the id the
 * account gets.
 */
static AtPlan plan_insert_registration = {
	"INSERT INTO audiotricks.account_tokens AS t (user_id, purpose, token_hash, new_email,"
	"        expires_at, username, password_hash)"
	" VALUES ($1, 'register', $2, $3, pg_catalog.now() OPERATOR(pg_catalog.+)"
	"         pg_catalog.make_interval(secs => $4), $5, $6)"
	" ON CONFLICT (user_id, purpose) DO UPDATE"
	" SET token_hash = excluded.token_hash, new_email = excluded.new_email,"
	"     expires_at = excluded.expires_at, created_at = excluded.created_at,"
	"     username = excluded.username, password_hash = excluded.password_hash"
	" RETURNING t.id",
	6, {UUIDOID, TEXTOID, TEXTOID, FLOAT8OID, TEXTOID, TEXTOID}, NULL
};

/* uses a live registration token (a decoy's has no address) */
static AtPlan plan_use_registration = {
	"DELETE FROM audiotricks.account_tokens"
	" WHERE token_hash OPERATOR(pg_catalog.=) $1"
	"   AND purpose OPERATOR(pg_catalog.=) 'register'"
	"   AND expires_at OPERATOR(pg_catalog.>) pg_catalog.now()"
	"   AND new_email IS NOT NULL"
	" RETURNING id, new_email, username, password_hash",
	1, {TEXTOID}, NULL
};

static AtPlan plan_create_verified = {
	"WITH u AS (INSERT INTO audiotricks.users (id, email, username, password_hash, email_verified_at)"
	"           VALUES ($1, $2, $3, $4, pg_catalog.now()) ON CONFLICT DO NOTHING RETURNING id),"
	"     s AS (INSERT INTO audiotricks.user_settings (user_id) SELECT id FROM u)"
	" SELECT id FROM u",
	4, {UUIDOID, TEXTOID, TEXTOID, TEXTOID}, NULL
};

static AtPlan plan_address_taken = {
	"SELECT 1 FROM audiotricks.users"
	" WHERE pg_catalog.lower(email) OPERATOR(pg_catalog.=) pg_catalog.lower($1)",
	1, {TEXTOID}, NULL
};

/* the signed-in user's address and whether it is verified */
static AtPlan plan_user_email = {
	"SELECT email, email_verified_at IS NOT NULL FROM audiotricks.users"
	" WHERE id OPERATOR(pg_catalog.=) $1 AND is_active",
	1, {UUIDOID}, NULL
};

/*
 * uses a live verification or email change token of an active user
 * (deleted, so used once): the user, the purpose, the address it verifies,
 * and whether that is still the user's address
 */
static AtPlan plan_use_verify = {
	"DELETE FROM audiotricks.account_tokens t USING audiotricks.users u"
	" WHERE t.token_hash OPERATOR(pg_catalog.=) $1"
	"   AND t.purpose OPERATOR(pg_catalog.=) ANY (ARRAY['verify', 'email_change'])"
	"   AND t.expires_at OPERATOR(pg_catalog.>) pg_catalog.now()"
	"   AND u.id OPERATOR(pg_catalog.=) t.user_id AND u.is_active"
	" RETURNING t.user_id, t.purpose, t.new_email,"
	"   pg_catalog.lower(u.email) OPERATOR(pg_catalog.=) pg_catalog.lower(t.new_email)",
	1, {TEXTOID}, NULL
};

static AtPlan plan_mark_verified = {
	"UPDATE audiotricks.users SET email_verified_at = pg_catalog.now()"
	" WHERE id OPERATOR(pg_catalog.=) $1",
	1, {UUIDOID}, NULL
};

static AtPlan plan_email_of_other = {
	"SELECT 1 FROM audiotricks.users"
	" WHERE pg_catalog.lower(email) OPERATOR(pg_catalog.=) pg_catalog.lower($1)"
	"   AND id OPERATOR(pg_catalog.<>) $2",
	2, {TEXTOID, UUIDOID}, NULL
};

static AtPlan plan_set_email = {
	"UPDATE audiotricks.users SET email = $2, email_verified_at = pg_catalog.now()"
	" WHERE id OPERATOR(pg_catalog.=) $1",
	2, {UUIDOID, TEXTOID}, NULL
};

/* the old address's verification token is stale once the address changed */
static AtPlan plan_drop_verify = {
	"DELETE FROM audiotricks.account_tokens"
	" WHERE user_id OPERATOR(pg_catalog.=) $1 AND purpose OPERATOR(pg_catalog.=) 'verify'",
	1, {UUIDOID}, NULL
};

static AtPlan plan_purge_tokens = {
	"DELETE FROM audiotricks.account_tokens"
	" WHERE expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()",
	0, {InvalidOid}, NULL
};

/*
 * RecoveryDefineGucs
 *		The settings of recovery and identity changes; called from _PG_init.
 */
void
RecoveryDefineGucs(void)
{
	DefineCustomIntVariable("audiotricks.reset_ttl",
							"How long a password reset or email verification token is valid.",
							NULL,
							&audiotricks_reset_ttl,
							60 * 60, 60, 7 * 24 * 60 * 60,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("audiotricks.allow_unverified_login",
							 "Whether an account whose email address is not verified may log in.",
							 "Off: at_login refuses it with 28P01, with a detail saying why only after the password was right.",
							 &audiotricks_allow_unverified_login,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("audiotricks.require_email_verification",
							 "Whether registration hides which email addresses have an account.",
							 "On: at_register answers an address that has an account as it answers a new one, and mails that account a notice; a new account is mailed a verification token.",
							 &audiotricks_require_email_verification,
							 false,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("audiotricks.max_registrations_per_address",
							"Registrations from one client address within audiotricks.failed_login_window.",
							"Counted before any password is hashed; further attempts get 53400. 0 = no limit.",
							&audiotricks_max_registrations_per_address,
							0, 0, 1000000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("audiotricks.max_reset_requests",
							"Password reset requests for one account within audiotricks.failed_login_window that send a mail.",
							"Further requests answer as usual and send nothing; 0 = no limit.",
							&audiotricks_max_reset_requests,
							3, 0, 1000000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
}

/*
 * new_token
 *		Draws a token into token (RECOVERY_TOKEN_LEN characters and a NUL)
 *		and its SHA-256 hex into hex.
 */
static void
new_token(char token[RECOVERY_TOKEN_LEN + 1], char hex[TOKEN_HASH_HEX_LEN + 1])
{
	uint8_t		raw[RECOVERY_TOKEN_BYTES];

	randombytes_buf(raw, sizeof(raw));
	JwtB64Encode(raw, sizeof(raw), token);
	token[RECOVERY_TOKEN_LEN] = '\0';
	sodium_memzero(raw, sizeof(raw));
	TokenHashHex(token, RECOVERY_TOKEN_LEN, hex);
}

/*
 * RecoveryDecoyId
 *		The id a decoy token row carries for a login (or address) that names
 *		no account: BLAKE2b, keyed with the current master key, of a domain
 *		tag and the ASCII-lower-cased text.  It names no user (a collision
 *		with a real id is a 2^-128 event, and every use joins users), and is
 *		the same for every request with that text, so a repeated request
 *		overwrites its decoy exactly as a repeated request for an account
 *		overwrites that account's token (plan_insert_token): the two do the
 *		same write.  Raises 55000 without a key file.
 */
void
RecoveryDecoyId(const char *text, int len, pg_uuid_t *out)
{
	const CtKeyring *ring = KeyringCurrent();
	crypto_generichash_state st;
	static const char tag[] = "audiotricks decoy account";

	crypto_generichash_init(&st, ring->keys[ring->current].key, CT_KEY_BYTES,
							UUID_LEN);
	crypto_generichash_update(&st, (const unsigned char *) tag, sizeof(tag));
	for (int i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) text[i];

		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		crypto_generichash_update(&st, &c, 1);
	}
	crypto_generichash_final(&st, out->data, UUID_LEN);
}

/*
 * RecoveryIssueToken
 *		Inside an open SPI connection: records a token of purpose for
 *		token_user (an account, or a decoy id: RecoveryDecoyId), for address
 *		(the address it verifies; NULL for a reset), and queues a mail of
 *		kind about mail_user to recipient with the token sealed in it (kind
 *		'none' with both NULL: the decoy mail that the mailer never sees;
 *		'registration_attempt': a notice, whose token the mailer is not
 *		given).  Every caller thus writes one token row and one sealed mail.
 */
void
RecoveryIssueToken(const pg_uuid_t *token_user, const char *purpose,
				   const char *address, const pg_uuid_t *mail_user,
				   const char *recipient, const char *kind)
{
	char		token[RECOVERY_TOKEN_LEN + 1];
	char		hex[TOKEN_HASH_HEX_LEN + 1];
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};

	new_token(token, hex);
	values[0] = UUIDPGetDatum(token_user);
	values[1] = CStringGetTextDatum(purpose);
	values[2] = CStringGetTextDatum(hex);
	if (address)
		values[3] = CStringGetTextDatum(address);
	else
		nulls[3] = 'n';
	values[4] = Float8GetDatum((double) audiotricks_reset_ttl);
	if (AtRunPlan(&plan_insert_token, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record a token");
	PG_TRY();
	{
		RecoveryQueueMail(mail_user, recipient, kind, token);
	}
	PG_FINALLY();
	{
		sodium_memzero(token, sizeof(token));
	}
	PG_END_TRY();
}

/*
 * RecoveryIssueRegistration
 *		Inside an open SPI connection: records a pending registration under
 *		key (RecoveryDecoyId of the address) for address (NULL: a decoy that
 *		can never be used), username and bcrypt hash, with a new token sealed
 *		in a mail of kind about mail_user to recipient, as
 *		RecoveryIssueToken does; *id is the id the account will get.  The
 *		same statements and rows whether or not address is NULL.
 */
void
RecoveryIssueRegistration(const pg_uuid_t *key, const char *address,
						  text *username, text *hash, const pg_uuid_t *mail_user,
						  const char *recipient, const char *kind, pg_uuid_t *id)
{
	char		token[RECOVERY_TOKEN_LEN + 1];
	char		hex[TOKEN_HASH_HEX_LEN + 1];
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;

	new_token(token, hex);
	values[0] = UUIDPGetDatum(key);
	values[1] = CStringGetTextDatum(hex);
	if (address)
		values[2] = CStringGetTextDatum(address);
	else
		nulls[2] = 'n';
	values[3] = Float8GetDatum((double) audiotricks_reset_ttl);
	values[4] = PointerGetDatum(username);
	values[5] = PointerGetDatum(hash);
	if (AtRunPlan(&plan_insert_registration, values, nulls, false, 0) != SPI_OK_INSERT_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "could not record a registration");
	*id = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
	PG_TRY();
	{
		RecoveryQueueMail(mail_user, recipient, kind, token);
	}
	PG_FINALLY();
	{
		sodium_memzero(token, sizeof(token));
	}
	PG_END_TRY();
}

/*
 * at_request_password_reset(login text) RETURNS void
 *		login is an email or a username.  When it names an active account
 *		(and the account is under audiotricks.max_reset_requests this
 *		window), replaces its earlier reset tokens with a new one and queues
 *		it to the mailer; otherwise does the same work with decoys.  Returns
 *		nothing either way and raises only what both cases raise (25006 on a
 *		standby, 55000 without a key file).
 */
Datum
at_request_password_reset(PG_FUNCTION_ARGS)
{
	Datum		values[1];
	bool		found = false;
	pg_uuid_t	user_id;
	char	   *email = NULL;
	text	   *login = NULL;
	char	   *key;
	int			keylen;

	AtRefuseIfReadOnly("request a password reset");
	RecoveryRequireKeys();		/* 55000 now, the same for every login */
	if (!PG_ARGISNULL(0))
		login = PG_GETARG_TEXT_PP(0);

	AtSpiConnect();
	values[0] = login ? PointerGetDatum(login) : CStringGetTextDatum("");
	if (login == NULL ||
		VARSIZE_ANY_EXHDR(login) > EMAIL_MAX_CHARS * MAX_MULTIBYTE_CHAR_LEN)
		values[0] = CStringGetTextDatum("");
	AtRunPlan(&plan_account_by_login, values, NULL, true, 1);
	if (SPI_processed == 1)
	{
		bool		isnull;

		found = true;
		user_id = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 1, &isnull));
		email = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	}

	/* per account ('p'), or per login text ('q') as at_login does */
	if (found)
	{
		keylen = 1 + UUID_LEN;
		key = palloc(keylen);
		key[0] = 'p';
		memcpy(key + 1, user_id.data, UUID_LEN);
	}
	else
	{
		int			n = DatumGetTextPP(values[0]) ? VARSIZE_ANY_EXHDR(DatumGetTextPP(values[0])) : 0;

		keylen = 1 + n;
		key = palloc(keylen);
		key[0] = 'q';
		memcpy(key + 1, VARDATA_ANY(DatumGetTextPP(values[0])), n);
	}
	if (!ThrottleReserveLimit(key, keylen, NULL, 0, found,
							  audiotricks_max_reset_requests))
		found = false;

	if (!found)
		RecoveryDecoyId(VARDATA_ANY(DatumGetTextPP(values[0])),
						VARSIZE_ANY_EXHDR(DatumGetTextPP(values[0])), &user_id);
	if (found)
		RecoveryIssueToken(&user_id, "reset", email, &user_id, email, "password_reset");
	else
		RecoveryIssueToken(&user_id, "reset", text_to_cstring(DatumGetTextPP(values[0])),
						   NULL, NULL, "none");
	AtSpiFinish();
	AuditEvent("password_reset_requested", found ? &user_id : NULL, NULL, NULL);
	PG_RETURN_VOID();
}

/*
 * at_reset_password(token text, new_password text) RETURNS void
 *		Applies the password rules to new_password (22023), then uses the
 *		reset token (28000 `invalid or expired token` when it is unknown,
 *		used, replaced, expired, or its user inactive): stores the new
 *		password, deletes the user's other reset tokens, ends every session
 *		of the user, forgets the account's failed logins and reset requests
 *		(throttle counts), and records
 *		password_reset.
 */
Datum
at_reset_password(PG_FUNCTION_ARGS)
{
	ErrorContextCallback hide;
	text	   *token;
	text	   *newpw;
	char	   *schema;
	char		hex[TOKEN_HASH_HEX_LEN + 1];
	Datum		values[1];
	pg_uuid_t	user_id;
	bool		isnull;
	bool		mailbox;
	char		key[1 + UUID_LEN];

	AtHideStatementPush(&hide);
	AtRefuseIfReadOnly("reset a password");
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("new_password must not be null"),
				 errhidestmt(true)));
	newpw = AtSecretArg(fcinfo, 1);
	ValidatePassword(VARDATA_ANY(newpw), VARSIZE_ANY_EXHDR(newpw));
	if (PG_ARGISNULL(0))
		RecoveryBadToken();
	token = AtSecretArg(fcinfo, 0);
	if (VARSIZE_ANY_EXHDR(token) != RECOVERY_TOKEN_LEN)
		RecoveryBadToken();
	TokenHashHex(VARDATA_ANY(token), RECOVERY_TOKEN_LEN, hex);
	schema = AtPgcryptoSchema();

	AtSpiConnect();
	values[0] = CStringGetTextDatum(hex);
	AtRunPlan(&plan_use_reset, values, NULL, false, 0);
	if (SPI_processed != 1)
		RecoveryBadToken();
	user_id = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	mailbox = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 2, &isnull)) && !isnull;
	values[0] = UUIDPGetDatum(&user_id);
	AtRunPlan(&plan_lock_user, values, NULL, false, 0);
	PasswordStore(schema, &user_id, newpw);
	if (mailbox)
		AtRunPlan(&plan_verified_by_reset, values, NULL, false, 0);
	AtRunPlan(&plan_drop_resets, values, NULL, false, 0);
	(void) SessionsEndAll(values[0], true);	/* the user is locked */
	AtSpiFinish();
	IdentityForgetSession(NULL);

	/* the owner proved themselves: their failed logins are forgotten */
	key[0] = 'a';
	memcpy(key + 1, user_id.data, UUID_LEN);
	(void) ThrottleClearGroup(key, sizeof(key));
	key[0] = 'r';
	ThrottleReset(key, sizeof(key));
	key[0] = 'p';				/* and their reset requests */
	ThrottleReset(key, sizeof(key));
	AuditEvent("password_reset", &user_id, NULL, NULL);
	AtHideStatementPop(&hide);
	PG_RETURN_VOID();
}

/*
 * RecoveryBadToken
 *		Raises 28000 `invalid or expired token`.
 */
void
RecoveryBadToken(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
			 errmsg("invalid or expired token"),
			 errhidestmt(true)));
}

/*
 * at_purge_expired_tokens() RETURNS integer
 *		Deletes expired reset and verification tokens (and the decoys of
 *		requests that named no account); returns how many.  For pg_cron.
 */
Datum
at_purge_expired_tokens(PG_FUNCTION_ARGS)
{
	uint64		n;

	AtSpiConnect();
	AtRunPlan(&plan_purge_tokens, NULL, NULL, false, 0);
	n = SPI_processed;
	AtSpiFinish();
	PG_RETURN_INT32((int32) Min(n, (uint64) PG_INT32_MAX));
}

/*
 * at_request_email_verification() RETURNS void
 *		Mails the signed-in user a token that verifies their current email
 *		address (at_verify_email), replacing an earlier one.  Nothing when the
 *		address is verified already, or when the account asked
 *		audiotricks.max_reset_requests times this window.  42501 without an
 *		identity, 55000 without a key file.
 */
static Datum
at_request_email_verification_as_owner(PG_FUNCTION_ARGS)
{
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;
	Datum		values[1];
	char	   *email;
	bool		verified;
	bool		isnull;
	char		key[1 + UUID_LEN];

	AtRefuseIfReadOnly("request an email verification");
	IdentityRequire(&user_id, &session_id);
	RecoveryRequireKeys();
	AtSpiConnect();
	values[0] = UUIDPGetDatum(&user_id);
	AtRunPlan(&plan_user_email, values, NULL, false, 1);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("not authenticated")));
	email = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	verified = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 2, &isnull));
	key[0] = 'v';
	memcpy(key + 1, user_id.data, UUID_LEN);
	if (!verified &&
		ThrottleReserveLimit(key, sizeof(key), NULL, 0, true,
							 audiotricks_max_reset_requests))
	{
		RecoveryIssueToken(&user_id, "verify", email, &user_id, email,
						   "email_verification");
		AtSpiFinish();
		AuditEvent("email_verification_requested", &user_id, &session_id, NULL);
	}
	else
		AtSpiFinish();
	PG_RETURN_VOID();
}

/*
 * verify_registration
 *		For at_verify_email, inside its SPI connection, with the pending
 *		registration's row in SPI_tuptable: creates the account, verified,
 *		and its user_settings row (23505 when its address or username was
 *		taken meanwhile), records registered and email_verified, closes the
 *		connection and pops hide.
 */
static void
verify_registration(ErrorContextCallback *hide)
{
	HeapTuple	tup = SPI_tuptable->vals[0];
	TupleDesc	desc = SPI_tuptable->tupdesc;
	Datum		values[4];
	pg_uuid_t	user_id;
	bool		isnull;

	user_id = *DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull));
	values[0] = UUIDPGetDatum(&user_id);
	values[1] = SPI_getbinval(tup, desc, 2, &isnull);
	values[2] = SPI_getbinval(tup, desc, 3, &isnull);
	values[3] = SPI_getbinval(tup, desc, 4, &isnull);
	if (isnull)
		RecoveryBadToken();
	AtRunPlan(&plan_create_verified, values, NULL, false, 0);
	if (SPI_processed != 1)
	{
		AtRunPlan(&plan_address_taken, values + 1, NULL, false, 1);
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg(SPI_processed > 0 ? "email already registered" : "username already taken"),
				 errhidestmt(true)));
	}
	AtSpiFinish();
	AuditEvent("registered", &user_id, NULL, NULL);
	AuditEvent("email_verified", &user_id, NULL, NULL);
	AtHideStatementPop(hide);
}

/*
 * at_verify_email(token text) RETURNS void
 *		Uses a token that at_request_email_verification, at_change_email or
 *		at_register (require_email_verification on) mailed.  A registration
 *		token creates the account, verified (23505 when its address or
 *		username was taken meanwhile).  Otherwise (28000 `invalid or expired token` when it is
 *		unknown, used, replaced, expired, of an inactive user, or verifies an
 *		address the account no longer has).  A verification token marks the
 *		address verified (email_verified); an email change token makes the
 *		new address the account's, verified (email_changed), unless another
 *		account has it by now (23505 `email already registered`).
 */
Datum
at_verify_email(PG_FUNCTION_ARGS)
{
	ErrorContextCallback hide;
	text	   *token;
	char		hex[TOKEN_HASH_HEX_LEN + 1];
	Datum		values[2];
	pg_uuid_t	user_id;
	bool		isnull;
	bool		change;
	bool		current;
	char	   *address;

	AtHideStatementPush(&hide);
	AtRefuseIfReadOnly("verify an email address");
	if (PG_ARGISNULL(0))
		RecoveryBadToken();
	token = AtSecretArg(fcinfo, 0);
	if (VARSIZE_ANY_EXHDR(token) != RECOVERY_TOKEN_LEN)
		RecoveryBadToken();
	TokenHashHex(VARDATA_ANY(token), RECOVERY_TOKEN_LEN, hex);

	AtSpiConnect();
	values[0] = CStringGetTextDatum(hex);
	AtRunPlan(&plan_use_registration, values, NULL, false, 0);
	if (SPI_processed == 1)
	{
		verify_registration(&hide);
		PG_RETURN_VOID();
	}
	values[0] = CStringGetTextDatum(hex);
	AtRunPlan(&plan_use_verify, values, NULL, false, 0);
	if (SPI_processed != 1)
		RecoveryBadToken();
	user_id = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	change = strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2),
					"email_change") == 0;
	address = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	current = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 4, &isnull));
	if (address == NULL || (!change && (isnull || !current)))
		RecoveryBadToken();		/* the address changed since it was sent */
	values[0] = UUIDPGetDatum(&user_id);
	AtRunPlan(&plan_lock_user, values, NULL, false, 0);
	if (change)
	{
		values[0] = CStringGetTextDatum(address);
		values[1] = UUIDPGetDatum(&user_id);
		AtRunPlan(&plan_email_of_other, values, NULL, false, 1);
		if (SPI_processed > 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("email already registered"),
					 errhidestmt(true)));
		values[0] = UUIDPGetDatum(&user_id);
		values[1] = CStringGetTextDatum(address);
		AtRunPlan(&plan_set_email, values, NULL, false, 0);
		AtRunPlan(&plan_drop_verify, values, NULL, false, 0);
	}
	else
		AtRunPlan(&plan_mark_verified, values, NULL, false, 0);
	AtSpiFinish();
	AuditEvent(change ? "email_changed" : "email_verified", &user_id, NULL, NULL);
	AtHideStatementPop(&hide);
	PG_RETURN_VOID();
}
