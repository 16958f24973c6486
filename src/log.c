/* log: the one place that writes diagnostics. Lines are assembled first and written with
 * a single fputs so that they do not interleave with other output. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

LogLevel log_level = LOG_INFO;

static const char *const level_names[] = {"error", "warning", "info", "debug"};

void log_write(LogLevel level, const char *fmt, ...)
{
    char line[2048];
    int n = snprintf(line, sizeof line, "pgenrich: %s: ", level_names[level]);
    if (n < 0 || (size_t)n >= sizeof line)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len] = '\n';
    line[len + 1] = '\0';
    fputs(line, stderr);
}
