/*
 * src/token.h
 *		Session tokens: the signing key, the token check, and JWT time
 *		(token.c).
 */
#ifndef AT_TOKEN_H
#define AT_TOKEN_H

#include "datatype/timestamp.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "jwt.h"

/* sessions.token_hash: the token's SHA-256 in hex */
#define TOKEN_HASH_HEX_LEN	(JWT_SHA256_BYTES * 2)

/* seconds since 1970 (JWT time) of a PostgreSQL timestamp */
static inline int64
UnixSeconds(TimestampTz t)
{
	return (int64) (t / USECS_PER_SEC) +
		(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;
}

/* the current time in JWT time */
static inline int64
UnixNow(void)
{
	return UnixSeconds(GetCurrentTimestamp());
}

/* the PostgreSQL timestamp of a JWT time */
static inline TimestampTz
UnixToTimestamptz(int64 secs)
{
	return (TimestampTz) (secs - (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY) * USECS_PER_SEC;
}

extern const JwtKey *AtJwtKey(void);
extern void TokenHashHex(const char *token, size_t len,
						 char hex[TOKEN_HASH_HEX_LEN + 1]);
extern bool TokenRoleClaimOk(const JwtClaims *claims);
extern bool TokenVerify(const char *token, size_t len, pg_uuid_t *user_id,
						pg_uuid_t *session_id);

#endif							/* AT_TOKEN_H */
