/*
 * src/client_addr.c
 *		The client address that the throttles count by: the connection's,
 *		or, only when an administrator names a header in
 *		audiotricks.client_address_header (superuser-only, empty by
 *		default), the first hop of that header in PostgREST's
 *		request.headers.
 *
 * A connection over a Unix socket has no address: it counts as the one
 * address "local".  The header is read only when request.headers was set
 * for this transaction alone (SET LOCAL, set_config(..., true): how
 * PostgREST sets it), as identity.c reads the bearer token, so a value left
 * at session level on a pooled connection never speaks for the next client.
 * Its first hop (the text before the first comma, spaces trimmed) must be a
 * plain IPv4 or IPv6 address (no port, no brackets); anything else falls
 * back to the connection's address.  Without the setting, whatever a client
 * writes in the header is ignored: a spoofed x-forwarded-for cannot pick the
 * address it is counted under.
 */
#include "postgres.h"

#include <arpa/inet.h>

#include "common/jsonapi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/inet.h"

#include "client_addr.h"
#include "request_headers.h"

char	   *audiotricks_client_address_header = NULL;

/* header names are ASCII letters, digits and '-' (PostgREST lower-cases) */
static bool
check_header_name(char **newval, void **extra, GucSource source)
{
	for (const char *p = *newval; p && *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			  (*p >= '0' && *p <= '9') || *p == '-'))
		{
			GUC_check_errdetail("A header name holds only letters, digits and \"-\".");
			return false;
		}
	if (*newval && strlen(*newval) > 100)
	{
		GUC_check_errdetail("A header name is at most 100 characters.");
		return false;
	}
	return true;
}

/*
 * ClientAddrDefineGucs
 *		audiotricks.client_address_header; called from ThrottleDefineGucs.
 */
void
ClientAddrDefineGucs(void)
{
	DefineCustomStringVariable("audiotricks.client_address_header",
							   "Request header (in PostgREST's request.headers) whose first hop is the client address, e.g. x-forwarded-for.",
							   "Empty (the default): the connection's address. Set it only behind a proxy that sets the header itself.",
							   &audiotricks_client_address_header,
							   "",
							   PGC_SUSET, 0,
							   check_header_name, NULL, NULL);
}

/*
 * ClientAddrParse
 *		When s (len bytes) is a plain IPv4 or IPv6 address, writes its
 *		canonical text to buf and returns true.
 */
bool
ClientAddrParse(const char *s, size_t len, char buf[CLIENT_ADDR_LEN])
{
	char		tmp[INET6_ADDRSTRLEN + 1];
	unsigned char bin[sizeof(struct in6_addr)];

	if (len == 0 || len >= sizeof(tmp))
		return false;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	if (inet_pton(AF_INET, tmp, bin) == 1)
		return inet_ntop(AF_INET, bin, buf, CLIENT_ADDR_LEN) != NULL;
	if (inet_pton(AF_INET6, tmp, bin) == 1)
		return inet_ntop(AF_INET6, bin, buf, CLIENT_ADDR_LEN) != NULL;
	return false;
}

/* the connection's address, or "local" */
static void
connection_addr(char buf[CLIENT_ADDR_LEN])
{
	LOCAL_FCINFO(fcinfo, 0);
	Datum		addr;
	char	   *s;

	strlcpy(buf, "local", CLIENT_ADDR_LEN);
	InitFunctionCallInfoData(*fcinfo, NULL, 0, InvalidOid, NULL, NULL);
	addr = inet_client_addr(fcinfo);
	if (fcinfo->isnull)
		return;
	s = DatumGetCString(DirectFunctionCall1(inet_out, addr));
	/* inet_out gives the bare address for a host address (no /32, /128) */
	if (!ClientAddrParse(s, strlen(s), buf))
		strlcpy(buf, s, CLIENT_ADDR_LEN);
	pfree(s);
}

/* walking request.headers for one top-level member's string value */
typedef struct HeaderScan
{
	JsonLexContext *lex;
	const char *name;
	bool		in_member;		/* inside the wanted member */
	int			found;			/* times the member was seen */
	char	   *value;			/* its string value, or NULL */
} HeaderScan;

static void
header_field_start(void *state, char *fname, bool isnull)
{
	HeaderScan *hs = state;

	hs->in_member = hs->lex->lex_level == 1 && fname != NULL &&
		pg_strcasecmp(fname, hs->name) == 0;
	if (hs->in_member)
		hs->found++;
}

static void
header_field_end(void *state, char *fname, bool isnull)
{
	((HeaderScan *) state)->in_member = false;
}

static void
header_scalar(void *state, char *token, JsonTokenType tokentype)
{
	HeaderScan *hs = state;

	if (hs->in_member && hs->lex->lex_level == 1 &&
		tokentype == JSON_TOKEN_STRING && token != NULL)
		hs->value = token;
}

/* the first hop of the configured header, or false */
static bool
header_addr(const char *headers, char buf[CLIENT_ADDR_LEN])
{
	HeaderScan	hs;
	JsonSemAction sem;
	const char *p;
	const char *end;

	memset(&hs, 0, sizeof(hs));
	memset(&sem, 0, sizeof(sem));
	hs.name = audiotricks_client_address_header;
	hs.lex = makeJsonLexContextCstringLen(pstrdup(headers), strlen(headers),
										  GetDatabaseEncoding(), true);
	sem.semstate = &hs;
	sem.object_field_start = header_field_start;
	sem.object_field_end = header_field_end;
	sem.scalar = header_scalar;
	if (pg_parse_json(hs.lex, &sem) != JSON_SUCCESS ||
		hs.found != 1 || hs.value == NULL)
		return false;
	p = hs.value;
	end = strchr(p, ',');
	if (end == NULL)
		end = p + strlen(p);
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	return ClientAddrParse(p, end - p, buf);
}

/*
 * ClientAddr
 *		The client address (see the file header) as text in buf.
 */
void
ClientAddr(char buf[CLIENT_ADDR_LEN])
{
	const char *headers;

	if (audiotricks_client_address_header != NULL &&
		audiotricks_client_address_header[0] != '\0')
	{
		headers = GetConfigOption("request.headers", true, false);
		if (headers != NULL && headers[0] != '\0' &&
			RequestHeadersAreTransactionLocal() && header_addr(headers, buf))
			return;
	}
	connection_addr(buf);
}
