/* ranges: the pure parts of scale-out (--shared): where to cut the key space into ranges,
 * given a sorted sample of keys, and how a worker names itself. No I/O; see lease.h for the
 * table, the claims and the heartbeat. */
#ifndef PGENRICH_RANGES_H
#define PGENRICH_RANGES_H

#include <stddef.h>
#include <stdint.h>

/* Choose the inner bounds that cut sorted (n keys in the key's order, e.g. pg_stats'
 * histogram_bounds or a sorted sample) into at most nranges ranges of about equal share:
 * the keys at the quantiles k/nranges, k = 1 .. nranges-1, with a key equal (same text) to
 * the bound before it left out, so that no range is empty by construction. Writes the
 * chosen keys (borrowed from sorted) into out, which has room for nranges-1 entries, and
 * returns how many: the ranges are then that many plus one (the first from the start, the
 * last open). n == 0 or nranges <= 1: 0, one range for everything. */
size_t ranges_bounds(const char *const *sorted, size_t n, int nranges, const char **out);

/* A worker's identity as owner of its leases: "HOST:PID:RANDOM" (RANDOM as 8 hex digits),
 * cut to fit outlen (always NUL-terminated). Host and pid tell a person where it runs; the
 * random part tells a restarted worker with a recycled pid from its predecessor. */
void ranges_owner_id(char *out, size_t outlen, const char *host, long pid, uint32_t random);

#endif
