/*
 * src/srf.c
 *		Set-returning functions in materialize mode: setting up the result
 *		tuplestore, and returning a single row.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/tuplestore.h"

#include "srf.h"

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
