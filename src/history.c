/*
 * src/history.c
 *		Audio history: the helpers behind at_history_add/count/delete
 *		(SQL functions the planner can inline, see the install script), the
 *		language-aware search index, and at_history_search
 *		(at_history_page is in page.c).
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
 * shipped policy's rule (the identity's own rows) itself, as page.c does;
 * with other policies on the table it runs the query under row-level
 * security instead.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/genam.h"
#include "access/itup.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"

#include "catalog/namespace.h"
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
#include "parser/scansup.h"
#include "tsearch/ts_type.h"
#include "tsearch/ts_utils.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
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

PG_FUNCTION_INFO_V1(at_require_user_id);
PG_FUNCTION_INFO_V1(at_page_size);
PG_FUNCTION_INFO_V1(at_search_config);
PG_FUNCTION_INFO_V1(at_history_tsv);
PG_FUNCTION_INFO_V1(at_history_tsv_config);
PG_FUNCTION_INFO_V1(at_history_search);

#define LANGUAGE_MAX_LEN	35		/* longest language tag we look at */

/* ISO 639-1 codes and the PostgreSQL text search configuration for each */
typedef struct LanguageConfig
{
	const char *code;
	const char *config;
} LanguageConfig;

static const LanguageConfig language_configs[] = {
	{"ar", "arabic"},
	{"ca", "catalan"},
	{"da", "danish"},
	{"de", "german"},
	{"el", "greek"},
	{"en", "english"},
	{"es", "spanish"},
	{"eu", "basque"},
	{"fi", "finnish"},
	{"fr", "french"},
	{"ga", "irish"},
	{"hi", "hindi"},
	{"hu", "hungarian"},
	{"hy", "armenian"},
	{"id", "indonesian"},
	{"it", "italian"},
	{"lt", "lithuanian"},
	{"nb", "norwegian"},
	{"ne", "nepali"},
	{"nl", "dutch"},
	{"nn", "norwegian"},
	{"no", "norwegian"},
	{"pt", "portuguese"},
	{"ro", "romanian"},
	{"ru", "russian"},
	{"sr", "serbian"},
	{"sv", "swedish"},
	{"ta", "tamil"},
	{"tr", "turkish"},
	{"yi", "yiddish"},
	{NULL, NULL}
};

/*
 * at_require_user_id() RETURNS uuid
 *		The identity's user id (palloc'd in the caller's context).  Raises
 *		42501 "not authenticated" when this transaction has none.
 */
Datum
at_require_user_id(PG_FUNCTION_ARGS)
{
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;
	pg_uuid_t  *result;

	IdentityRequire(&user_id, &session_id);
	result = palloc(sizeof(pg_uuid_t));
	*result = user_id;
	PG_RETURN_UUID_P(result);
}

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
 * at_page_size(integer) RETURNS integer
 *		The page size to use: 20 for NULL, the value itself if it is in
 *		1..100.  Raises 22023 otherwise.  IMMUTABLE, so a constant argument
 *		folds at plan time and the planner knows the LIMIT.
 */
Datum
at_page_size(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(AtCheckedPageSize(fcinfo, 0));
}

/*
 * config_oid
 *		OID of pg_catalog.<name>, or InvalidOid if this server lacks it.
 */
static Oid
config_oid(const char *name)
{
	List	   *names = list_make2(makeString(pstrdup("pg_catalog")),
								   makeString(pstrdup(name)));

	return get_ts_config_oid(names, true);
}

static Oid
simple_config(void)
{
	Oid			oid = config_oid("simple");

	if (!OidIsValid(oid))
		elog(ERROR, "text search configuration pg_catalog.simple is missing");
	return oid;
}

/*
 * language_config
 *		The text search configuration for a language tag such as "en",
 *		"en-US", "pt_BR" or "english" (case-insensitive): its primary subtag
 *		mapped by language_configs, or a configuration of that name.
 *		Returns InvalidOid when the language is unknown.
 */
static Oid
language_config(const char *s, int len)
{
	char		tag[LANGUAGE_MAX_LEN + 1];
	int			n = 0;

	while (n < len && n < LANGUAGE_MAX_LEN && s[n] != '-' && s[n] != '_')
	{
		unsigned char c = (unsigned char) s[n];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
			return InvalidOid;
		tag[n++] = (char) pg_ascii_tolower(c);
	}
	if (n == 0 || (n == LANGUAGE_MAX_LEN && n < len))
		return InvalidOid;
	tag[n] = '\0';

	for (const LanguageConfig *l = language_configs; l->code != NULL; l++)
	{
		if (strcmp(tag, l->code) == 0)
			return config_oid(l->config);
		if (strcmp(tag, l->config) == 0)
			return config_oid(l->config);
	}
	return InvalidOid;
}

/*
 * at_search_config(language text) RETURNS regconfig
 *		The text search configuration for a language code (ISO 639-1 such as
 *		"de", a tag such as "pt-BR", or a configuration name such as
 *		"german"); 'simple' for NULL or an unknown language.  IMMUTABLE.
 */
Datum
at_search_config(PG_FUNCTION_ARGS)
{
	Oid			cfg = InvalidOid;

	if (!PG_ARGISNULL(0))
	{
		text	   *t = PG_GETARG_TEXT_PP(0);

		cfg = language_config(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
	}
	if (!OidIsValid(cfg))
		cfg = simple_config();
	PG_RETURN_OID(cfg);
}

/*
 * The search document's bounds.  A tsvector's lexemes and positions must fit
 * in MAXSTRPOS (1 MB - 1) bytes, else to_tsvector and tsvector_concat raise
 * 54000, and parsing costs memory in proportion to the text parsed (an 86 MB
 * transcript took a backend to 1.5 GB).  So each part reads at most the
 * first AT_SEARCH_TEXT_MAX bytes of its text, cut back to the last ASCII
 * whitespace (else to a character boundary), and the document keeps words,
 * in text order (title, summary, transcript), while their bound fits:
 * WORD_BOUND(len) is the most one parsed word can add to the tsvector's
 * lexemes and positions (make_tsvector: the lexeme, one alignment byte, the
 * position count and one position; a repeated word adds one position), and
 * after tsvector_setweight and tsvector_concat a lexeme still takes at most
 * the sum of its words' bounds.  Words past the budget are not searchable.
 */
#define WORD_BOUND(len)		((len) + 1 + (int32) sizeof(uint16) + (int32) sizeof(WordEntryPos))

/*
 * text_head
 *		The first bytes of a text datum to parse: at most AT_SEARCH_TEXT_MAX,
 *		cut back to a word boundary when the text is longer.  Only that head
 *		is detoasted (a slice); an in-memory value is read in place.
 */
static char *
text_head(Datum d, int32 *len)
{
	struct varlena *raw = (struct varlena *) DatumGetPointer(d);
	Size		full = toast_raw_datum_size(d) - VARHDRSZ;
	text	   *t;
	char	   *buf;
	int32		n;

	if (VARATT_IS_EXTERNAL(raw) || VARATT_IS_COMPRESSED(raw))
		t = DatumGetTextPSlice(d, 0, AT_SEARCH_TEXT_MAX);
	else
		t = (text *) raw;
	buf = VARDATA_ANY(t);
	n = Min(VARSIZE_ANY_EXHDR(t), AT_SEARCH_TEXT_MAX);
	if (full > (Size) n)
	{
		/* cut at the last ASCII whitespace: never inside a character */
		int32		cut = n;

		while (cut > 0 && !scanner_isspace(buf[cut - 1]))
			cut--;
		n = cut > 0 ? cut : pg_mbcliplen(buf, n, n);
	}
	*len = n;
	return buf;
}

/*
 * weighted_part
 *		The weighted tsvector of the head of one text (text_head), keeping
 *		the words whose WORD_BOUND fits in *budget, which it lowers (to 0 when
 *		a word did not fit); (Datum) 0 for NULL, an exhausted budget or no
 *		words.  Memory: the head (if detoasted) and the parsed words, in the
 *		current context.
 */
static Datum
weighted_part(Oid cfg, FunctionCallInfo fcinfo, int argno, char weight,
			  int32 *budget)
{
	ParsedText	prs;
	char	   *buf;
	int32		len;
	int32		keep;

	if (PG_ARGISNULL(argno) || *budget <= 0)
		return (Datum) 0;
	buf = text_head(PG_GETARG_DATUM(argno), &len);

	/* as to_tsvector_byid does */
	prs.lenwords = Max(len / 6, 2);
	prs.curwords = 0;
	prs.pos = 0;
	prs.words = (ParsedWord *) palloc(sizeof(ParsedWord) * prs.lenwords);
	parsetext(cfg, &prs, buf, len);

	for (keep = 0; keep < prs.curwords; keep++)
	{
		int32		bound = WORD_BOUND(prs.words[keep].len);

		if (bound > *budget)
		{
			*budget = 0;
			break;
		}
		*budget -= bound;
	}
	for (int i = keep; i < prs.curwords; i++)
		pfree(prs.words[i].word);
	prs.curwords = keep;
	if (keep == 0)
	{
		pfree(prs.words);
		return (Datum) 0;
	}
	return DirectFunctionCall2(tsvector_setweight,
							   PointerGetDatum(make_tsvector(&prs)),
							   CharGetDatum(weight));
}

/*
 * entry_config
 *		The configuration an entry's search document is made in, from the
 *		first two arguments (search_config regconfig, processing_options
 *		jsonb): that of processing_options.language when it is a string
 *		('simple' if the language is unknown), else search_config (else
 *		'simple').  Raises 42704 when search_config is an OID that names no
 *		configuration.
 */
static Oid
entry_config(FunctionCallInfo fcinfo)
{
	Oid			cfg = InvalidOid;
	bool		from_options = false;

	if (!PG_ARGISNULL(1))
	{
		Jsonb	   *opts = PG_GETARG_JSONB_P(1);

		if (JB_ROOT_IS_OBJECT(opts))
		{
			JsonbValue	k;
			JsonbValue *v;

			k.type = jbvString;
			k.val.string.val = "language";
			k.val.string.len = 8;
			v = findJsonbValueFromContainer(&opts->root, JB_FOBJECT, &k);
			if (v != NULL && v->type == jbvString)
			{
				cfg = language_config(v->val.string.val, v->val.string.len);
				from_options = true;
			}
		}
	}
	if (!from_options && !PG_ARGISNULL(0))
	{
		cfg = PG_GETARG_OID(0);
		/* a bare OID cast to regconfig may name nothing: to_tsvector_byid
		 * would fail with an internal "cache lookup failed" */
		if (OidIsValid(cfg) &&
			!SearchSysCacheExists1(TSCONFIGOID, ObjectIdGetDatum(cfg)))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("text search configuration with OID %u does not exist", cfg)));
	}
	if (!OidIsValid(cfg))
		cfg = simple_config();
	return cfg;
}

/*
 * at_history_tsv_config(search_config regconfig, processing_options jsonb)
 *		RETURNS regconfig
 *		The configuration of an entry's search document (entry_config).
 *		IMMUTABLE: the expression of the index audio_history_config_idx,
 *		from which at_history_search learns the languages a user's entries
 *		are in.
 */
Datum
at_history_tsv_config(PG_FUNCTION_ARGS)
{
	PG_RETURN_OID(entry_config(fcinfo));
}

/*
 * at_history_tsv(search_config regconfig, processing_options jsonb,
 *				  title text, summary text, transcript text) RETURNS tsvector
 *		The search document of an entry: title weighted A, summary B,
 *		transcript C, in the configuration of processing_options.language
 *		when that is a string ('simple' if the language is unknown), else in
 *		search_config (else 'simple').  Bounded (see WORD_BOUND): each text
 *		is read up to AT_SEARCH_TEXT_MAX bytes, and words are kept while the
 *		document's lexemes and positions stay within MAXSTRPOS, so it never
 *		raises the tsvector size error, whatever the input.  IMMUTABLE: used
 *		by the stored generated column search_tsv.  Never returns NULL.
 *		Raises 42704 when search_config is an OID that names no
 *		configuration.
 */
Datum
at_history_tsv(PG_FUNCTION_ARGS)
{
	Oid			cfg = entry_config(fcinfo);
	Datum		parts[3];
	Datum		result = (Datum) 0;
	int32		budget = MAXSTRPOS;

	parts[0] = weighted_part(cfg, fcinfo, 2, 'A', &budget);
	parts[1] = weighted_part(cfg, fcinfo, 3, 'B', &budget);
	parts[2] = weighted_part(cfg, fcinfo, 4, 'C', &budget);
	for (int i = 0; i < 3; i++)
	{
		if (parts[i] == (Datum) 0)
			continue;
		result = result == (Datum) 0 ? parts[i] :
			DirectFunctionCall2(tsvector_concat, result, parts[i]);
	}
	if (result == (Datum) 0)
		result = DirectFunctionCall2(to_tsvector_byid, ObjectIdGetDatum(cfg),
									 CStringGetTextDatum(""));
	PG_RETURN_DATUM(result);
}

/*
 * user_configs
 *		The text search configurations of user_id's entries, distinct, read
 *		from the index audio_history_config_idx on (user_id,
 *		at_history_tsv_config(...)) one value at a time: a loose index scan,
 *		one descent per configuration, whatever the number of entries.  Only
 *		index entries are read, so an entry deleted but not yet vacuumed may
 *		add a configuration: that costs a query arm, never a wrong result.
 *		Configurations dropped since are left out.
 */
static List *
user_configs(const pg_uuid_t *user_id)
{
	Oid			nsp = AtSchemaOid();
	Oid			relid = get_relname_relid("audio_history", nsp);
	Oid			indexid = get_relname_relid("audio_history_config_idx", nsp);
	Relation	rel;
	Relation	irel;
	List	   *configs = NIL;
	Oid			last = InvalidOid;

	if (!OidIsValid(relid) || !OidIsValid(indexid))
		elog(ERROR, "audiotricks.audio_history or its index audio_history_config_idx is missing");
	rel = table_open(relid, AccessShareLock);
	irel = index_open(indexid, AccessShareLock);
	if (irel->rd_index->indrelid != relid || irel->rd_index->indnkeyatts != 2 ||
		irel->rd_rel->relam != BTREE_AM_OID ||
		TupleDescAttr(RelationGetDescr(irel), 1)->atttypid != REGCONFIGOID)
		elog(ERROR, "index audiotricks.audio_history_config_idx is not (user_id, configuration)");

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
		if (OidIsValid(last))
		{
			ScanKeyEntryInitialize(&keys[1], 0, 2, BTGreaterStrategyNumber,
								   InvalidOid, InvalidOid, F_OIDGT,
								   ObjectIdGetDatum(last));
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
				last = DatumGetObjectId(d);
				found = true;
			}
		}
		index_endscan(scan);
		if (!found)
			break;
		if (SearchSysCacheExists1(TSCONFIGOID, ObjectIdGetDatum(last)))
			configs = lappend_oid(configs, last);
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

static AtPlan plan_search = {
	"SELECT h.* FROM audiotricks.audio_history h"
	" WHERE h.user_id OPERATOR(pg_catalog.=) $1"
	"   AND h.search_tsv OPERATOR(pg_catalog.@@) $2"
	" ORDER BY pg_catalog.ts_rank(h.search_tsv, $2) DESC,"
	"          h.created_at DESC, h.id DESC"
	" LIMIT $3",
	3, {UUIDOID, TSQUERYOID, INT4OID}, NULL
};

/*
 * search_through_spi
 *		The search as an ordinary query, as the caller and under row-level
 *		security, for a table that carries policies besides the shipped one
 *		(they then apply).  Slower: under a policy the planner may not use
 *		the non-leakproof @@ as an index condition.
 */
static void
search_through_spi(const pg_uuid_t *user_id, TSQuery query, int32 page_size,
				   Tuplestorestate *store, int natts, MemoryContext per_query)
{
	Datum		values[3];
	pg_uuid_t  *uid = palloc(sizeof(pg_uuid_t));

	*uid = *user_id;
	values[0] = UUIDPGetDatum(uid);
	values[1] = PointerGetDatum(query);
	values[2] = Int32GetDatum(page_size);
	AtRunPlanInto(&plan_search, values, page_size, store, natts, per_query);
}

/* one match: its rank and sort keys, and where it is */
typedef struct SearchHit
{
	float4		rank;
	TimestampTz created_at;
	pg_uuid_t	id;
	ItemPointerData tid;
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
	int32		page_size;
	SearchHit  *hits;
	int			nhits;
	MemoryContext rowcxt;
} SearchState;

/*
 * search_consider
 *		Rechecks the row in slot (the user's, and matching the query), ranks
 *		it and keeps it if it is among the best page_size so far (sorted:
 *		rank, created_at, id, all descending, as plan_search orders).
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
 *		The search without the planner.  A small user's entries are all read
 *		and rechecked; a larger user's matching entries come from one bitmap
 *		scan of the GIN index audio_history_search_idx on (user_id,
 *		search_tsv) with both keys, so only they are read.  Either way each
 *		row is rechecked (user and match) and ranked, the best page_size are
 *		kept and then fetched again by their TIDs into store.  A generic plan
 *		of plan_search cannot be trusted with this: it prices "user_id = $1"
 *		at the average user's size and, for a user with 200,000 entries,
 *		picks a btree on user_id and reads every one of them.
 */
static void
search_direct(Relation rel, Oid ginid, Oid btreeid, const SearchRel *cols,
			  const pg_uuid_t *user_id, TSQuery query, int32 page_size,
			  Tuplestorestate *store)
{
	Relation	gin;
	Relation	btree;
	TupleTableSlot *slot;
	SearchState st;

	gin = index_open(ginid, AccessShareLock);
	btree = index_open(btreeid, AccessShareLock);
	if (gin->rd_rel->relam != GIN_AM_OID || gin->rd_index->indrelid != RelationGetRelid(rel) ||
		gin->rd_index->indnkeyatts != 2 ||
		gin->rd_index->indkey.values[0] != cols->a_user_id ||
		gin->rd_index->indkey.values[1] != cols->a_tsv)
		elog(ERROR, "index audiotricks.audio_history_search_idx is not a GIN index on (user_id, search_tsv)");
	if (btree->rd_rel->relam != BTREE_AM_OID || btree->rd_index->indrelid != RelationGetRelid(rel) ||
		btree->rd_index->indkey.values[0] != cols->a_user_id)
		elog(ERROR, "index audiotricks.audio_history_user_created_idx does not start with user_id");

	st.cols = cols;
	st.user_id = user_id;
	st.query = query;
	st.page_size = page_size;
	st.hits = palloc(sizeof(SearchHit) * page_size);
	st.nhits = 0;
	st.rowcxt = AllocSetContextCreate(CurrentMemoryContext, "at_history_search row",
									  ALLOCSET_SMALL_SIZES);
	slot = table_slot_create(rel, NULL);
	if (search_user_is_small(rel, btree, user_id))
		search_by_user(&st, rel, btree, slot);
	else
		search_by_gin(&st, rel, gin, slot);
	MemoryContextDelete(st.rowcxt);
	index_close(btree, AccessShareLock);
	index_close(gin, AccessShareLock);

	/* the rows themselves, best first, under the same snapshot */
	for (int i = 0; i < st.nhits; i++)
	{
		if (!table_tuple_fetch_row_version(rel, &st.hits[i].tid, GetActiveSnapshot(), slot))
			elog(ERROR, "search match at (%u,%u) vanished",
				 ItemPointerGetBlockNumber(&st.hits[i].tid),
				 ItemPointerGetOffsetNumber(&st.hits[i].tid));
		AtPutRow(rel, slot, store);
	}
	ExecDropSingleTupleTableSlot(slot);
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
run_search(const pg_uuid_t *user_id, TSQuery query, int32 page_size,
		   Tuplestorestate *store, int natts, MemoryContext per_query)
{
	Oid			nsp = AtSchemaOid();
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
	{
		SearchRel	cols;

		cols.a_id = get_attnum(relid, "id");
		cols.a_user_id = get_attnum(relid, "user_id");
		cols.a_created_at = get_attnum(relid, "created_at");
		cols.a_tsv = get_attnum(relid, "search_tsv");
		if (cols.a_id == InvalidAttrNumber || cols.a_user_id == InvalidAttrNumber ||
			cols.a_created_at == InvalidAttrNumber || cols.a_tsv == InvalidAttrNumber)
			elog(ERROR, "audiotricks.audio_history lacks a column the search reads");
		search_direct(rel, ginid, btreeid, &cols, user_id, query, page_size, store);
	}
	else
		search_through_spi(user_id, query, page_size, store, natts, per_query);
	table_close(rel, AccessShareLock);
}

/*
 * at_history_search(query text, page_size integer DEFAULT 20)
 *		RETURNS SETOF audiotricks.audio_history
 *		The current user's entries whose title, summary or transcript match
 *		the query (web search syntax: words, "phrases", or, -not), best match
 *		first (ts_rank; title counts most), then newest.  A NULL query or one
 *		without searchable words returns no rows.  The rows are materialized
 *		in the per-query context.  Raises 42501 without identity, 22023 for a
 *		page size outside 1..100 or a query longer than 1000 characters.
 */
Datum
at_history_search(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	MemoryContext per_query;
	pg_uuid_t	user_id;
	pg_uuid_t	session_id;
	int32		page_size;
	TSQuery		query = NULL;

	IdentityRequire(&user_id, &session_id);
	page_size = AtCheckedPageSize(fcinfo, 1);
	if (!PG_ARGISNULL(0))
	{
		text	   *input = PG_GETARG_TEXT_PP(0);

		/* bounded: a query tree thousands of terms deep exhausts the stack */
		if (pg_mbstrlen_with_len(VARDATA_ANY(input), VARSIZE_ANY_EXHDR(input)) >
			AT_SEARCH_QUERY_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("query must be at most %d characters long",
							AT_SEARCH_QUERY_MAX)));
		query = search_query(input, user_configs(&user_id));
	}

	per_query = rsinfo->econtext->ecxt_per_query_memory;
	store = AtMaterialize(fcinfo, &tupdesc);
	if (query != NULL)
		run_search(&user_id, query, page_size, store, tupdesc->natts, per_query);
	return (Datum) 0;
}
