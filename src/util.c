/*
 * src/util.c
 *		Small shared helpers: the preload check, settings that must be
 *		present, catalog lookups of the extension's schema and owner, and the
 *		updated_at trigger.
 */
#include "postgres.h"

#include <sodium.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_namespace.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"
#include "utils/timestamp.h"

#include "audiotricks.h"
#include "jwt.h"

PG_FUNCTION_INFO_V1(at_check_preload);
PG_FUNCTION_INFO_V1(at_touch_updated_at);

/*
 * AtRequirePreload
 *		Raises 55000 unless the library came from shared_preload_libraries.
 */
void
AtRequirePreload(void)
{
	if (!audiotricks_preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("audiotricks must be loaded via shared_preload_libraries"),
				 errdetail("Its secret settings and shared state exist only when the server loads the library at start."),
				 errhint("Add 'audiotricks' to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/*
 * at_check_preload() RETURNS void
 *		Called first by the install script, so that CREATE EXTENSION fails
 *		clearly when the library is not preloaded.
 */
Datum
at_check_preload(PG_FUNCTION_ARGS)
{
	AtRequirePreload();
	PG_RETURN_VOID();
}

/*
 * AtJwtSecret
 *		The JWT secret and its length.  Raises 55000 when it is unset or
 *		shorter than 32 bytes.  The returned pointer is the GUC's own string:
 *		never modify or free it.
 */
const char *
AtJwtSecret(size_t *len)
{
	size_t		l;

	AtRequirePreload();
	l = audiotricks_jwt_secret ? strlen(audiotricks_jwt_secret) : 0;
	if (l < AT_JWT_SECRET_MIN)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("audiotricks.jwt_secret is not set"),
				 errdetail("The secret must be at least %d bytes long.", AT_JWT_SECRET_MIN),
				 errhint("Set it in postgresql.conf and reload the server.")));
	*len = l;
	return audiotricks_jwt_secret;
}

/*
 * AtJwtKey
 *		The HMAC key prepared from audiotricks.jwt_secret, rebuilt (and the
 *		old one wiped) whenever the secret changes.  Raises like AtJwtSecret.
 *		The result lives in static memory: never modify it.
 */
const JwtKey *
AtJwtKey(void)
{
	static JwtKey key;
	static uint64 key_generation = 0;
	static bool key_valid = false;
	size_t		len;
	const char *secret = AtJwtSecret(&len);

	if (!key_valid || key_generation != audiotricks_jwt_secret_generation)
	{
		sodium_memzero(&key, sizeof(key));
		JwtKeyInit(&key, (const uint8_t *) secret, len);
		key_generation = audiotricks_jwt_secret_generation;
		key_valid = true;
	}
	return &key;
}

/*
 * The extension's schema and owner, read from pg_extension once per backend.
 * pg_extension has no syscache, so nothing announces its changes; but the
 * schema is not relocatable, and whatever changes the schema's name or owner
 * (ALTER SCHEMA, REASSIGN OWNED, DROP SCHEMA) updates pg_namespace, whose
 * syscache invalidation drops the copy.  A fill keeps it only when no such
 * invalidation arrived meanwhile.  (DROP EXTENSION leaves the schema behind,
 * and a new CREATE EXTENSION accepts it only from its owner: the copy stays
 * true.)
 */
typedef struct ExtCache
{
	bool		valid;
	Oid			nsp;			/* pg_extension.extnamespace */
	Oid			owner;			/* pg_extension.extowner */
	Oid			nspowner;		/* that schema's owner when the copy was made */
} ExtCache;

static ExtCache ext_cache;
static bool ext_callback_registered = false;
static uint64 ext_cache_inval_count = 0;

static void
ext_cache_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	ext_cache_inval_count++;
	ext_cache.valid = false;
}

static void
ext_cache_fill(void)
{
	if (!ext_callback_registered)
	{
		CacheRegisterSyscacheCallback(NAMESPACEOID, ext_cache_invalidate, (Datum) 0);
		ext_callback_registered = true;
	}
	for (;;)
	{
		uint64		seen = ext_cache_inval_count;
		Relation	rel;
		SysScanDesc scan;
		ScanKeyData key;
		HeapTuple	tup;
		bool		found = false;

		ext_cache.valid = false;
		rel = table_open(ExtensionRelationId, AccessShareLock);
		ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
					F_NAMEEQ, CStringGetDatum("audiotricks"));
		scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
		tup = systable_getnext(scan);
		if (HeapTupleIsValid(tup))
		{
			Form_pg_extension ext = (Form_pg_extension) GETSTRUCT(tup);

			ext_cache.nsp = ext->extnamespace;
			ext_cache.owner = ext->extowner;
			found = true;
		}
		systable_endscan(scan);
		table_close(rel, AccessShareLock);
		if (!found)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("extension audiotricks is not installed in this database")));

		tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(ext_cache.nsp));
		ext_cache.nspowner = InvalidOid;
		if (HeapTupleIsValid(tup))
		{
			ext_cache.nspowner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
			ReleaseSysCache(tup);
		}
		if (seen == ext_cache_inval_count)
			break;
	}
	ext_cache.valid = true;
}

/*
 * AtCheckSchema
 *		The OID of the extension's schema, after checking that it is still
 *		the schema named audiotricks and still owned by the extension's
 *		owner.  The C code names its tables audiotricks.<table> in SPI
 *		queries, which are parsed again whenever a plan is invalidated: a
 *		schema renamed by mistake and replaced by someone else's would run
 *		that someone's objects with the owner's rights.  So every entry
 *		point that uses objects by name calls this first (AtRunPlan does, as
 *		do the token check, the history functions, the audit writer).  Takes
 *		the invalidations sent since the last lock, so a rename committed
 *		during this transaction is seen; then one syscache lookup.  Raises
 *		55000 when the schema was renamed, replaced or handed to another
 *		owner, and when the extension is not installed.
 */
Oid
AtCheckSchema(void)
{
	Oid			nsp;

	AcceptInvalidationMessages();
	if (!ext_cache.valid)
		ext_cache_fill();
	nsp = get_namespace_oid(AT_SCHEMA, true);
	if (nsp != ext_cache.nsp || ext_cache.nspowner != ext_cache.owner)
	{
		char	   *real = get_namespace_name(ext_cache.nsp);
		char	   *nspowner = GetUserNameFromId(ext_cache.nspowner, true);
		char	   *owner = GetUserNameFromId(ext_cache.owner, true);

		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("schema audiotricks was renamed or replaced"),
				 !OidIsValid(nsp) ?
				 errdetail("The extension's schema is now named \"%s\", and no schema is named audiotricks.",
						   real ? real : "?") :
				 nsp != ext_cache.nsp ?
				 errdetail("The schema named audiotricks is not the extension's own (which is now named \"%s\"), and is not used.",
						   real ? real : "?") :
				 errdetail("Schema audiotricks is owned by role \"%s\", not by the extension's owner \"%s\".",
						   nspowner ? nspowner : "?", owner ? owner : "?"),
				 errhint("Every audiotricks function refuses to run until the extension's own schema is named audiotricks and owned by the extension's owner again.")));
	}
	return nsp;
}

/*
 * AtSchemaOid
 *		AtCheckSchema under the name its callers that resolve relations by
 *		name use.
 */
Oid
AtSchemaOid(void)
{
	return AtCheckSchema();
}

/*
 * AtOwnerOid
 *		The extension's owner (pg_extension.extowner: the superuser who
 *		created it, since it is not trusted), who owns its tables.  Code
 *		that must see every user's sessions runs its fully qualified SPI
 *		queries as this role.  Checks the schema first (AtCheckSchema, and
 *		raises as it does); cheap enough for every call.
 */
Oid
AtOwnerOid(void)
{
	(void) AtCheckSchema();
	return ext_cache.owner;
}

/*
 * AtPgcryptoSchema
 *		Name of the schema pgcrypto is installed in (palloc'd).  Raises 55000
 *		when pgcrypto is missing.
 */
char *
AtPgcryptoSchema(void)
{
	Oid			extoid = get_extension_oid("pgcrypto", true);
	Oid			nsp = InvalidOid;
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	char	   *name;

	if (!OidIsValid(extoid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension pgcrypto is not installed"),
				 errhint("Run CREATE EXTENSION pgcrypto.")));

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(extoid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		nsp = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	name = OidIsValid(nsp) ? get_namespace_name(nsp) : NULL;
	if (name == NULL)
		elog(ERROR, "could not find the schema of extension pgcrypto");
	return name;
}

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
 * AtRunPlan
 *		Executes p (preparing it and keeping it for the life of the backend on
 *		first use) inside an open SPI connection, after AtCheckSchema (which
 *		raises 55000 when the schema was renamed or replaced).  nulls as for
 *		SPI_execute_plan (NULL: none).  Returns the SPI result code; raises on
 *		failure.
 */
static SPIPlanPtr
at_plan(AtPlan *p)
{
	/* the query names audiotricks.<table>: parsed again after invalidations */
	(void) AtCheckSchema();
	if (p->plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(p->sql, p->nargs, p->argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		p->plan = plan;
	}
	return p->plan;
}

int
AtRunPlan(AtPlan *p, Datum *values, const char *nulls, bool read_only, long count)
{
	int			rc;

	rc = SPI_execute_plan(at_plan(p), values, nulls, read_only, count);
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	return rc;
}

/*
 * AtRunPlanLatest
 *		AtRunPlan for a statement that must act on the newest committed state
 *		whatever the isolation level (as foreign-key cascades do): ending a
 *		user's sessions after taking the lock that orders it after every
 *		login or refresh in flight, whose new session a REPEATABLE READ
 *		snapshot taken earlier would not see.
 */
int
AtRunPlanLatest(AtPlan *p, Datum *values)
{
	int			rc;

	rc = SPI_execute_snapshot(at_plan(p), values, NULL, GetLatestSnapshot(),
							  InvalidSnapshot, false, true, 0);
	if (rc < 0)
		elog(ERROR, "SPI_execute_snapshot failed: %s", SPI_result_code_string(rc));
	return rc;
}

/*
 * AtRunPlanInto
 *		Runs the read-only query p (kept as AtRunPlan keeps it) in its own SPI
 *		connection, as the current user, and appends its rows, which must
 *		have natts columns, to store (tuples copied in per_query memory).
 *		The fallback of at_history_page and at_history_search under policies
 *		they cannot apply themselves.
 */
void
AtRunPlanInto(AtPlan *p, Datum *values, long count, Tuplestorestate *store,
			  int natts, MemoryContext per_query)
{
	MemoryContext oldcxt;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (AtRunPlan(p, values, NULL, true, count) != SPI_OK_SELECT)
		elog(ERROR, "query did not return rows: %s", p->sql);
	if (SPI_tuptable->tupdesc->natts != natts)
		elog(ERROR, "query result does not match its function's row type");
	oldcxt = MemoryContextSwitchTo(per_query);
	for (uint64 i = 0; i < SPI_processed; i++)
		tuplestore_puttuple(store, SPI_tuptable->vals[i]);
	MemoryContextSwitchTo(oldcxt);
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
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
 * AtMaterialize
 *		Sets up a set-returning function's result in materialize mode: a
 *		tuplestore and a copy of the result descriptor, both in per-query
 *		memory, already handed to the executor.  Raises 0A000 if the caller
 *		cannot take a set.  Put rows into the store in per-query memory.
 */
Tuplestorestate *
AtMaterialize(FunctionCallInfo fcinfo, TupleDesc *tupdesc)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	desc;
	Tuplestorestate *store;
	MemoryContext oldcxt;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	oldcxt = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	desc = CreateTupleDescCopy(desc);
	store = tuplestore_begin_heap(true, false, work_mem);
	MemoryContextSwitchTo(oldcxt);

	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = store;
	rsinfo->setDesc = desc;
	*tupdesc = desc;
	return store;
}

/*
 * AtReturnOneRow
 *		Returns one row from a set-returning function in materialize mode.
 *		Raises 0A000 if the caller cannot take a set.
 */
Datum
AtReturnOneRow(FunctionCallInfo fcinfo, Datum *values, bool *nulls)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	tupdesc;
	Tuplestorestate *store = AtMaterialize(fcinfo, &tupdesc);
	MemoryContext oldcxt;

	oldcxt = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	tuplestore_putvalues(store, tupdesc, values, nulls);
	MemoryContextSwitchTo(oldcxt);
	return (Datum) 0;
}

/*
 * at_touch_updated_at() RETURNS trigger
 *		BEFORE UPDATE row trigger: sets updated_at to the transaction's
 *		timestamp.  Returns the modified tuple.
 */
Datum
at_touch_updated_at(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	tupdesc;
	int			attnum;
	Datum		value;
	bool		isnull = false;
	HeapTuple	newtup;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "at_touch_updated_at: not called by trigger manager");
	if (!TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		elog(ERROR, "at_touch_updated_at: must be fired before update for each row");

	tupdesc = RelationGetDescr(trigdata->tg_relation);
	attnum = SPI_fnumber(tupdesc, "updated_at");
	if (attnum <= 0)
		elog(ERROR, "at_touch_updated_at: relation \"%s\" has no column updated_at",
			 RelationGetRelationName(trigdata->tg_relation));

	value = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	newtup = heap_modify_tuple_by_cols(trigdata->tg_newtuple, tupdesc,
									   1, &attnum, &value, &isnull);
	return PointerGetDatum(newtup);
}
