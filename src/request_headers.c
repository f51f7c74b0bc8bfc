/*
 * src/request_headers.c
 *		Whether PostgREST's request.headers may be trusted: the identity
 *		(src/identity.c) and the client address (src/client_addr.c) read it
 *		only when it was set for this transaction.
 */
#include "postgres.h"

#include "utils/guc.h"
#include "utils/guc_tables.h"

#include "request_headers.h"

/*
 * RequestHeadersAreTransactionLocal
 *		True when request.headers has its current value from this transaction
 *		(SET LOCAL or set_config(..., true), as PostgREST sets it, or a
 *		function's SET clause), so that it ends with the transaction.  A value
 *		that outlives it (a session-level SET, ALTER ROLE/DATABASE SET,
 *		postgresql.conf) is never trusted: on a pooled server connection it
 *		would authenticate the next client with the token of another.
 */
bool
RequestHeadersAreTransactionLocal(void)
{
	struct config_generic *gconf = NULL;

#if PG_VERSION_NUM >= 160000
	gconf = find_option("request.headers", false, true, ERROR);
#else
	struct config_generic **vars = get_guc_variables();
	int			n = GetNumConfigOptions();

	for (int i = 0; i < n; i++)
	{
		if (pg_strcasecmp(vars[i]->name, "request.headers") == 0)
		{
			gconf = vars[i];
			break;
		}
	}
#endif
	if (gconf == NULL || gconf->stack == NULL)
		return false;
	return gconf->stack->state == GUC_LOCAL ||
		gconf->stack->state == GUC_SET_LOCAL ||
		gconf->stack->state == GUC_SAVE;
}
