/* ranges: quantile cuts over a sorted sample, and the owner id of a worker. */
#include "ranges.h"

#include <stdio.h>
#include <string.h>

size_t ranges_bounds(const char *const *sorted, size_t n, int nranges, const char **out)
{
    size_t m = 0;
    if (n == 0 || nranges <= 1)
        return 0;
    for (int k = 1; k < nranges; k++) {
        /* The k-th quantile of n keys; 64-bit so that n * k cannot overflow. */
        size_t i =
            (size_t)(((unsigned long long)n * (unsigned long long)k) / (unsigned long long)nranges);
        if (i >= n)
            i = n - 1;
        const char *b = sorted[i];
        if (m > 0 && strcmp(out[m - 1], b) == 0)
            continue;
        out[m++] = b;
    }
    return m;
}

void ranges_owner_id(char *out, size_t outlen, const char *host, long pid, uint32_t random)
{
    if (outlen == 0)
        return;
    snprintf(out, outlen, "%.100s:%ld:%08x", host && host[0] ? host : "localhost", pid,
             (unsigned)random);
}
