/* log: leveled, one line per event with key=value fields, on stderr. The level is checked
 * before anything is formatted. Secrets (the API token) must never be passed here. */
#ifndef PGENRICH_LOG_H
#define PGENRICH_LOG_H

#include "compat.h"

typedef enum LogLevel { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG } LogLevel;

extern LogLevel log_level;

/* Write one line "pgenrich: LEVEL: message" to stderr. Use the macros below. */
void log_write(LogLevel level, const char *fmt, ...) PRINTF_LIKE(2, 3);

#define LOG_AT(lvl, ...)                                                                           \
    do {                                                                                           \
        if ((lvl) <= log_level)                                                                    \
            log_write((lvl), __VA_ARGS__);                                                         \
    } while (0)
#define log_error(...) LOG_AT(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  LOG_AT(LOG_WARN, __VA_ARGS__)
#define log_info(...)  LOG_AT(LOG_INFO, __VA_ARGS__)
#define log_debug(...) LOG_AT(LOG_DEBUG, __VA_ARGS__)

#endif
