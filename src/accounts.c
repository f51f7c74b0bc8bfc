/*
 * src/accounts.c
 *		The account's lifecycle: at_register, at_change_password,
 *		at_deactivate_account, at_delete_account, the password re-check they
 *		share, and the trigger that ends a deactivated user's sessions.
 *
 * Every query goes through SPI with parameters and fully qualified names
 * (schema-qualified relations and functions, OPERATOR(pg_catalog.x)), so the
 * caller's search_path cannot change its meaning.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "utils/uuid.h"

#include "admission.h"
#include "audiotricks.h"
#include "audit.h"
#include "client_addr.h"
#include "identity.h"
#include "password.h"
#include "recovery.h"
#include "schema.h"
#include "secret.h"
#include "session.h"
#include "spi.h"
#include "throttle.h"
#include "uuid.h"

PG_FUNCTION_INFO_V1(at_register);
AT_AS_OWNER_FUNCTION(at_change_email);
AT_AS_OWNER_FUNCTION(at_change_username);
AT_AS_OWNER_FUNCTION(at_change_password);
AT_AS_OWNER_FUNCTION(at_deactivate_account);
AT_AS_OWNER_FUNCTION(at_delete_account);
PG_FUNCTION_INFO_V1(at_end_sessions_on_deactivate);

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

/*
 * An address is taken when an account has it or a live email change of an
 * active account (other than $2) waits to give it one: a pending change
 * reserves its new address.
 */
#define EMAIL_RESERVED \
	"SELECT t.user_id FROM audiotricks.account_tokens t JOIN audiotricks.users u" \
	"    ON u.id OPERATOR(pg_catalog.=) t.user_id AND u.is_active" \
	" WHERE t.purpose OPERATOR(pg_catalog.=) 'email_change'" \
	"   AND pg_catalog.lower(t.new_email) OPERATOR(pg_catalog.=) pg_catalog.lower($1)" \
	"   AND t.expires_at OPERATOR(pg_catalog.>) pg_catalog.now()" \
	"   AND t.user_id IS DISTINCT FROM $2"

static AtPlan plan_email_reserved = {
	EMAIL_RESERVED,
	2, {TEXTOID, UUIDOID}, NULL
};

/* the account that has the address (id, email), or none */
static AtPlan plan_email_owner = {
	"SELECT id, email FROM audiotricks.users"
	" WHERE pg_catalog.lower(email) OPERATOR(pg_catalog.=) pg_catalog.lower($1)",
	1, {TEXTOID}, NULL
};

static AtPlan plan_username_taken = {
	"SELECT 1 FROM audiotricks.users"
	" WHERE pg_catalog.lower(username) OPERATOR(pg_catalog.=) pg_catalog.lower($1)"
	"   AND id IS DISTINCT FROM $2",
	2, {TEXTOID, UUIDOID}, NULL
};

/* ended or expired reservations of an address, which reserve nothing */
static AtPlan plan_drop_dead_reservations = {
	"DELETE FROM audiotricks.account_tokens t"
	" WHERE t.purpose OPERATOR(pg_catalog.=) 'email_change'"
	"   AND pg_catalog.lower(t.new_email) OPERATOR(pg_catalog.=) pg_catalog.lower($1)"
	"   AND (t.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
	"        OR NOT EXISTS (SELECT FROM audiotricks.users u"
	"                        WHERE u.id OPERATOR(pg_catalog.=) t.user_id AND u.is_active))",
	1, {TEXTOID}, NULL
};

static AtPlan plan_own_email = {
	"SELECT pg_catalog.lower(email) OPERATOR(pg_catalog.=) pg_catalog.lower($1)"
	"  FROM audiotricks.users WHERE id OPERATOR(pg_catalog.=) $2",
	2, {TEXTOID, UUIDOID}, NULL
};

static AtPlan plan_set_username = {
	"UPDATE audiotricks.users SET username = $2 WHERE id OPERATOR(pg_catalog.=) $1",
	2, {UUIDOID, TEXTOID}, NULL
};

static AtPlan plan_user_by_id = {
	"SELECT id, password_hash, is_active FROM audiotricks.users"
	" WHERE id OPERATOR(pg_catalog.=) $1",
	1, {UUIDOID}, NULL
};

static AtPlan plan_deactivate = {
	"UPDATE audiotricks.users SET is_active = false WHERE id OPERATOR(pg_catalog.=) $1",
	1, {UUIDOID}, NULL
};

static AtPlan plan_anonymize_audit = {
	"UPDATE audiotricks.audit_log SET user_id = NULL, actor_id = NULL, client_addr = NULL"
	" WHERE user_id OPERATOR(pg_catalog.=) $1",
	1, {UUIDOID}, NULL
};

/* the user's chains stay, no longer linked to the user (src/audit_chain.c) */
static AtPlan plan_anonymize_chains = {
	"UPDATE audiotricks.audit_chain_heads SET user_id = NULL"
	" WHERE user_id OPERATOR(pg_catalog.=) $1",
	1, {UUIDOID}, NULL
};

static AtPlan plan_delete_user = {
	"DELETE FROM audiotricks.users WHERE id OPERATOR(pg_catalog.=) $1",
	1, {UUIDOID}, NULL
};

/* account_tokens has no foreign key (see the install script): by hand */
static AtPlan plan_delete_tokens = {
	"DELETE FROM audiotricks.account_tokens WHERE user_id OPERATOR(pg_catalog.=) $1",
	1, {UUIDOID}, NULL
};

static AtPlan plan_logout_others = {
	"DELETE FROM audiotricks.sessions WHERE user_id OPERATOR(pg_catalog.=) $1"
	" AND id OPERATOR(pg_catalog.<>) $2",
	2, {UUIDOID, UUIDOID}, NULL
};

/* raises 22023 when argument n (named what) is NULL */
static void
require_arg(FunctionCallInfo fcinfo, int n, const char *what)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be null", what),
				 errhidestmt(true)));
}

/*
 * check_own_password
 *		Inside an open SPI connection: true when password is the current
 *		password of user_id and the user is active.  A failure does the
 *		bcrypt work of one hash at the configured cost, whatever the stored
 *		hash's cost (BcryptPad) and also when throttled.
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
	computed = BcryptCrypt(schema, password,
							(stored && !blocked) ? stored :
							BcryptSalt(schema, audiotricks_bcrypt_cost),
							ADMISSION_AUTHENTICATED, tkey, sizeof(tkey),
							blocked ? NULL : tkey, sizeof(tkey));
	ok = stored != NULL && active && !blocked &&
		VARSIZE_ANY_EXHDR(password) <= BCRYPT_MAX_BYTES &&
		BcryptHashMatches(computed, VARDATA_ANY(stored), VARSIZE_ANY_EXHDR(stored));
	if (!ok)
	{
		if (stored && !blocked)
			BcryptPad(schema, password,
					   BcryptCostOf(VARDATA_ANY(stored), VARSIZE_ANY_EXHDR(stored)));
		if (blocked)
			AuditEventDetached("login_throttled", user_id);
		else
			AuditEventDetached("login_failed", user_id);
	}
	else
		ThrottleReset(tkey, sizeof(tkey));
	return ok;
}

/* ---------------------------------------------------------------------
 * SQL-callable functions
 * --------------------------------------------------------------------- */

/*
 * register_throttled
 *		True when the caller's client address (client_addr.c) has made
 *		audiotricks.max_registrations_per_address registrations this window
 *		(audiotricks.failed_login_window); counts this one otherwise.  Runs
 *		before any bcrypt, so refused attempts cost no hashing.
 */
static bool
register_throttled(void)
{
	char		addr[CLIENT_ADDR_LEN];
	char		key[1 + CLIENT_ADDR_LEN];
	int			alen;

	if (audiotricks_max_registrations_per_address <= 0)
		return false;
	ClientAddr(addr);
	alen = strlen(addr);
	key[0] = 'g';
	memcpy(key + 1, addr, alen);
	return !ThrottleReserveLimit(key, 1 + alen, NULL, 0, true,
								 audiotricks_max_registrations_per_address);
}

/*
 * at_register(email text, username text, password text) RETURNS uuid
 *		Creates the user and their user_settings row.  Raises 22023 on a bad
 *		input (naming the rule), 53400 over
 *		audiotricks.max_registrations_per_address, 23505 on a taken username,
 *		and on a taken email (an account's, or the new address of a pending
 *		email change) unless audiotricks.require_email_verification is on.
 *		With it on, no account is created here: a pending registration is
 *		recorded and its token mailed to the address (at_verify_email creates
 *		the account, verified); a taken address (an account's, or reserved)
 *		is answered alike, after the same bcrypt and the same statements: a
 *		decoy registration that can never be used and a sealed mail (a
 *		registration_attempt notice to the account that has the address).
 *		The answer is the id the account will get, or for a taken address a
 *		UUIDv7 that names no one.
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
	char		nulls[3] = {' ', 'n', ' '};
	pg_uuid_t  *result = NULL;
	bool		email_taken = false;
	bool		require = audiotricks_require_email_verification;
	pg_uuid_t	owner;
	char	   *owner_email = NULL;
	bool		isnull;

	AtHideStatementPush(&hide);
	require_arg(fcinfo, 0, "email");
	require_arg(fcinfo, 1, "username");
	require_arg(fcinfo, 2, "password");
	email = PG_GETARG_TEXT_PP(0);
	username = PG_GETARG_TEXT_PP(1);
	password = AtSecretArg(fcinfo, 2);

	ValidateEmail(VARDATA_ANY(email), VARSIZE_ANY_EXHDR(email));
	ValidateUsername(VARDATA_ANY(username), VARSIZE_ANY_EXHDR(username));
	ValidatePassword(VARDATA_ANY(password), VARSIZE_ANY_EXHDR(password));
	if (require)
		RecoveryRequireKeys();	/* 55000 now, before any work */
	if (register_throttled())
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many registrations from this address"),
				 errhint("Try again later."),
				 errhidestmt(true)));

	schema = AtPgcryptoSchema();
	hash = BcryptCrypt(schema, password, BcryptSalt(schema, audiotricks_bcrypt_cost),
						ADMISSION_ANONYMOUS, VARDATA_ANY(email), VARSIZE_ANY_EXHDR(email),
						NULL, 0);

	values[0] = PointerGetDatum(email);
	values[1] = PointerGetDatum(username);
	values[2] = PointerGetDatum(hash);

	AtSpiConnect();
	if (require)
	{
		Datum		uvalues[2];
		pg_uuid_t	key;
		char	   *addr = text_to_cstring(email);
		bool		reserved;

		/* usernames are public: a taken one is refused, before the email */
		uvalues[0] = PointerGetDatum(username);
		AtRunPlan(&plan_username_taken, uvalues, nulls, true, 1);
		if (SPI_processed > 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("username already taken"),
					 errhidestmt(true)));
		AtRunPlan(&plan_email_owner, values, NULL, true, 1);
		if (SPI_processed == 1)
		{
			email_taken = true;
			owner = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc, 1, &isnull));
			owner_email = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		}
		AtRunPlan(&plan_email_reserved, values, nulls, true, 1);
		reserved = SPI_processed > 0;

		/*
		 * No account yet, either way: a pending registration (a decoy for a
		 * taken address) and one sealed mail, so both answer alike; the
		 * account is created by at_verify_email.
		 */
		result = SPI_palloc(sizeof(pg_uuid_t));
		RecoveryDecoyId(addr, strlen(addr), &key);
		if (owner_email)
			RecoveryIssueRegistration(&key, NULL, username, hash, &owner,
									  owner_email, "registration_attempt", result);
		else if (reserved)
			RecoveryIssueRegistration(&key, NULL, username, hash, NULL, NULL,
									  "none", result);
		else
			RecoveryIssueRegistration(&key, addr, username, hash, NULL, addr,
									  "email_verification", result);
		AtSpiFinish();
		if (email_taken || reserved)
			AuditEvent("registration_for_existing_email", owner_email ? &owner : NULL,
					   NULL, NULL);
		else
			AuditEvent("registration_requested", result, NULL, NULL);
		AtHideStatementPop(&hide);
		PG_RETURN_UUID_P(result);
	}
	AtRunPlan(&plan_email_reserved, values, nulls, true, 1);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("email already registered"),
				 errhidestmt(true)));
	if (AtRunPlan(&plan_register, values, NULL, false, 0) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
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
	AtSpiFinish();

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
	AtRefuseIfReadOnly("change a password");
	IdentityRequire(&user_id, &session_id);
	require_arg(fcinfo, 0, "current_password");
	require_arg(fcinfo, 1, "new_password");
	current = AtSecretArg(fcinfo, 0);
	newpw = AtSecretArg(fcinfo, 1);
	schema = AtPgcryptoSchema();

	AtSpiConnect();
	if (!check_own_password(schema, &user_id, current))
		RaiseBadLogin();
	ValidatePassword(VARDATA_ANY(newpw), VARSIZE_ANY_EXHDR(newpw));

	PasswordStore(schema, &user_id, newpw);

	values[0] = UUIDPGetDatum(&user_id);
	values[1] = UUIDPGetDatum(&session_id);
	AtRunPlanLatest(&plan_logout_others, values);	/* the UPDATE locked the user */
	AtSpiFinish();
	AuditEvent("password_changed", &user_id, &session_id, NULL);

	AtHideStatementPop(&hide);
	PG_RETURN_VOID();
}

/*
 * at_change_email(current_password text, new_email text) RETURNS void
 *		Checks the password (28P01 if wrong, throttled like at_login) and the
 *		new address (22023; 22023 too when it is the current one), then mails
 *		a token to the new address; at_verify_email with it makes the address
 *		the account's.  Until then the old address stays, and the new one is
 *		reserved: no other account can register or change to it.  A taken
 *		address (an account's, or reserved) raises 23505 `email already
 *		registered`, or, with audiotricks.require_email_verification on, is
 *		answered the same as a free one (a decoy token, no mail).  A newer
 *		request replaces the pending one.  42501 without an identity, 55000
 *		without a key file.
 */
static Datum
at_change_email_as_owner(PG_FUNCTION_ARGS)
{
	ErrorContextCallback hide;
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;
	text	   *current;
	text	   *new_email;
	char	   *addr;
	char	   *schema;
	Datum		values[2];
	bool		isnull;
	bool		taken;

	AtHideStatementPush(&hide);
	AtRefuseIfReadOnly("change an email address");
	IdentityRequire(&user_id, &session_id);
	require_arg(fcinfo, 0, "current_password");
	require_arg(fcinfo, 1, "new_email");
	current = AtSecretArg(fcinfo, 0);
	new_email = PG_GETARG_TEXT_PP(1);
	ValidateEmail(VARDATA_ANY(new_email), VARSIZE_ANY_EXHDR(new_email));
	RecoveryRequireKeys();
	schema = AtPgcryptoSchema();
	addr = text_to_cstring(new_email);

	AtSpiConnect();
	if (!check_own_password(schema, &user_id, current))
		RaiseBadLogin();
	values[0] = PointerGetDatum(new_email);
	values[1] = UUIDPGetDatum(&user_id);
	AtRunPlan(&plan_own_email, values, NULL, true, 1);
	if (SPI_processed == 1 &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("new_email is the account's address already"),
				 errhidestmt(true)));
	AtRunPlan(&plan_drop_dead_reservations, values, NULL, false, 0);
	AtRunPlan(&plan_email_owner, values, NULL, true, 1);
	taken = SPI_processed > 0;
	if (!taken)
	{
		AtRunPlan(&plan_email_reserved, values, NULL, true, 1);
		taken = SPI_processed > 0;
	}
	if (taken && !audiotricks_require_email_verification)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("email already registered"),
				 errhidestmt(true)));
	if (taken)
	{
		pg_uuid_t	decoy;

		RecoveryDecoyId(addr, strlen(addr), &decoy);
		RecoveryIssueToken(&decoy, "email_change", NULL, NULL, NULL, "none");
	}
	else
		RecoveryIssueToken(&user_id, "email_change", addr, &user_id, addr,
						   "email_change");
	AtSpiFinish();
	AuditEvent("email_change_requested", &user_id, &session_id, NULL);
	AtHideStatementPop(&hide);
	PG_RETURN_VOID();
}

/*
 * at_change_username(current_password text, new_username text) RETURNS void
 *		Checks the password (28P01 if wrong, throttled like at_login) and the
 *		new username (22023), and makes it the account's; 23505 `username
 *		already taken` when another account has it (case-insensitively; a
 *		change of case of one's own is allowed).  42501 without an identity.
 */
static Datum
at_change_username_as_owner(PG_FUNCTION_ARGS)
{
	ErrorContextCallback hide;
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;
	text	   *current;
	text	   *username;
	char	   *schema;
	Datum		values[2];

	AtHideStatementPush(&hide);
	AtRefuseIfReadOnly("change a username");
	IdentityRequire(&user_id, &session_id);
	require_arg(fcinfo, 0, "current_password");
	require_arg(fcinfo, 1, "new_username");
	current = AtSecretArg(fcinfo, 0);
	username = PG_GETARG_TEXT_PP(1);
	ValidateUsername(VARDATA_ANY(username), VARSIZE_ANY_EXHDR(username));
	schema = AtPgcryptoSchema();

	AtSpiConnect();
	if (!check_own_password(schema, &user_id, current))
		RaiseBadLogin();
	values[0] = PointerGetDatum(username);
	values[1] = UUIDPGetDatum(&user_id);
	AtRunPlan(&plan_username_taken, values, NULL, false, 1);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("username already taken"),
				 errhidestmt(true)));
	values[0] = UUIDPGetDatum(&user_id);
	values[1] = PointerGetDatum(username);
	AtRunPlan(&plan_set_username, values, NULL, false, 0);
	AtSpiFinish();
	AuditEvent("username_changed", &user_id, &session_id, NULL);
	AtHideStatementPop(&hide);
	PG_RETURN_VOID();
}

/*
 * end_account
 *		Shared by at_deactivate_account and at_delete_account: refuses on a
 *		standby (25006), needs an identity (42501) and the user's password in
 *		argument 0 (22023 if NULL, 28P01 if wrong, throttled like at_login),
 *		then runs the plan change with the user id as $1 and, when deleting,
 *		anonymises the user's audit events, else ends their sessions; ends
 *		the identity and records the event (for deletion, without the user).
 */
static void
end_account(FunctionCallInfo fcinfo, const char *what, AtPlan *change,
			const char *event, bool deleting)
{
	ErrorContextCallback hide;
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;
	text	   *password;
	char	   *schema;
	Datum		values[1];

	AtHideStatementPush(&hide);
	AtRefuseIfReadOnly(what);
	IdentityRequire(&user_id, &session_id);
	require_arg(fcinfo, 0, "password");
	password = AtSecretArg(fcinfo, 0);
	schema = AtPgcryptoSchema();

	AtSpiConnect();
	if (!check_own_password(schema, &user_id, password))
		RaiseBadLogin();
	values[0] = UUIDPGetDatum(&user_id);
	AtRunPlan(change, values, NULL, false, 0);
	if (deleting)
	{
		AtRunPlan(&plan_delete_tokens, values, NULL, false, 0);
		/* the last event of the user's chain, anonymised with the others */
		AuditEvent(event, &user_id, NULL, NULL);
		AtRunPlan(&plan_anonymize_audit, values, NULL, false, 0);
		AtRunPlan(&plan_anonymize_chains, values, NULL, false, 0);
	}
	else
		(void) SessionsEndAll(values[0], false);
	AtSpiFinish();
	IdentityForgetSession(NULL);
	if (!deleting)
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
				"account_deactivated", false);
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
				"account_deleted", true);
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

	AtSpiConnect();
	(void) SessionsEndAll(values[0], true); /* the UPDATE locked the user */
	AtSpiFinish();
	return PointerGetDatum(NULL);
}
