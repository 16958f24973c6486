/* log: leveled, one line per event, on stderr or in a log file. A message is logfmt-style
 * text ("event=NAME key=value key=\"quoted\""); each line gets a timestamp and the level
 * and is written as logfmt (the default) or as one JSON object. A message that is not
 * logfmt (free text such as a database error) becomes the field msg. The level is checked
 * before anything is formatted. Secrets (the API token) must never be passed here.
 *
 * On a terminal, one live status line (the progress) may stand below the log lines: a log
 * line written to the same terminal erases it first and draws it again after itself. */
#ifndef PGENRICH_LOG_H
#define PGENRICH_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include "compat.h"

typedef enum LogLevel { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG } LogLevel;
typedef enum LogFormat { LOG_FORMAT_LOGFMT = 0, LOG_FORMAT_JSON } LogFormat;

extern LogLevel log_level;

/* "error", "warn" (or "warning"), "info", "debug" into *out. False for anything else. */
bool log_level_parse(const char *name, LogLevel *out);

/* "logfmt" or "json" into *out. False for anything else. */
bool log_format_parse(const char *name, LogFormat *out);

/* Choose the format and where lines go: path NULL means stderr, else the file is opened
 * for appending (created 0644 if missing; O_APPEND|O_CLOEXEC) and kept open. The path is
 * copied. Returns false with a one-line reason in err when the file cannot be opened (the
 * previous destination stays). May be called again; a previous file is closed. */
bool log_setup(LogFormat format, const char *path, char *err, size_t errlen);

/* Whether log_setup could open path, without creating or touching it (check-config): the
 * file exists and may be written, or it is missing and its directory takes new files.
 * False with errno set. */
bool log_file_check(const char *path);

/* Open the log file again at its path (after a rotation moved it away; for SIGHUP) and
 * switch to it. Without a log file, does nothing and returns true. On failure keeps the
 * old descriptor, logs a warning there and returns false. */
bool log_reopen(void);

/* Close the log file, if any; lines go to stderr again. */
void log_close(void);

/* Whether a live status line may be shown: stderr is a terminal, and log lines written
 * there (when there is no log file) are logfmt, not JSON for a shipper. */
bool log_status_ok(void);

/* Whether lines go to a log file (log_setup with a path). */
bool log_has_file(void);

/* Show text (one line, no newline; shown as given, cut at 511 bytes) as the live status
 * line on stderr, replacing the previous one; NULL erases it for good, so that whatever is
 * printed next starts on a clean line. Only call when stderr is a terminal. */
void log_status(const char *text);

/* The terminal's width in columns (of stderr), 80 when it cannot be told. */
int log_status_width(void);

/* Format one message and write it as one line. Use the macros below. */
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

/* ---------------------------------------------------------------- pure parts (tested) */

/* One key=value field of a message, pointing into it. A quoted value is given without its
 * quotes and with its escapes still in it (\" and \\; log_render resolves them). */
typedef struct LogField {
    const char *key;
    size_t key_len;
    const char *val;
    size_t val_len;
    bool quoted;
} LogField;

#define LOG_FIELDS_MAX 64

/* Split msg[0..len) into at most max fields. A message is logfmt when it is a sequence,
 * separated by spaces, of key=value with key of [A-Za-z0-9_.-] (starting with a letter or
 * '_') and value either bare (up to the next space, maybe empty) or "quoted". A quoted
 * value ends at a '"' that is not escaped by a backslash and is followed by the end, or by
 * spaces and then the next key=: so outside text pasted between quotes unescaped
 * (error="relation "x" does not exist") still reads as one value. Returns the number of
 * fields, or -1 when msg is not logfmt (or has more than max fields). */
int log_split(const char *msg, size_t len, LogField *fields, int max);

/* Render one line (ending in '\n') into out (cap bytes, >= 128) and return its length
 * (no NUL is written): ts (ISO 8601 UTC with milliseconds, given), level, then the fields
 * of msg, or msg="msg" when it is not logfmt. logfmt: a value is written bare when it is
 * non-empty and holds only printable ASCII other than space, '"', '=' and '\\', else
 * quoted with \" \\ \n \r \t and \xNN for other control bytes. json: {"ts":..,"level":..,
 * "key":value,...}: a bare value that is a JSON number is written as a number, every other
 * value as a string (control characters as \uNNNN). Invalid UTF-8 becomes U+FFFD in both
 * formats. A line that does not fit is cut, whole fields first, and stays well-formed. */
size_t log_render(char *out, size_t cap, LogFormat format, const char *ts, const char *level,
                  const char *msg, size_t len);

#endif
