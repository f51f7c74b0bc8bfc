/*
 * src/client_addr.h
 *		The client address that throttles count by (client_addr.c).
 */
#ifndef AT_CLIENT_ADDR_H
#define AT_CLIENT_ADDR_H

#include <stddef.h>

/* "local" or an IPv4/IPv6 address in its canonical text form, and a NUL */
#define CLIENT_ADDR_LEN		64

extern char *audiotricks_client_address_header;

extern void ClientAddrDefineGucs(void);
extern void ClientAddr(char buf[CLIENT_ADDR_LEN]);
extern bool ClientAddrParse(const char *s, size_t len, char buf[CLIENT_ADDR_LEN]);

#endif							/* AT_CLIENT_ADDR_H */
