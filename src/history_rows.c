/*
 * src/history_rows.c
 *		What the two direct readers of audio_history (history_page.c,
 *		history_search.c) share: the page_size argument's check, the test
 *		that the table's only policy is the shipped one (so a direct read
 *		applies every rule there is), and appending a table row to a result.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
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
#include "utils/tuplestore.h"

#include "audiotricks.h"
#include "history_rows.h"

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
 * AtPutRow
 *		Appends the row of rel in slot to store.  A row written before a column was
 *		added with a default holds fewer attributes than the table; it is
 *		deformed against the table (which supplies the missing values) and
 *		re-formed, so the caller sees the same row a query would.
 */
void
AtPutRow(Relation rel, TupleTableSlot *slot, Tuplestorestate *store)
{
	HeapTuple	tuple = ExecFetchSlotHeapTuple(slot, false, NULL);
	TupleDesc	desc = RelationGetDescr(rel);

	if (HeapTupleHeaderGetNatts(tuple->t_data) == desc->natts)
		tuplestore_puttuple(store, tuple);
	else
	{
		slot_getallattrs(slot);
		tuplestore_putvalues(store, desc, slot->tts_values, slot->tts_isnull);
	}
}
