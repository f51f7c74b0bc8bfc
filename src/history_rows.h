/*
 * src/history_rows.h
 *		What the direct readers of audio_history share (history_rows.c).
 */
#ifndef AT_HISTORY_ROWS_H
#define AT_HISTORY_ROWS_H

#include "access/tupdesc.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "utils/relcache.h"
#include "utils/tuplestore.h"
#include "utils/uuid.h"

#include "cursor.h"
#include "spi.h"

#define AT_PAGE_SIZE_DEFAULT	20
#define AT_PAGE_SIZE_MAX		100

/*
 * audiotricks.history_entry: the table columns it carries (in its order),
 * then rank and cursor.
 */
#define AT_ENTRY_TABLE_COLS		11
#define AT_ENTRY_NATTS			13
#define AT_ENTRY_CREATED_AT		10	/* 0-based, in the row type and the list */
#define AT_ENTRY_ID				0
#define AT_ENTRY_RANK			11
#define AT_ENTRY_CURSOR			12

/* the table's attribute numbers of the row type's first AT_ENTRY_TABLE_COLS */
typedef struct AtEntryCols
{
	AttrNumber	att[AT_ENTRY_TABLE_COLS];
} AtEntryCols;

extern int32 AtCheckedPageSize(FunctionCallInfo fcinfo, int argno);
extern void AtCheckedCursor(FunctionCallInfo fcinfo, int argno, int kind,
							uint32_t query_tag, AtCursor *cursor,
							bool *has_cursor);
extern bool AtHistoryPoliciesAreOurs(Relation rel);
extern void AtEntryColsInit(Relation rel, AtEntryCols *cols);
extern void AtCheckEntryDesc(TupleDesc desc);
extern void AtPutEntry(const AtEntryCols *cols, TupleTableSlot *slot,
					   TupleDesc desc, Tuplestorestate *store,
					   bool has_rank, float4 rank, uint32_t query_tag);
extern void AtPutEntryValues(Datum *values, bool *nulls, TupleDesc desc,
							 Tuplestorestate *store, bool has_rank,
							 uint32_t query_tag);
extern void AtRunEntryPlan(AtPlan *p, Datum *values, long count,
						   TupleDesc desc, Tuplestorestate *store,
						   bool has_rank, uint32_t query_tag);

#endif							/* AT_HISTORY_ROWS_H */
