/*
 * src/request_headers.h
 *		Trusting PostgREST's request.headers (src/request_headers.c).
 */
#ifndef AT_REQUEST_HEADERS_H
#define AT_REQUEST_HEADERS_H

extern bool RequestHeadersAreTransactionLocal(void);

#endif							/* AT_REQUEST_HEADERS_H */
