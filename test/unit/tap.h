/*
 * test/unit/tap.h
 *		The few lines of TAP the unit tests print: ok(cond, what) numbers each
 *		check; tap_done() prints the plan and returns the exit status.
 */
#ifndef AT_TAP_H
#define AT_TAP_H

#include <stdio.h>

static int	tap_failures = 0;
static int	tap_count = 0;

static void
ok(int cond, const char *what)
{
	tap_count++;
	printf("%sok %d - %s\n", cond ? "" : "not ", tap_count, what);
	if (!cond)
		tap_failures++;
}

static int
tap_done(void)
{
	printf("1..%d\n", tap_count);
	return tap_failures > 0;
}

#endif							/* AT_TAP_H */
