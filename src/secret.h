/*
 * src/secret.h
 *		Wiping secrets and hiding statements from the log (secret.c).
 */
#ifndef AT_SECRET_H
#define AT_SECRET_H

#include "fmgr.h"
#include "utils/memutils.h"

/* a wipe registered on a memory context; set ptr to NULL to cancel it */
typedef struct AtWipe
{
	void	   *ptr;
	size_t		len;
	MemoryContextCallback cb;
} AtWipe;

extern AtWipe *AtWipeOnReset(void *ptr, size_t len);
extern text *AtSecretArg(FunctionCallInfo fcinfo, int n);
extern void AtHideStatementPush(ErrorContextCallback *cb);
extern void AtHideStatementPop(ErrorContextCallback *cb);
extern void AtRefuseIfReadOnly(const char *what);

#endif							/* AT_SECRET_H */
