/*
 * src/session.h
 *		Sessions: what the account functions need of them (session.c).
 */
#ifndef AT_SESSION_H
#define AT_SESSION_H

#include "fmgr.h"

#include "datatype/timestamp.h"
#include "utils/uuid.h"

/* the throttle keys of one login attempt (LoginThrottleKeys) */
typedef struct LoginThrottle
{
	char	   *pair;			/* account (or login) and client address */
	int			pair_len;
	char	   *account;		/* account (or login): the ceiling */
	int			account_len;
	bool		found;			/* the login names an account */
	TimestampTz reserved_by;
} LoginThrottle;

extern uint64 SessionsEndAll(Datum user_id, bool latest);
extern void LoginThrottleKeys(bool found, const pg_uuid_t *user_id,
							  const char *login, int login_len,
							  const char *addr, LoginThrottle *t);
extern bool LoginThrottleReserve(LoginThrottle *t);
extern void LoginThrottleSucceeded(LoginThrottle *t);

#endif							/* AT_SESSION_H */
