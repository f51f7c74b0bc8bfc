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

static AtPlan plan_insert_event = {
	"INSERT INTO audiotricks.audit_log (event, user_id, session_id, detail, client_addr, created_at)"
	" VALUES ($1, $2, $3, pg_catalog.jsonb_in($4::pg_catalog.cstring),"
	"         pg_catalog.inet_in($5::pg_catalog.cstring), $6)",
	6, {TEXTOID, UUIDOID, UUIDOID, TEXTOID, TEXTOID, TIMESTAMPTZOID}, NULL
};

/* inside an open SPI connection: writes one event */
void
AuditInsertEvent(const char *event, const pg_uuid_t *user_id,
				 const pg_uuid_t *session_id, const char *detail,
				 const char *addr, TimestampTz at)
{
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = CStringGetTextDatum(event);
	if (user_id)
		values[1] = UUIDPGetDatum(user_id);
	else
		nulls[1] = 'n';
	if (session_id)
		values[2] = UUIDPGetDatum(session_id);
	else
		nulls[2] = 'n';
	values[3] = CStringGetTextDatum(detail ? detail : "{}");
	if (addr && addr[0])
		values[4] = CStringGetTextDatum(addr);
	else
		nulls[4] = 'n';
	values[5] = TimestampTzGetDatum(at);
	if (AtRunPlan(&plan_insert_event, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write an audit event");
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

	AuditClientAddr(addr, sizeof(addr));
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(AtOwnerOid(),
						   save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		AtSpiConnect();
		AuditInsertEvent(event, user_id, session_id, detail, addr,
						 GetCurrentTransactionStartTimestamp());
		AtSpiFinish();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
}

static AtPlan plan_purge = {
	"DELETE FROM audiotricks.audit_log WHERE id OPERATOR(pg_catalog.=) ANY ("
	" SELECT id FROM audiotricks.audit_log"
	"  WHERE created_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) $1)"
	"  ORDER BY created_at LIMIT $2)",
	2, {INTERVALOID, INT4OID}, NULL
};

/*
 * at_purge_audit_log(older_than interval DEFAULT '1 year', batch_size integer
 *		DEFAULT 10000) RETURNS bigint
 *		Deletes events older than older_than, batch_size rows per statement,
 *		until none is left; returns how many.  For pg_cron.
 */
Datum
at_purge_audit_log(PG_FUNCTION_ARGS)
{
	Interval   *older_than;
	int32		batch;
	Datum		values[2];
	uint64		total = 0;

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
	values[1] = Int32GetDatum(batch);
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (AtRunPlan(&plan_purge, values, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not purge the audit log");
		total += SPI_processed;
		if (SPI_processed < (uint64) batch)
			break;
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

