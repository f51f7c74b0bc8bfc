/*
 * src/throttle.h
 *		Failed-login throttling in shared memory (throttle.c).
 */
#ifndef AT_THROTTLE_H
#define AT_THROTTLE_H

#include "datatype/timestamp.h"

extern Size ThrottleShmemSize(void);
extern void ThrottleShmemInit(void);
extern void ThrottleDefineGucs(void);
extern bool ThrottleReserve(const char *key, int len, bool account);
extern void ThrottleReset(const char *key, int len);
extern void ThrottleRefund(const char *key, int len, TimestampTz reserved_by);

#endif							/* AT_THROTTLE_H */
