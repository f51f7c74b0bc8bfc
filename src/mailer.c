/*
 * src/mailer.c
 *		The mail outbox: what the extension asks the mail-sending role
 *		(audiotricks_mailer) to send, and at_mail_outbox, through which that
 *		role alone takes it.
 *
 * A reset or verification token must reach the account's mailbox and no one
 * else: the caller that asked for it may be anyone (at_request_password_reset
 * is open to anonymous clients).  So the token goes into
 * audiotricks.mail_outbox sealed with AES-256-GCM under the current master
 * key (keyring.c; associated data: domain 'M', the mail's id and kind, so a
 * sealed token can neither be opened as an API key nor moved to another
 * mail), the table is granted to no role, and at_mail_outbox, executable
 * only by audiotricks_mailer, deletes the mails it returns and opens their
 * tokens in C.  A mail of kind 'none' is the decoy queued for a request that
 * names no account (so that both do the same work): it is deleted, never
 * returned.
 */
#include "postgres.h"

#include <sodium.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/uuid.h"

#include "audiotricks.h"
#include "ciphertext.h"
#include "keyring.h"
#include "recovery.h"
#include "spi.h"
#include "srf.h"
#include "uuid.h"

PG_FUNCTION_INFO_V1(at_mail_outbox);

#define OUTBOX_MAX_BATCH	1000

static AtPlan plan_queue_mail = {
	"INSERT INTO audiotricks.mail_outbox (id, user_id, recipient, kind, token_sealed)"
	" VALUES ($1, $2, $3, $4, $5)",
	5, {UUIDOID, UUIDOID, TEXTOID, TEXTOID, TEXTOID}, NULL
};

static AtPlan plan_take_mail = {
	"DELETE FROM audiotricks.mail_outbox WHERE id OPERATOR(pg_catalog.=) ANY (ARRAY("
	" SELECT id FROM audiotricks.mail_outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED))"
	" RETURNING id, recipient, kind, token_sealed, created_at",
	1, {INT4OID}, NULL
};

/* the associated data of a mail's token: its id (16 bytes) and kind */
static size_t
mail_context(const pg_uuid_t *id, const char *kind, uint8_t *buf, size_t cap)
{
	size_t		klen = strlen(kind);

	if (UUID_LEN + klen > cap)
		elog(ERROR, "mail kind is too long");
	memcpy(buf, id->data, UUID_LEN);
	memcpy(buf + UUID_LEN, kind, klen);
	return UUID_LEN + klen;
}

/*
 * RecoveryRequireKeys
 *		Raises 55000 unless the key file the outbox seals with is usable.
 */
void
RecoveryRequireKeys(void)
{
	(void) KeyringCurrent();
}

/*
 * RecoveryQueueMail
 *		Inside an open SPI connection: queues a mail of kind for user_id to
 *		recipient (both NULL for the decoy of kind 'none'), with token (NULL
 *		for none) sealed.  The caller wipes token.
 */
void
RecoveryQueueMail(const pg_uuid_t *user_id, const char *recipient,
				  const char *kind, const char *token)
{
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	pg_uuid_t	id;
	uint8_t		ctx[64];
	size_t		ctxlen;

	UuidV7Generate(&id);
	values[0] = UUIDPGetDatum(&id);
	if (user_id)
		values[1] = UUIDPGetDatum(user_id);
	else
		nulls[1] = 'n';
	if (recipient)
		values[2] = CStringGetTextDatum(recipient);
	else
		nulls[2] = 'n';
	values[3] = CStringGetTextDatum(kind);
	if (token)
	{
		const CtKeyring *ring = KeyringCurrent();
		size_t		len = strlen(token);
		size_t		cap = CtEncodedLen(len);
		text	   *out = palloc(VARHDRSZ + cap);
		uint8_t		scratch[RECOVERY_TOKEN_LEN + CT_TAG_BYTES + 16];
		uint8_t		nonce[CT_NONCE_BYTES];
		size_t		outlen;
		CtResult	r;

		if (len > RECOVERY_TOKEN_LEN)
			elog(ERROR, "token is too long");
		ctxlen = mail_context(&id, kind, ctx, sizeof(ctx));
		randombytes_buf(nonce, sizeof(nonce));
		r = CtSeal(&ring->keys[ring->current],
				   (CtBackend) audiotricks_aes_backend, CT_DOMAIN_MAIL, nonce,
				   ctx, ctxlen, (const uint8_t *) token, len,
				   scratch, sizeof(scratch), VARDATA(out), cap, &outlen);
		sodium_memzero(scratch, sizeof(scratch));
		if (r != CT_OK)
			elog(ERROR, "could not seal a mail's token");
		SET_VARSIZE(out, VARHDRSZ + outlen);
		values[4] = PointerGetDatum(out);
	}
	else
		nulls[4] = 'n';
	if (AtRunPlan(&plan_queue_mail, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not queue a mail");
}

/*
 * at_mail_outbox(max_mails integer DEFAULT 100)
 *		RETURNS TABLE(id uuid, recipient text, kind text, token text,
 *					  created_at timestamptz)
 *		Takes (deletes and returns) up to max_mails pending mails, oldest
 *		first, skipping mails another call holds; token is the plaintext
 *		token of a password_reset, email_verification or email_change mail,
 *		else NULL.  Decoys are deleted, not returned.  For
 *		audiotricks_mailer only; send the mails before committing (a rolled
 *		back call leaves them queued).  22023 when max_mails is outside
 *		1-1000.
 */
Datum
at_mail_outbox(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	Datum		values[1];
	int32		max_mails;

	if (PG_ARGISNULL(0) || PG_GETARG_INT32(0) < 1 ||
		PG_GETARG_INT32(0) > OUTBOX_MAX_BATCH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_mails must be between 1 and %d", OUTBOX_MAX_BATCH)));
	max_mails = PG_GETARG_INT32(0);
	store = AtMaterialize(fcinfo, &tupdesc);

	AtSpiConnect();
	values[0] = Int32GetDatum(max_mails);
	AtRunPlan(&plan_take_mail, values, NULL, false, 0);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Datum		row[5];
		bool		nulls[5] = {false, false, false, false, false};
		bool		isnull;
		char	   *kind;
		Datum		sealed;
		MemoryContext oldcxt;

		kind = TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull));
		if (strcmp(kind, "none") == 0)
			continue;
		row[0] = SPI_getbinval(tup, desc, 1, &isnull);
		row[1] = SPI_getbinval(tup, desc, 2, &nulls[1]);
		row[2] = CStringGetTextDatum(kind);
		row[4] = SPI_getbinval(tup, desc, 5, &isnull);
		sealed = SPI_getbinval(tup, desc, 4, &nulls[3]);
		if (strcmp(kind, "registration_attempt") == 0)
			nulls[3] = true;	/* a notice: its token is the decoy's */
		if (!nulls[3])
		{
			text	   *ct = DatumGetTextPP(sealed);
			CtParsed	parsed;
			uint8_t		ctx[64];
			size_t		ctxlen;
			uint8_t		plain[RECOVERY_TOKEN_LEN + CT_TAG_BYTES + 16];
			size_t		plainlen = 0;
			CtResult	r;

			ctxlen = mail_context(DatumGetUUIDP(row[0]), kind, ctx, sizeof(ctx));
			r = CtParse(VARDATA_ANY(ct), VARSIZE_ANY_EXHDR(ct), &parsed);
			if (r == CT_OK)
				r = CtOpen(KeyringCurrent(), (CtBackend) audiotricks_aes_backend,
						   CT_DOMAIN_MAIL, &parsed, ctx, ctxlen,
						   plain, sizeof(plain), &plainlen);
			if (r != CT_OK)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("a queued mail's token could not be opened"),
						 errhint("The key file no longer holds the key it was sealed with; ask the user to request a new one.")));
			row[3] = PointerGetDatum(cstring_to_text_with_len((char *) plain, plainlen));
			sodium_memzero(plain, sizeof(plain));
		}
		oldcxt = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
		tuplestore_putvalues(store, tupdesc, row, nulls);
		MemoryContextSwitchTo(oldcxt);
		if (!nulls[3])			/* the tuplestore holds its copy */
			sodium_memzero(VARDATA(DatumGetPointer(row[3])),
						   VARSIZE(DatumGetPointer(row[3])) - VARHDRSZ);
	}
	AtSpiFinish();
	return (Datum) 0;
}
