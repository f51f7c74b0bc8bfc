/*
 * src/srf.h
 *		Results of set-returning functions in materialize mode (srf.c).
 */
#ifndef AT_SRF_H
#define AT_SRF_H

#include "access/tupdesc.h"
#include "fmgr.h"
#include "utils/tuplestore.h"

extern Tuplestorestate *AtMaterialize(FunctionCallInfo fcinfo, TupleDesc *tupdesc);
extern Datum AtReturnOneRow(FunctionCallInfo fcinfo, Datum *values, bool *nulls);

#endif							/* AT_SRF_H */
