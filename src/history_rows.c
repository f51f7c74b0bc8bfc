/*
 * src/history_rows.c
 *		What the two direct readers of audio_history (history_page.c,
 *		history_search.c) share: the page_size and cursor arguments' checks,
 *		the test that the table's only policy is the shipped one (so a direct
 *		read applies every rule there is), and appending an entry with its
 *		cursor to a result of type audiotricks.history_entry.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "nodes/primnodes.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "rewrite/rowsecurity.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/uuid.h"

#include "audiotricks.h"
#include "history_rows.h"
#include "spi.h"

#define HISTORY_POLICY "audio_history_own"

/* page_size NULL means AT_PAGE_SIZE_DEFAULT; outside 1..AT_PAGE_SIZE_MAX is 22023 */
int32
AtCheckedPageSize(FunctionCallInfo fcinfo, int argno)
{
	int32		n;

	if (PG_ARGISNULL(argno))
		return AT_PAGE_SIZE_DEFAULT;
	n = PG_GETARG_INT32(argno);
	if (n < 1 || n > AT_PAGE_SIZE_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("page_size must be between 1 and %d", AT_PAGE_SIZE_MAX)));
	return n;
}

/*
 * AtCheckedCursor
 *		Reads the cursor argument argno into *cursor (*has_cursor false for
 *		NULL).  Raises 22023 "invalid cursor" when it is damaged (not text
 *		this extension wrote), of the other function's kind, or, for a
 *		search, made for another query text (query_tag, AtCursorQueryTag).
 */
void
AtCheckedCursor(FunctionCallInfo fcinfo, int argno, int kind,
				uint32_t query_tag, AtCursor *cursor, bool *has_cursor)
{
	text	   *t;
	AtCursorError err;

	*has_cursor = false;
	if (PG_ARGISNULL(argno))
		return;
	t = PG_GETARG_TEXT_PP(argno);
	err = AtCursorDecode(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), cursor);
	if (err != AT_CURSOR_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid cursor"),
				 errdetail("The cursor is damaged: it is not the cursor of a row that at_history_page or at_history_search returned.")));
	if (cursor->kind != kind)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid cursor"),
				 errdetail(kind == AT_CURSOR_PAGE ?
						   "The cursor is of a search result; at_history_page takes the cursor of one of its own rows." :
						   "The cursor is of a history page; at_history_search takes the cursor of one of its own rows.")));
	if (kind == AT_CURSOR_SEARCH && cursor->query_tag != query_tag)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid cursor"),
				 errdetail("The cursor belongs to a search for another query text."),
				 errhint("Pass the same query with the cursors of its results.")));
	*has_cursor = true;
}

/*
 * is_identity_sublink
 *		True when node is exactly (SELECT audiotricks.at_current_user_id()):
 *		an expression sublink over a query with no FROM, WHERE or anything
 *		else, whose one column calls that function (by OID).
 */
static bool
is_identity_sublink(Node *node, Oid identity_fn)
{
	SubLink    *sub;
	Query	   *q;
	TargetEntry *te;
	FuncExpr   *fn;

	if (node == NULL || !IsA(node, SubLink))
		return false;
	sub = (SubLink *) node;
	if (sub->subLinkType != EXPR_SUBLINK || sub->testexpr != NULL ||
		sub->operName != NIL || sub->subselect == NULL ||
		!IsA(sub->subselect, Query))
		return false;
	q = (Query *) sub->subselect;
	if (q->commandType != CMD_SELECT || q->utilityStmt != NULL ||
		q->hasAggs || q->hasWindowFuncs || q->hasTargetSRFs ||
		q->hasSubLinks || q->hasDistinctOn || q->hasRecursive ||
		q->hasModifyingCTE || q->hasForUpdate || q->hasRowSecurity ||
		q->cteList != NIL || q->rtable != NIL ||
		q->jointree == NULL || q->jointree->fromlist != NIL ||
		q->jointree->quals != NULL || q->mergeActionList != NIL ||
		q->onConflict != NULL || q->returningList != NIL ||
		q->groupClause != NIL || q->groupingSets != NIL ||
		q->havingQual != NULL || q->windowClause != NIL ||
		q->distinctClause != NIL || q->sortClause != NIL ||
		q->limitOffset != NULL || q->limitCount != NULL ||
		q->rowMarks != NIL || q->setOperations != NULL ||
		list_length(q->targetList) != 1)
		return false;
	te = linitial_node(TargetEntry, q->targetList);
	if (te->resjunk || te->expr == NULL || !IsA(te->expr, FuncExpr))
		return false;
	fn = (FuncExpr *) te->expr;
	return fn->funcid == identity_fn && fn->args == NIL && !fn->funcretset &&
		fn->funcresulttype == UUIDOID;
}

/*
 * is_own_rows_qual
 *		True when qual is exactly user_id = (SELECT
 *		audiotricks.at_current_user_id()), as the install script writes it:
 *		uuid equality of the table's user_id column (first) and the sublink.
 */
static bool
is_own_rows_qual(Expr *qual, AttrNumber a_user_id, Oid identity_fn)
{
	OpExpr	   *op;
	Var		   *var;

	if (qual == NULL || !IsA(qual, OpExpr))
		return false;
	op = (OpExpr *) qual;
	if (op->opfuncid != F_UUID_EQ || op->opretset || list_length(op->args) != 2)
		return false;
	var = (Var *) linitial(op->args);
	if (!IsA(var, Var) || var->varno != 1 || var->varlevelsup != 0 ||
		var->varattno != a_user_id || var->vartype != UUIDOID)
		return false;
	return is_identity_sublink(lsecond(op->args), identity_fn);
}

/*
 * AtHistoryPoliciesAreOurs
 *		True when the only policy on audio_history is the shipped
 *		audio_history_own exactly: that name, for ALL commands, permissive,
 *		for PUBLIC alone, with USING and WITH CHECK both user_id = (SELECT
 *		audiotricks.at_current_user_id()) (compared as expression trees, the
 *		function by OID): the rule the direct reads apply themselves.
 *		Anything else (another expression, command, role list or name, or a
 *		second policy) is false, and the callers go through SPI under
 *		row-level security.  rel must be audio_history, open; relcache
 *		invalidation (ALTER/CREATE/DROP POLICY) refreshes rd_rsdesc.
 */
bool
AtHistoryPoliciesAreOurs(Relation rel)
{
	RowSecurityPolicy *policy;
	AttrNumber	a_user_id;
	Oid			identity_fn;
	List	   *fname;

	if (rel->rd_rsdesc == NULL || list_length(rel->rd_rsdesc->policies) != 1)
		return false;
	policy = (RowSecurityPolicy *) linitial(rel->rd_rsdesc->policies);
	if (!policy->permissive || policy->polcmd != '*' ||
		strcmp(policy->policy_name, HISTORY_POLICY) != 0)
		return false;
	/* roles: {public} */
	if (policy->roles == NULL || ARR_NDIM(policy->roles) != 1 ||
		ARR_DIMS(policy->roles)[0] != 1 || ARR_HASNULL(policy->roles) ||
		ARR_ELEMTYPE(policy->roles) != OIDOID ||
		((Oid *) ARR_DATA_PTR(policy->roles))[0] != ACL_ID_PUBLIC)
		return false;

	a_user_id = get_attnum(RelationGetRelid(rel), "user_id");
	/* the caller checked the schema: audiotricks is the extension's own */
	fname = list_make2(makeString(AT_SCHEMA), makeString("at_current_user_id"));
	identity_fn = LookupFuncName(fname, 0, NULL, true);
	list_free_deep(fname);
	if (a_user_id == InvalidAttrNumber || !OidIsValid(identity_fn))
		return false;
	return is_own_rows_qual(policy->qual, a_user_id, identity_fn) &&
		is_own_rows_qual(policy->with_check_qual, a_user_id, identity_fn);
}

/*
 * AtEntryColsInit
 *		The attribute numbers in audio_history (relid) of the columns that
 *		audiotricks.history_entry carries, in its order.  Raises (elog) if
 *		one is missing.
 */
void
AtEntryColsInit(Relation rel, AtEntryCols *cols)
{
	static const char *const names[AT_ENTRY_TABLE_COLS] = {
		"id", "user_id", "title", "audio_url", "file_size_bytes",
		"duration_seconds", "transcript", "summary", "key_moments",
		"processing_options", "created_at"
	};
	TupleDesc	desc = RelationGetDescr(rel);

	/* from the open relation's descriptor: no catalog lookup per page */
	for (int i = 0; i < AT_ENTRY_TABLE_COLS; i++)
	{
		cols->att[i] = InvalidAttrNumber;
		for (int a = 0; a < desc->natts; a++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, a);

			if (!att->attisdropped && strcmp(NameStr(att->attname), names[i]) == 0)
			{
				cols->att[i] = att->attnum;
				break;
			}
		}
		if (cols->att[i] == InvalidAttrNumber)
			elog(ERROR, "column audio_history.%s does not exist", names[i]);
	}
}

/*
 * AtCheckEntryDesc
 *		Raises (elog) unless desc, a history function's result row, has the
 *		shape of audiotricks.history_entry that the rows are built for.
 */
void
AtCheckEntryDesc(TupleDesc desc)
{
	if (desc->natts != AT_ENTRY_NATTS ||
		TupleDescAttr(desc, AT_ENTRY_ID)->atttypid != UUIDOID ||
		TupleDescAttr(desc, AT_ENTRY_CREATED_AT)->atttypid != TIMESTAMPTZOID ||
		TupleDescAttr(desc, AT_ENTRY_RANK)->atttypid != FLOAT4OID ||
		TupleDescAttr(desc, AT_ENTRY_CURSOR)->atttypid != TEXTOID)
		elog(ERROR, "result type is not audiotricks.history_entry");
}

/*
 * AtPutEntryValues
 *		Appends one history_entry to store: values/nulls hold the
 *		AT_ENTRY_TABLE_COLS table columns and, when has_rank, the rank (else
 *		it is NULL); the cursor (a search cursor with query_tag when
 *		has_rank, else a page cursor) is made from the id, created_at and
 *		rank.  values and nulls must hold AT_ENTRY_NATTS elements.  The row
 *		is copied into the store; the cursor text is allocated in the
 *		current context.
 */
void
AtPutEntryValues(Datum *values, bool *nulls, TupleDesc desc,
				 Tuplestorestate *store, bool has_rank, uint32_t query_tag)
{
	AtCursor	c;
	char		buf[AT_CURSOR_MAX_CHARS + 1];
	size_t		len;

	if (nulls[AT_ENTRY_ID] || nulls[AT_ENTRY_CREATED_AT] ||
		(has_rank && nulls[AT_ENTRY_RANK]))
		elog(ERROR, "a history entry without id, created_at or rank");
	memset(&c, 0, sizeof(c));
	c.kind = has_rank ? AT_CURSOR_SEARCH : AT_CURSOR_PAGE;
	c.created_at = DatumGetTimestampTz(values[AT_ENTRY_CREATED_AT]);
	memcpy(c.id, DatumGetUUIDP(values[AT_ENTRY_ID])->data, UUID_LEN);
	if (has_rank)
	{
		float4		rank = DatumGetFloat4(values[AT_ENTRY_RANK]);

		memcpy(&c.rank_bits, &rank, sizeof(rank));
		c.query_tag = query_tag;
	}
	else
	{
		values[AT_ENTRY_RANK] = (Datum) 0;
		nulls[AT_ENTRY_RANK] = true;
	}
	len = AtCursorEncode(&c, buf);
	values[AT_ENTRY_CURSOR] = PointerGetDatum(cstring_to_text_with_len(buf, (int) len));
	nulls[AT_ENTRY_CURSOR] = false;
	tuplestore_putvalues(store, desc, values, nulls);
}

/*
 * AtPutEntry
 *		Appends the audio_history row in slot to store as a history_entry
 *		(AtPutEntryValues), with rank when has_rank.  A row written before a
 *		column was added reads that column's default, as a query would.
 */
void
AtPutEntry(const AtEntryCols *cols, TupleTableSlot *slot, TupleDesc desc,
		   Tuplestorestate *store, bool has_rank, float4 rank,
		   uint32_t query_tag)
{
	Datum		values[AT_ENTRY_NATTS];
	bool		nulls[AT_ENTRY_NATTS];

	for (int i = 0; i < AT_ENTRY_TABLE_COLS; i++)
		values[i] = slot_getattr(slot, cols->att[i], &nulls[i]);
	values[AT_ENTRY_RANK] = Float4GetDatum(rank);
	nulls[AT_ENTRY_RANK] = !has_rank;
	AtPutEntryValues(values, nulls, desc, store, has_rank, query_tag);
}

/*
 * AtRunEntryPlan
 *		The fallback of at_history_page and at_history_search under policies
 *		they cannot apply themselves: runs the read-only query p (kept as
 *		AtRunPlan keeps it) in its own SPI connection, as the current user
 *		and so under row-level security; its rows are the AT_ENTRY_TABLE_COLS
 *		columns and the rank, and each is appended to store as a
 *		history_entry with its cursor (AtPutEntryValues).
 */
void
AtRunEntryPlan(AtPlan *p, Datum *values, long count, TupleDesc desc,
			   Tuplestorestate *store, bool has_rank, uint32_t query_tag)
{
	Datum		row[AT_ENTRY_NATTS];
	bool		nulls[AT_ENTRY_NATTS];

	AtSpiConnect();
	if (AtRunPlan(p, values, NULL, true, count) != SPI_OK_SELECT)
		elog(ERROR, "query did not return rows: %s", p->sql);
	if (SPI_tuptable->tupdesc->natts != AT_ENTRY_TABLE_COLS + 1)
		elog(ERROR, "query result does not match audiotricks.history_entry");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, row, nulls);
		AtPutEntryValues(row, nulls, desc, store, has_rank, query_tag);
	}
	AtSpiFinish();
}
