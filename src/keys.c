/*
 * src/keys.c
 *		Encrypted API keys: the raw pair at_encrypt_key / at_decrypt_key, the
 *		per-user at_set_api_key / at_get_api_key / at_api_key_status, and
 *		at_rotate_api_keys.
 *		Their master keys come from keyring.c.
 *
 * The ciphertext format and both AES-256-GCM implementations live in the
 * pure-C ciphertext.c; this file adds the server side: errors, nonces,
 * identity and SPI.
 */
#include "postgres.h"

#include <sodium.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "audiotricks.h"
#include "audit.h"
#include "ciphertext.h"
#include "identity.h"
#include "keyring.h"
#include "schema.h"
#include "secret.h"
#include "spi.h"
#include "srf.h"

PG_FUNCTION_INFO_V1(at_encrypt_key);
PG_FUNCTION_INFO_V1(at_decrypt_key);
AT_AS_OWNER_FUNCTION(at_set_api_key);
AT_AS_OWNER_FUNCTION(at_get_api_key);
AT_AS_OWNER_FUNCTION(at_api_key_status);
PG_FUNCTION_INFO_V1(at_rotate_api_keys);

#define API_KEY_MAX_BYTES	4096
#define ROTATE_BATCH_MAX	1000000
/* at_api_key_status shows the last 4 characters only of keys this long */
#define STATUS_LAST_CHARS	4
#define STATUS_MIN_CHARS	8

/* nonces come from libsodium's CSPRNG, fetched 64 at a time per process */
#define NONCE_BATCH		64
static uint8_t nonce_buf[NONCE_BATCH * CT_NONCE_BYTES];
static int	nonce_next = NONCE_BATCH;
static int	nonce_pid = 0;

/* ---------------------------------------------------------------------
 * Errors
 * --------------------------------------------------------------------- */

static void
raise_ct(CtResult r, uint16_t key_id)
{
	switch (r)
	{
		case CT_OK:
			return;
		case CT_ERR_MALFORMED:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("malformed ciphertext"),
					 errdetail("The value is not an audiotricks \"at1\" ciphertext, or it is truncated."),
					 errhidestmt(true)));
			break;
		case CT_ERR_UNKNOWN_KEY:
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("key %u is not in audiotricks.key_file", (unsigned) key_id),
					 errdetail("The value was encrypted under a master key that this server does not hold."),
					 errhint("Install the key file that belongs to this data, or add the old key back to it."),
					 errhidestmt(true)));
			break;
		case CT_ERR_KEY_MISMATCH:
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("key %u does not match the key that encrypted this value", (unsigned) key_id),
					 errdetail("The key with this id in audiotricks.key_file has another fingerprint: the value comes from a server with a different key set, for example through a restored dump."),
					 errhint("Install the key file that belongs to this data."),
					 errhidestmt(true)));
			break;
		case CT_ERR_AUTH:
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("ciphertext could not be authenticated"),
					 errdetail("The context does not match the one it was encrypted with, or the value was altered."),
					 errhidestmt(true)));
			break;
		case CT_ERR_TOO_LONG:
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("plaintext is too long"),
					 errdetail("At most %d bytes can be encrypted.", CT_MAX_PLAINTEXT),
					 errhidestmt(true)));
			break;
		case CT_ERR_CONTEXT_TOO_LONG:
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("context is too long"),
					 errdetail("A context can be at most %d bytes.", CT_MAX_CONTEXT),
					 errhidestmt(true)));
			break;
		case CT_ERR_BACKEND:
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("libsodium's AES-256-GCM is not available on this CPU"),
					 errhint("Set audiotricks.aes_backend to auto or openssl."),
					 errhidestmt(true)));
			break;
		case CT_ERR_INTERNAL:
			elog(ERROR, "AES-256-GCM failed");
			break;
	}
}

/*
 * next_nonce
 *		A fresh 96-bit nonce from libsodium's CSPRNG.  Fetched in batches to
 *		spare a getrandom() call per encryption; the batch belongs to one
 *		process (refetched if MyProcPid changes), so no two processes can
 *		ever use the same buffered nonce.
 */
static void
next_nonce(uint8_t out[CT_NONCE_BYTES])
{
	if (nonce_next >= NONCE_BATCH || nonce_pid != MyProcPid)
	{
		randombytes_buf(nonce_buf, sizeof(nonce_buf));
		nonce_next = 0;
		nonce_pid = MyProcPid;
	}
	memcpy(out, nonce_buf + nonce_next * CT_NONCE_BYTES, CT_NONCE_BYTES);
	/* never hand out the same bytes twice */
	sodium_memzero(nonce_buf + nonce_next * CT_NONCE_BYTES, CT_NONCE_BYTES);
	nonce_next++;
}

/* ---------------------------------------------------------------------
 * Sealing and opening text values
 * --------------------------------------------------------------------- */

/*
 * seal_text
 *		The at1 text of plaintext (palloc'd in the current context) under the
 *		current master key.  Raises as raise_ct.
 */
static text *
seal_text(char domain, const uint8_t *context, size_t context_len,
		  const char *plaintext, size_t len)
{
	const CtKeyring *ring;
	size_t		cap;
	text	   *out;
	uint8_t    *scratch;
	size_t		outlen;
	CtResult	r;
	uint8_t		nonce[CT_NONCE_BYTES];

	if (len > CT_MAX_PLAINTEXT)
		raise_ct(CT_ERR_TOO_LONG, 0);
	if (context_len > CT_MAX_CONTEXT)
		raise_ct(CT_ERR_CONTEXT_TOO_LONG, 0);
	ring = KeyringCurrent();
	cap = CtEncodedLen(len);
	out = palloc(VARHDRSZ + cap);
	scratch = palloc(len + CT_TAG_BYTES);
	next_nonce(nonce);
	r = CtSeal(&ring->keys[ring->current],
			   (CtBackend) audiotricks_aes_backend, domain, nonce,
			   context, context_len, (const uint8_t *) plaintext, len,
			   scratch, len + CT_TAG_BYTES, VARDATA(out), cap, &outlen);
	pfree(scratch);
	raise_ct(r, 0);
	SET_VARSIZE(out, VARHDRSZ + outlen);
	return out;
}

/*
 * open_text
 *		The plaintext of an at1 text as a text datum palloc'd in the current
 *		context (the caller wipes it if it is not the function's result).
 *		Raises 22P02, 55000, 22000 or 22021 (not valid in the database
 *		encoding); never with any plaintext byte.
 */
static text *
open_text(char domain, const uint8_t *context, size_t context_len,
		  const char *ciphertext, size_t len)
{
	const CtKeyring *ring;
	CtParsed	parsed;
	CtResult	r;
	text	   *out;
	size_t		outlen;

	if (context_len > CT_MAX_CONTEXT)
		raise_ct(CT_ERR_CONTEXT_TOO_LONG, 0);
	r = CtParse(ciphertext, len, &parsed);
	raise_ct(r, 0);
	ring = KeyringCurrent();
	out = palloc(VARHDRSZ + parsed.sealed_len);
	r = CtOpen(ring, (CtBackend) audiotricks_aes_backend, domain, &parsed,
			   context, context_len, (uint8_t *) VARDATA(out),
			   parsed.sealed_len, &outlen);
	if (r != CT_OK)
	{
		pfree(out);
		raise_ct(r, parsed.key_id);
	}
	SET_VARSIZE(out, VARHDRSZ + outlen);
	if (!pg_verifymbstr(VARDATA(out), (int) outlen, true))
	{
		sodium_memzero(VARDATA(out), outlen);
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("decrypted value is not valid in the database encoding"),
				 errhidestmt(true)));
	}
	return out;
}

/* ---------------------------------------------------------------------
 * The raw pair
 * --------------------------------------------------------------------- */

/*
 * at_encrypt_key(plaintext text, context text DEFAULT '') RETURNS text
 *		The at1 ciphertext of plaintext under the current master key, with
 *		context bound as associated data; palloc'd in the caller's context.
 *		Raises 55000 (key file), 54000 (plaintext over 1 MB, context over
 *		1 kB).  Superuser only unless granted (see the install script).
 */
Datum
at_encrypt_key(PG_FUNCTION_ARGS)
{
	ErrorContextCallback hide;
	text	   *plaintext;
	text	   *context;
	text	   *result;

	AtHideStatementPush(&hide);
	plaintext = AtSecretArg(fcinfo, 0);
	context = PG_GETARG_TEXT_PP(1);
	result = seal_text(CT_DOMAIN_RAW,
					   (const uint8_t *) VARDATA_ANY(context), VARSIZE_ANY_EXHDR(context),
					   VARDATA_ANY(plaintext), VARSIZE_ANY_EXHDR(plaintext));
	AtHideStatementPop(&hide);
	PG_RETURN_TEXT_P(result);
}

/*
 * at_decrypt_key(ciphertext text, context text DEFAULT '') RETURNS text
 *		The plaintext of an at_encrypt_key value, palloc'd in the caller's
 *		context.  Raises 22P02 (malformed or truncated), 55000 (key file,
 *		unknown key id, key that does not match), 22000 (wrong context or
 *		altered value).  Values of at_set_api_key never decrypt here (another
 *		domain in the associated data).
 */
Datum
at_decrypt_key(PG_FUNCTION_ARGS)
{
	ErrorContextCallback hide;
	text	   *ciphertext;
	text	   *context;
	text	   *result;

	AtHideStatementPush(&hide);
	ciphertext = PG_GETARG_TEXT_PP(0);
	context = PG_GETARG_TEXT_PP(1);
	result = open_text(CT_DOMAIN_RAW,
					   (const uint8_t *) VARDATA_ANY(context), VARSIZE_ANY_EXHDR(context),
					   VARDATA_ANY(ciphertext), VARSIZE_ANY_EXHDR(ciphertext));
	AtHideStatementPop(&hide);
	PG_RETURN_TEXT_P(result);
}

/* ---------------------------------------------------------------------
 * Per-user API keys
 * --------------------------------------------------------------------- */

typedef enum Provider
{
	PROVIDER_OPENAI = 0,
	PROVIDER_ELEVENLABS = 1,
	PROVIDER_COUNT
} Provider;

static const char *const provider_names[PROVIDER_COUNT] = {"openai", "elevenlabs"};

/* $2 NULL clears the key and its set_at; rotation leaves set_at alone */
static AtPlan plan_set[PROVIDER_COUNT] = {
	{
		"INSERT INTO audiotricks.user_settings AS s"
		" (user_id, openai_api_key_encrypted, openai_api_key_set_at)"
		" VALUES ($1, $2, CASE WHEN $2 IS NULL THEN NULL ELSE pg_catalog.now() END)"
		" ON CONFLICT (user_id) DO UPDATE"
		" SET openai_api_key_encrypted = EXCLUDED.openai_api_key_encrypted,"
		"     openai_api_key_set_at = EXCLUDED.openai_api_key_set_at",
		2, {UUIDOID, TEXTOID}, NULL
	},
	{
		"INSERT INTO audiotricks.user_settings AS s"
		" (user_id, elevenlabs_api_key_encrypted, elevenlabs_api_key_set_at)"
		" VALUES ($1, $2, CASE WHEN $2 IS NULL THEN NULL ELSE pg_catalog.now() END)"
		" ON CONFLICT (user_id) DO UPDATE"
		" SET elevenlabs_api_key_encrypted = EXCLUDED.elevenlabs_api_key_encrypted,"
		"     elevenlabs_api_key_set_at = EXCLUDED.elevenlabs_api_key_set_at",
		2, {UUIDOID, TEXTOID}, NULL
	}
};

static AtPlan plan_status = {
	"SELECT openai_api_key_encrypted, openai_api_key_set_at,"
	"       elevenlabs_api_key_encrypted, elevenlabs_api_key_set_at"
	" FROM audiotricks.user_settings WHERE user_id OPERATOR(pg_catalog.=) $1",
	1, {UUIDOID}, NULL
};

static AtPlan plan_get[PROVIDER_COUNT] = {
	{
		"SELECT openai_api_key_encrypted FROM audiotricks.user_settings"
		" WHERE user_id OPERATOR(pg_catalog.=) $1",
		1, {UUIDOID}, NULL
	},
	{
		"SELECT elevenlabs_api_key_encrypted FROM audiotricks.user_settings"
		" WHERE user_id OPERATOR(pg_catalog.=) $1",
		1, {UUIDOID}, NULL
	}
};

static AtPlan plan_rotate_batch = {
	"SELECT user_id, openai_api_key_encrypted, elevenlabs_api_key_encrypted"
	" FROM audiotricks.user_settings"
	" WHERE (openai_api_key_encrypted IS NOT NULL"
	"        AND NOT pg_catalog.starts_with(openai_api_key_encrypted, $1))"
	"    OR (elevenlabs_api_key_encrypted IS NOT NULL"
	"        AND NOT pg_catalog.starts_with(elevenlabs_api_key_encrypted, $1))"
	" ORDER BY user_id LIMIT $2 FOR UPDATE SKIP LOCKED",
	2, {TEXTOID, INT8OID}, NULL
};

static AtPlan plan_rotate_update = {
	"UPDATE audiotricks.user_settings"
	" SET openai_api_key_encrypted = $2, elevenlabs_api_key_encrypted = $3"
	" WHERE user_id OPERATOR(pg_catalog.=) $1",
	3, {UUIDOID, TEXTOID, TEXTOID}, NULL
};

static AtPlan plan_rotate_remaining = {
	"SELECT (pg_catalog.count(*) FILTER (WHERE openai_api_key_encrypted IS NOT NULL"
	"          AND NOT pg_catalog.starts_with(openai_api_key_encrypted, $1)))"
	"   OPERATOR(pg_catalog.+)"
	"       (pg_catalog.count(*) FILTER (WHERE elevenlabs_api_key_encrypted IS NOT NULL"
	"          AND NOT pg_catalog.starts_with(elevenlabs_api_key_encrypted, $1)))"
	" FROM audiotricks.user_settings",
	1, {TEXTOID}, NULL
};

static Provider
provider_arg(FunctionCallInfo fcinfo, int n)
{
	text	   *t;
	size_t		len;
	int			i;

	if (!PG_ARGISNULL(n))
	{
		t = PG_GETARG_TEXT_PP(n);
		len = VARSIZE_ANY_EXHDR(t);
		for (i = 0; i < PROVIDER_COUNT; i++)
			if (len == strlen(provider_names[i]) &&
				memcmp(VARDATA_ANY(t), provider_names[i], len) == 0)
				return (Provider) i;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown provider"),
			 errdetail("The provider must be \"openai\" or \"elevenlabs\"."),
			 errhidestmt(true)));
	return PROVIDER_OPENAI;		/* keep the compiler quiet */
}

/* associated context of a stored key: the user's 16 bytes, then the provider */
static size_t
api_key_context(const pg_uuid_t *user_id, Provider p, uint8_t *buf)
{
	size_t		n = strlen(provider_names[p]);

	memcpy(buf, user_id->data, UUID_LEN);
	memcpy(buf + UUID_LEN, provider_names[p], n);
	return UUID_LEN + n;
}

/*
 * at_set_api_key(provider text, api_key text) RETURNS void
 *		Encrypts api_key for the current user and provider (both bound as
 *		associated data) and stores it with the time it was set; NULL or ''
 *		clears both.  The plaintext never reaches a table.  Raises 42501 without an identity, 22023 for an
 *		unknown provider or a key over 4096 bytes, 55000 (key file).
 */
static Datum
at_set_api_key_as_owner(PG_FUNCTION_ARGS)
{
	ErrorContextCallback hide;
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;
	Provider	p;
	uint8_t		ctx[UUID_LEN + 16];
	size_t		ctx_len;
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	char		detail[64];

	AtHideStatementPush(&hide);
	IdentityRequire(&user_id, &session_id);
	p = provider_arg(fcinfo, 0);
	ctx_len = api_key_context(&user_id, p, ctx);

	if (PG_ARGISNULL(1) || VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(1)) == 0)
	{
		values[1] = (Datum) 0;
		nulls[1] = 'n';
	}
	else
	{
		text	   *key = AtSecretArg(fcinfo, 1);

		if (VARSIZE_ANY_EXHDR(key) > API_KEY_MAX_BYTES)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("api key is too long"),
					 errdetail("An API key can be at most %d bytes.", API_KEY_MAX_BYTES),
					 errhidestmt(true)));
		values[1] = PointerGetDatum(seal_text(CT_DOMAIN_API_KEY, ctx, ctx_len,
											  VARDATA_ANY(key),
											  VARSIZE_ANY_EXHDR(key)));
	}
	values[0] = UUIDPGetDatum(&user_id);

	AtSpiConnect();
	if (AtRunPlan(&plan_set[p], values, nulls, false, 0) != SPI_OK_INSERT ||
		SPI_processed != 1)
		elog(ERROR, "could not store the api key");
	AtSpiFinish();

	snprintf(detail, sizeof(detail), "{\"provider\": \"%s\"}", provider_names[p]);
	AuditEvent(nulls[1] == 'n' ? "api_key_cleared" : "api_key_set",
			   &user_id, &session_id, detail);
	AtHideStatementPop(&hide);
	PG_RETURN_VOID();
}

/*
 * at_get_api_key(provider text) RETURNS text
 *		The current user's plaintext key for provider (palloc'd in the
 *		caller's context), or NULL when none is stored.  Raises 42501 without
 *		an identity, 22023 for an unknown provider, and when the stored value
 *		does not decrypt: 22P02, 55000 (key file, unknown or mismatched key)
 *		or 22000 (not this user's or provider's value, or altered).
 */
static Datum
at_get_api_key_as_owner(PG_FUNCTION_ARGS)
{
	ErrorContextCallback hide;
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;
	Provider	p;
	uint8_t		ctx[UUID_LEN + 16];
	size_t		ctx_len;
	Datum		values[1];
	text	   *stored = NULL;
	text	   *result = NULL;
	MemoryContext caller = CurrentMemoryContext;

	AtHideStatementPush(&hide);
	IdentityRequire(&user_id, &session_id);
	p = provider_arg(fcinfo, 0);
	ctx_len = api_key_context(&user_id, p, ctx);
	values[0] = UUIDPGetDatum(&user_id);

	AtSpiConnect();
	AtRunPlan(&plan_get[p], values, NULL, true, 1);
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
		{
			MemoryContext old = MemoryContextSwitchTo(caller);

			stored = DatumGetTextPP(datumCopy(d, false, -1));
			MemoryContextSwitchTo(old);
		}
	}
	AtSpiFinish();

	if (stored != NULL)
		result = open_text(CT_DOMAIN_API_KEY, ctx, ctx_len,
						   VARDATA_ANY(stored), VARSIZE_ANY_EXHDR(stored));
	AtHideStatementPop(&hide);
	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(result);
}

/*
 * at_api_key_status()
 *		RETURNS TABLE(provider text, is_set boolean, last4 text, set_at timestamptz)
 *		One row per provider (openai, elevenlabs) for the current user: whether
 *		a key is stored, its last 4 characters (NULL when none is stored or the
 *		key is shorter than 8 characters, where 4 would give away too much),
 *		and when it was set.  The key is decrypted in a private memory context
 *		that is wiped when deleted, also on error; only the 4 characters leave
 *		it.  Raises 42501 without an identity, and what at_get_api_key raises
 *		for a stored value that does not decrypt.
 */
static Datum
at_api_key_status_as_owner(PG_FUNCTION_ARGS)
{
	ErrorContextCallback hide;
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;
	Tuplestorestate *store;
	TupleDesc	desc;
	Datum		values[1];
	text	   *stored[PROVIDER_COUNT] = {NULL, NULL};
	Datum		set_at[PROVIDER_COUNT] = {0, 0};
	bool		set_at_null[PROVIDER_COUNT] = {true, true};
	MemoryContext caller = CurrentMemoryContext;
	int			p;

	AtHideStatementPush(&hide);
	IdentityRequire(&user_id, &session_id);
	store = AtMaterialize(fcinfo, &desc);
	values[0] = UUIDPGetDatum(&user_id);

	AtSpiConnect();
	AtRunPlan(&plan_status, values, NULL, true, 1);
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	tdesc = SPI_tuptable->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(caller);

		for (p = 0; p < PROVIDER_COUNT; p++)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(tup, tdesc, 1 + 2 * p, &isnull);

			if (!isnull)
				stored[p] = DatumGetTextPP(datumCopy(d, false, -1));
			set_at[p] = SPI_getbinval(tup, tdesc, 2 + 2 * p, &set_at_null[p]);
		}
		MemoryContextSwitchTo(old);
	}
	AtSpiFinish();

	for (p = 0; p < PROVIDER_COUNT; p++)
	{
		Datum		out[4];
		bool		outnull[4] = {false, false, true, false};

		out[0] = CStringGetTextDatum(provider_names[p]);
		out[1] = BoolGetDatum(stored[p] != NULL);
		out[3] = set_at[p];
		outnull[3] = set_at_null[p] || stored[p] == NULL;
		if (stored[p] != NULL)
		{
			MemoryContext keycxt = AllocSetContextCreate(caller, "at_api_key_status key",
														 ALLOCSET_SMALL_SIZES);
			MemoryContext old = MemoryContextSwitchTo(keycxt);
			uint8_t		ctx[UUID_LEN + 16];
			size_t		ctx_len = api_key_context(&user_id, (Provider) p, ctx);
			text	   *plain = open_text(CT_DOMAIN_API_KEY, ctx, ctx_len,
										  VARDATA_ANY(stored[p]),
										  VARSIZE_ANY_EXHDR(stored[p]));
			const char *s = VARDATA(plain);
			int			len = VARSIZE(plain) - VARHDRSZ;
			int			nchars;

			/* wiped when keycxt is deleted, also on error */
			AtWipeOnReset(plain, VARSIZE(plain));
			nchars = pg_mbstrlen_with_len(s, len);
			if (nchars >= STATUS_MIN_CHARS)
			{
				int			skip = 0;

				for (int i = 0; i < nchars - STATUS_LAST_CHARS; i++)
					skip += pg_mblen(s + skip);
				MemoryContextSwitchTo(caller);
				out[2] = PointerGetDatum(cstring_to_text_with_len(s + skip, len - skip));
				outnull[2] = false;
			}
			MemoryContextSwitchTo(old);
			MemoryContextDelete(keycxt);
		}
		tuplestore_putvalues(store, desc, out, outnull);
	}
	AtHideStatementPop(&hide);
	return (Datum) 0;
}

/*
 * at_rotate_api_keys(batch_size integer DEFAULT 1000)
 *		RETURNS TABLE(rotated bigint, remaining bigint)
 *		Re-encrypts, under the current master key, the stored API keys of up
 *		to batch_size user_settings rows that hold a value under another key,
 *		skipping rows locked by concurrent transactions.  Returns how many
 *		values it re-encrypted and how many values are still under another
 *		key.  Raises 22023 for a batch_size outside 1-1000000, and whatever
 *		at_get_api_key raises for a stored value that does not decrypt.
 */
Datum
at_rotate_api_keys(PG_FUNCTION_ARGS)
{
	ErrorContextCallback hide;
	int64		batch = PG_ARGISNULL(0) ? 1000 : PG_GETARG_INT32(0);
	const CtKeyring *ring;
	char		prefix[CT_PREFIX_MAX];
	Datum		values[3];
	char		nulls[3];
	int64		rotated = 0;
	int64		remaining = 0;
	uint64		nrows;
	uint64		i;
	SPITupleTable *tuptable;
	MemoryContext rowcxt;
	MemoryContext old;
	Datum		out[2];
	bool		outnull[2] = {false, false};

	AtHideStatementPush(&hide);
	if (batch < 1 || batch > ROTATE_BATCH_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be between 1 and %d", ROTATE_BATCH_MAX)));
	ring = KeyringCurrent();
	if (CtKeyPrefix(&ring->keys[ring->current], prefix, sizeof(prefix)) == 0)
		elog(ERROR, "could not format the key prefix");

	AtSpiConnect();
	values[0] = CStringGetTextDatum(prefix);
	values[1] = Int64GetDatum(batch);
	AtRunPlan(&plan_rotate_batch, values, NULL, false, 0);
	tuptable = SPI_tuptable;
	nrows = SPI_processed;

	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "at_rotate_api_keys row",
								   ALLOCSET_SMALL_SIZES);
	for (i = 0; i < nrows; i++)
	{
		HeapTuple	tup = tuptable->vals[i];
		TupleDesc	desc = tuptable->tupdesc;
		bool		isnull;
		pg_uuid_t	user_id;
		int			c;

		old = MemoryContextSwitchTo(rowcxt);
		user_id = *DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull));
		values[0] = UUIDPGetDatum(&user_id);
		for (c = 0; c < PROVIDER_COUNT; c++)
		{
			Datum		d = SPI_getbinval(tup, desc, 2 + c, &isnull);
			text	   *ct;
			uint8_t		ctx[UUID_LEN + 16];
			size_t		ctx_len;

			nulls[1 + c] = isnull ? 'n' : ' ';
			values[1 + c] = d;
			if (isnull)
				continue;
			ct = DatumGetTextPP(d);
			if (VARSIZE_ANY_EXHDR(ct) >= strlen(prefix) &&
				memcmp(VARDATA_ANY(ct), prefix, strlen(prefix)) == 0)
				continue;

			ctx_len = api_key_context(&user_id, (Provider) c, ctx);
			{
				text	   *plain = open_text(CT_DOMAIN_API_KEY, ctx, ctx_len,
											  VARDATA_ANY(ct), VARSIZE_ANY_EXHDR(ct));

				/* wiped when rowcxt is reset or deleted, also on error */
				AtWipeOnReset(plain, VARSIZE(plain));
				values[1 + c] = PointerGetDatum(seal_text(CT_DOMAIN_API_KEY, ctx, ctx_len,
														  VARDATA(plain),
														  VARSIZE(plain) - VARHDRSZ));
			}
			rotated++;
		}
		nulls[0] = ' ';
		MemoryContextSwitchTo(old);
		if (AtRunPlan(&plan_rotate_update, values, nulls, false, 0) != SPI_OK_UPDATE ||
			SPI_processed != 1)
			elog(ERROR, "could not update a rotated api key");
		MemoryContextReset(rowcxt);
	}
	MemoryContextDelete(rowcxt);

	values[0] = CStringGetTextDatum(prefix);
	AtRunPlan(&plan_rotate_remaining, values, NULL, false, 1);
	if (SPI_processed == 1)
	{
		bool		isnull;

		remaining = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 1, &isnull));
	}
	AtSpiFinish();

	out[0] = Int64GetDatum(rotated);
	out[1] = Int64GetDatum(remaining);
	if (rotated > 0)
	{
		char		detail[96];

		snprintf(detail, sizeof(detail),
				 "{\"rotated\": " INT64_FORMAT ", \"remaining\": " INT64_FORMAT "}",
				 rotated, remaining);
		AuditEvent("keys_rotated", NULL, NULL, detail);
	}
	AtHideStatementPop(&hide);
	return AtReturnOneRow(fcinfo, out, outnull);
}
