/*
 * src/audiotricks.h
 *		Shared declarations of the audiotricks extension: GUC variables,
 *		constants and helpers used by more than one file.
 */
#ifndef AUDIOTRICKS_H
#define AUDIOTRICKS_H

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
extern int	audiotricks_bcrypt_cost;

/* true when the library was loaded by shared_preload_libraries */
extern bool audiotricks_preloaded;

/* src/util.c */
typedef struct AtWipe
{
	void	   *ptr;
	size_t		len;
	MemoryContextCallback cb;
} AtWipe;

extern void AtRequirePreload(void);
extern const char *AtJwtSecret(size_t *len);
extern Oid	AtSchemaOid(void);
extern Oid	AtOwnerOid(void);
extern char *AtPgcryptoSchema(void);
extern AtWipe *AtWipeOnReset(void *ptr, size_t len);
extern void AtHideStatementPush(ErrorContextCallback *cb);
extern void AtHideStatementPop(ErrorContextCallback *cb);
extern Datum AtReturnOneRow(FunctionCallInfo fcinfo, Datum *values, bool *nulls);

/* src/accounts.c */
extern bool TokenVerify(const char *token, size_t len, pg_uuid_t *user_id,
						pg_uuid_t *session_id, bool read_only);

/* src/identity.c */
extern void IdentityInit(void);
extern void IdentitySet(const pg_uuid_t *user_id, const pg_uuid_t *session_id);
extern bool IdentityGet(pg_uuid_t *user_id, pg_uuid_t *session_id);
extern void IdentityForgetSession(const pg_uuid_t *session_id);

/* src/uuid.c */
extern void UuidV7Generate(pg_uuid_t *out);

/* --- Encrypted API keys (src/keys.c) --- */
extern char *audiotricks_key_file;
extern int	audiotricks_aes_backend;
extern void KeysInit(void);

#endif							/* AUDIOTRICKS_H */
