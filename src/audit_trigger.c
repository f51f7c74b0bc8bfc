/*
 * src/audit_trigger.c
 *		at_audit_row: the row trigger that audits every INSERT, UPDATE and
 *		DELETE on users, user_settings and audio_history.
 *
 * It records the table, the row's id, the operation and the names of the
 * columns it set (INSERT: those not NULL; UPDATE: those whose value
 * changed; DELETE: none) — never a value: a key set or cleared shows as
 * openai_api_key_encrypted, a transcript edit as transcript.  The event goes
 * to the chain of the row's user (audit_chain.c), in the modifying
 * transaction, written as the extension's owner (AuditRecord).
 *
 * A restore is not audited: a superuser session with row_security off (what
 * pg_dump's scripts and pg_restore set) writes no event, so a restored
 * database holds exactly the audit log and chain heads it dumped, whatever
 * order the tables' data comes back in.  Such a session could as well
 * disable the trigger; for everyone else row_security off is an error on
 * these tables (FORCE ROW LEVEL SECURITY).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/datum.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/uuid.h"

#include "audiotricks.h"
#include "audit.h"

PG_FUNCTION_INFO_V1(at_audit_row);

/* the local transaction whose row changes are not audited (AuditRowsPause) */
static LocalTransactionId paused_lxid = InvalidLocalTransactionId;

/*
 * AuditRowsPause
 *		While paused, at_audit_row records nothing for this backend's
 *		transaction: the partition maintenance (history_partitions.c) moving
 *		the default partition's rows into a new partition, which changes no
 *		row.  It unpauses right after its statement; a pause left by an error
 *		ends with its transaction, since it names that transaction.
 */
void
AuditRowsPause(bool pause)
{
	paused_lxid = pause ? MyProc->lxid : InvalidLocalTransactionId;
}

/* the uuid in column name of tup; raises unless there is one */
static pg_uuid_t *
uuid_column(Relation rel, HeapTuple tup, const char *name)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			attnum = SPI_fnumber(desc, name);
	bool		isnull;
	Datum		d;

	if (attnum <= 0 || TupleDescAttr(desc, attnum - 1)->atttypid != UUIDOID)
		elog(ERROR, "at_audit_row: table \"%s\" has no uuid column \"%s\"",
			 RelationGetRelationName(rel), name);
	d = heap_getattr(tup, attnum, desc, &isnull);
	if (isnull)
		return NULL;
	return DatumGetUUIDP(d);
}

/* true when the two values are the same (binary image, detoasted if needed) */
static bool
same_value(Datum a, Datum b, Form_pg_attribute att)
{
	if (att->attlen == -1)
	{
		/* an unchanged toasted value keeps its pointer: no detoasting */
		if (VARSIZE_ANY(DatumGetPointer(a)) == VARSIZE_ANY(DatumGetPointer(b)) &&
			memcmp(DatumGetPointer(a), DatumGetPointer(b), VARSIZE_ANY(DatumGetPointer(a))) == 0)
			return true;
	}
	return datum_image_eq(a, b, att->attbyval, att->attlen);
}

/*
 * at_audit_row() RETURNS trigger
 *		AFTER INSERT OR UPDATE OR DELETE ... FOR EACH ROW, with two
 *		arguments: the column holding the row's user, and the column holding
 *		the row's id.  Records one data_changed event.
 */
Datum
at_audit_row(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	TupleDesc	desc;
	HeapTuple	tup;
	AuditFields e;
	pg_uuid_t  *user_id;
	char	  **cols;
	int			ncols = 0;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		trigdata->tg_trigger->tgnargs != 3)
		elog(ERROR, "at_audit_row must run as an AFTER row trigger with three arguments");

	/* rows moved between partitions by the maintenance */
	if (paused_lxid != InvalidLocalTransactionId && paused_lxid == MyProc->lxid)
		return PointerGetDatum(NULL);

	/* a restore (file header) */
	if (!row_security && superuser_arg(GetOuterUserId()))
		return PointerGetDatum(NULL);

	rel = trigdata->tg_relation;
	desc = RelationGetDescr(rel);
	tup = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) || TRIGGER_FIRED_BY_INSERT(trigdata->tg_event)
		? (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? trigdata->tg_newtuple : trigdata->tg_trigtuple)
		: trigdata->tg_trigtuple;

	memset(&e, 0, sizeof(e));
	e.event = "data_changed";
	/* the table's own name, also in a partition's copy of the trigger */
	e.table_name = trigdata->tg_trigger->tgargs[2];
	e.row_id = uuid_column(rel, tup, trigdata->tg_trigger->tgargs[1]);
	user_id = uuid_column(rel, tup, trigdata->tg_trigger->tgargs[0]);
	cols = palloc(sizeof(char *) * Max(desc->natts, 1));
	e.cols = cols;

	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
	{
		e.operation = "INSERT";
		for (int i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (!att->attisdropped && !heap_attisnull(tup, i + 1, desc))
				cols[ncols++] = NameStr(att->attname);
		}
		e.ncols = ncols;
	}
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		HeapTuple	old = trigdata->tg_trigtuple;

		e.operation = "UPDATE";
		for (int i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);
			bool		n1,
						n2;
			Datum		a,
						b;

			if (att->attisdropped)
				continue;
			a = heap_getattr(old, i + 1, desc, &n1);
			b = heap_getattr(tup, i + 1, desc, &n2);
			if (n1 != n2 || (!n1 && !same_value(a, b, att)))
				cols[ncols++] = NameStr(att->attname);
		}
		e.ncols = ncols;
	}
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
	{
		e.operation = "DELETE";
		e.ncols = -1;
	}
	else
		elog(ERROR, "at_audit_row must be fired by INSERT, UPDATE or DELETE");

	AuditRecord(&e, user_id);
	return PointerGetDatum(NULL);
}
