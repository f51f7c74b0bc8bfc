/*
 * test/bench/jwt_cost.c — what a token-cache miss must compute, in a C loop:
 * JwtVerifyKey (base64url, HMAC-SHA-256 in constant time, the claims) and
 * the SHA-256 hex of the token that finds its session row.  test/bench/run
 * builds it against src/jwt.c and prints nanoseconds per call:
 *
 *   JWT_COST_SECRET=... jwt_cost TOKEN NOW   ->  "verify_ns hash_ns"
 *
 * (the secret in the environment, not on the command line where ps shows
 * it; NOW: a Unix time inside the token's lifetime.)  Exits 1 if the token
 * does not verify, so a wrong secret cannot pass for a fast check.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jwt.h"

static double
seconds(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

int
main(int argc, char **argv)
{
	const char *token;
	size_t		len;
	JwtKey		key;
	JwtClaims	claims;
	int64_t		now;
	uint8_t		digest[JWT_SHA256_BYTES];
	char		hex[2 * JWT_SHA256_BYTES + 1];
	const int	n = 200000;
	double		t0,
				verify,
				hash;
	volatile int sink = 0;

	const char *secret = getenv("JWT_COST_SECRET");

	if (argc != 3 || secret == NULL)
	{
		fprintf(stderr, "usage: JWT_COST_SECRET=... jwt_cost TOKEN NOW\n");
		return 2;
	}
	token = argv[1];
	len = strlen(token);
	now = strtoll(argv[2], NULL, 10);
	JwtKeyInit(&key, (const uint8_t *) secret, strlen(secret));
	if (!JwtVerifyKey(&key, token, len, now, &claims))
	{
		fprintf(stderr, "jwt_cost: the token does not verify with this secret and time\n");
		return 1;
	}
	t0 = seconds();
	for (int i = 0; i < n; i++)
		sink += JwtVerifyKey(&key, token, len, now, &claims);
	verify = (seconds() - t0) / n;
	t0 = seconds();
	for (int i = 0; i < n; i++)
	{
		JwtSha256(token, len, digest);
		sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
		sink += hex[0];
	}
	hash = (seconds() - t0) / n;
	printf("%.0f %.0f\n", verify * 1e9, hash * 1e9);
	return sink == 0;			/* never true: keeps the loops */
}
