/*
 * src/history_index.c
 *		The language-aware search document of an audio history entry:
 *		at_search_config (a language to a text search configuration),
 *		at_history_tsv_config and at_history_tsv, which the table's stored
 *		generated column search_tsv and its index audio_history_config_idx
 *		call (see history_search.c for how the search reads them).
 */
#include "postgres.h"

#include "access/detoast.h"
#include "catalog/namespace.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "nodes/value.h"
#include "parser/scansup.h"
#include "tsearch/ts_type.h"
#include "tsearch/ts_utils.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/syscache.h"

#include "audiotricks.h"

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
