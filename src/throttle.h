/*
 * src/throttle.h
 *		Failed-login throttling in shared memory (throttle.c).
 */
#ifndef AT_THROTTLE_H
#define AT_THROTTLE_H

#include "datatype/timestamp.h"

/* audiotricks.max_failed_logins_per_account (the others: audiotricks.h) */
extern int	audiotricks_max_failed_logins_per_account;

extern Size ThrottleShmemSize(void);
extern void ThrottleShmemInit(void);
extern void ThrottleDefineGucs(void);
extern bool ThrottleReserve(const char *key, int len, bool account);
extern bool ThrottleReserveLimit(const char *key, int len, const char *group,
								 int group_len, bool account, int limit);
extern int	ThrottleCount(const char *key, int len, TimestampTz *window_end);
extern int	ThrottleGroupStatus(const char *group, int group_len, int limit);
extern int	ThrottleClearGroup(const char *group, int group_len);
extern void ThrottleReset(const char *key, int len);
extern void ThrottleRefund(const char *key, int len, TimestampTz reserved_by);

#endif							/* AT_THROTTLE_H */
