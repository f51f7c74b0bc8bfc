/*
 * src/audiotricks.h
 *		Shared declarations of the audiotricks extension: GUC variables,
 *		constants and helpers used by more than one file.
 */
#ifndef AUDIOTRICKS_H
#define AUDIOTRICKS_H

#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/memutils.h"
#include "utils/uuid.h"

#define AT_SCHEMA			"audiotricks"
#define AT_JWT_SECRET_MIN	32		/* bytes */
#define AT_TOKEN_MAX_LEN	4096	/* bytes: longer tokens are refused unread */

/* GUC variables (src/audiotricks.c) */
extern char *audiotricks_jwt_secret;
extern char *audiotricks_jwt_role;
extern int	audiotricks_session_ttl;	/* seconds */
extern int	audiotricks_session_max_lifetime;	/* seconds */
extern int	audiotricks_bcrypt_cost;

/* bumped whenever audiotricks.jwt_secret or audiotricks.jwt_role changes */
extern uint64 audiotricks_jwt_secret_generation;

/* true when the library was loaded by shared_preload_libraries */
extern bool audiotricks_preloaded;

/* src/util.c */
typedef struct AtWipe
{
	void	   *ptr;
	size_t		len;
	MemoryContextCallback cb;
} AtWipe;

/* a parameterized SPI plan, prepared on first use and kept */
typedef struct AtPlan
{
	const char *sql;
	int			nargs;
	Oid			argtypes[6];
	SPIPlanPtr	plan;
} AtPlan;

extern int	AtRunPlan(AtPlan *p, Datum *values, const char *nulls,
					  bool read_only, long count);
extern int	AtRunPlanLatest(AtPlan *p, Datum *values);
struct Tuplestorestate;
extern void AtRunPlanInto(AtPlan *p, Datum *values, long count,
						  struct Tuplestorestate *store, int natts,
						  MemoryContext per_query);
extern text *AtSecretArg(FunctionCallInfo fcinfo, int n);
extern void AtRequirePreload(void);
extern const char *AtJwtSecret(size_t *len);
struct JwtKey;
extern const struct JwtKey *AtJwtKey(void);
extern Oid	AtCheckSchema(void);
extern Oid	AtSchemaOid(void);
extern Oid	AtOwnerOid(void);
extern char *AtPgcryptoSchema(void);
extern AtWipe *AtWipeOnReset(void *ptr, size_t len);
extern void AtHideStatementPush(ErrorContextCallback *cb);
extern void AtHideStatementPop(ErrorContextCallback *cb);
extern Datum AtReturnOneRow(FunctionCallInfo fcinfo, Datum *values, bool *nulls);
struct Tuplestorestate;
extern struct Tuplestorestate *AtMaterialize(FunctionCallInfo fcinfo, TupleDesc *tupdesc);

/* src/logscrub.c */
extern void LogScrubInit(void);

/* src/accounts.c */
extern bool TokenVerify(const char *token, size_t len, pg_uuid_t *user_id,
						pg_uuid_t *session_id, bool read_only);

/* src/identity.c */
extern void IdentityInit(void);
extern void IdentitySet(const pg_uuid_t *user_id, const pg_uuid_t *session_id);
extern bool IdentityGet(pg_uuid_t *user_id, pg_uuid_t *session_id);
extern void IdentityRequire(pg_uuid_t *user_id, pg_uuid_t *session_id);
extern void IdentityForgetSession(const pg_uuid_t *session_id);
extern Datum IdentityCallAsOwner(FunctionCallInfo fcinfo, PGFunction body);

/*
 * AT_AS_OWNER_FUNCTION(name) declares the SQL-callable name(), which runs
 * the file's static name_as_owner() as the extension's owner through
 * IdentityCallAsOwner: for functions that read the identity and need the
 * owner's privileges (declared without SECURITY DEFINER, see src/identity.c).
 */
#define AT_AS_OWNER_FUNCTION(name) \
	static Datum name##_as_owner(PG_FUNCTION_ARGS); \
	PG_FUNCTION_INFO_V1(name); \
	Datum \
	name(PG_FUNCTION_ARGS) \
	{ \
		return IdentityCallAsOwner(fcinfo, name##_as_owner); \
	} \
	extern int	no_such_variable

/* src/throttle.c */
extern int	audiotricks_max_failed_logins;
extern int	audiotricks_failed_login_window;
extern int	audiotricks_throttle_slots;
extern Size ThrottleShmemSize(void);
extern void ThrottleShmemInit(void);
extern void ThrottleDefineGucs(void);
extern bool ThrottleReserve(const char *key, int len, bool account);
extern void ThrottleReset(const char *key, int len);
extern void ThrottleRefund(const char *key, int len, TimestampTz reserved_by);

/* src/admission.c: admission control for password hashing */
typedef enum AdmissionClass
{
	ADMISSION_AUTHENTICATED = 0,	/* proved a token or the password */
	ADMISSION_ANONYMOUS = 1,	/* at_login, at_register */
	ADMISSION_REPEATED = 2		/* its key was hashed often recently */
} AdmissionClass;
extern int	audiotricks_max_concurrent_password_checks;
extern int	audiotricks_password_check_wait;	/* ms */
extern Size AdmissionShmemSize(void);
extern void AdmissionShmemInit(void);
extern void AdmissionDefineGucs(void);
extern bool AdmissionEnter(AdmissionClass cls, const char *key, int len);
extern void AdmissionRefuse(void) pg_attribute_noreturn();
extern void AdmissionLeave(void);

/* src/audit.c */
extern Size AuditShmemSize(void);
extern void AuditShmemInit(void);
extern void AuditEvent(const char *event, const pg_uuid_t *user_id,
					   const pg_uuid_t *session_id, const char *detail);
extern void AuditReserve(int n);
extern void AuditEventDetached(const char *event, const pg_uuid_t *user_id);
extern bool AuditRevokeFamilyDetached(const pg_uuid_t *family_id);

/* src/uuid.c */
extern void UuidV7Generate(pg_uuid_t *out);

/* Audio history and settings (src/history.c, src/validate.c) */
#define AT_PAGE_SIZE_DEFAULT	20
#define AT_PAGE_SIZE_MAX		100
extern int32 AtCheckedPageSize(FunctionCallInfo fcinfo, int argno);
/* src/page.c */
struct RelationData;
struct TupleTableSlot;
extern bool AtHistoryPoliciesAreOurs(struct RelationData *rel);
extern void AtPutRow(struct RelationData *rel, struct TupleTableSlot *slot,
					 struct Tuplestorestate *store);
#define AT_AUDIO_URL_MAX		2048	/* characters */
#define AT_SEARCH_QUERY_MAX		1000	/* characters */
/*
 * Size limits of the user-supplied history and settings values, in bytes of
 * the value without its varlena header (octet_length for text; for jsonb,
 * its binary form), enforced by the tables' CHECK constraints (validate.c).
 */
#define AT_TRANSCRIPT_MAX		(4 * 1024 * 1024)
#define AT_SUMMARY_MAX			(64 * 1024)
#define AT_KEY_MOMENTS_MAX		(256 * 1024)
#define AT_PROCESSING_OPTIONS_MAX (64 * 1024)
#define AT_SETTINGS_JSON_MAX	(16 * 1024)
/* bytes of each text that at_history_tsv parses (history.c) */
#define AT_SEARCH_TEXT_MAX		(1024 * 1024)

/* --- Encrypted API keys (src/keys.c) --- */
extern char *audiotricks_key_file;
extern int	audiotricks_aes_backend;
extern void KeysInit(void);

#endif							/* AUDIOTRICKS_H */
