/*
 * src/logscrub.c
 *		An emit_log_hook that keeps the value of audiotricks.jwt_secret out of
 *		the server log.
 *
 * PostgreSQL itself prints setting values in a few messages: on reload the
 * postmaster logs 'parameter "x" changed to "value"' (backends do so at
 * DEBUG2), a refused value gives 'invalid value for parameter "x": "value"',
 * a configuration-file syntax error quotes the token it stopped at (which can
 * be a piece of a value), and a parallel worker restoring the leader's
 * settings adds the context 'while setting parameter "x" to "value"'.
 * Statement text can carry a value too (ALTER SYSTEM SET, set_config) when
 * log_statement or log_min_error_statement print it.  The hook, installed by
 * _PG_init (so in the postmaster and every backend when preloaded), rewrites
 * those messages before anything else sees them:
 *
 *	- the GUC messages above, when they are about a secret setting, name the
 *	  setting but not the value;
 *	- a configuration-file syntax error never shows its token (it cannot be
 *	  told which setting the token belonged to); file and line remain, and
 *	  pg_file_settings lists the error too;
 *	- a statement, its bind parameters and its context lines are not logged
 *	  when the statement names a secret setting.
 *
 * A secret setting is one whose name contains "jwt_secret", in any case
 * (audiotricks.jwt_secret; any other extension's JWT secret is kept out as
 * well).  audiotricks.key_file is a path, not a secret, and is left alone;
 * the keys live in the file.
 *
 * Cost for other messages: the message's format (edata->message_id) is
 * compared by address with the formats already recognised, then by its first
 * byte with the few known ones; only a candidate is compared as a string.  A
 * message with a context line, an internal query or a statement that will be
 * printed has that text searched once for "jwt_secret", no more work than
 * writing it.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "tcop/tcopprot.h"
#include "utils/elog.h"
#include "utils/guc.h"

#include "audiotricks.h"
#include "logscrub.h"

#define SECRET_NEEDLE	"jwt_secret"

static emit_log_hook_type prev_emit_log_hook = NULL;

typedef enum MsgKind
{
	MSG_GUC_CHANGED,			/* parameter "x" changed to "v" */
	MSG_GUC_INVALID,			/* invalid value for parameter "x": "v" */
	MSG_SYNTAX_TOKEN,			/* syntax error in file ... near token "t" */
	MSG_STATEMENT				/* a message that embeds a statement */
} MsgKind;

typedef struct KnownMessage
{
	const char *fmt;			/* PostgreSQL 15's untranslated format */
	MsgKind		kind;
	const char *id;				/* its address in the server, once seen */
} KnownMessage;

/* guc-file.l, guc.c and postgres.c (log_statement, log_min_duration_*) */
static KnownMessage known_messages[] = {
	{"parameter \"%s\" changed to \"%s\"", MSG_GUC_CHANGED},
	{"invalid value for parameter \"%s\": \"%s\"", MSG_GUC_INVALID},
	{"syntax error in file \"%s\" line %u, near token \"%s\"", MSG_SYNTAX_TOKEN},
	{"statement: %s", MSG_STATEMENT},
	{"duration: %s ms  statement: %s", MSG_STATEMENT},
	{"parse %s: %s", MSG_STATEMENT},
	{"duration: %s ms  parse %s: %s", MSG_STATEMENT},
	{"bind %s%s%s: %s", MSG_STATEMENT},
	{"duration: %s ms  bind %s%s%s: %s", MSG_STATEMENT},
	{"%s %s%s%s: %s", MSG_STATEMENT},
	{"duration: %s ms  %s %s%s%s: %s", MSG_STATEMENT},
};

#define N_KNOWN (sizeof(known_messages) / sizeof(known_messages[0]))

/* case-insensitive: does s contain SECRET_NEEDLE? */
static bool
names_secret(const char *s)
{
	const size_t n = sizeof(SECRET_NEEDLE) - 1;

	if (s == NULL)
		return false;
	for (; *s; s++)
		if ((*s == 'j' || *s == 'J') && pg_strncasecmp(s, SECRET_NEEDLE, n) == 0)
			return true;
	return false;
}

static const KnownMessage *
known_message(const char *id)
{
	int			i;

	if (id == NULL)
		return NULL;
	for (i = 0; i < N_KNOWN; i++)
		if (known_messages[i].id == id)
			return &known_messages[i];
	for (i = 0; i < N_KNOWN; i++)
	{
		if (known_messages[i].fmt[0] == id[0] &&
			strcmp(known_messages[i].fmt, id) == 0)
		{
			known_messages[i].id = id;
			return &known_messages[i];
		}
	}
	return NULL;
}

/*
 * The setting a GUC message is about, when the message is in English and
 * starts with prefix (setting names hold no quote); NULL otherwise.
 */
static char *
guc_name(const char *message, const char *prefix)
{
	size_t		plen = strlen(prefix);
	const char *end;

	if (message == NULL || strncmp(message, prefix, plen) != 0)
		return NULL;
	end = strchr(message + plen, '"');
	if (end == NULL)
		return NULL;
	return pnstrdup(message + plen, end - (message + plen));
}

/* elog.c's is_log_level_output: is a message of elevel logged at min? */
static bool
level_output(int elevel, int min)
{
	if (elevel == LOG || elevel == LOG_SERVER_ONLY)
		return min == LOG || min <= ERROR;
	if (elevel == WARNING_CLIENT_ONLY)
		return false;
	if (min == LOG)
		return elevel >= FATAL;
	return elevel >= min;
}

/* rewrites a GUC message about a secret setting; true if it did */
static bool
scrub_guc_message(ErrorData *edata, MsgKind kind)
{
	static const char *const prefixes[] = {
		[MSG_GUC_CHANGED] = "parameter \"",
		[MSG_GUC_INVALID] = "invalid value for parameter \"",
	};
	char	   *name = guc_name(edata->message, prefixes[kind]);

	if (name != NULL ? !names_secret(name) : !names_secret(edata->message))
		return false;
	if (name == NULL)
		name = pstrdup("audiotricks.jwt_secret");
	if (kind == MSG_GUC_CHANGED)
		edata->message = psprintf("parameter \"%s\" changed (the value is not shown: it is a secret)",
								  name);
	else
		edata->message = psprintf("invalid value for parameter \"%s\" (the value is not shown: it is a secret)",
								  name);
	return true;
}

/* drops the token from a configuration-file syntax error */
static void
scrub_syntax_token(ErrorData *edata)
{
	static const char prefix[] = "syntax error in file \"";
	const char *cut;

	/*
	 * The first ", near token" after the prefix: a file name containing it
	 * only makes the cut earlier, never shows any of the token.
	 */
	if (edata->message != NULL &&
		strncmp(edata->message, prefix, sizeof(prefix) - 1) == 0 &&
		(cut = strstr(edata->message + sizeof(prefix) - 1, ", near token \"")) != NULL)
		edata->message = psprintf("%.*s, near a token that is not shown (the line may hold a secret)",
								  (int) (cut - edata->message), edata->message);
	else
		edata->message = pstrdup("syntax error in a configuration file (the message is not shown: the line may hold a secret)");
}

static void
scrub_hook(ErrorData *edata)
{
	const KnownMessage *known = known_message(edata->message_id);
	bool		scrubbed = false;

	if (known != NULL)
	{
		switch (known->kind)
		{
			case MSG_GUC_CHANGED:
			case MSG_GUC_INVALID:
				scrubbed = scrub_guc_message(edata, known->kind);
				break;
			case MSG_SYNTAX_TOKEN:
				scrub_syntax_token(edata);
				break;
			case MSG_STATEMENT:
				if (names_secret(edata->message))
				{
					edata->message = pstrdup("statement not shown: it names a secret setting");
					scrubbed = true;
				}
				break;
		}
	}

	/* the statement line, printed after the message */
	if (!scrubbed && !edata->hide_stmt && debug_query_string != NULL &&
		level_output(edata->elevel, log_min_error_statement) &&
		names_secret(debug_query_string))
		scrubbed = true;
	if (!scrubbed && (names_secret(edata->internalquery) ||
					  names_secret(edata->context)))
		scrubbed = true;

	if (scrubbed)
	{
		/* whatever else the entry carries may hold the value */
		edata->hide_stmt = true;
		edata->internalquery = NULL;
		edata->internalpos = 0;
		if (names_secret(edata->context) || known != NULL)
			edata->context = NULL;
		if (known != NULL && known->kind == MSG_STATEMENT)
		{
			/* "parameters: ..." of a logged bind/execute */
			edata->detail = NULL;
			edata->detail_log = NULL;
		}
	}

	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/*
 * LogScrubInit
 *		Installs the hook, chained to any earlier one; called by _PG_init
 *		before any setting is defined, so the values a preloaded library
 *		applies at start-up are covered too.  Raises nothing.
 */
void
LogScrubInit(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = scrub_hook;
}
