/*
 * src/keyring.c
 *		The master keys of the encrypted API keys (keys.c): the key file
 *		audiotricks.key_file, its settings, and its parsed copy in each
 *		backend.
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
 * The key file's format is parsed by the pure-C ciphertext.c.
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "audiotricks.h"
#include "ciphertext.h"
#include "keyring.h"
#include "schema.h"

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

/* read buffer and parse target: static so that they are wiped in one place */
static char keyfile_buf[CT_KEYFILE_MAX + 1];
static CtKeyring keyring_tmp;
static bool keyring_locked = false;

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
 * KeyringCurrent
 *		The master keys of audiotricks.key_file, loading or reloading them if
 *		the file changed since the last look (see the top of this file; a
 *		relative path is relative to the data directory, the backend's
 *		working directory).  The result points to static memory valid until
 *		the next call.  Raises 55000 (naming the setting) when the setting is
 *		empty or the file is missing, unreadable, accessible by group or
 *		others, or malformed; the details (path, line) go to the server log
 *		only.
 */
const CtKeyring *
KeyringCurrent(void)
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

/* ---------------------------------------------------------------------
 * Start-up
 * --------------------------------------------------------------------- */

/*
 * KeyringInit
 *		Defines audiotricks.key_file and audiotricks.aes_backend; called by
 *		_PG_init, after it initialised libsodium.
 */
void
KeyringInit(void)
{
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

