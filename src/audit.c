/*
 * src/audit.c
 *		The audit trail: audiotricks.audit_log.  This file writes events in
 *		the caller's transaction and holds the purge and the history-deletion
 *		trigger; the queue of detached events and its writer are in
 *		audit_writer.c.
 *
 * AuditEvent() writes an event in the caller's transaction (it commits or
 * rolls back with the change it records).  What must survive the failing
 * call's rollback — a failed or throttled login raises 28P01, so its
 * transaction aborts; a refresh-token reuse raises 28000 and must end the
 * token's family — goes through a queue in shared memory (AuditEventDetached,
 * AuditRevokeFamilyDetached), drained by a background writer per database
 * that writes each batch in its own transaction and exits after a few idle
 * seconds.  The queue never drops an item: callers that may queue one
 * reserve a slot first (AuditReserve) and are refused with 53400 when none
 * is free.  The writer never waits on a lock an application transaction can
 * hold.  A revocation's caller waits for the writer's commit, so a
 * revocation that was answered is durable; other events still queued when
 * the server stops are lost (a fraction of a second of failed logins).
 *
 * Never put a password, token, key or plaintext in an event: callers pass
 * only ids, an event name and a small JSON detail built from fixed strings.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/inet.h"
#include "utils/json.h"
#include "lib/stringinfo.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/uuid.h"

#include "audiotricks.h"
#include "audit.h"
#include "identity.h"
#include "schema.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(at_purge_audit_log);
PG_FUNCTION_INFO_V1(at_audit_history_delete);

/* the client's IP address as text, or '' (Unix socket, background worker) */
void
AuditClientAddr(char *buf, size_t len)
{
	LOCAL_FCINFO(fcinfo, 0);
	Datum		addr;

	buf[0] = '\0';
	InitFunctionCallInfoData(*fcinfo, NULL, 0, InvalidOid, NULL, NULL);
	addr = inet_client_addr(fcinfo);
	if (!fcinfo->isnull)
		strlcpy(buf, DatumGetCString(DirectFunctionCall1(inet_out, addr)), len);
}

/*
 * AuditDbRole
 *		The role that ran the statement (SET ROLE's, not a SECURITY DEFINER
 *		function's), palloc'd; NULL if it no longer exists.
 */
char *
AuditDbRole(void)
{
	return GetUserNameFromId(GetOuterUserId(), true);
}

/*
 * AuditInsertEvent
 *		Inside an open SPI connection, as the owner: appends one account
 *		event to its chain (audit_chain.c).  detached: the audit writer's
 *		chain, taken only if nobody holds it; returns false (nothing written)
 *		when it is held.  Otherwise returns true; raises on failure.
 */
bool
AuditInsertEvent(const char *event, const pg_uuid_t *user_id,
				 const pg_uuid_t *session_id, const char *detail,
				 const char *addr, TimestampTz at, const char *db_role,
				 bool detached)
{
	AuditFields e;
	pg_uuid_t	actor;
	pg_uuid_t	sess;

	memset(&e, 0, sizeof(e));
	e.created_at = at;
	e.event = event;
	e.db_role = db_role;
	e.ncols = -1;
	e.detail = detail;
	e.session_id = session_id;
	if (!detached && IdentityGet(&actor, &sess))
		e.actor_id = &actor;
	return AuditAppend(&e, user_id, addr, detached, NULL);
}

/*
 * AuditEvent
 *		Writes one event in the current transaction, as the extension's
 *		owner (callers may be application roles, who cannot write the log).
 *		detail is a JSON object text built by the caller from fixed strings,
 *		or NULL.  Raises on failure.
 */
void
AuditEvent(const char *event, const pg_uuid_t *user_id,
		   const pg_uuid_t *session_id, const char *detail)
{
	Oid			save_userid;
	int			save_sec;
	char		addr[AUDIT_ADDR_LEN];
	char	   *role = AuditDbRole();

	AuditClientAddr(addr, sizeof(addr));
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(AtOwnerOid(),
						   save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		AtSpiConnect();
		(void) AuditInsertEvent(event, user_id, session_id, detail, addr,
								GetCurrentTransactionStartTimestamp(), role, false);
		AtSpiFinish();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
}

/*
 * AuditRecord
 *		AuditEvent for a row change (audit_trigger.c): e carries the table,
 *		row, operation and changed columns; the identity, role, address and
 *		time are filled in here.  Raises on failure.
 */
void
AuditRecord(AuditFields *e, const pg_uuid_t *user_id)
{
	Oid			save_userid;
	int			save_sec;
	char		addr[AUDIT_ADDR_LEN];
	pg_uuid_t	actor;
	pg_uuid_t	sess;

	e->db_role = AuditDbRole();
	e->created_at = GetCurrentTransactionStartTimestamp();
	if (IdentityGet(&actor, &sess))
	{
		e->actor_id = &actor;
		e->session_id = &sess;
	}
	AuditClientAddr(addr, sizeof(addr));
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(AtOwnerOid(),
						   save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		AtSpiConnect();
		(void) AuditAppend(e, user_id, addr, false, NULL);
		AtSpiFinish();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
}

/* the chains with events older than the cutoff, and the last such seq */
static AtPlan plan_purge_chains = {
	"SELECT chain_id, pg_catalog.max(seq) FROM audiotricks.audit_log"
	" WHERE created_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) $1)"
	" GROUP BY chain_id ORDER BY chain_id",
	1, {INTERVALOID}, NULL
};

static AtPlan plan_purge_head = {
	"SELECT user_id, detached FROM audiotricks.audit_chain_heads"
	" WHERE chain_id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
	1, {UUIDOID}, NULL
};

static AtPlan plan_purge_range = {
	"SELECT pg_catalog.encode((SELECT hash FROM audiotricks.audit_log"
	"                          WHERE chain_id OPERATOR(pg_catalog.=) $1 AND seq OPERATOR(pg_catalog.=) $2), 'hex'),"
	"       pg_catalog.min(created_at)::pg_catalog.text, pg_catalog.max(created_at)::pg_catalog.text,"
	"       pg_catalog.count(*)"
	"  FROM audiotricks.audit_log"
	" WHERE chain_id OPERATOR(pg_catalog.=) $1 AND seq OPERATOR(pg_catalog.<=) $2",
	2, {UUIDOID, INT8OID}, NULL
};

/*
 * One batch: the events of seq range ($2, $3] of the chain.  A range, not
 * "the first $3 left", which would walk the index entries of the rows this
 * transaction already deleted again at every batch.
 */
static AtPlan plan_purge = {
	"DELETE FROM audiotricks.audit_log"
	" WHERE chain_id OPERATOR(pg_catalog.=) $1"
	"   AND seq OPERATOR(pg_catalog.>) $2 AND seq OPERATOR(pg_catalog.<=) $3",
	3, {UUIDOID, INT8OID, INT8OID}, NULL
};

static AtPlan plan_purge_first = {
	"SELECT pg_catalog.min(seq) FROM audiotricks.audit_log"
	" WHERE chain_id OPERATOR(pg_catalog.=) $1",
	1, {UUIDOID}, NULL
};

/*
 * at_purge_audit_log(older_than interval DEFAULT '1 year', batch_size integer
 *		DEFAULT 10000) RETURNS bigint
 *		Deletes events older than older_than, batch_size rows per statement,
 *		and returns how many.  A chain loses a whole prefix: every event up
 *		to its last one older than the cutoff.  Each chain it shortens gets
 *		an audit_purged event recording the range (through_seq, the
 *		last_hash purged, how many, from and to), which anchors the chain's
 *		new start for at_verify_audit_chain.  For pg_cron.
 */
Datum
at_purge_audit_log(PG_FUNCTION_ARGS)
{
	Interval   *older_than;
	int32		batch;
	Datum		values[3];
	uint64		total = 0;
	uint64		nchains;
	pg_uuid_t  *chains;
	int64	   *through;
	char	   *role = AuditDbRole();

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("older_than and batch_size must not be null")));
	older_than = PG_GETARG_INTERVAL_P(0);
	batch = PG_GETARG_INT32(1);
	if (batch < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be at least 1")));

	AtSpiConnect();
	values[0] = IntervalPGetDatum(older_than);
	if (AtRunPlan(&plan_purge_chains, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the audit log");
	nchains = SPI_processed;
	chains = palloc(sizeof(pg_uuid_t) * Max(nchains, 1));
	through = palloc(sizeof(int64) * Max(nchains, 1));
	for (uint64 i = 0; i < nchains; i++)
	{
		bool		isnull;

		chains[i] = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		through[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
	}

	for (uint64 i = 0; i < nchains; i++)
	{
		bool		isnull;
		bool		has_user;
		pg_uuid_t	user_id;
		char	   *last_hash;
		char	   *from;
		char	   *to;
		int64		n;
		int64		lo;
		bool		detached;
		StringInfoData detail;
		AuditFields e;
		Datum		d;

		CHECK_FOR_INTERRUPTS();
		values[0] = UUIDPGetDatum(&chains[i]);
		if (AtRunPlan(&plan_purge_head, values, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not lock an audit chain head");
		if (SPI_processed != 1)
			continue;			/* events of no chain: the verifier reports them */
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		has_user = !isnull;
		if (has_user)
			user_id = *DatumGetUUIDP(d);
		detached = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));

		values[1] = Int64GetDatum(through[i]);
		if (AtRunPlan(&plan_purge_range, values, NULL, false, 1) != SPI_OK_SELECT ||
			SPI_processed != 1)
			elog(ERROR, "could not read an audit chain's range");
		last_hash = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		from = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		to = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
		n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));
		if (last_hash == NULL || from == NULL || to == NULL)
			continue;			/* raced with nothing: rows are only deleted here */

		if (AtRunPlan(&plan_purge_first, values, NULL, false, 1) != SPI_OK_SELECT ||
			SPI_processed != 1)
			elog(ERROR, "could not read an audit chain's range");
		lo = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) - 1;
		while (!isnull && lo < through[i])
		{
			Datum		pv[3];

			CHECK_FOR_INTERRUPTS();
			pv[0] = UUIDPGetDatum(&chains[i]);
			pv[1] = Int64GetDatum(lo);
			pv[2] = Int64GetDatum(Min(through[i], lo + batch));
			if (AtRunPlan(&plan_purge, pv, NULL, false, 0) != SPI_OK_DELETE)
				elog(ERROR, "could not purge the audit log");
			total += SPI_processed;
			lo = DatumGetInt64(pv[2]);
		}

		initStringInfo(&detail);
		appendStringInfo(&detail, "{\"through_seq\": " INT64_FORMAT ", \"last_hash\": \"%s\","
						 " \"events\": " INT64_FORMAT ", \"from\": ", through[i], last_hash, n);
		escape_json(&detail, from);
		appendStringInfoString(&detail, ", \"to\": ");
		escape_json(&detail, to);
		appendStringInfoChar(&detail, '}');

		memset(&e, 0, sizeof(e));
		e.created_at = GetCurrentTransactionStartTimestamp();
		e.event = "audit_purged";
		e.db_role = role;
		e.ncols = -1;
		e.detail = detail.data;
		(void) AuditAppend(&e, has_user ? &user_id : NULL, NULL, detached, &chains[i]);
	}
	AtSpiFinish();
	PG_RETURN_INT64((int64) total);
}

/*
 * at_audit_history_delete() RETURNS trigger
 *		AFTER DELETE ... FOR EACH STATEMENT on audio_history, with the old rows
 *		as transition table "deleted": records one history_deleted event per
 *		statement (how many entries), for the current identity.  (A deletion
 *		cascaded from at_delete_account is recorded too, then anonymised with
 *		the user's other events.)
 */
Datum
at_audit_history_delete(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	uint64		n;
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;
	bool		have;
	char		detail[64];

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BY_DELETE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		trigdata->tg_oldtable == NULL)
		elog(ERROR, "at_audit_history_delete: must be fired after delete for each statement with an old table");

	n = tuplestore_tuple_count(trigdata->tg_oldtable);
	if (n > 0)
	{
		have = IdentityGet(&user_id, &session_id);
		snprintf(detail, sizeof(detail), "{\"entries\": " UINT64_FORMAT "}", n);
		AuditEvent("history_deleted", have ? &user_id : NULL,
				   have ? &session_id : NULL, detail);
	}
	return PointerGetDatum(NULL);
}

