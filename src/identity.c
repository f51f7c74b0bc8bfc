/*
 * src/identity.c
 *		The per-transaction identity: who the caller is, as proven by a
 *		verified token.
 *
 * at_authenticate() (session.c) pushes an identity; at_current_user_id()
 * reads it, or else verifies PostgREST's bearer token from request.headers
 * (cached for the transaction), through TokenVerify (token.c);
 * at_require_user_id() does the same but raises 42501 without one.  Nothing
 * survives the transaction: commit, abort and prepare clear it, so a pooled
 * connection never carries one client's identity to the next; for the same
 * reason a request.headers value that would outlive the transaction (a
 * session-level SET) is ignored.  An identity set inside a savepoint that is
 * rolled back is undone with it (the previous one, if any, comes back); one
 * set inside a released savepoint stays.
 *
 * An identity is bound to the role that established it: at_authenticate()'s
 * caller (GetUserId() then), or for request.headers the session's current
 * role (GetOuterUserId(): the login role, or the one PostgREST's SET LOCAL
 * ROLE chose).  It is seen only where GetUserId() is that role, so code owned
 * by another role that runs as that role (a SECURITY DEFINER function, a
 * trigger or view calling one) sees none, and neither does a
 * security-restricted operation (VACUUM, ANALYZE, REFRESH MATERIALIZED VIEW,
 * index expressions).  The extension's own functions that need the owner's
 * privileges run through IdentityCallAsOwner, which switches to the owner
 * itself and keeps the caller they read the identity for.  Nothing that runs
 * for a WITH HOLD cursor sees an identity either: such a cursor is
 * materialized at COMMIT before the identity is cleared, and is fetchable
 * afterwards by whoever uses the connection next.  The identity lives in this
 * backend's memory: a parallel worker raises rather than see none.
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/pquery.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/memutils.h"
#include "utils/uuid.h"

#include "audiotricks.h"
#include "identity.h"
#include "request_headers.h"
#include "jwt.h"
#include "schema.h"
#include "token.h"

PG_FUNCTION_INFO_V1(at_current_user_id);
PG_FUNCTION_INFO_V1(at_require_user_id);

typedef struct IdentityFrame
{
	SubTransactionId subid;		/* subtransaction that set it */
	Oid			role;			/* the role it serves (see above) */
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

/* the innermost IdentityCallAsOwner running, if owner_call_active */
static bool owner_call_active = false;
static Oid	owner_call_owner = InvalidOid;
static Oid	owner_call_caller = InvalidOid;

/* true while the executor runs for a WITH HOLD cursor (identity_executor_run) */
static bool in_hold_cursor = false;

static ExecutorRun_hook_type prev_executor_run = NULL;

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
 * running_for_hold_cursor
 *		True when what runs now computes rows of a WITH HOLD cursor: the
 *		active portal is one (FETCH, or its materialization at COMMIT), or a
 *		query nested in one (a function's own query or loop) is running.
 */
static inline bool
running_for_hold_cursor(void)
{
	return in_hold_cursor ||
		(ActivePortal != NULL && (ActivePortal->cursorOptions & CURSOR_OPT_HOLD) != 0);
}

/*
 * identity_executor_run
 *		ExecutorRun hook: marks everything a WITH HOLD cursor's query runs,
 *		including queries nested in it (which have portals of their own), so
 *		that running_for_hold_cursor sees it.  Other queries pass straight
 *		through.
 */
static void
identity_executor_run(QueryDesc *queryDesc, ScanDirection direction,
					  uint64 count, bool execute_once)
{
	if (!in_hold_cursor && ActivePortal != NULL &&
		(ActivePortal->cursorOptions & CURSOR_OPT_HOLD) != 0)
	{
		in_hold_cursor = true;
		PG_TRY();
		{
			if (prev_executor_run)
				prev_executor_run(queryDesc, direction, count, execute_once);
			else
				standard_ExecutorRun(queryDesc, direction, count, execute_once);
		}
		PG_FINALLY();
		{
			in_hold_cursor = false;
		}
		PG_END_TRY();
	}
	else if (prev_executor_run)
		prev_executor_run(queryDesc, direction, count, execute_once);
	else
		standard_ExecutorRun(queryDesc, direction, count, execute_once);
}

/*
 * identity_caller
 *		The role an identity must be bound to for the code running now to see
 *		it: GetUserId(), or inside IdentityCallAsOwner the role that called
 *		it.  InvalidOid (nobody) in a security-restricted operation and for a
 *		WITH HOLD cursor.  Raises 0A000 in a parallel worker, which does not
 *		have this backend's identity.
 */
static inline Oid
identity_caller(void)
{
	Oid			userid;
	int			sec;

	if (IsParallelWorker())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot read the authenticated identity in a parallel worker"),
				 errhint("Mark functions that use it PARALLEL RESTRICTED or PARALLEL UNSAFE.")));
	GetUserIdAndSecContext(&userid, &sec);
	if ((sec & SECURITY_RESTRICTED_OPERATION) != 0 || running_for_hold_cursor())
		return InvalidOid;
	if (owner_call_active && userid == owner_call_owner)
		return owner_call_caller;
	return userid;
}

/*
 * IdentityInit
 *		Registers the transaction callbacks and the ExecutorRun hook; called
 *		once from _PG_init.
 */
void
IdentityInit(void)
{
	RegisterXactCallback(identity_xact_callback, NULL);
	RegisterSubXactCallback(identity_subxact_callback, NULL);
	prev_executor_run = ExecutorRun_hook;
	ExecutorRun_hook = identity_executor_run;
}

/*
 * IdentityCallAsOwner
 *		Returns body(fcinfo) run as the extension's owner, for the SQL
 *		functions that read the identity and need the owner's privileges
 *		(they are not SECURITY DEFINER: that would hide who called them).
 *		The identity the body reads is the one bound to the role that called
 *		it, so another role's SECURITY DEFINER code calling it finds none.
 *		Raises whatever body raises.
 */
Datum
IdentityCallAsOwner(FunctionCallInfo fcinfo, PGFunction body)
{
	Oid			save_userid;
	int			save_sec;
	bool		save_active = owner_call_active;
	Oid			save_owner = owner_call_owner;
	Oid			save_caller = owner_call_caller;
	Oid			caller = identity_caller();
	Oid			owner = AtOwnerOid();
	volatile Datum result = (Datum) 0;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	owner_call_active = true;
	owner_call_owner = owner;
	owner_call_caller = caller;
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		result = body(fcinfo);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec);
		owner_call_active = save_active;
		owner_call_owner = save_owner;
		owner_call_caller = save_caller;
	}
	PG_END_TRY();
	return result;
}

/*
 * IdentitySet
 *		Makes (user_id, session_id) the identity of the calling role (see
 *		identity_caller) until the end of the current (sub)transaction.
 */
void
IdentitySet(const pg_uuid_t *user_id, const pg_uuid_t *session_id)
{
	SubTransactionId subid = GetCurrentSubTransactionId();
	Oid			role = identity_caller();
	IdentityFrame *f;

	/* a new identity in the same (sub)transaction replaces the role's last one */
	if (identity_top != NULL && identity_top->subid == subid &&
		identity_top->role == role)
	{
		identity_top->user_id = *user_id;
		identity_top->session_id = *session_id;
		return;
	}
	f = MemoryContextAlloc(TopTransactionContext, sizeof(IdentityFrame));
	f->subid = subid;
	f->role = role;
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
	if (RequestHeadersAreTransactionLocal() &&
		BearerFromHeaders(headers, strlen(headers), &token, &token_len) == JWT_BEARER_FOUND)
		ok = TokenVerify(token, token_len, user_id, session_id);

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
 *		transaction by the calling role, else PostgREST's verified bearer
 *		token when the calling role is the session's current role.  Returns
 *		false when there is none (see identity_caller); raises 0A000 in a
 *		parallel worker.
 */
bool
IdentityGet(pg_uuid_t *user_id, pg_uuid_t *session_id)
{
	Oid			caller = identity_caller();
	IdentityFrame *f;

	if (!OidIsValid(caller))
		return false;
	for (f = identity_top; f != NULL; f = f->prev)
	{
		if (f->role == caller)
		{
			*user_id = f->user_id;
			*session_id = f->session_id;
			return true;
		}
	}
	if (!IsTransactionState() || caller != GetOuterUserId())
		return false;
	return identity_from_headers(user_id, session_id);
}

/*
 * IdentityRequire
 *		Like IdentityGet, but raises 42501 "not authenticated" when there is
 *		no identity, and first 55000 when the schema was renamed or replaced
 *		(AtCheckSchema): the callers go on to use the extension's objects.
 */
void
IdentityRequire(pg_uuid_t *user_id, pg_uuid_t *session_id)
{
	(void) AtCheckSchema();
	if (!IdentityGet(user_id, session_id))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("not authenticated"),
				 errhint("Call audiotricks.at_authenticate(token) in this transaction first.")));
}

/*
 * at_current_user_id() RETURNS uuid
 *		The identity's user id (palloc'd in the caller's context), or NULL.
 *		Raises 55000 when the schema was renamed or replaced (AtCheckSchema).
 */
Datum
at_current_user_id(PG_FUNCTION_ARGS)
{
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;
	pg_uuid_t  *result;

	(void) AtCheckSchema();
	if (!IdentityGet(&user_id, &session_id))
		PG_RETURN_NULL();
	result = palloc(sizeof(pg_uuid_t));
	*result = user_id;
	PG_RETURN_UUID_P(result);
}

/*
 * at_require_user_id() RETURNS uuid
 *		The identity's user id (palloc'd in the caller's context).  Raises
 *		42501 "not authenticated" when this transaction has none.
 */
Datum
at_require_user_id(PG_FUNCTION_ARGS)
{
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;
	pg_uuid_t  *result;

	IdentityRequire(&user_id, &session_id);
	result = palloc(sizeof(pg_uuid_t));
	*result = user_id;
	PG_RETURN_UUID_P(result);
}
