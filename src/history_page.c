/*
 * src/history_page.c
 *		at_history_page: the current user's history, newest first, paged by
 *		cursor (src/cursor.h), read straight from the (user_id, created_at
 *		DESC, id DESC) index.
 *
 * Why C and not a SQL function.  An inlined SQL function is re-parsed,
 * re-analyzed and re-planned, with the row-level security policy added, every
 * time the statement that calls it is planned: with custom plans (every
 * execution of an unprepared query, PostgREST's default) a 20-row page cost
 * 2-3 times the bare query.  Here there is nothing to plan: the call checks
 * the identity, descends the index once and stops after page_size rows.
 *
 * Security.  The function is SECURITY INVOKER and keeps what the SQL version
 * guaranteed: the caller needs SELECT on audio_history (42501 otherwise);
 * row security is checked as for a query on the table (check_enable_rls, so
 * row_security = off raises as it would); the rows are the verified
 * identity's own, which is exactly what the shipped policy audio_history_own
 * allows.  When the table carries any other policy (an administrator's own),
 * a direct read could bypass it, so the call runs the equivalent query
 * through SPI instead, under row-level security, and honours every policy.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/index.h"
#include "catalog/partition.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "storage/bufmgr.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/uuid.h"

#include "audiotricks.h"
#include "history_partitions.h"
#include "history_rows.h"
#include "identity.h"
#include "schema.h"
#include "spi.h"
#include "srf.h"

PG_FUNCTION_INFO_V1(at_history_page);

/*
 * The table, its paging index and the attribute numbers the scan needs,
 * resolved by name once per backend and dropped by any relcache invalidation
 * of either relation (ALTER TABLE, CREATE/ALTER/DROP POLICY, DROP EXTENSION).
 *
 * Looking things up and taking locks can process invalidations, including
 * ones that make what was just read stale (the index rebuilt under a new OID
 * by REINDEX CONCURRENTLY, the table recreated).  page_cache_lock trusts the
 * cache only if it is still valid once the locks are held; the callback also
 * counts every relcache invalidation, and a fill marks the cache valid only
 * when none arrived while it ran.
 */
typedef struct PageCache
{
	bool		valid;
	Oid			relid;
	Oid			indexid;
	AttrNumber	a_id;
	AttrNumber	a_created_at;
} PageCache;

static PageCache page_cache;
static bool page_callback_registered = false;
static uint64 page_cache_inval_count = 0;

static void
page_cache_invalidate(Datum arg, Oid relid)
{
	/* any relation: a fill in progress may not have stored its OIDs yet */
	page_cache_inval_count++;
	if (relid == InvalidOid || relid == page_cache.relid ||
		relid == page_cache.indexid)
		page_cache.valid = false;
}

static AttrNumber
page_attnum(Oid relid, const char *name)
{
	AttrNumber	a = get_attnum(relid, name);

	if (a == InvalidAttrNumber)
		elog(ERROR, "column audio_history.%s does not exist", name);
	return a;
}

/*
 * page_cache_fill
 *		Resolves the table and index, locks both (AccessShareLock, to the end
 *		of the transaction, as the scan keeps them), and checks that the index
 *		is still (user_id, created_at DESC, id DESC): the scan below relies on
 *		it.  Starts over if an invalidation arrived meanwhile.  Raises (elog)
 *		if either relation is missing or the index has another shape.
 */
static void
page_cache_fill(void)
{
	if (!page_callback_registered)
	{
		CacheRegisterRelcacheCallback(page_cache_invalidate, (Datum) 0);
		page_callback_registered = true;
	}
	for (;;)
	{
		uint64		seen = page_cache_inval_count;
		Oid			nsp;
		Relation	irel;
		Form_pg_index idx;
		AttrNumber	a_user_id;

		page_cache.valid = false;
		nsp = AtCheckSchema();
		page_cache.relid = get_relname_relid("audio_history", nsp);
		page_cache.indexid = get_relname_relid("audio_history_user_created_idx", nsp);
		if (!OidIsValid(page_cache.relid) || !OidIsValid(page_cache.indexid))
			elog(ERROR, "audiotricks.audio_history or its index audio_history_user_created_idx is missing");
		LockRelationOid(page_cache.relid, AccessShareLock);
		LockRelationOid(page_cache.indexid, AccessShareLock);
		/* dropped while we waited for the lock: opening it would fail */
		if (seen != page_cache_inval_count)
			continue;
		irel = index_open(page_cache.indexid, AccessShareLock);
		a_user_id = page_attnum(page_cache.relid, "user_id");
		page_cache.a_id = page_attnum(page_cache.relid, "id");
		page_cache.a_created_at = page_attnum(page_cache.relid, "created_at");

		idx = irel->rd_index;
		if (idx->indrelid != page_cache.relid || irel->rd_rel->relam != BTREE_AM_OID ||
			idx->indnkeyatts != 3 ||
			idx->indkey.values[0] != a_user_id ||
			idx->indkey.values[1] != page_cache.a_created_at ||
			idx->indkey.values[2] != page_cache.a_id ||
			(irel->rd_indoption[1] & INDOPTION_DESC) == 0 ||
			(irel->rd_indoption[2] & INDOPTION_DESC) == 0 ||
			RelationGetIndexPredicate(irel) != NIL || !idx->indisvalid)
			elog(ERROR, "index audiotricks.audio_history_user_created_idx is not (user_id, created_at DESC, id DESC)");
		index_close(irel, NoLock);
		if (seen == page_cache_inval_count)
			break;
	}
	page_cache.valid = true;
}

/*
 * page_cache_lock
 *		Makes the cache valid for this transaction: locks the cached table
 *		and index (which processes any invalidation sent since the last
 *		lookup; cheap when this transaction holds them already) and refills
 *		the cache if one touched them.  Raises as page_cache_fill.
 */
static void
page_cache_lock(void)
{
	if (page_cache.valid)
	{
		LockRelationOid(page_cache.relid, AccessShareLock);
		LockRelationOid(page_cache.indexid, AccessShareLock);
		/* the callback clears valid for either relation */
		if (page_cache.valid)
			return;
	}
	page_cache_fill();
}

/* one partition's index scan in a page walk, and the row at its head */
typedef struct PageStream
{
	Relation	rel;
	Relation	irel;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	AtEntryCols cols;
	AttrNumber	a_id;
	AttrNumber	a_created_at;
	bool		open;
	bool		stale;			/* its head was returned: read the next */
	bool		has;			/* a row at the head */
	TimestampTz at;
	pg_uuid_t	id;
} PageStream;

/* the next row of st, if any, with its sort key */
static void
stream_advance(PageStream *st)
{
	bool		isnull;
	Datum		d;

	st->stale = false;
	st->has = index_getnext_slot(st->scan, ForwardScanDirection, st->slot);
	if (!st->has)
		return;
	d = slot_getattr(st->slot, st->a_created_at, &isnull);
	st->at = isnull ? DT_NOBEGIN : DatumGetTimestampTz(d);
	d = slot_getattr(st->slot, st->a_id, &isnull);
	if (isnull)
		elog(ERROR, "audio_history.id is null");
	st->id = *DatumGetUUIDP(d);
}

/*
 * stream_open
 *		Starts the scan of partition relid's index of the paging index with
 *		keys (built on the parent index: the same columns, collations and
 *		operators) and reads its first row.
 */
static void
stream_open(PageStream *st, Oid relid, ScanKey keys, int nkeys)
{
	st->rel = table_open(relid, AccessShareLock);
	/* a partition never written to (an empty month ahead) has no rows */
	if (RelationGetNumberOfBlocks(st->rel) == 0)
	{
		table_close(st->rel, AccessShareLock);
		st->open = false;
		st->has = false;
		return;
	}
	st->irel = index_open(AtPartitionIndex(st->rel, page_cache.indexid), AccessShareLock);
	AtEntryColsInit(st->rel, &st->cols);
	st->a_id = st->cols.att[0];
	st->a_created_at = st->cols.att[AT_ENTRY_TABLE_COLS - 1];
	st->slot = table_slot_create(st->rel, NULL);
	st->scan = index_beginscan(st->rel, st->irel, GetActiveSnapshot(), nkeys, 0);
	index_rescan(st->scan, keys, nkeys, NULL, 0);
	st->open = true;
	stream_advance(st);
}

static void
stream_close(PageStream *st)
{
	if (!st->open)
		return;
	index_endscan(st->scan);
	ExecDropSingleTupleTableSlot(st->slot);
	index_close(st->irel, AccessShareLock);
	table_close(st->rel, AccessShareLock);
	st->open = false;
	st->has = false;
}

/* true when a's head sorts before b's (created_at DESC, id DESC) */
static bool
stream_before(const PageStream *a, const PageStream *b)
{
	if (a->at != b->at)
		return a->at > b->at;
	return memcmp(a->id.data, b->id.data, UUID_LEN) > 0;
}

/*
 * page_direct
 *		Appends up to page_size of user_id's entries that sort strictly after
 *		the cursor (created_at DESC, id DESC) to store, reading each
 *		partition's (user_id, created_at DESC, id DESC) index forwards
 *		(newest first).  The cursor is a row comparison key (created_at, id)
 *		< (cursor's), as the planner makes for ROW(...) < ROW(...): each scan
 *		starts right after the cursor's position.  The range partitions are
 *		disjoint in created_at, so they are read one after another, newest
 *		first, skipping those that start after the cursor without opening
 *		them, and the walk stops after page_size rows: a page reads about
 *		page_size index entries at any depth, plus one descent per empty
 *		partition it crosses.  The default partition may hold rows of any
 *		time, so its scan runs alongside and is merged in by sort key.
 */
static void
page_direct(Relation rel, const pg_uuid_t *user_id, const AtCursor *cursor,
			int32 page_size, TupleDesc desc, Tuplestorestate *store)
{
	Relation	irel;
	ScanKeyData keys[2];
	ScanKeyData row[2];
	pg_uuid_t	after_id;
	int			nkeys = 1;
	int32		n = 0;
	AtHistoryPart *parts;
	int			nparts;
	int			next = 0;
	PageStream	range;
	PageStream	dflt;

	irel = index_open(page_cache.indexid, AccessShareLock);
	ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   irel->rd_indcollation[0], F_UUID_EQ,
						   UUIDPGetDatum(user_id));
	if (cursor != NULL)
	{
		/* members: the btree comparison support functions, as for a RowCompare */
		memcpy(after_id.data, cursor->id, UUID_LEN);
		ScanKeyEntryInitialize(&row[0], SK_ROW_MEMBER, 2, BTLessStrategyNumber,
							   TIMESTAMPTZOID, irel->rd_indcollation[1],
							   F_TIMESTAMPTZ_CMP, TimestampTzGetDatum(cursor->created_at));
		ScanKeyEntryInitialize(&row[1], SK_ROW_MEMBER | SK_ROW_END, 3,
							   BTLessStrategyNumber, UUIDOID,
							   irel->rd_indcollation[2], F_UUID_CMP,
							   UUIDPGetDatum(&after_id));
		MemSet(&keys[1], 0, sizeof(ScanKeyData));
		keys[1].sk_flags = SK_ROW_HEADER;
		keys[1].sk_attno = 2;
		keys[1].sk_strategy = BTLessStrategyNumber;
		keys[1].sk_argument = PointerGetDatum(row);
		nkeys = 2;
	}
	index_close(irel, AccessShareLock);

	memset(&range, 0, sizeof(range));
	memset(&dflt, 0, sizeof(dflt));
	nparts = AtHistoryParts(rel, &parts);
	if (nparts > 0 && parts[nparts - 1].is_default)
	{
		nparts--;
		stream_open(&dflt, parts[nparts].relid, keys, nkeys);
	}
	while (n < page_size)
	{
		PageStream *from;

		/* only now: a full page reads no entry past its last row */
		if (range.open && range.stale)
			stream_advance(&range);
		if (dflt.open && dflt.stale)
			stream_advance(&dflt);
		/* the next range partition that may hold rows after the cursor */
		while (!range.has && next < nparts)
		{
			AtHistoryPart *p = &parts[next++];

			stream_close(&range);
			if (cursor != NULL && !p->lower_inf && p->lower > cursor->created_at)
				continue;
			stream_open(&range, p->relid, keys, nkeys);
		}
		if (range.has && (!dflt.has || stream_before(&range, &dflt)))
			from = &range;
		else if (dflt.has)
			from = &dflt;
		else
			break;
		AtPutEntry(&from->cols, from->slot, desc, store, false, 0, 0);
		n++;
		from->stale = true;
	}
	stream_close(&range);
	stream_close(&dflt);
	pfree(parts);
}

static AtPlan plan_page = {
	"SELECT h.id, h.user_id, h.title, h.audio_url, h.file_size_bytes,"
	"       h.duration_seconds, h.transcript, h.summary, h.key_moments,"
	"       h.processing_options, h.created_at, NULL::pg_catalog.float4"
	"  FROM audiotricks.audio_history h"
	" WHERE h.user_id OPERATOR(pg_catalog.=) $1"
	"   AND ROW(h.created_at, h.id) OPERATOR(pg_catalog.<) ROW($2, $3)"
	" ORDER BY h.created_at DESC, h.id DESC"
	" LIMIT $4",
	4, {UUIDOID, TIMESTAMPTZOID, UUIDOID, INT4OID}, NULL
};

/*
 * page_through_spi
 *		The same page as an ordinary query under row-level security, for a
 *		table that carries policies besides the shipped one.  No cursor is
 *		(infinity, the largest uuid), after every entry.
 */
static void
page_through_spi(const pg_uuid_t *user_id, const AtCursor *cursor,
				 int32 page_size, TupleDesc desc, Tuplestorestate *store)
{
	Datum		values[4];
	pg_uuid_t  *uid = palloc(sizeof(pg_uuid_t));
	pg_uuid_t  *aid = palloc(sizeof(pg_uuid_t));
	TimestampTz after_at;

	*uid = *user_id;
	if (cursor == NULL)
	{
		TIMESTAMP_NOEND(after_at);
		memset(aid->data, 0xff, UUID_LEN);
	}
	else
	{
		after_at = cursor->created_at;
		memcpy(aid->data, cursor->id, UUID_LEN);
	}
	values[0] = UUIDPGetDatum(uid);
	values[1] = TimestampTzGetDatum(after_at);
	values[2] = UUIDPGetDatum(aid);
	values[3] = Int32GetDatum(page_size);
	AtRunEntryPlan(&plan_page, values, page_size, desc, store, false, 0);
}

/*
 * at_history_page(page_size integer DEFAULT 20, cursor text DEFAULT NULL)
 *		RETURNS SETOF audiotricks.history_entry
 *		The current user's entries, newest first (created_at DESC, id DESC),
 *		each with its cursor; with a cursor, the entries strictly after that
 *		row.  rank is NULL.  page_size NULL is 20; outside 1..100 raises
 *		22023; so does an invalid cursor (AtCheckedCursor); no identity
 *		raises 42501; so does a caller without SELECT on audio_history.
 *		The rows are materialized in the per-query context.
 */
Datum
at_history_page(PG_FUNCTION_ARGS)
{
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;
	int32		page_size;
	AtCursor	cursor;
	bool		has_cursor;
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	Relation	rel;
	AclResult	aclresult;
	int			rls;

	IdentityRequire(&user_id, &session_id);
	page_size = AtCheckedPageSize(fcinfo, 0);
	AtCheckedCursor(fcinfo, 1, AT_CURSOR_PAGE, 0, &cursor, &has_cursor);

	page_cache_lock();
	aclresult = pg_class_aclcheck(page_cache.relid, GetUserId(), ACL_SELECT);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_TABLE, "audio_history");
	/* raises, as a query would, when row_security is off and RLS applies */
	rls = check_enable_rls(page_cache.relid, InvalidOid, false);

	store = AtMaterialize(fcinfo, &tupdesc);
	AtCheckEntryDesc(tupdesc);
	rel = table_open(page_cache.relid, AccessShareLock);
	if (rls != RLS_ENABLED || AtHistoryPoliciesAreOurs(rel))
		page_direct(rel, &user_id, has_cursor ? &cursor : NULL, page_size,
					tupdesc, store);
	else
		page_through_spi(&user_id, has_cursor ? &cursor : NULL, page_size,
						 tupdesc, store);
	table_close(rel, AccessShareLock);
	return (Datum) 0;
}
