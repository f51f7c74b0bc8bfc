/*
 * src/audit_verify.c
 *		at_verify_audit_chain: checks the audit log's hash chains (how they
 *		are made: audit_chain.c).
 */
#include "postgres.h"

#include <sodium.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inet.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/uuid.h"

#include "audiotricks.h"
#include "audit.h"
#include "schema.h"
#include "spi.h"
#include "uuid.h"

PG_FUNCTION_INFO_V1(at_verify_audit_chain);

#define HASH_LEN	crypto_hash_sha256_BYTES

/* ------------------------------------------------------------- verify */

static AtPlan plan_heads_all = {
	"SELECT chain_id, user_id, seq, hash FROM audiotricks.audit_chain_heads ORDER BY chain_id",
	0, {InvalidOid}, NULL
};

static AtPlan plan_heads_user = {
	"SELECT chain_id, user_id, seq, hash FROM audiotricks.audit_chain_heads"
	" WHERE user_id OPERATOR(pg_catalog.=) $1 ORDER BY detached",
	1, {UUIDOID}, NULL
};

static AtPlan plan_orphans = {
	"SELECT l.id FROM audiotricks.audit_log l WHERE NOT EXISTS ("
	" SELECT FROM audiotricks.audit_chain_heads h WHERE h.chain_id OPERATOR(pg_catalog.=) l.chain_id)"
	" ORDER BY l.id LIMIT 1",
	0, {InvalidOid}, NULL
};

static AtPlan plan_anchor = {
	"SELECT 1 FROM audiotricks.audit_log"
	" WHERE chain_id OPERATOR(pg_catalog.=) $1 AND event OPERATOR(pg_catalog.=) 'audit_purged'"
	"   AND detail OPERATOR(pg_catalog.->>) 'through_seq' OPERATOR(pg_catalog.=) $2"
	"   AND detail OPERATOR(pg_catalog.->>) 'last_hash' OPERATOR(pg_catalog.=) $3"
	" LIMIT 1",
	3, {UUIDOID, TEXTOID, TEXTOID}, NULL
};

#define VERIFY_COLS \
	"id, seq, created_at, event, db_role::pg_catalog.text, table_name, row_id, operation," \
	" changed_columns, detail::pg_catalog.text, session_id, actor_id, subject_hash, prev_hash, hash," \
	" user_id, client_addr"

static AtPlan plan_chain_rows = {
	"SELECT " VERIFY_COLS " FROM audiotricks.audit_log"
	" WHERE chain_id OPERATOR(pg_catalog.=) $1 ORDER BY seq",
	1, {UUIDOID}, NULL
};

typedef struct VerifyResult
{
	int64		events;
	bool		ok;
	bool		has_bad;
	pg_uuid_t	bad_id;
	const char *reason;
} VerifyResult;

static bool
bytea_is(Datum d, bool isnull, const unsigned char *h)
{
	bytea	   *b;

	if (isnull)
		return h == NULL;
	if (h == NULL)
		return false;
	b = DatumGetByteaPP(d);
	return VARSIZE_ANY_EXHDR(b) == HASH_LEN && memcmp(VARDATA_ANY(b), h, HASH_LEN) == 0;
}

static char *
hex(const unsigned char *h)
{
	char	   *s = palloc(HASH_LEN * 2 + 1);

	sodium_bin2hex(s, HASH_LEN * 2 + 1, h, HASH_LEN);
	return s;
}

static void
fail(VerifyResult *r, const pg_uuid_t *id, const char *reason)
{
	if (!r->ok)
		return;
	r->ok = false;
	r->has_bad = id != NULL;
	if (id)
		r->bad_id = *id;
	r->reason = reason;
}

/*
 * Checks one chain in the snapshot of the calling statement (read-only SPI:
 * no new snapshot, no row locks).  kind: 'u' a user's chain (rows carry the
 * user's id), 'g' a global chain (rows carry none), 'a' an anonymised chain
 * (rows carry neither user id nor address: their subject_hash is taken as
 * stored).
 */
static void
verify_chain(const pg_uuid_t *chain_id, char kind, const pg_uuid_t *owner,
			 int64 head_seq, const unsigned char *head_hash, VerifyResult *r)
{
	Portal		portal;
	unsigned char last[HASH_LEN];
	bool		have_last = false;
	int64		last_seq = 0;
	pg_uuid_t	last_id;
	Datum		v[1];
	MemoryContext rowcxt = AllocSetContextCreate(CurrentMemoryContext, "audit verify",
												 ALLOCSET_DEFAULT_SIZES);

	r->events = 0;
	r->ok = true;
	r->has_bad = false;
	r->reason = NULL;

	(void) AtCheckSchema();
	v[0] = UUIDPGetDatum(chain_id);
	if (plan_chain_rows.plan == NULL)
		(void) AtRunPlan(&plan_chain_rows, v, NULL, true, 0);	/* prepares it */
	portal = SPI_cursor_open(NULL, plan_chain_rows.plan, v, NULL, true);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 1000);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			MemoryContext old = MemoryContextSwitchTo(rowcxt);
			AuditFields f;
			bool		n[17];
			Datum		d[17];
			unsigned char h[HASH_LEN];
			unsigned char subj[HASH_LEN];
			bytea	   *sb;

			for (int c = 0; c < 17; c++)
				d[c] = SPI_getbinval(tup, desc, c + 1, &n[c]);
			memset(&f, 0, sizeof(f));
			f.id = *DatumGetUUIDP(d[0]);
			f.chain_id = *chain_id;
			f.seq = DatumGetInt64(d[1]);
			f.created_at = DatumGetTimestampTz(d[2]);
			f.event = TextDatumGetCString(d[3]);
			f.db_role = n[4] ? NULL : TextDatumGetCString(d[4]);
			f.table_name = n[5] ? NULL : TextDatumGetCString(d[5]);
			f.row_id = n[6] ? NULL : DatumGetUUIDP(d[6]);
			f.operation = n[7] ? NULL : TextDatumGetCString(d[7]);
			f.ncols = -1;
			if (!n[8])
			{
				Datum	   *elems;
				bool	   *enulls;
				int			ne;

				deconstruct_array(DatumGetArrayTypeP(d[8]), TEXTOID, -1, false, TYPALIGN_INT,
								  &elems, &enulls, &ne);
				f.ncols = ne;
				f.cols = palloc(sizeof(char *) * Max(ne, 1));
				for (int k = 0; k < ne; k++)
					f.cols[k] = enulls[k] ? NULL : TextDatumGetCString(elems[k]);
			}
			f.detail = TextDatumGetCString(d[9]);
			f.session_id = n[10] ? NULL : DatumGetUUIDP(d[10]);
			f.actor_id = n[11] ? NULL : DatumGetUUIDP(d[11]);
			sb = n[12] ? NULL : DatumGetByteaPP(d[12]);
			if (sb == NULL || VARSIZE_ANY_EXHDR(sb) != HASH_LEN)
				fail(r, &f.id, "subject_hash is missing or malformed: the event was altered");
			else
				memcpy(f.subject_hash, VARDATA_ANY(sb), HASH_LEN);

			r->events++;
			if (r->ok)
			{
				if (!have_last)
				{
					/* the first event: seq 1, or anchored by a purge record */
					if (f.seq == 1)
					{
						if (!n[13])
							fail(r, &f.id, "the first event of the chain has a prev_hash");
					}
					else if (n[13])
						fail(r, &f.id, "the chain starts after its first event without a prev_hash");
					else
					{
						Datum		av[3];
						char		buf[32];
						bytea	   *pb = DatumGetByteaPP(d[13]);

						snprintf(buf, sizeof(buf), INT64_FORMAT, f.seq - 1);
						av[0] = UUIDPGetDatum(chain_id);
						av[1] = CStringGetTextDatum(buf);
						av[2] = CStringGetTextDatum(VARSIZE_ANY_EXHDR(pb) == HASH_LEN ?
													hex((unsigned char *) VARDATA_ANY(pb)) : "");
						MemoryContextSwitchTo(old);
						/* a nested query: keep the fetched batch */
						{
							SPITupleTable *saved = SPI_tuptable;
							uint64		saved_n = SPI_processed;
							bool		found;

							if (AtRunPlan(&plan_anchor, av, NULL, true, 1) != SPI_OK_SELECT)
								elog(ERROR, "could not read an audit purge record");
							found = SPI_processed == 1;
							SPI_freetuptable(SPI_tuptable);
							SPI_tuptable = saved;
							SPI_processed = saved_n;
							MemoryContextSwitchTo(rowcxt);
							if (!found)
								fail(r, &f.id, "events are missing at the start of the chain (no purge record anchors it)");
						}
					}
				}
				else if (f.seq != last_seq + 1)
					fail(r, &f.id, "events are missing before this one (seq gap)");
				else if (!bytea_is(d[13], n[13], last))
					fail(r, &f.id, "prev_hash does not match the previous event");
			}
			if (r->ok)
			{
				if (!n[13] && VARSIZE_ANY_EXHDR(DatumGetByteaPP(d[13])) != HASH_LEN)
					fail(r, &f.id, "prev_hash is malformed");
				else
				{
					AuditEventHash(&f, n[13] ? NULL : (unsigned char *) VARDATA_ANY(DatumGetByteaPP(d[13])), h);
					if (!bytea_is(d[14], n[14], h))
						fail(r, &f.id, "hash mismatch: the event was altered");
				}
			}
			if (r->ok)
			{
				/* the personal fields */
				if (kind == 'a')
				{
					if (!n[15] || !n[16] || !n[11])
						fail(r, &f.id, "an anonymised chain's event carries a user id, actor or address");
				}
				else
				{
					if (kind == 'u' && (n[15] || memcmp(DatumGetUUIDP(d[15])->data, owner->data, UUID_LEN) != 0))
						fail(r, &f.id, "user_id does not match the chain's user");
					else if (kind == 'g' && !n[15])
						fail(r, &f.id, "an event of the global chain carries a user id");
					else
					{
						AuditSubjectHash(&f.id, n[15] ? NULL : DatumGetUUIDP(d[15]), f.actor_id,
										 n[16] ? NULL : DatumGetCString(DirectFunctionCall1(inet_out, d[16])), subj);
						if (memcmp(subj, f.subject_hash, HASH_LEN) != 0)
							fail(r, &f.id, "user_id, actor_id or client_addr was altered");
					}
				}
			}
			if (!n[14] && VARSIZE_ANY_EXHDR(DatumGetByteaPP(d[14])) == HASH_LEN)
				memcpy(last, VARDATA_ANY(DatumGetByteaPP(d[14])), HASH_LEN);
			else
				memset(last, 0, HASH_LEN);
			have_last = true;
			last_seq = f.seq;
			last_id = f.id;
			MemoryContextSwitchTo(old);
			MemoryContextReset(rowcxt);
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	MemoryContextDelete(rowcxt);

	/* the head names the last event: events deleted at the end show here */
	if (r->ok)
	{
		if (!have_last)
		{
			if (head_seq != 0)
				fail(r, NULL, "the chain's events are missing");
		}
		else if (last_seq != head_seq)
			fail(r, &last_id, "events are missing after this one (the chain head is further)");
		else if (head_hash == NULL || memcmp(last, head_hash, HASH_LEN) != 0)
			fail(r, &last_id, "the last event does not match the chain head (replaced)");
	}
}

/*
 * at_verify_audit_chain(user_id uuid DEFAULT NULL) RETURNS TABLE(user_id
 *		uuid, events bigint, ok boolean, first_bad_id uuid, reason text,
 *		chain_id uuid, last_hash bytea)
 *		One row per chain checked: the user's two chains, or with NULL every
 *		chain (global and anonymised ones show user_id NULL), plus a row
 *		naming the first event that belongs to no chain, if any.  Reads in
 *		the calling statement's snapshot and takes no lock a writer waits
 *		for.  Runs as the owner (SECURITY DEFINER); granted to pg_monitor.
 */
Datum
at_verify_audit_chain(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Tuplestorestate *store;
	TupleDesc	tupdesc;
	MemoryContext per_query;
	MemoryContext old;
	SPITupleTable *heads;
	uint64		nheads;
	Datum		v[1];

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		!(rsinfo->allowedModes & SFRM_Materialize))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	per_query = rsinfo->econtext->ecxt_per_query_memory;
	old = MemoryContextSwitchTo(per_query);
	tupdesc = CreateTupleDescCopy(tupdesc);
	store = tuplestore_begin_heap(true, false, work_mem);
	MemoryContextSwitchTo(old);

	AtSpiConnect();
	if (PG_ARGISNULL(0))
	{
		if (AtRunPlan(&plan_heads_all, NULL, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read the audit chain heads");
	}
	else
	{
		v[0] = PG_GETARG_DATUM(0);
		if (AtRunPlan(&plan_heads_user, v, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read the audit chain heads");
	}
	heads = SPI_tuptable;
	nheads = SPI_processed;
	SPI_tuptable = NULL;

	for (uint64 i = 0; i < nheads; i++)
	{
		HeapTuple	tup = heads->vals[i];
		bool		isnull;
		pg_uuid_t	chain_id;
		pg_uuid_t	owner;
		bool		has_owner;
		int64		head_seq;
		unsigned char head_hash[HASH_LEN];
		bool		has_hash;
		char		kind;
		VerifyResult r;
		Datum		out[7];
		bool		outnull[7] = {false, false, false, false, false, false, false};
		Datum		d;

		chain_id = *DatumGetUUIDP(SPI_getbinval(tup, heads->tupdesc, 1, &isnull));
		d = SPI_getbinval(tup, heads->tupdesc, 2, &isnull);
		has_owner = !isnull;
		if (has_owner)
			owner = *DatumGetUUIDP(d);
		head_seq = DatumGetInt64(SPI_getbinval(tup, heads->tupdesc, 3, &isnull));
		d = SPI_getbinval(tup, heads->tupdesc, 4, &isnull);
		has_hash = !isnull && VARSIZE_ANY_EXHDR(DatumGetByteaPP(d)) == HASH_LEN;
		if (has_hash)
			memcpy(head_hash, VARDATA_ANY(DatumGetByteaPP(d)), HASH_LEN);

		if (has_owner)
			kind = 'u';
		else if (AuditIsGlobalChain(&chain_id))
			kind = 'g';
		else
			kind = 'a';
		verify_chain(&chain_id, kind, has_owner ? &owner : NULL, head_seq,
					 has_hash ? head_hash : NULL, &r);

		old = MemoryContextSwitchTo(per_query);
		if (has_owner)
			out[0] = UUIDPGetDatum(&owner);
		else
			outnull[0] = true;
		out[1] = Int64GetDatum(r.events);
		out[2] = BoolGetDatum(r.ok);
		if (r.has_bad)
			out[3] = UUIDPGetDatum(&r.bad_id);
		else
			outnull[3] = true;
		if (r.reason)
			out[4] = CStringGetTextDatum(r.reason);
		else
			outnull[4] = true;
		out[5] = UUIDPGetDatum(&chain_id);
		if (has_hash)
			out[6] = PointerGetDatum(AuditToBytea(head_hash, HASH_LEN));
		else
			outnull[6] = true;
		tuplestore_putvalues(store, tupdesc, out, outnull);
		MemoryContextSwitchTo(old);
	}

	/* an event whose chain_id names no chain (inserted by hand) */
	if (PG_ARGISNULL(0))
	{
		if (AtRunPlan(&plan_orphans, NULL, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read the audit log");
		if (SPI_processed == 1)
		{
			bool		isnull;
			pg_uuid_t	id = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0],
														  SPI_tuptable->tupdesc, 1, &isnull));
			Datum		out[7];
			bool		outnull[7] = {true, false, false, false, false, true, true};

			old = MemoryContextSwitchTo(per_query);
			out[1] = Int64GetDatum(1);
			out[2] = BoolGetDatum(false);
			out[3] = UUIDPGetDatum(&id);
			out[4] = CStringGetTextDatum("the event belongs to no chain");
			tuplestore_putvalues(store, tupdesc, out, outnull);
			MemoryContextSwitchTo(old);
		}
	}
	AtSpiFinish();

	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = store;
	rsinfo->setDesc = tupdesc;
	return (Datum) 0;
}
