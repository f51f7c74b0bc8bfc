/*
 * src/password.c
 *		Credentials: the rules for emails, usernames and passwords, bcrypt
 *		through pgcrypto (hashing under admission control, the padding that
 *		makes every failure cost one hash at the configured cost, the
 *		constant-time comparison), and storing a user's new hash.
 *
 * bcrypt comes from pgcrypto's crypt() and gen_salt(), looked up in
 * pgcrypto's own schema, so the caller's search_path cannot change them.
 */
#include "postgres.h"

#include <sodium.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "admission.h"
#include "audiotricks.h"
#include "password.h"
#include "spi.h"
#include "throttle.h"

#define USERNAME_MAX_CHARS	100
#define PASSWORD_MIN_CHARS	8

static AtPlan plan_set_password = {
	"UPDATE audiotricks.users SET password_hash = $2"
	" WHERE id OPERATOR(pg_catalog.=) $1",
	2, {UUIDOID, TEXTOID}, NULL
};

/*
 * PasswordStore
 *		Inside an open SPI connection: hashes password with a fresh salt at
 *		the configured cost and makes it user_id's password.
 */
void
PasswordStore(const char *schema, const pg_uuid_t *user_id, text *password)
{
	Datum		values[2];

	values[0] = UUIDPGetDatum(user_id);
	values[1] = PointerGetDatum(BcryptCrypt(schema, password,
											BcryptSalt(schema, audiotricks_bcrypt_cost),
											ADMISSION_AUTHENTICATED, NULL, 0, NULL, 0));
	AtRunPlan(&plan_set_password, values, NULL, false, 0);
}

/* raises 28P01, the one answer to every refused password check */
void
RaiseBadLogin(void)
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
text *
BcryptSalt(const char *schema, int cost)
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
text *
BcryptCrypt(const char *schema, text *password, text *setting,
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
int
BcryptCostOf(const char *hash, size_t len)
{
	if (len < 7 || hash[0] != '$' || hash[1] != '2' || hash[3] != '$' ||
		hash[6] != '$' || hash[4] < '0' || hash[4] > '9' ||
		hash[5] < '0' || hash[5] > '9')
		return -1;
	return (hash[4] - '0') * 10 + (hash[5] - '0');
}

/*
 * BcryptPad
 *		After a failed comparison against a stored hash of stored_cost (the
 *		work of cost c is about 2^c rounds), more bcrypt work so that the
 *		total equals one hash at the configured cost C: dummies at costs C-1,
 *		C-2, ..., stored_cost, which add up to 2^C - 2^stored_cost.  So a
 *		wrong password for a user whose hash predates a raise of bcrypt_cost
 *		(or was imported at a lower cost) takes as long as an unknown login,
 *		which hashes once at cost C.  Nothing when the stored cost is not
 *		lower; a hash that is not bcrypt (cost -1) is padded as from cost 4,
 *		bcrypt's least.  The padding takes no admission place (see
 *		BcryptCrypt): a second wait could end in 53400, which an unknown
 *		login never gets after its one hash, and so tell the account
 *		exists; its work is bounded by the admitted attempt it follows.
 */
void
BcryptPad(const char *schema, text *password, int stored_cost)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Oid			fn = pgcrypto_func(schema, "crypt", 2, argtypes);

	for (int c = audiotricks_bcrypt_cost - 1; c >= Max(stored_cost, 4); c--)
		(void) OidFunctionCall2(fn, PointerGetDatum(password),
								PointerGetDatum(BcryptSalt(schema, c)));
}

/* true when the computed hash a equals the stored hash b, in constant time */
bool
BcryptHashMatches(text *a, const char *b, size_t blen)
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

/* raises 22023 unless s is an acceptable email address */
void
ValidateEmail(const char *s, int len)
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

/* raises 22023 unless s is 1 to 100 ASCII letters, digits, "_" or "-" */
void
ValidateUsername(const char *s, int len)
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

/*
 * raises 22023, naming the rule, unless s is 8 characters to 72 bytes long
 * with a lowercase letter, an uppercase letter and a digit
 */
void
ValidatePassword(const char *s, int len)
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
