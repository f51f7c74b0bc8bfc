/*
 * src/history_index.c
 *		The language-aware search document of an audio history entry:
 *		at_search_config (a language to a text search configuration),
 *		at_history_tsv_config and at_history_tsv, which the table's stored
 *		generated column search_tsv and its index audio_history_config_idx
 *		call (see history_search.c for how the search reads them).
 *
 * A configuration is stored and passed by its schema-qualified name as text
 * ('pg_catalog.english'), never as regconfig: pg_upgrade refuses user
 * columns of reg* types that hold OIDs (regconfig among them), since the
 * OIDs may differ in the new cluster.  The name is resolved to an OID here
 * (AtSearchConfigOid), cached per backend until pg_ts_config or
 * pg_namespace changes.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_ts_config.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "nodes/value.h"
#include "parser/scansup.h"
#include "tsearch/ts_type.h"
#include "tsearch/ts_utils.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

#include "audiotricks.h"
#include "history_index.h"

PG_FUNCTION_INFO_V1(at_search_config);
PG_FUNCTION_INFO_V1(at_history_tsv);
PG_FUNCTION_INFO_V1(at_history_tsv_config);

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
 * Names resolved to configurations: a few per backend (the languages in
 * use), dropped whenever pg_ts_config or pg_namespace changes.
 */
#define CONFIG_CACHE_SIZE	16

typedef struct ConfigCacheEntry
{
	char	   *name;			/* as given, in CacheMemoryContext */
	Oid			oid;
	char	   *canonical;		/* "schema.name", in CacheMemoryContext */
} ConfigCacheEntry;

static ConfigCacheEntry config_cache[CONFIG_CACHE_SIZE];
static int	config_cache_used = 0;
static int	config_cache_next = 0;
static bool config_callback_registered = false;

static void
config_cache_reset(Datum arg, int cacheid, uint32 hashvalue)
{
	for (int i = 0; i < config_cache_used; i++)
	{
		pfree(config_cache[i].name);
		pfree(config_cache[i].canonical);
	}
	config_cache_used = 0;
	config_cache_next = 0;
}

/* "schema.name" of configuration cfg, palloc'd; NULL if there is none */
static char *
config_canonical(Oid cfg)
{
	HeapTuple	tup = SearchSysCache1(TSCONFIGOID, ObjectIdGetDatum(cfg));
	Form_pg_ts_config form;
	char	   *nsp;
	char	   *result;

	if (!HeapTupleIsValid(tup))
		return NULL;
	form = (Form_pg_ts_config) GETSTRUCT(tup);
	nsp = get_namespace_name(form->cfgnamespace);
	result = nsp == NULL ? NULL :
		psprintf("%s.%s", quote_identifier(nsp), quote_identifier(NameStr(form->cfgname)));
	ReleaseSysCache(tup);
	return result;
}

/*
 * AtSearchConfigOid
 *		The OID of the text search configuration named name (len bytes, no
 *		NUL needed): "schema.config", or a bare "config" in pg_catalog (never
 *		the search path: the functions that call this are IMMUTABLE).  Sets
 *		*canonical, if not NULL, to its "schema.config" (valid until the next
 *		call).  When there is no such configuration: InvalidOid if
 *		missing_ok, else 42704.  Cached per backend.
 */
Oid
AtSearchConfigOid(const char *name, int len, bool missing_ok,
				  const char **canonical)
{
	char	   *str;
	List	   *names = NIL;
	Oid			oid = InvalidOid;
	char	   *canon = NULL;
	MemoryContext oldcxt;
	ConfigCacheEntry *e;

	for (int i = 0; i < config_cache_used; i++)
	{
		e = &config_cache[i];
		if (strlen(e->name) == (size_t) len && memcmp(e->name, name, len) == 0)
		{
			if (canonical != NULL)
				*canonical = e->canonical;
			return e->oid;
		}
	}

	str = pnstrdup(name, len);
	if (len > 0 && len < 2 * NAMEDATALEN + 8 && strlen(str) == (size_t) len)
	{
		char	   *copy = pstrdup(str);
		List	   *parts = NIL;

		/* a syntax error is only an unknown name */
		if (SplitIdentifierString(copy, '.', &parts) &&
			(list_length(parts) == 1 || list_length(parts) == 2))
		{
			if (list_length(parts) == 1)
				names = list_make2(makeString("pg_catalog"),
								   makeString(linitial(parts)));
			else
				names = list_make2(makeString(linitial(parts)),
								   makeString(lsecond(parts)));
			oid = get_ts_config_oid(names, true);
		}
	}
	if (OidIsValid(oid))
		canon = config_canonical(oid);
	if (!OidIsValid(oid) || canon == NULL)
	{
		if (missing_ok)
			return InvalidOid;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("text search configuration \"%s\" does not exist", str),
				 errhint("Name a configuration by its schema-qualified name, such as pg_catalog.english.")));
	}

	if (!config_callback_registered)
	{
		CacheRegisterSyscacheCallback(TSCONFIGOID, config_cache_reset, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, config_cache_reset, (Datum) 0);
		config_callback_registered = true;
	}
	if (config_cache_used < CONFIG_CACHE_SIZE)
		e = &config_cache[config_cache_used++];
	else
	{
		e = &config_cache[config_cache_next];
		config_cache_next = (config_cache_next + 1) % CONFIG_CACHE_SIZE;
		pfree(e->name);
		pfree(e->canonical);
	}
	oldcxt = MemoryContextSwitchTo(CacheMemoryContext);
	e->name = pstrdup(str);
	e->canonical = pstrdup(canon);
	MemoryContextSwitchTo(oldcxt);
	e->oid = oid;
	if (canonical != NULL)
		*canonical = e->canonical;
	return oid;
}

/* pg_catalog.<name>'s OID and canonical name, or InvalidOid if missing */
static Oid
catalog_config(const char *name, const char **canonical)
{
	return AtSearchConfigOid(name, (int) strlen(name), true, canonical);
}

static Oid
simple_config(const char **canonical)
{
	Oid			oid = catalog_config("simple", canonical);

	if (!OidIsValid(oid))
		elog(ERROR, "text search configuration pg_catalog.simple is missing");
	return oid;
}

/*
 * language_config
 *		The text search configuration for a language tag such as "en",
 *		"en-US", "pt_BR" or "english" (case-insensitive): its primary subtag
 *		mapped by language_configs, or a configuration of that name in
 *		pg_catalog.  Returns InvalidOid when the language is unknown; else
 *		sets *canonical as AtSearchConfigOid does.
 */
static Oid
language_config(const char *s, int len, const char **canonical)
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
		if (strcmp(tag, l->code) == 0 || strcmp(tag, l->config) == 0)
			return catalog_config(l->config, canonical);
	}
	return InvalidOid;
}

/*
 * at_search_config(language text) RETURNS text
 *		The schema-qualified name of the text search configuration for a
 *		language code (ISO 639-1 such as "de", a tag such as "pt-BR", or a
 *		configuration name such as "german"): 'pg_catalog.simple' for NULL or
 *		an unknown language.  IMMUTABLE.
 */
Datum
at_search_config(PG_FUNCTION_ARGS)
{
	Oid			cfg = InvalidOid;
	const char *name = NULL;

	if (!PG_ARGISNULL(0))
	{
		text	   *t = PG_GETARG_TEXT_PP(0);

		cfg = language_config(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &name);
	}
	if (!OidIsValid(cfg))
		cfg = simple_config(&name);
	PG_RETURN_TEXT_P(cstring_to_text(name));
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
 *		first two arguments (search_config text, processing_options jsonb):
 *		that of processing_options.language when it is a string
 *		('pg_catalog.simple' if the language is unknown), else the one
 *		search_config names (else 'pg_catalog.simple').  Sets *canonical to
 *		its schema-qualified name (valid until the next lookup).  Raises
 *		42704 when search_config names no configuration.
 */
static Oid
entry_config(FunctionCallInfo fcinfo, const char **canonical)
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
				cfg = language_config(v->val.string.val, v->val.string.len,
									  canonical);
				from_options = true;
			}
		}
	}
	if (!from_options && !PG_ARGISNULL(0))
	{
		text	   *t = PG_GETARG_TEXT_PP(0);

		cfg = AtSearchConfigOid(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), false,
								canonical);
	}
	if (!OidIsValid(cfg))
		cfg = simple_config(canonical);
	return cfg;
}

/*
 * at_history_tsv_config(search_config text, processing_options jsonb)
 *		RETURNS text
 *		The schema-qualified name of the configuration of an entry's search
 *		document (entry_config).  IMMUTABLE: the expression of the index
 *		audio_history_config_idx, from which at_history_search learns the
 *		languages a user's entries are in.  Raises 42704 as entry_config.
 */
Datum
at_history_tsv_config(PG_FUNCTION_ARGS)
{
	const char *name;

	(void) entry_config(fcinfo, &name);
	PG_RETURN_TEXT_P(cstring_to_text(name));
}

/*
 * at_history_tsv(search_config text, processing_options jsonb,
 *				  title text, summary text, transcript text) RETURNS tsvector
 *		The search document of an entry: title weighted A, summary B,
 *		transcript C, in the configuration of processing_options.language
 *		when that is a string ('simple' if the language is unknown), else in
 *		search_config (else 'simple').  Bounded (see WORD_BOUND): each text
 *		is read up to AT_SEARCH_TEXT_MAX bytes, and words are kept while the
 *		document's lexemes and positions stay within MAXSTRPOS, so it never
 *		raises the tsvector size error, whatever the input.  IMMUTABLE: used
 *		by the stored generated column search_tsv.  Never returns NULL.
 *		Raises 42704 when search_config names no configuration.
 */
Datum
at_history_tsv(PG_FUNCTION_ARGS)
{
	const char *name;
	Oid			cfg = entry_config(fcinfo, &name);
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
