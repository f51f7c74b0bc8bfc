/*
 * src/history_rows.h
 *		What the direct readers of audio_history share (history_rows.c).
 */
#ifndef AT_HISTORY_ROWS_H
#define AT_HISTORY_ROWS_H

#include "executor/tuptable.h"
#include "fmgr.h"
#include "utils/relcache.h"
#include "utils/tuplestore.h"

#define AT_PAGE_SIZE_DEFAULT	20
#define AT_PAGE_SIZE_MAX		100

extern int32 AtCheckedPageSize(FunctionCallInfo fcinfo, int argno);
extern bool AtHistoryPoliciesAreOurs(Relation rel);
extern void AtPutRow(Relation rel, TupleTableSlot *slot,
					 Tuplestorestate *store);

#endif							/* AT_HISTORY_ROWS_H */
