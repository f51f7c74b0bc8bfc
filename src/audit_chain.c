/*
 * src/audit_chain.c
 *		The audit log's hash chains: the event hash, and appending an event
 *		to its chain (at_verify_audit_chain, which checks the chains, is in
 *		audit_verify.c).
 *
 * Every row of audiotricks.audit_log belongs to one chain, named by its
 * chain_id and listed in audiotricks.audit_chain_heads with its last seq and
 * hash.  A user has two chains: the events written in the application's
 * transactions (AuditEvent, the row trigger of audit_trigger.c), and the
 * events of the detached writer (audit_writer.c).  The writer takes its
 * chain's lock only when it is free and defers an event it cannot take, so no
 * lock an application transaction holds ever makes it wait; and no
 * application transaction takes a writer's head (only at_delete_account's
 * anonymisation, after the writer's lock on the user row).  Events without a
 * user go to the two global chains (fixed chain ids, below).
 *
 * hash = SHA-256(prev_hash || canonical encoding of id, chain_id, seq,
 * created_at, event, db_role, table_name, row_id, operation,
 * changed_columns, detail, session_id, subject_hash), each field
 * length-prefixed.  subject_hash = SHA-256(id, user_id, actor_id,
 * client_addr): the
 * personal fields enter the chain through it, so a deleted account's events
 * can be anonymised (user_id and client_addr set to NULL) without breaking
 * its chain; the verifier recomputes subject_hash wherever user_id is set.
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

#define HASH_LEN	crypto_hash_sha256_BYTES

/* the global chains: events without a user */
static const pg_uuid_t global_chain = {{0}};
static const pg_uuid_t global_detached_chain = {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};

/* whether chain_id names one of the global chains */
bool
AuditIsGlobalChain(const pg_uuid_t *chain_id)
{
	return memcmp(chain_id, &global_chain, UUID_LEN) == 0 ||
		memcmp(chain_id, &global_detached_chain, UUID_LEN) == 0;
}

/* ------------------------------------------------------------ encoding */

static void
put_len(crypto_hash_sha256_state *st, uint32 len)
{
	unsigned char b[4];

	b[0] = len >> 24;
	b[1] = len >> 16;
	b[2] = len >> 8;
	b[3] = len;
	crypto_hash_sha256_update(st, b, 4);
}

static void
put_bytes(crypto_hash_sha256_state *st, const void *p, size_t len)
{
	put_len(st, (uint32) len);
	crypto_hash_sha256_update(st, p, len);
}

static void
put_null(crypto_hash_sha256_state *st)
{
	put_len(st, 0xFFFFFFFF);
}

static void
put_int64(crypto_hash_sha256_state *st, int64 v)
{
	unsigned char b[8];
	uint64		u = (uint64) v;

	for (int i = 7; i >= 0; i--)
	{
		b[i] = u & 0xFF;
		u >>= 8;
	}
	put_bytes(st, b, 8);
}

static void
put_text(crypto_hash_sha256_state *st, const char *s)
{
	if (s == NULL)
		put_null(st);
	else
		put_bytes(st, s, strlen(s));
}

static void
put_uuid(crypto_hash_sha256_state *st, const pg_uuid_t *u)
{
	if (u == NULL)
		put_null(st);
	else
		put_bytes(st, u->data, UUID_LEN);
}

/*
 * AuditSubjectHash
 *		SHA-256 of an event's id, user_id and client address (text form, as
 *		inet_out prints it; NULL or '' for none) into out.
 */
void
AuditSubjectHash(const pg_uuid_t *id, const pg_uuid_t *user_id,
				 const pg_uuid_t *actor_id, const char *addr, unsigned char *out)
{
	crypto_hash_sha256_state st;
	static const char tag[] = "audiotricks audit subject v1";

	crypto_hash_sha256_init(&st);
	put_bytes(&st, tag, sizeof(tag) - 1);
	put_uuid(&st, id);
	put_uuid(&st, user_id);
	put_uuid(&st, actor_id);
	put_text(&st, addr && addr[0] ? addr : NULL);
	crypto_hash_sha256_final(&st, out);
}

/*
 * AuditEventHash
 *		The hash of one event (fields as in the file's header; prev NULL for a
 *		chain's first event) into out.  detail is jsonb's text form (jsonb_out),
 *		cols the changed column names (ncols < 0: NULL).
 */
void
AuditEventHash(const AuditFields *f, const unsigned char *prev,
			   unsigned char *out)
{
	crypto_hash_sha256_state st;
	static const char tag[] = "audiotricks audit event v1";

	crypto_hash_sha256_init(&st);
	put_bytes(&st, tag, sizeof(tag) - 1);
	if (prev)
		put_bytes(&st, prev, HASH_LEN);
	else
		put_null(&st);
	put_uuid(&st, &f->id);
	put_uuid(&st, &f->chain_id);
	put_int64(&st, f->seq);
	put_int64(&st, (int64) f->created_at);
	put_text(&st, f->event);
	put_text(&st, f->db_role);
	put_text(&st, f->table_name);
	put_uuid(&st, f->row_id);
	put_text(&st, f->operation);
	if (f->ncols < 0)
		put_null(&st);
	else
	{
		put_len(&st, (uint32) f->ncols);
		for (int i = 0; i < f->ncols; i++)
			put_text(&st, f->cols[i]);
	}
	put_text(&st, f->detail);
	put_uuid(&st, f->session_id);
	put_bytes(&st, f->subject_hash, HASH_LEN);
	crypto_hash_sha256_final(&st, out);
}

/* ------------------------------------------------------------- append */

/*
 * A chain's appenders serialize on a lock of their own (lock_chain), held
 * until the transaction ends: an in-memory lock, so appending writes no
 * row lock to the head.  The head's seq and hash are moved once per
 * transaction, at commit, by the deferred trigger at_audit_chain_head (a
 * row updated again and again in one transaction grows a chain of versions
 * every later update walks).  Heads and last events are read in the newest
 * committed state (AtRunPlanLatest), as foreign-key checks do, so that a
 * REPEATABLE READ transaction appends after events committed since its
 * snapshot instead of failing with 40001.  The previous event is the
 * chain's last row, or the head when that is further (events deleted at the
 * end).
 */
static AtPlan plan_head_user = {
	"SELECT chain_id, seq, hash FROM audiotricks.audit_chain_heads"
	" WHERE user_id OPERATOR(pg_catalog.=) $1 AND detached OPERATOR(pg_catalog.=) $2",
	2, {UUIDOID, BOOLOID}, NULL
};

static AtPlan plan_head_id = {
	"SELECT chain_id, seq, hash FROM audiotricks.audit_chain_heads"
	" WHERE chain_id OPERATOR(pg_catalog.=) $1",
	1, {UUIDOID}, NULL
};

/*
 * The lock of a chain until the transaction ends: an advisory lock in a
 * class of its own (field4; SQL's advisory functions use 1 and 2), keyed by
 * a hash of the user's id (of the chain id for chains without a user) and
 * whether it is the audit writer's chain.  Two users whose ids hash alike
 * only share a lock.  nowait: false instead of waiting when it is held.
 */
#define AUDIT_LOCK_CLASS	0xA7C0

static bool
lock_chain(const pg_uuid_t *key, bool detached, bool nowait)
{
	LOCKTAG		tag;
	uint64		h = hash_bytes_extended(key->data, UUID_LEN, 0);

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (h >> 32), (uint32) h,
						 AUDIT_LOCK_CLASS + (detached ? 1 : 0));
	return LockAcquire(&tag, ExclusiveLock, false, nowait) != LOCKACQUIRE_NOT_AVAIL;
}

static AtPlan plan_head_create = {
	"INSERT INTO audiotricks.audit_chain_heads (chain_id, user_id, detached, seq)"
	" VALUES (COALESCE($3, pg_catalog.gen_random_uuid()), $1, $2, 0)"
	" ON CONFLICT DO NOTHING",
	3, {UUIDOID, BOOLOID, UUIDOID}, NULL
};

static AtPlan plan_chain_last = {
	"SELECT chain_id, seq, hash FROM audiotricks.audit_log"
	" WHERE chain_id OPERATOR(pg_catalog.=) $1 ORDER BY seq DESC LIMIT 1",
	1, {UUIDOID}, NULL
};

static AtPlan plan_head_set = {
	"UPDATE audiotricks.audit_chain_heads SET seq = $2, hash = $3"
	" WHERE chain_id OPERATOR(pg_catalog.=) $1 AND seq OPERATOR(pg_catalog.<) $2"
	"   AND NOT EXISTS (SELECT FROM audiotricks.audit_log"
	"                    WHERE chain_id OPERATOR(pg_catalog.=) $1 AND seq OPERATOR(pg_catalog.>) $2)",
	3, {UUIDOID, INT8OID, BYTEAOID}, NULL
};

static SPIPlanPtr plan_insert = NULL;

static const char *insert_sql =
	"INSERT INTO audiotricks.audit_log (id, chain_id, seq, created_at, event, db_role,"
	" table_name, row_id, operation, changed_columns, detail, session_id, actor_id,"
	" subject_hash, prev_hash, hash, user_id, client_addr)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,"
	"         pg_catalog.inet_in($18::pg_catalog.cstring))";

/* a bytea of the len bytes at p */
bytea *
AuditToBytea(const unsigned char *p, size_t len)
{
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), p, len);
	return b;
}

/*
 * The last event this transaction appended to each of a few chains: at
 * commit the deferred trigger moves a chain's head only for its last event
 * instead of asking for every one (a bulk insert appends thousands), and an
 * append takes its previous event from here or, when this transaction
 * appended nothing to the chain, from the head (which the lock makes
 * current) without reading the chain's last row.  Valid for one local
 * transaction.  When a subtransaction aborts (its events are gone) or the
 * slots run out, the note is lost: the triggers and appends then ask.
 */
#define APPENDED_SLOTS	8
typedef struct Appended
{
	pg_uuid_t	chain_id;
	int64		seq;
	unsigned char hash[HASH_LEN];
} Appended;
static Appended appended[APPENDED_SLOTS];
static int	n_appended = 0;
static bool appended_lost = false;
static LocalTransactionId appended_lxid = InvalidLocalTransactionId;
static bool appended_callback = false;

static void
appended_forget(SubXactEvent event, SubTransactionId mySubid,
				SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		n_appended = 0;
		appended_lost = true;
	}
}

static void
appended_note(const pg_uuid_t *chain_id, int64 seq, const unsigned char *hash)
{
	Appended   *a = NULL;

	if (!appended_callback)
	{
		RegisterSubXactCallback(appended_forget, NULL);
		appended_callback = true;
	}
	if (appended_lxid != MyProc->lxid)
	{
		n_appended = 0;
		appended_lost = false;
		appended_lxid = MyProc->lxid;
	}
	for (int i = 0; i < n_appended && a == NULL; i++)
		if (memcmp(&appended[i].chain_id, chain_id, UUID_LEN) == 0)
			a = &appended[i];
	if (a == NULL)
	{
		if (n_appended == APPENDED_SLOTS)
		{
			appended_lost = true;
			return;
		}
		a = &appended[n_appended++];
		a->chain_id = *chain_id;
	}
	a->seq = seq;
	memcpy(a->hash, hash, HASH_LEN);
}

/*
 * What this transaction appended to the chain: 'y' an event (*a), 'n'
 * nothing, '?' unknown (the note was lost).
 */
static char
appended_get(const pg_uuid_t *chain_id, Appended **a)
{
	if (appended_lxid != MyProc->lxid)
		return 'n';
	for (int i = 0; i < n_appended; i++)
		if (memcmp(&appended[i].chain_id, chain_id, UUID_LEN) == 0)
		{
			*a = &appended[i];
			return 'y';
		}
	return appended_lost ? '?' : 'n';
}

/* true when this transaction appended an event after seq to the chain */
static bool
appended_later(const pg_uuid_t *chain_id, int64 seq)
{
	if (appended_lxid != MyProc->lxid)
		return false;
	for (int i = 0; i < n_appended; i++)
		if (memcmp(&appended[i].chain_id, chain_id, UUID_LEN) == 0)
			return appended[i].seq > seq;
	return false;
}

/* the head row SPI just returned: chain id, new seq, previous hash */
static void
read_head(pg_uuid_t *chain_id, int64 *seq, unsigned char *prev, bool *has_prev)
{
	HeapTuple	tup = SPI_tuptable->vals[0];
	TupleDesc	desc = SPI_tuptable->tupdesc;
	bool		isnull;
	Datum		d;

	d = SPI_getbinval(tup, desc, 1, &isnull);
	*chain_id = *DatumGetUUIDP(d);
	*seq = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
	d = SPI_getbinval(tup, desc, 3, &isnull);
	*has_prev = !isnull;
	if (!isnull)
	{
		bytea	   *b = DatumGetByteaPP(d);

		if (VARSIZE_ANY_EXHDR(b) != HASH_LEN)
			elog(ERROR, "an audit chain head holds a hash of the wrong length");
		memcpy(prev, VARDATA_ANY(b), HASH_LEN);
	}
}

/*
 * AuditAppend
 *		Inside an open SPI connection, as the extension's owner: appends one
 *		event to its chain (the head moves at commit).  Which chain:
 *		chain_id when given (retention: waits for the chain's lock, of the
 *		user's chain given by user_id and detached), else the detached
 *		chain of user_id or the global one when detached (its lock taken
 *		only if free: returns false without writing when it is held), else
 *		the user's or the global chain, whose lock is held until this
 *		transaction ends (one writer per chain at a time).  Fills e->id, seq, chain_id.
 *		Raises on failure.
 */
bool
AuditAppend(AuditFields *e, const pg_uuid_t *user_id, const char *addr,
			bool detached, const pg_uuid_t *chain_id)
{
	Datum		values[18];
	char		nulls[18];
	unsigned char prev[HASH_LEN];
	unsigned char hash[HASH_LEN];
	bool		has_prev;
	Jsonb	   *detail;
	char	   *addr_norm = NULL;
	Datum		hv[3];

	/* the chain's lock, then its head (created first if missing) */
	if (!lock_chain(user_id ? user_id : chain_id ? chain_id :
					detached ? &global_detached_chain : &global_chain,
					detached, detached && !chain_id))
		return false;			/* held by someone else: deferred */
	for (int attempt = 0;; attempt++)
	{
		int			rc;

		if (chain_id || !user_id)
		{
			hv[0] = UUIDPGetDatum(chain_id ? chain_id :
								  detached ? &global_detached_chain : &global_chain);
			rc = AtRunPlanLatest(&plan_head_id, hv);
		}
		else
		{
			hv[0] = UUIDPGetDatum(user_id);
			hv[1] = BoolGetDatum(detached);
			rc = AtRunPlanLatest(&plan_head_user, hv);
		}
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "could not read an audit chain head");
		if (SPI_processed == 1)
			break;
		if (chain_id && attempt == 0 &&
			memcmp(chain_id, &global_chain, UUID_LEN) != 0 &&
			memcmp(chain_id, &global_detached_chain, UUID_LEN) != 0)
			elog(ERROR, "audit chain head not found");
		if (attempt > 0)
			elog(ERROR, "could not create an audit chain head");
		{
			Datum		cv[3];
			char		cn[3] = {user_id && !chain_id ? ' ' : 'n', ' ', ' '};

			cv[0] = user_id && !chain_id ? UUIDPGetDatum(user_id) : (Datum) 0;
			cv[1] = BoolGetDatum(detached);
			if (chain_id || !user_id)
				cv[2] = UUIDPGetDatum(chain_id ? chain_id :
									  detached ? &global_detached_chain : &global_chain);
			else
				cn[2] = 'n';
			if (AtRunPlan(&plan_head_create, cv, cn, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "could not create an audit chain head");
		}
	}
	read_head(&e->chain_id, &e->seq, prev, &has_prev);
	{
		/*
		 * The chain's last event, if further than the head: this
		 * transaction's (noted, or read when the note was lost)
		 */
		Appended   *a = NULL;
		char		known = appended_get(&e->chain_id, &a);

		if (known == 'y' && a->seq > e->seq)
		{
			e->seq = a->seq;
			has_prev = true;
			memcpy(prev, a->hash, HASH_LEN);
		}
		else if (known == '?')
		{
			pg_uuid_t	c;
			int64		last_seq;
			unsigned char last[HASH_LEN];
			bool		has_last;

			hv[0] = UUIDPGetDatum(&e->chain_id);
			if (AtRunPlanLatest(&plan_chain_last, hv) != SPI_OK_SELECT)
				elog(ERROR, "could not read an audit chain");
			if (SPI_processed == 1)
			{
				read_head(&c, &last_seq, last, &has_last);
				if (last_seq > e->seq)
				{
					e->seq = last_seq;
					has_prev = has_last;
					memcpy(prev, last, HASH_LEN);
				}
			}
		}
		e->seq++;
	}

	/* what the table's CHECK constraints would say (see the install script) */
	{
		size_t		len = e->event ? strlen(e->event) : 0;

		if (len < 1 || len > 32 || strspn(e->event, "abcdefghijklmnopqrstuvwxyz_") != len)
			elog(ERROR, "invalid audit event name");
		if (e->operation && strcmp(e->operation, "INSERT") != 0 &&
			strcmp(e->operation, "UPDATE") != 0 && strcmp(e->operation, "DELETE") != 0)
			elog(ERROR, "invalid audit operation");
	}

	/* the stored forms of what the hash covers */
	UuidV7Generate(&e->id);
	detail = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
												CStringGetDatum(e->detail ? e->detail : "{}")));
	e->detail = DatumGetCString(DirectFunctionCall1(jsonb_out, JsonbPGetDatum(detail)));
	if (addr && addr[0])
		addr_norm = DatumGetCString(DirectFunctionCall1(inet_out,
														DirectFunctionCall1(inet_in, CStringGetDatum(addr))));
	AuditSubjectHash(&e->id, user_id, e->actor_id, addr_norm, e->subject_hash);
	AuditEventHash(e, has_prev ? prev : NULL, hash);

	memset(nulls, ' ', sizeof(nulls));
	values[0] = UUIDPGetDatum(&e->id);
	values[1] = UUIDPGetDatum(&e->chain_id);
	values[2] = Int64GetDatum(e->seq);
	values[3] = TimestampTzGetDatum(e->created_at);
	values[4] = CStringGetTextDatum(e->event);
	values[5] = DirectFunctionCall1(namein, CStringGetDatum(e->db_role ? e->db_role : ""));
	if (e->db_role == NULL)
		nulls[5] = 'n';
	if (e->table_name)
		values[6] = CStringGetTextDatum(e->table_name);
	else
		nulls[6] = 'n';
	if (e->row_id)
		values[7] = UUIDPGetDatum(e->row_id);
	else
		nulls[7] = 'n';
	if (e->operation)
		values[8] = CStringGetTextDatum(e->operation);
	else
		nulls[8] = 'n';
	if (e->ncols >= 0)
	{
		Datum	   *elems = palloc(sizeof(Datum) * Max(e->ncols, 1));

		for (int i = 0; i < e->ncols; i++)
			elems[i] = CStringGetTextDatum(e->cols[i]);
		values[9] = PointerGetDatum(construct_array(elems, e->ncols, TEXTOID, -1, false, TYPALIGN_INT));
	}
	else
		nulls[9] = 'n';
	values[10] = JsonbPGetDatum(detail);
	if (e->session_id)
		values[11] = UUIDPGetDatum(e->session_id);
	else
		nulls[11] = 'n';
	if (e->actor_id)
		values[12] = UUIDPGetDatum(e->actor_id);
	else
		nulls[12] = 'n';
	values[13] = PointerGetDatum(AuditToBytea(e->subject_hash, HASH_LEN));
	if (has_prev)
		values[14] = PointerGetDatum(AuditToBytea(prev, HASH_LEN));
	else
		nulls[14] = 'n';
	values[15] = PointerGetDatum(AuditToBytea(hash, HASH_LEN));
	if (user_id)
		values[16] = UUIDPGetDatum(user_id);
	else
		nulls[16] = 'n';
	if (addr_norm)
		values[17] = CStringGetTextDatum(addr_norm);
	else
		nulls[17] = 'n';

	if (plan_insert == NULL)
	{
		Oid			types[18] = {UUIDOID, UUIDOID, INT8OID, TIMESTAMPTZOID, TEXTOID, NAMEOID,
								 TEXTOID, UUIDOID, TEXTOID, TEXTARRAYOID, JSONBOID, UUIDOID,
								 UUIDOID, BYTEAOID, BYTEAOID, BYTEAOID, UUIDOID, TEXTOID};
		SPIPlanPtr	p;

		(void) AtCheckSchema();
		p = SPI_prepare(insert_sql, 18, types);
		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "SPI_keepplan failed");
		plan_insert = p;
	}
	else
		(void) AtCheckSchema();
	if (SPI_execute_plan(plan_insert, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write an audit event");
	appended_note(&e->chain_id, e->seq, hash);

	return true;
}

/*
 * at_audit_chain_head() RETURNS trigger
 *		Deferred AFTER INSERT row trigger on audit_log: at commit, moves the
 *		chain's head to the event when it is the chain's last, as the
 *		extension's owner.
 */
PG_FUNCTION_INFO_V1(at_audit_chain_head);

Datum
at_audit_chain_head(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	Datum		v[3];
	bool		isnull[3];
	const char *cols[3] = {"chain_id", "seq", "hash"};
	Oid			save_userid;
	int			save_sec;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		elog(ERROR, "at_audit_chain_head must run as an AFTER INSERT row trigger");
	desc = RelationGetDescr(trigdata->tg_relation);
	for (int i = 0; i < 3; i++)
	{
		int			attnum = SPI_fnumber(desc, cols[i]);

		if (attnum <= 0)
			elog(ERROR, "at_audit_chain_head: the table has no column %s", cols[i]);
		v[i] = heap_getattr(trigdata->tg_trigtuple, attnum, desc, &isnull[i]);
		if (isnull[i])
			elog(ERROR, "at_audit_chain_head: %s is null", cols[i]);
	}
	if (appended_later(DatumGetUUIDP(v[0]), DatumGetInt64(v[1])))
		return PointerGetDatum(NULL);	/* a later event moves the head */
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(AtOwnerOid(),
						   save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		AtSpiConnect();
		if (AtRunPlanLatest(&plan_head_set, v) != SPI_OK_UPDATE)
			elog(ERROR, "could not move an audit chain head");
		AtSpiFinish();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
	return PointerGetDatum(NULL);
}
