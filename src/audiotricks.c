/*
 * src/audiotricks.c
 *		Library start-up: PG_MODULE_MAGIC, _PG_init and every GUC.
 */
#include "postgres.h"

#include <sodium.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"

#include "admission.h"
#include "audiotricks.h"
#include "audit.h"
#include "history_partitions.h"
#include "identity.h"
#include "keyring.h"
#include "logscrub.h"
#include "recovery.h"
#include "throttle.h"

PG_MODULE_MAGIC;

char	   *audiotricks_jwt_secret = NULL;
char	   *audiotricks_jwt_role = NULL;
int			audiotricks_session_ttl = 7 * 24 * 60 * 60;
int			audiotricks_session_max_lifetime = 30 * 24 * 60 * 60;
int			audiotricks_bcrypt_cost = 12;

bool		audiotricks_preloaded = false;
uint64		audiotricks_jwt_secret_generation = 0;

void		_PG_init(void);

/*
 * jwt_role ends up inside a token's JSON and is a role name for PostgREST:
 * keep it to the characters a role name needs, so it never needs escaping.
 */
static bool
check_jwt_role(char **newval, void **extra, GucSource source)
{
	const char *p = *newval;

	if (p == NULL || *p == '\0' || strlen(p) >= NAMEDATALEN)
	{
		GUC_check_errdetail("audiotricks.jwt_role must be 1 to %d characters.",
							NAMEDATALEN - 1);
		return false;
	}
	for (; *p; p++)
	{
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			  (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
		{
			GUC_check_errdetail("audiotricks.jwt_role may contain only ASCII letters, digits, \"_\" and \"-\".");
			return false;
		}
	}
	return true;
}

static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif

static void
request_shmem(void)
{
	RequestAddinShmemSpace(add_size(ThrottleShmemSize() + AuditShmemSize(),
									AdmissionShmemSize() + PartitionShmemSize()));
	RequestNamedLWLockTranche("audiotricks", 2);
	RequestNamedLWLockTranche("audiotricks admission", 1);
}

#if PG_VERSION_NUM >= 150000
static void
at_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	request_shmem();
}
#endif

static void
at_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ThrottleShmemInit();
	AuditShmemInit();
	AdmissionShmemInit();
	PartitionShmemInit();
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Every change of the secret invalidates keys and caches derived from it; so
 * does a change of jwt_role, because tokens are valid only for the role they
 * name (the token cache skips that check).
 */
static void
assign_jwt_secret(const char *newval, void *extra)
{
	audiotricks_jwt_secret_generation++;
}

static void
assign_jwt_role(const char *newval, void *extra)
{
	audiotricks_jwt_secret_generation++;
}

/*
 * SHOW and current_setting() give the secret to superusers only: members of
 * pg_read_all_settings (pg_monitor) pass GUC_SUPERUSER_ONLY's check but get
 * this instead.  (pg_settings never lists it: GUC_NO_SHOW_ALL.)
 */
static const char *
show_jwt_secret(void)
{
	if (superuser())
		return audiotricks_jwt_secret ? audiotricks_jwt_secret : "";
	return "(hidden)";
}

void
_PG_init(void)
{
	audiotricks_preloaded = process_shared_preload_libraries_in_progress;

	/* the one initialisation of libsodium, before anything uses it */
	if (sodium_init() < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not initialize libsodium")));

	/* first: the values applied while the settings are defined are covered */
	LogScrubInit();

	DefineCustomStringVariable("audiotricks.jwt_secret",
							   "Secret that signs and verifies session tokens (HS256).",
							   "At least 32 bytes. Set it in postgresql.conf; it is hidden from non-superusers.",
							   &audiotricks_jwt_secret,
							   NULL,
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   NULL, assign_jwt_secret, show_jwt_secret);

	DefineCustomStringVariable("audiotricks.jwt_role",
							   "Value of the \"role\" claim of issued tokens (the role PostgREST switches to).",
							   NULL,
							   &audiotricks_jwt_role,
							   "authenticated",
							   PGC_SUSET,
							   0,
							   check_jwt_role, assign_jwt_role, NULL);

	DefineCustomIntVariable("audiotricks.session_ttl",
							"Lifetime of a session and its token.",
							NULL,
							&audiotricks_session_ttl,
							7 * 24 * 60 * 60,
							1,
							366 * 24 * 60 * 60,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("audiotricks.session_max_lifetime",
							"Longest a session family may live, refreshes included.",
							"at_refresh never extends a family past this long after its login; then the user logs in again.",
							&audiotricks_session_max_lifetime,
							30 * 24 * 60 * 60,
							1,
							10 * 366 * 24 * 60 * 60,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("audiotricks.bcrypt_cost",
							"bcrypt cost factor for new password hashes.",
							NULL,
							&audiotricks_bcrypt_cost,
							12,
							4,
							31,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	ThrottleDefineGucs();
	AdmissionDefineGucs();
	RecoveryDefineGucs();
	HistoryPartitionsDefineGucs();
	/* Encrypted API keys (src/keys.c) define their GUCs before the prefix is reserved */
	KeyringInit();

#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("audiotricks");
#else
	EmitWarningsOnPlaceholders("audiotricks");
#endif

	IdentityInit();

	/* shared state (throttle counts, detached audit events) needs preloading */
	if (audiotricks_preloaded)
	{
#if PG_VERSION_NUM >= 150000
		prev_shmem_request_hook = shmem_request_hook;
		shmem_request_hook = at_shmem_request;
#else
		request_shmem();
#endif
		prev_shmem_startup_hook = shmem_startup_hook;
		shmem_startup_hook = at_shmem_startup;
	}
}
