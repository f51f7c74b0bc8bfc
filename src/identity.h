/*
 * src/identity.h
 *		The per-transaction identity proven by a token (identity.c).
 */
#ifndef AT_IDENTITY_H
#define AT_IDENTITY_H

#include "fmgr.h"
#include "utils/uuid.h"

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

#endif							/* AT_IDENTITY_H */
