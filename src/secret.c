/*
 * src/secret.c
 *		Keeping secrets out of memory and logs: wiping buffers when their
 *		memory context ends, detoasting secret arguments into wiped copies,
 *		hiding the statement text from the server log while a call handles
 *		a password, token or key, and refusing such a call in a read-only
 *		transaction before it looks at the secret.
 */
#include "postgres.h"

#include <sodium.h>

#include "access/xact.h"
#include "fmgr.h"
#include "utils/memutils.h"

#include "secret.h"

static void
wipe_callback(void *arg)
{
	AtWipe	   *w = (AtWipe *) arg;

	if (w->ptr != NULL)
		sodium_memzero(w->ptr, w->len);
}

/*
 * AtWipeOnReset
 *		Zeroes len bytes at ptr when the current memory context is reset or
 *		deleted, which happens on error as well as on success.  ptr must live
 *		at least as long as that context.  Returns the handle, whose ptr may
 *		be set to NULL to cancel.
 */
AtWipe *
AtWipeOnReset(void *ptr, size_t len)
{
	AtWipe	   *w = palloc(sizeof(AtWipe));

	w->ptr = ptr;
	w->len = len;
	w->cb.func = wipe_callback;
	w->cb.arg = w;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &w->cb);
	return w;
}

static void
hide_statement_callback(void *arg)
{
	errhidestmt(true);
	/* a caller's CONTEXT line (SPI, PL/pgSQL) quotes its statement too */
	errhidecontext(true);
}

/*
 * AtHideStatementPush / AtHideStatementPop
 *		While pushed, every message raised (by us or by anything we call)
 *		leaves the statement text and the CONTEXT lines out of the server log
 *		(the client still gets them): the statement, or the PL/pgSQL or SPI
 *		statement that called us, may carry a password, token or key as a
 *		literal.
 */
void
AtHideStatementPush(ErrorContextCallback *cb)
{
	cb->callback = hide_statement_callback;
	cb->arg = NULL;
	cb->previous = error_context_stack;
	error_context_stack = cb;
}

void
AtHideStatementPop(ErrorContextCallback *cb)
{
	error_context_stack = cb->previous;
}

/*
 * AtSecretArg
 *		Argument n, detoasted; when detoasting made a private copy, that copy
 *		is wiped when the current memory context ends (also on error).
 */
text *
AtSecretArg(FunctionCallInfo fcinfo, int n)
{
	Datum		d = PG_GETARG_DATUM(n);
	text	   *t = PG_DETOAST_DATUM_PACKED(d);

	if ((Pointer) t != DatumGetPointer(d))
		AtWipeOnReset(t, VARSIZE_ANY(t));
	return t;
}

/*
 * AtRefuseIfReadOnly
 *		Raises 25006 in a read-only transaction, notably every transaction on
 *		a hot standby, before a call that must write looks at a password or
 *		token.  Otherwise a standby would check it and only then fail on the
 *		write, answering a right password with 25006 and a wrong one with
 *		28P01: for at_login a password oracle with its own throttling counters
 *		(each replica adding max_failed_logins guesses per window) whose
 *		failed-login events and refresh-reuse revocations would wait in the
 *		standby's queue for an audit writer that starts only on promotion;
 *		for at_change_password, at_deactivate_account and at_delete_account a
 *		harmless way for a token's holder to test passwords.
 */
void
AtRefuseIfReadOnly(const char *what)
{
	if (XactReadOnly)
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot %s in a read-only transaction", what),
				 errhint("Send calls that write to the primary server, outside read-only transactions.")));
}
