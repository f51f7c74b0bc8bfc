/*
 * src/validate.c
 *		What the tables run on every write: shape checks for the JSONB
 *		columns and the audio URL, used by the tables' CHECK constraints so
 *		that every write path is covered, and the trigger that keeps
 *		updated_at.
 *
 * Sizes.  Every user-supplied text and JSON column has a limit in bytes
 * (audiotricks.h, AT_*_MAX): the value's size without its varlena header,
 * which for text is octet_length and for jsonb the size of its binary form.
 * It is read from the datum's header (toast_raw_datum_size) before anything
 * detoasts or walks the value, so refusing an oversized value costs nothing.
 *
 * Each check returns true for an acceptable value and otherwise raises 23514
 * (check_violation) with a message that names the offending field by its
 * JSON path, e.g. "key_moments[2].confidence must be a number between 0 and
 * 1".  Array positions are counted from 0, as in jsonpath.
 *
 * The rules (README, "Validation"): the keys the seed document lists must
 * have the seed's types; keys it does not list are allowed, whatever their
 * value, so that newer clients can store more without a schema change.  JSON
 * null is not a value of any listed type.  Only the listed keys are looked
 * at (one or two levels deep), so the cost is bounded by the number of key
 * moments, not by the depth or size of unlisted values.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/htup_details.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "audiotricks.h"

PG_FUNCTION_INFO_V1(at_check_key_moments);
PG_FUNCTION_INFO_V1(at_check_processing_options);
PG_FUNCTION_INFO_V1(at_check_settings_json);
PG_FUNCTION_INFO_V1(at_check_audio_url);
PG_FUNCTION_INFO_V1(at_check_transcript);
PG_FUNCTION_INFO_V1(at_check_summary);
PG_FUNCTION_INFO_V1(at_check_history_sizes);
PG_FUNCTION_INFO_V1(at_touch_updated_at);
PG_FUNCTION_INFO_V1(at_check_rule);

typedef enum FieldType
{
	FIELD_STRING,
	FIELD_BOOLEAN,
	FIELD_OBJECT
} FieldType;

typedef struct FieldRule
{
	const char *key;
	FieldType	type;
	const struct FieldRule *members;	/* for FIELD_OBJECT: rules of its keys */
} FieldRule;

static const FieldRule notification_rules[] = {
	{"email", FIELD_BOOLEAN, NULL},
	{"browser", FIELD_BOOLEAN, NULL},
	{NULL, 0, NULL}
};

static const FieldRule audio_default_rules[] = {
	{"format", FIELD_STRING, NULL},
	{"quality", FIELD_STRING, NULL},
	{NULL, 0, NULL}
};

static const FieldRule settings_rules[] = {
	{"theme", FIELD_STRING, NULL},
	{"autoSave", FIELD_BOOLEAN, NULL},
	{"notifications", FIELD_OBJECT, notification_rules},
	{"audioDefaults", FIELD_OBJECT, audio_default_rules},
	{NULL, 0, NULL}
};

static const FieldRule processing_rules[] = {
	{"language", FIELD_STRING, NULL},
	{"model", FIELD_STRING, NULL},
	{"summaryStyle", FIELD_STRING, NULL},
	{"includeTimestamps", FIELD_BOOLEAN, NULL},
	{"speakerDiarization", FIELD_BOOLEAN, NULL},
	{NULL, 0, NULL}
};

static void raise_field(const char *column, const char *path, const char *rule) pg_attribute_noreturn();

/* raises 23514 "<path> <rule>", with the column in the error's fields */
static void
raise_field(const char *column, const char *path, const char *rule)
{
	ereport(ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION),
			 errmsg("%s %s", path, rule),
			 err_generic_string(PG_DIAG_COLUMN_NAME, column)));
}

/*
 * check_size
 *		Raises 23514 "<column> must be at most <max> bytes" when the text or
 *		jsonb datum is larger than max bytes (without its header).  Reads only
 *		the datum's header: nothing is detoasted.
 */
static void
check_size(Datum value, const char *column, int max)
{
	Size		size = toast_raw_datum_size(value) - VARHDRSZ;

	if (size > (Size) max)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("%s must be at most %d bytes", column, max),
				 errdetail("The value is %zu bytes.", size),
				 err_generic_string(PG_DIAG_COLUMN_NAME, column)));
}

static const char *
type_rule(FieldType type)
{
	switch (type)
	{
		case FIELD_STRING:
			return "must be a string";
		case FIELD_BOOLEAN:
			return "must be a boolean";
		case FIELD_OBJECT:
			return "must be an object";
	}
	return "has the wrong type";	/* keep compilers quiet */
}

/*
 * find_key
 *		The value of key in the object container, or NULL when absent.
 *		Scalars come back as themselves, containers as jbvBinary.
 */
static JsonbValue *
find_key(JsonbContainer *object, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = (int) strlen(key);
	return findJsonbValueFromContainer(object, JB_FOBJECT, &k);
}

static bool
is_object(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
}

/* checks the listed keys of one object, recursing into listed sub-objects */
static void
check_object(JsonbContainer *object, const FieldRule *rules,
			 const char *column, const char *prefix)
{
	for (const FieldRule *r = rules; r->key != NULL; r++)
	{
		JsonbValue *v = find_key(object, r->key);
		bool		ok;
		char	   *path;

		if (v == NULL)
			continue;
		switch (r->type)
		{
			case FIELD_STRING:
				ok = v->type == jbvString;
				break;
			case FIELD_BOOLEAN:
				ok = v->type == jbvBool;
				break;
			case FIELD_OBJECT:
				ok = is_object(v);
				break;
			default:
				ok = false;
				break;
		}
		path = psprintf("%s.%s", prefix, r->key);
		if (!ok)
			raise_field(column, path, type_rule(r->type));
		if (r->type == FIELD_OBJECT && r->members != NULL)
			check_object(v->val.binary.data, r->members, column, path);
		pfree(path);
	}
}

/* a jsonb datum of at most max bytes that must be a JSON object; raises otherwise */
static Jsonb *
object_arg(FunctionCallInfo fcinfo, const char *column, int max)
{
	Jsonb	   *jb;

	check_size(PG_GETARG_DATUM(0), column, max);
	jb = PG_GETARG_JSONB_P(0);

	if (!JB_ROOT_IS_OBJECT(jb))
		raise_field(column, column, "must be an object");
	return jb;
}

/*
 * at_check_processing_options(jsonb) RETURNS boolean
 *		True when the value is an object whose listed keys (language, model,
 *		summaryStyle: strings; includeTimestamps, speakerDiarization:
 *		booleans) have their types, of at most AT_PROCESSING_OPTIONS_MAX
 *		bytes.  STRICT: NULL gives NULL, which a CHECK accepts.  Raises 23514
 *		naming the key (or the size limit) otherwise.
 */
Datum
at_check_processing_options(PG_FUNCTION_ARGS)
{
	Jsonb	   *jb = object_arg(fcinfo, "processing_options",
								AT_PROCESSING_OPTIONS_MAX);

	check_object(&jb->root, processing_rules, "processing_options",
				 "processing_options");
	PG_RETURN_BOOL(true);
}

/*
 * at_check_settings_json(jsonb) RETURNS boolean
 *		True when the value is an object whose listed keys (theme: string;
 *		autoSave: boolean; notifications: object of booleans email, browser;
 *		audioDefaults: object of strings format, quality) have their types,
 *		of at most AT_SETTINGS_JSON_MAX bytes.  Raises 23514 naming the key
 *		(or the size limit) otherwise.
 */
Datum
at_check_settings_json(PG_FUNCTION_ARGS)
{
	Jsonb	   *jb = object_arg(fcinfo, "settings_json",
								AT_SETTINGS_JSON_MAX);

	check_object(&jb->root, settings_rules, "settings_json", "settings_json");
	PG_RETURN_BOOL(true);
}

/* "HH:MM:SS", two digits each, minutes and seconds below 60 */
static bool
valid_hms(const char *s, int len)
{
	if (len != 8 || s[2] != ':' || s[5] != ':')
		return false;
	for (int i = 0; i < 8; i++)
		if (i != 2 && i != 5 && (s[i] < '0' || s[i] > '9'))
			return false;
	return s[3] <= '5' && s[6] <= '5';
}

/* 0 <= n <= 1 */
static bool
numeric_in_unit_interval(Numeric n)
{
	Datum		zero = DirectFunctionCall1(int4_numeric, Int32GetDatum(0));
	Datum		one = DirectFunctionCall1(int4_numeric, Int32GetDatum(1));

	if (numeric_is_nan(n))
		return false;
	return DatumGetBool(DirectFunctionCall2(numeric_ge, NumericGetDatum(n), zero)) &&
		DatumGetBool(DirectFunctionCall2(numeric_le, NumericGetDatum(n), one));
}

/*
 * at_check_key_moments(jsonb) RETURNS boolean
 *		True when the value is an array of objects, each with "timestamp" (a
 *		string "HH:MM:SS", minutes and seconds below 60) and "description" (a
 *		string), and optionally "confidence" (a number from 0 to 1), of at
 *		most AT_KEY_MOMENTS_MAX bytes.  Other keys are allowed.  Raises 23514
 *		naming the element and key (or the size limit) otherwise.
 */
Datum
at_check_key_moments(PG_FUNCTION_ARGS)
{
	Jsonb	   *jb;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			index = 0;

	check_size(PG_GETARG_DATUM(0), "key_moments", AT_KEY_MOMENTS_MAX);
	jb = PG_GETARG_JSONB_P(0);

	if (!JB_ROOT_IS_ARRAY(jb) || JB_ROOT_IS_SCALAR(jb))
		raise_field("key_moments", "key_moments", "must be an array");

	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		JsonbContainer *moment;
		JsonbValue *f;
		char	   *path;

		if (tok != WJB_ELEM)
			continue;
		path = psprintf("key_moments[%d]", index);
		if (!is_object(&v))
			raise_field("key_moments", path, "must be an object");
		moment = v.val.binary.data;

		f = find_key(moment, "timestamp");
		if (f == NULL)
			raise_field("key_moments", psprintf("%s.timestamp", path), "is required");
		if (f->type != jbvString || !valid_hms(f->val.string.val, f->val.string.len))
			raise_field("key_moments", psprintf("%s.timestamp", path),
						"must be a string \"HH:MM:SS\" with minutes and seconds below 60");

		f = find_key(moment, "description");
		if (f == NULL)
			raise_field("key_moments", psprintf("%s.description", path), "is required");
		if (f->type != jbvString)
			raise_field("key_moments", psprintf("%s.description", path), "must be a string");

		f = find_key(moment, "confidence");
		if (f != NULL &&
			(f->type != jbvNumeric || !numeric_in_unit_interval(f->val.numeric)))
			raise_field("key_moments", psprintf("%s.confidence", path),
						"must be a number between 0 and 1");
		pfree(path);
		index++;
	}
	PG_RETURN_BOOL(true);
}

/*
 * at_check_audio_url(text) RETURNS boolean
 *		True when the value is an http:// or https:// URL (scheme in any
 *		case) with a non-empty host part, no whitespace or control
 *		characters, and at most AT_AUDIO_URL_MAX characters.  Raises 23514
 *		naming audio_url otherwise.
 */
Datum
at_check_audio_url(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	const char *s = VARDATA_ANY(t);
	int			len = VARSIZE_ANY_EXHDR(t);
	int			start;
	bool		host = false;

	if (len > AT_AUDIO_URL_MAX * pg_database_encoding_max_length() ||
		pg_mbstrlen_with_len(s, len) > AT_AUDIO_URL_MAX)
		raise_field("audio_url", "audio_url",
					psprintf("must be at most %d characters long", AT_AUDIO_URL_MAX));

	if (len >= 7 && pg_strncasecmp(s, "http://", 7) == 0)
		start = 7;
	else if (len >= 8 && pg_strncasecmp(s, "https://", 8) == 0)
		start = 8;
	else
		raise_field("audio_url", "audio_url", "must be an http or https URL");

	for (int i = start; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c <= 0x20 || c == 0x7f)
			raise_field("audio_url", "audio_url",
						"must not contain whitespace or control characters");
		if (i == start && (c == '/' || c == '?' || c == '#'))
			break;
		host = true;
	}
	if (!host)
		raise_field("audio_url", "audio_url", "must name a host");
	PG_RETURN_BOOL(true);
}

/*
 * at_check_rule(passes boolean, table_name text, column_name text,
 *				 constraint_name text, rule text) RETURNS boolean
 *		The body of the tables' simple CHECK constraints (a comparison, a
 *		list, a pattern), so that a violation names the field and the rule.
 *		True when passes is true or NULL (a CHECK passes on NULL); otherwise
 *		raises 23514 "<column_name> <rule>" with the schema (audiotricks),
 *		table, column and constraint in the error's fields, as the server's
 *		own check violation carries them.  Raises 22004 when passes is false
 *		and a name or the rule is NULL (a constraint written wrongly).
 */
Datum
at_check_rule(PG_FUNCTION_ARGS)
{
	char	   *table_name;
	char	   *column_name;
	char	   *constraint_name;
	char	   *rule;

	if (PG_ARGISNULL(0) || PG_GETARG_BOOL(0))
		PG_RETURN_BOOL(true);
	for (int i = 1; i <= 4; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("a check rule needs a table, a column, a constraint and a rule")));
	table_name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	column_name = text_to_cstring(PG_GETARG_TEXT_PP(2));
	constraint_name = text_to_cstring(PG_GETARG_TEXT_PP(3));
	rule = text_to_cstring(PG_GETARG_TEXT_PP(4));
	ereport(ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION),
			 errmsg("%s %s", column_name, rule),
			 err_generic_string(PG_DIAG_SCHEMA_NAME, AT_SCHEMA),
			 err_generic_string(PG_DIAG_TABLE_NAME, table_name),
			 err_generic_string(PG_DIAG_COLUMN_NAME, column_name),
			 err_generic_string(PG_DIAG_CONSTRAINT_NAME, constraint_name)));
	PG_RETURN_BOOL(false);		/* keep the compiler quiet */
}

/*
 * at_check_transcript(text) RETURNS boolean
 * at_check_summary(text) RETURNS boolean
 *		True when the text is at most AT_TRANSCRIPT_MAX (AT_SUMMARY_MAX)
 *		bytes; raises 23514 naming the column and the limit otherwise.
 *		STRICT; nothing is detoasted.
 */
Datum
at_check_transcript(PG_FUNCTION_ARGS)
{
	check_size(PG_GETARG_DATUM(0), "transcript", AT_TRANSCRIPT_MAX);
	PG_RETURN_BOOL(true);
}

Datum
at_check_summary(PG_FUNCTION_ARGS)
{
	check_size(PG_GETARG_DATUM(0), "summary", AT_SUMMARY_MAX);
	PG_RETURN_BOOL(true);
}

/*
 * at_check_history_sizes(transcript text, summary text, key_moments jsonb,
 *						  processing_options jsonb) RETURNS boolean
 *		True when each non-NULL argument is within its column's size limit;
 *		raises 23514 as the column's CHECK constraint would otherwise.
 *		at_history_add calls it before its INSERT, so that an oversized
 *		entry is refused before the search document is made.  Reads only
 *		the datums' headers.
 */
Datum
at_check_history_sizes(PG_FUNCTION_ARGS)
{
	if (!PG_ARGISNULL(0))
		check_size(PG_GETARG_DATUM(0), "transcript", AT_TRANSCRIPT_MAX);
	if (!PG_ARGISNULL(1))
		check_size(PG_GETARG_DATUM(1), "summary", AT_SUMMARY_MAX);
	if (!PG_ARGISNULL(2))
		check_size(PG_GETARG_DATUM(2), "key_moments", AT_KEY_MOMENTS_MAX);
	if (!PG_ARGISNULL(3))
		check_size(PG_GETARG_DATUM(3), "processing_options",
				   AT_PROCESSING_OPTIONS_MAX);
	PG_RETURN_BOOL(true);
}

/*
 * at_touch_updated_at() RETURNS trigger
 *		BEFORE UPDATE row trigger: sets updated_at to the transaction's
 *		timestamp.  Returns the modified tuple.
 */
Datum
at_touch_updated_at(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	tupdesc;
	int			attnum;
	Datum		value;
	bool		isnull = false;
	HeapTuple	newtup;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "at_touch_updated_at: not called by trigger manager");
	if (!TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		elog(ERROR, "at_touch_updated_at: must be fired before update for each row");

	tupdesc = RelationGetDescr(trigdata->tg_relation);
	attnum = SPI_fnumber(tupdesc, "updated_at");
	if (attnum <= 0)
		elog(ERROR, "at_touch_updated_at: relation \"%s\" has no column updated_at",
			 RelationGetRelationName(trigdata->tg_relation));

	value = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	newtup = heap_modify_tuple_by_cols(trigdata->tg_newtuple, tupdesc,
									   1, &attnum, &value, &isnull);
	return PointerGetDatum(newtup);
}
