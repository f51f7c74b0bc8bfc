/*
 * src/history_search.c
 *		at_history_search: the current user's audio history entries that
 *		match a query, best first (the search document is made in
 *		history_index.c, at_history_page is in history_page.c).
 *
 * Search.  Each entry carries search_config, the text search configuration
 * of its language (processing_options.language if given, else the writer's
 * preferred_language, else 'simple'), and search_tsv, a stored generated
 * tsvector of title (weight A), summary (B) and transcript (C) in that
 * configuration.  A GIN index on (user_id, search_tsv) (btree_gin) lets one
 * bitmap scan find only the caller's matching entries.  The query text is
 * parsed with websearch_to_tsquery (no syntax errors from user input) once
 * per language the caller's entries are in, and the results are OR-ed, so a
 * word matches an entry in whatever language that entry was indexed.  Those
 * languages come from a btree index on (user_id, the entry's configuration),
 * read one distinct value at a time: parsing the query in every language
 * would cost ~30 parses a call, and another language's stem of a word can
 * match unrelated words (German "gotus" next to English "gotust"), which
 * both returns wrong rows and makes the GIN scan read far more entries.
 *
 * The search does not go through the planner (search_direct): under a
 * row-level security policy the planner may not use the non-leakproof @@ as
 * an index condition, and a generic plan prices "user_id = $1" at the
 * average user's size, so for a user with 200,000 entries it picks a btree
 * on user_id and reads all of them.  at_history_search instead runs one
 * bitmap scan of the GIN index with both keys (user and query), rechecks
 * and ranks the rows it returns, keeps the best page, and applies the
 * shipped policy's rule (the identity's own rows) itself, as history_page.c
 * does; with other policies on the table it runs the query under row-level
 * security instead.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/itup.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"

#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_am.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/tidbitmap.h"
#include "nodes/value.h"
#include "tsearch/ts_type.h"
#include "tsearch/ts_utils.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/syscache.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"
#include "utils/uuid.h"

#include "audiotricks.h"
#include "history_index.h"
#include "history_partitions.h"
#include "history_rows.h"
#include "identity.h"
#include "schema.h"
#include "spi.h"
#include "srf.h"

PG_FUNCTION_INFO_V1(at_history_search);

/*
 * user_configs
 *		The text search configurations (OIDs) of user_id's entries, distinct,
 *		read from the index audio_history_config_idx on (user_id,
 *		at_history_tsv_config(...)), whose second column is a configuration's
 *		schema-qualified name, one value at a time: a loose index scan, one
 *		descent per configuration, whatever the number of entries.  Only
 *		index entries are read, so an entry deleted but not yet vacuumed may
 *		add a configuration: that costs a query arm, never a wrong result.
 *		Configurations dropped since are left out.
 */
/* the distinct configurations of user_id in one partition's config index */
static void
partition_configs(Relation rel, Relation irel, const pg_uuid_t *user_id,
				  List **configs)
{
	text	   *last = NULL;

	for (;;)
	{
		ScanKeyData keys[2];
		int			nkeys = 1;
		IndexScanDesc scan;
		ItemPointer tid;
		bool		found = false;

		CHECK_FOR_INTERRUPTS();
		ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
							   irel->rd_indcollation[0], F_UUID_EQ,
							   UUIDPGetDatum(user_id));
		if (last != NULL)
		{
			ScanKeyEntryInitialize(&keys[1], 0, 2, BTGreaterStrategyNumber,
								   InvalidOid, irel->rd_indcollation[1], F_TEXT_GT,
								   PointerGetDatum(last));
			nkeys = 2;
		}
		scan = index_beginscan(rel, irel, GetActiveSnapshot(), nkeys, 0);
		scan->xs_want_itup = true;
		index_rescan(scan, keys, nkeys, NULL, 0);
		tid = index_getnext_tid(scan, ForwardScanDirection);
		if (tid != NULL && scan->xs_itup != NULL)
		{
			bool		isnull;
			Datum		d = index_getattr(scan->xs_itup, 2, scan->xs_itupdesc, &isnull);

			if (!isnull)
			{
				last = DatumGetTextPCopy(d);
				found = true;
			}
		}
		index_endscan(scan);
		if (!found)
			break;
		{
			Oid			cfg = AtSearchConfigOid(VARDATA_ANY(last),
												VARSIZE_ANY_EXHDR(last),
												true, NULL);

			if (OidIsValid(cfg) && !list_member_oid(*configs, cfg))
				*configs = lappend_oid(*configs, cfg);
		}
	}
}

static List *
user_configs(const pg_uuid_t *user_id)
{
	Oid			nsp = AtCheckSchema();
	Oid			relid = get_relname_relid("audio_history", nsp);
	Oid			indexid = get_relname_relid("audio_history_config_idx", nsp);
	Relation	rel;
	Relation	irel;
	List	   *configs = NIL;
	AtHistoryPart *parts;
	int			nparts;

	if (!OidIsValid(relid) || !OidIsValid(indexid))
		elog(ERROR, "audiotricks.audio_history or its index audio_history_config_idx is missing");
	rel = table_open(relid, AccessShareLock);
	irel = index_open(indexid, AccessShareLock);
	if (irel->rd_index->indrelid != relid || irel->rd_index->indnkeyatts != 2 ||
		irel->rd_rel->relam != BTREE_AM_OID ||
		TupleDescAttr(RelationGetDescr(irel), 1)->atttypid != TEXTOID)
		elog(ERROR, "index audiotricks.audio_history_config_idx is not (user_id, configuration)");

	nparts = AtHistoryParts(rel, &parts);
	for (int i = 0; i < nparts; i++)
	{
		Relation	prel = table_open(parts[i].relid, AccessShareLock);
		Relation	pirel = index_open(AtPartitionIndex(prel, indexid), AccessShareLock);

		partition_configs(prel, pirel, user_id, &configs);
		index_close(pirel, AccessShareLock);
		table_close(prel, AccessShareLock);
	}
	index_close(irel, AccessShareLock);
	table_close(rel, AccessShareLock);
	return configs;
}

/*
 * search_query
 *		The user's text parsed with websearch_to_tsquery in each of configs
 *		(the configurations the user's entries are in), OR-ed together
 *		(identical arms once).  Returns NULL when no arm has a lexeme (no
 *		entries, or only stop words).  The parser's notices about stop words
 *		are kept from the client.
 */
static TSQuery
search_query_arms(text *input, List *configs)
{
	Datum		result = (Datum) 0;
	List	   *seen = NIL;
	int			nestlevel = NewGUCNestLevel();
	ListCell   *cl;

	(void) set_config_option("client_min_messages", "warning",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);

	foreach(cl, configs)
	{
		TSQuery		arm;
		ListCell   *lc;
		bool		dup = false;

		arm = DatumGetTSQuery(DirectFunctionCall2(websearch_to_tsquery_byid,
												  ObjectIdGetDatum(lfirst_oid(cl)),
												  PointerGetDatum(input)));
		if (arm->size == 0)
			continue;
		foreach(lc, seen)
		{
			TSQuery		other = (TSQuery) lfirst(lc);

			if (VARSIZE(other) == VARSIZE(arm) &&
				memcmp(other, arm, VARSIZE(arm)) == 0)
				dup = true;
		}
		if (dup)
			continue;
		seen = lappend(seen, arm);
		result = result == (Datum) 0 ? PointerGetDatum(arm) :
			DirectFunctionCall2(tsquery_or, result, PointerGetDatum(arm));
	}

	AtEOXact_GUC(true, nestlevel);
	return result == (Datum) 0 ? NULL : DatumGetTSQuery(result);
}

/*
 * search_query
 *		search_query_arms in a subtransaction: PostgreSQL's own query parser
 *		raises an internal error ("tsquery stack too small") for some inputs
 *		made only of operators, such as '&-&-&-...'; user text must never
 *		produce an internal error, so that one becomes 22023.  Other errors
 *		pass through unchanged.
 */
static TSQuery
search_query(text *input, List *configs)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	TSQuery		result = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		result = search_query_arms(input, configs);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		if (edata->sqlerrcode == ERRCODE_INTERNAL_ERROR)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("search query could not be parsed"),
					 errdetail("Use words; a query made only of operators is not a search.")));
		ReThrowError(edata);
	}
	PG_END_TRY();
	return result;
}

/*
 * The search as a query.  ($4, $5, $6): the cursor's rank, created_at and
 * id, after which the rows sort strictly in the order rank DESC, created_at
 * DESC, id DESC; without a cursor the rank is infinity, above every rank.
 * The rank is the float4 ts_rank that search_consider computes
 * (ts_rank_tt), so it compares exactly.
 */
static AtPlan plan_search = {
	"SELECT s.id, s.user_id, s.title, s.audio_url, s.file_size_bytes,"
	"       s.duration_seconds, s.transcript, s.summary, s.key_moments,"
	"       s.processing_options, s.created_at, s.rank"
	"  FROM (SELECT h.*, pg_catalog.ts_rank(h.search_tsv, $2) AS rank"
	"          FROM audiotricks.audio_history h"
	"         WHERE h.user_id OPERATOR(pg_catalog.=) $1"
	"           AND h.search_tsv OPERATOR(pg_catalog.@@) $2) s"
	" WHERE s.rank OPERATOR(pg_catalog.<) $4"
	"    OR (s.rank OPERATOR(pg_catalog.=) $4"
	"        AND ROW(s.created_at, s.id) OPERATOR(pg_catalog.<) ROW($5, $6))"
	" ORDER BY s.rank DESC, s.created_at DESC, s.id DESC"
	" LIMIT $3",
	6, {UUIDOID, TSQUERYOID, INT4OID, FLOAT4OID, TIMESTAMPTZOID, UUIDOID}, NULL
};

/*
 * search_through_spi
 *		The search as an ordinary query, as the caller and under row-level
 *		security, for a table that carries policies besides the shipped one
 *		(they then apply).  Slower: under a policy the planner may not use
 *		the non-leakproof @@ as an index condition.
 */
static void
search_through_spi(const pg_uuid_t *user_id, TSQuery query,
				   const AtCursor *cursor, uint32_t query_tag, int32 page_size,
				   TupleDesc desc, Tuplestorestate *store)
{
	Datum		values[6];
	pg_uuid_t  *uid = palloc(sizeof(pg_uuid_t));
	pg_uuid_t  *aid = palloc0(sizeof(pg_uuid_t));
	float4		rank = get_float4_infinity();

	*uid = *user_id;
	if (cursor != NULL)
	{
		memcpy(&rank, &cursor->rank_bits, sizeof(rank));
		memcpy(aid->data, cursor->id, UUID_LEN);
	}
	values[0] = UUIDPGetDatum(uid);
	values[1] = PointerGetDatum(query);
	values[2] = Int32GetDatum(page_size);
	values[3] = Float4GetDatum(rank);
	values[4] = TimestampTzGetDatum(cursor != NULL ? cursor->created_at : 0);
	values[5] = UUIDPGetDatum(aid);
	AtRunEntryPlan(&plan_search, values, page_size, desc, store, true, query_tag);
}

/* one match: its rank and sort keys, and where it is */
typedef struct SearchHit
{
	float4		rank;
	TimestampTz created_at;
	pg_uuid_t	id;
	ItemPointerData tid;
	int			part;			/* which partition (search_direct's list) */
} SearchHit;

/* true when a sorts before b: rank, then created_at, then id, all descending */
static bool
hit_before(const SearchHit *a, const SearchHit *b)
{
	if (a->rank != b->rank)
		return a->rank > b->rank;
	if (a->created_at != b->created_at)
		return a->created_at > b->created_at;
	return memcmp(a->id.data, b->id.data, UUID_LEN) > 0;
}

typedef struct SearchRel
{
	AttrNumber	a_id;
	AttrNumber	a_user_id;
	AttrNumber	a_created_at;
	AttrNumber	a_tsv;
} SearchRel;

/* state of one search: the query, the user, the best hits so far */
typedef struct SearchState
{
	const SearchRel *cols;
	const pg_uuid_t *user_id;
	TSQuery		query;
	bool		has_cursor;
	SearchHit	after;			/* the cursor's sort key, when has_cursor */
	int32		page_size;
	SearchHit  *hits;
	int			nhits;
	int			part;			/* the partition being read */
	MemoryContext rowcxt;
} SearchState;

/*
 * search_consider
 *		Rechecks the row in slot (the user's, and matching the query), ranks
 *		it and keeps it if it sorts strictly after the cursor and is among
 *		the best page_size so far (sorted: rank, created_at, id, all
 *		descending, as plan_search orders).
 */
static void
search_consider(SearchState *st, TupleTableSlot *slot)
{
	SearchHit	h;
	bool		isnull;
	Datum		d;
	bool		match;
	int			pos;
	MemoryContext oldcxt;

	d = slot_getattr(slot, st->cols->a_user_id, &isnull);
	if (isnull || memcmp(DatumGetUUIDP(d)->data, st->user_id->data, UUID_LEN) != 0)
		return;
	d = slot_getattr(slot, st->cols->a_tsv, &isnull);
	if (isnull)
		return;
	MemoryContextReset(st->rowcxt);
	oldcxt = MemoryContextSwitchTo(st->rowcxt);
	match = DatumGetBool(DirectFunctionCall2(ts_match_vq, d, PointerGetDatum(st->query)));
	if (match)
		h.rank = DatumGetFloat4(DirectFunctionCall2(ts_rank_tt, d, PointerGetDatum(st->query)));
	MemoryContextSwitchTo(oldcxt);
	if (!match)
		return;
	d = slot_getattr(slot, st->cols->a_created_at, &isnull);
	h.created_at = isnull ? DT_NOBEGIN : DatumGetTimestampTz(d);
	d = slot_getattr(slot, st->cols->a_id, &isnull);
	if (isnull)
		elog(ERROR, "audio_history.id is null");
	h.id = *DatumGetUUIDP(d);
	h.tid = slot->tts_tid;
	h.part = st->part;

	if (st->has_cursor && !hit_before(&st->after, &h))
		return;
	if (st->nhits == st->page_size && !hit_before(&h, &st->hits[st->nhits - 1]))
		return;
	pos = st->nhits < st->page_size ? st->nhits++ : st->nhits - 1;
	while (pos > 0 && hit_before(&h, &st->hits[pos - 1]))
	{
		st->hits[pos] = st->hits[pos - 1];
		pos--;
	}
	st->hits[pos] = h;
}

/*
 * A user with at most this many entries is searched by reading all of them
 * (the (user_id, created_at, id) btree, then a recheck of each); above it,
 * through the GIN index.  Reading a few hundred entries costs less than a
 * GIN scan, whose cost also follows how common the words are in the whole
 * table and the size of the GIN pending list (entries written since the
 * last vacuum), which a small user should not pay.
 */
#define SEARCH_SCAN_MAX		256

/* true when user_id has at most SEARCH_SCAN_MAX index entries (TIDs only) */
static bool
search_user_is_small(Relation rel, Relation btree, const pg_uuid_t *user_id)
{
	ScanKeyData key;
	IndexScanDesc scan;
	int			n = 0;

	ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   btree->rd_indcollation[0], F_UUID_EQ, UUIDPGetDatum(user_id));
	scan = index_beginscan(rel, btree, GetActiveSnapshot(), 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	while (n <= SEARCH_SCAN_MAX && index_getnext_tid(scan, ForwardScanDirection) != NULL)
		n++;
	index_endscan(scan);
	return n <= SEARCH_SCAN_MAX;
}

/* every entry of the user, through the btree */
static void
search_by_user(SearchState *st, Relation rel, Relation btree, TupleTableSlot *slot)
{
	ScanKeyData key;
	IndexScanDesc scan;

	ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   btree->rd_indcollation[0], F_UUID_EQ, UUIDPGetDatum(st->user_id));
	scan = index_beginscan(rel, btree, GetActiveSnapshot(), 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		CHECK_FOR_INTERRUPTS();
		search_consider(st, slot);
	}
	index_endscan(scan);
}

/* the user's matching entries, through one bitmap scan of the GIN index */
static void
search_by_gin(SearchState *st, Relation rel, Relation gin, TupleTableSlot *slot)
{
	Snapshot	snapshot = GetActiveSnapshot();
	IndexScanDesc iscan;
	ScanKeyData keys[2];
	TIDBitmap  *tbm;
	TBMIterator *it;
	TBMIterateResult *tbmres;
	TableScanDesc hscan;

	ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, UUIDOID,
						   gin->rd_indcollation[0], InvalidOid, UUIDPGetDatum(st->user_id));
	ScanKeyEntryInitialize(&keys[1], 0, 2, TSearchStrategyNumber, TSQUERYOID,
						   gin->rd_indcollation[1], InvalidOid, PointerGetDatum(st->query));
	tbm = tbm_create(work_mem * 1024L, NULL);
	iscan = index_beginscan_bitmap(gin, snapshot, 2);
	index_rescan(iscan, keys, 2, NULL, 0);
	(void) index_getbitmap(iscan, tbm);
	index_endscan(iscan);

	hscan = table_beginscan_bm(rel, snapshot, 0, NULL);
	it = tbm_begin_iterate(tbm);
	while ((tbmres = tbm_iterate(it)) != NULL)
	{
		CHECK_FOR_INTERRUPTS();
		if (!table_scan_bitmap_next_block(hscan, tbmres))
			continue;
		/* every row is rechecked: a lossy page holds all its rows, and GIN
		 * answers some queries (phrases, weights) only approximately */
		while (table_scan_bitmap_next_tuple(hscan, tbmres, slot))
			search_consider(st, slot);
	}
	tbm_end_iterate(it);
	table_endscan(hscan);
	tbm_free(tbm);
}

/*
 * search_direct
 *		The search without the planner, partition by partition (ranks are
 *		global, so every partition is read; the cost follows the user's rows
 *		in each).  A small user's entries are all read and rechecked; a larger user's matching entries come from one bitmap
 *		scan of the GIN index audio_history_search_idx on (user_id,
 *		search_tsv) with both keys, so only they are read.  Either way each
 *		row is rechecked (user and match) and ranked, those that sort
 *		strictly after the cursor (if any) are considered, the best page_size are
 *		kept and then fetched again by their TIDs into store.  A generic plan
 *		of plan_search cannot be trusted with this: it prices "user_id = $1"
 *		at the average user's size and, for a user with 200,000 entries,
 *		picks a btree on user_id and reads every one of them.
 */
/* a partition a search read: where its matches are fetched from */
typedef struct SearchPart
{
	Relation	rel;
	AtEntryCols entry;
	TupleTableSlot *slot;
} SearchPart;

static AttrNumber
search_attnum(Oid relid, const char *name)
{
	AttrNumber	a = get_attnum(relid, name);

	if (a == InvalidAttrNumber)
		elog(ERROR, "audiotricks.audio_history lacks a column the search reads");
	return a;
}

static void
search_direct(Relation parent, Oid ginid, Oid btreeid, const pg_uuid_t *user_id,
			  TSQuery query, const AtCursor *cursor, uint32_t query_tag,
			  int32 page_size, TupleDesc desc, Tuplestorestate *store)
{
	Relation	gin;
	Relation	btree;
	SearchState st;
	AtHistoryPart *parts;
	int			nparts;
	SearchPart *sp;
	SearchRel	pcols;

	/* the shape, on the parent's indexes (the partitions' copy it) */
	gin = index_open(ginid, AccessShareLock);
	btree = index_open(btreeid, AccessShareLock);
	pcols.a_user_id = search_attnum(RelationGetRelid(parent), "user_id");
	pcols.a_tsv = search_attnum(RelationGetRelid(parent), "search_tsv");
	if (gin->rd_rel->relam != GIN_AM_OID || gin->rd_index->indrelid != RelationGetRelid(parent) ||
		gin->rd_index->indnkeyatts != 2 ||
		gin->rd_index->indkey.values[0] != pcols.a_user_id ||
		gin->rd_index->indkey.values[1] != pcols.a_tsv)
		elog(ERROR, "index audiotricks.audio_history_search_idx is not a GIN index on (user_id, search_tsv)");
	if (btree->rd_rel->relam != BTREE_AM_OID || btree->rd_index->indrelid != RelationGetRelid(parent) ||
		btree->rd_index->indkey.values[0] != pcols.a_user_id)
		elog(ERROR, "index audiotricks.audio_history_user_created_idx does not start with user_id");
	index_close(btree, AccessShareLock);
	index_close(gin, AccessShareLock);

	st.user_id = user_id;
	st.query = query;
	st.has_cursor = cursor != NULL;
	memset(&st.after, 0, sizeof(st.after));
	if (cursor != NULL)
	{
		memcpy(&st.after.rank, &cursor->rank_bits, sizeof(st.after.rank));
		st.after.created_at = cursor->created_at;
		memcpy(st.after.id.data, cursor->id, UUID_LEN);
	}
	st.page_size = page_size;
	st.hits = palloc(sizeof(SearchHit) * page_size);
	st.nhits = 0;
	st.rowcxt = AllocSetContextCreate(CurrentMemoryContext, "at_history_search row",
									  ALLOCSET_SMALL_SIZES);

	/* ranks are global: every partition with the user's matches is read */
	nparts = AtHistoryParts(parent, &parts);
	sp = palloc0(sizeof(SearchPart) * Max(nparts, 1));
	for (int i = 0; i < nparts; i++)
	{
		Oid			relid = parts[i].relid;
		SearchRel	cols;
		Relation	pgin;
		Relation	pbtree;

		CHECK_FOR_INTERRUPTS();
		sp[i].rel = table_open(relid, AccessShareLock);
		AtEntryColsInit(sp[i].rel, &sp[i].entry);
		sp[i].slot = table_slot_create(sp[i].rel, NULL);
		cols.a_id = search_attnum(relid, "id");
		cols.a_user_id = search_attnum(relid, "user_id");
		cols.a_created_at = search_attnum(relid, "created_at");
		cols.a_tsv = search_attnum(relid, "search_tsv");
		st.cols = &cols;
		st.part = i;
		pgin = index_open(AtPartitionIndex(sp[i].rel, ginid), AccessShareLock);
		pbtree = index_open(AtPartitionIndex(sp[i].rel, btreeid), AccessShareLock);
		if (search_user_is_small(sp[i].rel, pbtree, user_id))
			search_by_user(&st, sp[i].rel, pbtree, sp[i].slot);
		else
			search_by_gin(&st, sp[i].rel, pgin, sp[i].slot);
		index_close(pbtree, AccessShareLock);
		index_close(pgin, AccessShareLock);
	}
	MemoryContextDelete(st.rowcxt);

	/* the rows themselves, best first, under the same snapshot */
	for (int i = 0; i < st.nhits; i++)
	{
		SearchPart *p = &sp[st.hits[i].part];

		if (!table_tuple_fetch_row_version(p->rel, &st.hits[i].tid, GetActiveSnapshot(), p->slot))
			elog(ERROR, "search match at (%u,%u) vanished",
				 ItemPointerGetBlockNumber(&st.hits[i].tid),
				 ItemPointerGetOffsetNumber(&st.hits[i].tid));
		AtPutEntry(&p->entry, p->slot, desc, store, true, st.hits[i].rank, query_tag);
	}
	for (int i = 0; i < nparts; i++)
	{
		ExecDropSingleTupleTableSlot(sp[i].slot);
		table_close(sp[i].rel, AccessShareLock);
	}
	pfree(sp);
	pfree(parts);
	pfree(st.hits);
}

/*
 * run_search
 *		Appends the caller's best page_size matches to store: directly
 *		(search_direct) when the only policy on audio_history is the shipped
 *		one, whose rule (the identity's own rows) the scan applies itself;
 *		else through SPI under row-level security.  The caller needs SELECT
 *		on audio_history either way (42501).
 */
static void
run_search(const pg_uuid_t *user_id, TSQuery query, const AtCursor *cursor,
		   uint32_t query_tag, int32 page_size, TupleDesc desc,
		   Tuplestorestate *store)
{
	Oid			nsp = AtCheckSchema();
	Oid			relid = get_relname_relid("audio_history", nsp);
	Oid			ginid = get_relname_relid("audio_history_search_idx", nsp);
	Oid			btreeid = get_relname_relid("audio_history_user_created_idx", nsp);
	Relation	rel;
	AclResult	aclresult;
	int			rls;

	if (!OidIsValid(relid) || !OidIsValid(ginid) || !OidIsValid(btreeid))
		elog(ERROR, "audiotricks.audio_history or one of its indexes is missing");
	aclresult = pg_class_aclcheck(relid, GetUserId(), ACL_SELECT);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_TABLE, "audio_history");
	rls = check_enable_rls(relid, InvalidOid, false);

	rel = table_open(relid, AccessShareLock);
	if (rls != RLS_ENABLED || AtHistoryPoliciesAreOurs(rel))
		search_direct(rel, ginid, btreeid, user_id, query, cursor, query_tag,
					  page_size, desc, store);
	else
		search_through_spi(user_id, query, cursor, query_tag, page_size,
						   desc, store);
	table_close(rel, AccessShareLock);
}

/*
 * at_history_search(query text, page_size integer DEFAULT 20,
 *					 cursor text DEFAULT NULL)
 *		RETURNS SETOF audiotricks.history_entry
 *		The current user's entries whose title, summary or transcript match
 *		the query (web search syntax: words, "phrases", or, -not), best match
 *		first (ts_rank, returned as rank; title counts most), then newest,
 *		each with its cursor; with a cursor (of a row of this search, same
 *		query text), the matches strictly after that row.  A NULL query or
 *		one without searchable words returns no rows.  The rows are
 *		materialized in the per-query context.  Raises 42501 without
 *		identity, 22023 for a page size outside 1..100, a query longer than
 *		1000 characters or an invalid cursor (AtCheckedCursor).
 */
Datum
at_history_search(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;
	int32		page_size;
	TSQuery		query = NULL;
	AtCursor	cursor;
	bool		has_cursor;
	uint32_t	query_tag;
	text	   *input = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);

	IdentityRequire(&user_id, &session_id);
	page_size = AtCheckedPageSize(fcinfo, 1);
	/* a NULL query has no results, so no cursor of one: tag it as '' */
	query_tag = input == NULL ? AtCursorQueryTag("", 0) :
		AtCursorQueryTag(VARDATA_ANY(input), VARSIZE_ANY_EXHDR(input));
	AtCheckedCursor(fcinfo, 2, AT_CURSOR_SEARCH, query_tag, &cursor, &has_cursor);
	if (input != NULL)
	{
		/* bounded: a query tree thousands of terms deep exhausts the stack */
		if (pg_mbstrlen_with_len(VARDATA_ANY(input), VARSIZE_ANY_EXHDR(input)) >
			AT_SEARCH_QUERY_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("query must be at most %d characters long",
							AT_SEARCH_QUERY_MAX)));
		query = search_query(input, user_configs(&user_id));
	}

	store = AtMaterialize(fcinfo, &tupdesc);
	AtCheckEntryDesc(tupdesc);
	if (query != NULL)
		run_search(&user_id, query, has_cursor ? &cursor : NULL, query_tag,
				   page_size, tupdesc, store);
	return (Datum) 0;
}
