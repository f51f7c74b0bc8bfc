/*
 * src/identity.c
 *		The per-transaction identity: who the caller is, as proven by a
 *		verified token.
 *
 * at_authenticate() pushes an identity; at_current_user_id() reads it, or
 * else verifies PostgREST's bearer token from request.headers (cached for the
 * transaction).  Nothing survives the transaction: commit, abort and prepare
 * clear it, so a pooled connection never carries one client's identity to the
 * next; for the same reason a request.headers value that would outlive the
 * transaction (a session-level SET) is ignored.  An identity set inside a
 * savepoint that is rolled back is undone with it (the previous one, if any,
 * comes back); one set inside a released savepoint stays.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/memutils.h"
#include "utils/uuid.h"

#include "audiotricks.h"
#include "jwt.h"

PG_FUNCTION_INFO_V1(at_current_user_id);

typedef struct IdentityFrame
{
	SubTransactionId subid;		/* subtransaction that set it */
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;
	struct IdentityFrame *prev;
} IdentityFrame;

/* all of this lives in TopTransactionContext, or is NULL */
static IdentityFrame *identity_top = NULL;

/* cache of the verification of request.headers for this transaction */
static char *header_cache_value = NULL;
static bool header_cache_ok = false;
static pg_uuid_t header_cache_user;
static pg_uuid_t header_cache_session;

static void
identity_reset(void)
{
	/* the memory goes with TopTransactionContext */
	identity_top = NULL;
	header_cache_value = NULL;
	header_cache_ok = false;
}

static void
identity_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			identity_reset();
			break;
		default:
			break;
	}
}

static void
identity_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						  SubTransactionId parentSubid, void *arg)
{
	IdentityFrame *f;

	switch (event)
	{
		case SUBXACT_EVENT_ABORT_SUB:
			while (identity_top != NULL && identity_top->subid == mySubid)
				identity_top = identity_top->prev;
			/* a cached header check made in the aborted savepoint may be stale */
			header_cache_value = NULL;
			header_cache_ok = false;
			break;
		case SUBXACT_EVENT_COMMIT_SUB:
			for (f = identity_top; f != NULL; f = f->prev)
				if (f->subid == mySubid)
					f->subid = parentSubid;
			break;
		default:
			break;
	}
}

/*
 * IdentityInit
 *		Registers the transaction callbacks; called once from _PG_init.
 */
void
IdentityInit(void)
{
	RegisterXactCallback(identity_xact_callback, NULL);
	RegisterSubXactCallback(identity_subxact_callback, NULL);
}

/*
 * IdentitySet
 *		Makes (user_id, session_id) the identity until the end of the current
 *		(sub)transaction.
 */
void
IdentitySet(const pg_uuid_t *user_id, const pg_uuid_t *session_id)
{
	SubTransactionId subid = GetCurrentSubTransactionId();
	IdentityFrame *f;

	/* a new identity in the same (sub)transaction replaces the last one */
	if (identity_top != NULL && identity_top->subid == subid)
	{
		identity_top->user_id = *user_id;
		identity_top->session_id = *session_id;
		return;
	}
	f = MemoryContextAlloc(TopTransactionContext, sizeof(IdentityFrame));
	f->subid = subid;
	f->user_id = *user_id;
	f->session_id = *session_id;
	f->prev = identity_top;
	identity_top = f;
}

/*
 * IdentityForgetSession
 *		Drops every identity that rests on session_id (it was just ended), or
 *		every identity at all when session_id is NULL.
 */
void
IdentityForgetSession(const pg_uuid_t *session_id)
{
	IdentityFrame **link = &identity_top;

	while (*link != NULL)
	{
		if (session_id == NULL ||
			memcmp((*link)->session_id.data, session_id->data, UUID_LEN) == 0)
			*link = (*link)->prev;
		else
			link = &(*link)->prev;
	}
	if (header_cache_ok &&
		(session_id == NULL ||
		 memcmp(header_cache_session.data, session_id->data, UUID_LEN) == 0))
	{
		header_cache_value = NULL;
		header_cache_ok = false;
	}
}

/*
 * headers_are_transaction_local
 *		True when request.headers has its current value from this transaction
 *		(SET LOCAL or set_config(..., true), as PostgREST sets it, or a
 *		function's SET clause), so that it ends with the transaction.  A value
 *		that outlives it (a session-level SET, ALTER ROLE/DATABASE SET,
 *		postgresql.conf) is never trusted: on a pooled server connection it
 *		would authenticate the next client with the token of another.
 */
static bool
headers_are_transaction_local(void)
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

/*
 * identity_from_headers
 *		Verifies the bearer token of PostgREST's request.headers, if any, when
 *		it was set for this transaction only (see above).
 *		Returns true and fills the ids when it is valid.  Never raises for a
 *		bad token or malformed headers; raises 55000 if the secret is unset.
 */
static bool
identity_from_headers(pg_uuid_t *user_id, pg_uuid_t *session_id)
{
	const char *headers = GetConfigOption("request.headers", true, false);
	const char *token;
	size_t		token_len;
	bool		ok;

	if (headers == NULL || headers[0] == '\0')
		return false;

	if (header_cache_value != NULL && strcmp(header_cache_value, headers) == 0)
	{
		if (header_cache_ok)
		{
			*user_id = header_cache_user;
			*session_id = header_cache_session;
		}
		return header_cache_ok;
	}

	ok = false;
	if (headers_are_transaction_local() &&
		BearerFromHeaders(headers, strlen(headers), &token, &token_len) == JWT_BEARER_FOUND)
		ok = TokenVerify(token, token_len, user_id, session_id, true);

	header_cache_value = MemoryContextStrdup(TopTransactionContext, headers);
	header_cache_ok = ok;
	if (ok)
	{
		header_cache_user = *user_id;
		header_cache_session = *session_id;
	}
	return ok;
}

/*
 * IdentityGet
 *		The current identity: the newest at_authenticate() of this
 *		transaction, else PostgREST's verified bearer token.  Returns false
 *		when there is none.
 */
bool
IdentityGet(pg_uuid_t *user_id, pg_uuid_t *session_id)
{
	if (identity_top != NULL)
	{
		*user_id = identity_top->user_id;
		*session_id = identity_top->session_id;
		return true;
	}
	if (!IsTransactionState())
		return false;
	return identity_from_headers(user_id, session_id);
}

/*
 * IdentityRequire
 *		Like IdentityGet, but raises 42501 "not authenticated" when there is
 *		no identity.
 */
void
IdentityRequire(pg_uuid_t *user_id, pg_uuid_t *session_id)
{
	if (!IdentityGet(user_id, session_id))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("not authenticated"),
				 errhint("Call audiotricks.at_authenticate(token) in this transaction first.")));
}

/*
 * at_current_user_id() RETURNS uuid
 *		The identity's user id (palloc'd in the caller's context), or NULL.
 */
Datum
at_current_user_id(PG_FUNCTION_ARGS)
{
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;
	pg_uuid_t  *result;

	if (!IdentityGet(&user_id, &session_id))
		PG_RETURN_NULL();
	result = palloc(sizeof(pg_uuid_t));
	*result = user_id;
	PG_RETURN_UUID_P(result);
}
