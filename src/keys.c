/*
 * src/keys.c
 *		Encrypted API keys: the master-key file (audiotricks.key_file), the
 *		raw pair at_encrypt_key / at_decrypt_key, the per-user
 *		at_set_api_key / at_get_api_key, and at_rotate_api_keys.
 *
 * The key file is read on first use in each backend and kept parsed in
 * static memory (never in a palloc'd context, never in a GUC).  It is looked
 * at again (one stat(2); re-read only if its path, inode, size, mode, owner,
 * modification or change time differ) after every configuration reload
 * (SIGHUP: the setting's assign hook runs in every backend) and at the first
 * call of a statement that starts a second or more after the last look.  So
 * a new key set takes effect in every backend at the reload, and within about
 * a second even without one, while the hot path makes no system call.  The
 * old key bytes are wiped (sodium_memzero) when replaced.  The setting itself
 * is PGC_SIGHUP and superuser-only, like ssl_key_file.
 *
 * The ciphertext format and both AES-256-GCM implementations live in the
 * pure-C ciphertext.c; this file adds the server side: settings, errors,
 * identity and SPI.
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "audiotricks.h"
#include "ciphertext.h"

PG_FUNCTION_INFO_V1(at_encrypt_key);
PG_FUNCTION_INFO_V1(at_decrypt_key);
AT_AS_OWNER_FUNCTION(at_set_api_key);
AT_AS_OWNER_FUNCTION(at_get_api_key);
PG_FUNCTION_INFO_V1(at_rotate_api_keys);

#define API_KEY_MAX_BYTES	4096
#define ROTATE_BATCH_MAX	1000000

/* GUC variables */
char	   *audiotricks_key_file = NULL;
int			audiotricks_aes_backend = CT_BACKEND_AUTO;

static const struct config_enum_entry aes_backend_options[] = {
	{"auto", CT_BACKEND_AUTO, false},
	{"libsodium", CT_BACKEND_LIBSODIUM, false},
	{"openssl", CT_BACKEND_OPENSSL, false},
	{NULL, 0, false}
};

/* the parsed key file of this backend, and what it was read from */
static CtKeyring keyring;
static bool keyring_loaded = false;
static char keyring_path[MAXPGPATH];
static struct stat keyring_stat;

/*
 * When to look at the file again: after a configuration reload (the
 * setting's assign hook runs in every backend on SIGHUP), and at the first
 * call of a statement that starts a second or more after the last look.
 */
static bool keyring_recheck = true;
static TimestampTz keyring_checked_at = 0;

#define KEYRING_RECHECK_USECS	USECS_PER_SEC

/* nonces come from libsodium's CSPRNG, fetched 64 at a time per process */
#define NONCE_BATCH		64
static uint8_t nonce_buf[NONCE_BATCH * CT_NONCE_BYTES];
static int	nonce_next = NONCE_BATCH;
static int	nonce_pid = 0;

/* read buffer and parse target: static so that they are wiped in one place */
static char keyfile_buf[CT_KEYFILE_MAX + 1];
static CtKeyring keyring_tmp;
static bool keyring_locked = false;

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

static void
raise_key_file(const char *msg, const char *detail_log)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("%s", msg),
			 detail_log ? errdetail_log("%s", detail_log) : 0,
			 errhint("Check audiotricks.key_file; the server log has the details."),
			 errhidestmt(true)));
}

/* ---------------------------------------------------------------------
 * Key file
 * --------------------------------------------------------------------- */

static void
keyring_forget(void)
{
	CtKeyringWipe(&keyring);
	keyring_loaded = false;
	keyring_path[0] = '\0';
}

static bool
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
		a->st_size == b->st_size &&
		a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
		a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
		a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
		a->st_ctim.tv_nsec == b->st_ctim.tv_nsec &&
		a->st_mode == b->st_mode && a->st_uid == b->st_uid;
}

/* reads the whole file at path into keyfile_buf; raises 55000 */
static size_t
read_key_file(const char *path, const struct stat *st_path)
{
	int			fd;
	struct stat st;
	size_t		len = 0;
	char		detail[MAXPGPATH + 128];

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
	{
		snprintf(detail, sizeof(detail), "could not open \"%s\": %s", path, strerror(errno));
		raise_key_file("audiotricks.key_file could not be read", detail);
	}
	if (fstat(fd, &st) != 0 || st.st_dev != st_path->st_dev || st.st_ino != st_path->st_ino)
	{
		close(fd);
		snprintf(detail, sizeof(detail), "\"%s\" changed while it was being opened", path);
		raise_key_file("audiotricks.key_file could not be read", detail);
	}
	if (!S_ISREG(st.st_mode))
	{
		close(fd);
		snprintf(detail, sizeof(detail), "\"%s\" is not a regular file", path);
		raise_key_file("audiotricks.key_file is not a regular file", detail);
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
	{
		close(fd);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("audiotricks.key_file must not be accessible by group or others"),
				 errdetail_log("\"%s\" has mode %04o.", path, (unsigned) (st.st_mode & 07777)),
				 errhint("Make it owned by the database server's user with mode 0600 (chmod 0600)."),
				 errhidestmt(true)));
	}
	if (st.st_uid != geteuid() && st.st_uid != 0)
	{
		close(fd);
		snprintf(detail, sizeof(detail), "\"%s\" is owned by uid %u", path, (unsigned) st.st_uid);
		raise_key_file("audiotricks.key_file must be owned by the database server's user or root", detail);
	}

	for (;;)
	{
		ssize_t		n = read(fd, keyfile_buf + len, sizeof(keyfile_buf) - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
		{
			int			save_errno = errno;

			close(fd);
			sodium_memzero(keyfile_buf, sizeof(keyfile_buf));
			snprintf(detail, sizeof(detail), "could not read \"%s\": %s", path, strerror(save_errno));
			raise_key_file("audiotricks.key_file could not be read", detail);
		}
		if (n == 0)
			break;
		len += (size_t) n;
		if (len == sizeof(keyfile_buf))
			break;
	}
	close(fd);
	return len;
}

/*
 * keys_ring
 *		The master keys of audiotricks.key_file, loading or reloading them if
 *		the file changed since the last look (see the top of this file; a
 *		relative path is relative to the data directory, the backend's
 *		working directory).  The result points to static memory valid until
 *		the next call.  Raises 55000 (naming the setting) when the setting is
 *		empty or the file is missing, unreadable, accessible by group or
 *		others, or malformed; the details (path, line) go to the server log
 *		only.
 */
static const CtKeyring *
keys_ring(void)
{
	const char *path = audiotricks_key_file;
	struct stat st;
	size_t		len;
	int			errline;
	const char *errwhat;
	char		detail[256];
	TimestampTz now = GetCurrentStatementStartTimestamp();

	AtRequirePreload();
	/* the hot path: no system call */
	if (keyring_loaded && !keyring_recheck && path != NULL &&
		now >= keyring_checked_at &&
		now - keyring_checked_at < KEYRING_RECHECK_USECS &&
		strcmp(keyring_path, path) == 0)
		return &keyring;

	if (path == NULL || path[0] == '\0')
	{
		keyring_forget();
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("audiotricks.key_file is not set"),
				 errhint("Name a key file in postgresql.conf and reload the server."),
				 errhidestmt(true)));
	}
	if (stat(path, &st) != 0)
	{
		char		d[MAXPGPATH + 64];

		snprintf(d, sizeof(d), "could not stat \"%s\": %s", path, strerror(errno));
		keyring_forget();
		raise_key_file("audiotricks.key_file could not be read", d);
	}
	if (keyring_loaded && strcmp(keyring_path, path) == 0 &&
		same_file(&st, &keyring_stat))
	{
		keyring_recheck = false;
		keyring_checked_at = now;
		return &keyring;
	}

	/*
	 * Keep key bytes out of swap and core dumps where the system allows it
	 * (best effort: RLIMIT_MEMLOCK may refuse; locks are not inherited
	 * through fork, so each backend asks once).
	 */
	if (!keyring_locked)
	{
		(void) sodium_mlock(&keyring, sizeof(keyring));
		(void) sodium_mlock(&keyring_tmp, sizeof(keyring_tmp));
		(void) sodium_mlock(keyfile_buf, sizeof(keyfile_buf));
		keyring_locked = true;
	}

	/* (re)load: forget the old keys first, whatever happens next */
	keyring_forget();
	if (strlen(path) >= sizeof(keyring_path))
		raise_key_file("audiotricks.key_file could not be read", "the path is too long");
	len = read_key_file(path, &st);
	if (len > CT_KEYFILE_MAX)
	{
		sodium_memzero(keyfile_buf, sizeof(keyfile_buf));
		raise_key_file("audiotricks.key_file is malformed", "the file is larger than 64 kB");
	}
	if (!CtKeyringParse(keyfile_buf, len, &keyring_tmp, &errline, &errwhat))
	{
		sodium_memzero(keyfile_buf, sizeof(keyfile_buf));
		if (errline > 0)
			snprintf(detail, sizeof(detail), "line %d: %s", errline, errwhat);
		else
			snprintf(detail, sizeof(detail), "%s", errwhat);
		raise_key_file("audiotricks.key_file is malformed", detail);
	}
	sodium_memzero(keyfile_buf, sizeof(keyfile_buf));
	memcpy(&keyring, &keyring_tmp, sizeof(keyring));
	CtKeyringWipe(&keyring_tmp);
	strlcpy(keyring_path, path, sizeof(keyring_path));
	keyring_stat = st;
	keyring_loaded = true;
	keyring_recheck = false;
	keyring_checked_at = now;
	return &keyring;
}

/* runs in every backend when the configuration is (re)loaded */
static void
assign_key_file(const char *newval, void *extra)
{
	keyring_recheck = true;
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
	ring = keys_ring();
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
	ring = keys_ring();
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

static AtPlan plan_set[PROVIDER_COUNT] = {
	{
		"INSERT INTO audiotricks.user_settings AS s (user_id, openai_api_key_encrypted)"
		" VALUES ($1, $2) ON CONFLICT (user_id) DO UPDATE"
		" SET openai_api_key_encrypted = EXCLUDED.openai_api_key_encrypted",
		2, {UUIDOID, TEXTOID}, NULL
	},
	{
		"INSERT INTO audiotricks.user_settings AS s (user_id, elevenlabs_api_key_encrypted)"
		" VALUES ($1, $2) ON CONFLICT (user_id) DO UPDATE"
		" SET elevenlabs_api_key_encrypted = EXCLUDED.elevenlabs_api_key_encrypted",
		2, {UUIDOID, TEXTOID}, NULL
	}
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
 *		associated data) and stores it; NULL clears it.  The plaintext never
 *		reaches a table.  Raises 42501 without an identity, 22023 for an
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

	if (PG_ARGISNULL(1))
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

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (AtRunPlan(&plan_set[p], values, nulls, false, 0) != SPI_OK_INSERT ||
		SPI_processed != 1)
		elog(ERROR, "could not store the api key");
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");

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

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
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
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");

	if (stored != NULL)
		result = open_text(CT_DOMAIN_API_KEY, ctx, ctx_len,
						   VARDATA_ANY(stored), VARSIZE_ANY_EXHDR(stored));
	AtHideStatementPop(&hide);
	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(result);
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
	ring = keys_ring();
	if (CtKeyPrefix(&ring->keys[ring->current], prefix, sizeof(prefix)) == 0)
		elog(ERROR, "could not format the key prefix");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
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
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");

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

/* ---------------------------------------------------------------------
 * Start-up
 * --------------------------------------------------------------------- */

/*
 * KeysInit
 *		Defines audiotricks.key_file and audiotricks.aes_backend; called by
 *		_PG_init.  Raises if libsodium cannot be initialised.
 */
void
KeysInit(void)
{
	if (!CtInit())
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not initialize libsodium")));

	DefineCustomStringVariable("audiotricks.key_file",
							   "File holding the master keys that encrypt stored API keys.",
							   "Set it in postgresql.conf only; the file must be mode 0600. It is hidden from non-superusers.",
							   &audiotricks_key_file,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE,
							   NULL, assign_key_file, NULL);

	DefineCustomEnumVariable("audiotricks.aes_backend",
							 "AES-256-GCM implementation: auto, libsodium (needs AES-NI) or openssl.",
							 "For tests; auto picks libsodium when the CPU supports it. Both produce the same format.",
							 &audiotricks_aes_backend,
							 CT_BACKEND_AUTO,
							 aes_backend_options,
							 PGC_SUSET,
							 GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);
}
