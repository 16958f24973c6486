/* log: the one place that writes diagnostics. A line is rendered whole into one buffer and
 * written with one write(2) (writev with the status line), so that lines do not interleave
 * with other output and a crash never leaves half a line buffered. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "utf8.h"

LogLevel log_level = LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

#define MSG_MAX    2048
#define LINE_MAX_  16384 /* a message's worst case: every byte as a 6-byte escape */
#define STATUS_MAX 512

static struct {
    LogFormat format;
    int fd;     /* the log file, or -1: stderr */
    char *path; /* the log file's path, for log_reopen */
    char status[STATUS_MAX];
    bool status_shown;
} L = {LOG_FORMAT_LOGFMT, -1, NULL, "", false};

/* ---------------------------------------------------------------- splitting */

static bool key_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool key_char(char c)
{
    return key_start(c) || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

/* Length of the key at s[0..n) when "key=" starts there, else 0. */
static size_t key_at(const char *s, size_t n)
{
    if (n == 0 || !key_start(s[0]))
        return 0;
    size_t i = 1;
    while (i < n && key_char(s[i]))
        i++;
    return i < n && s[i] == '=' ? i : 0;
}

/* Whether the '"' at msg[i] closes a quoted value: the end, or spaces then a key=. */
static bool closes(const char *msg, size_t len, size_t i)
{
    size_t j = i + 1;
    if (j == len)
        return true;
    if (msg[j] != ' ')
        return false;
    while (j < len && msg[j] == ' ')
        j++;
    return j == len || key_at(msg + j, len - j) > 0;
}

int log_split(const char *msg, size_t len, LogField *fields, int max)
{
    int n = 0;
    size_t i = 0;
    while (i < len && msg[i] == ' ')
        i++;
    while (i < len) {
        size_t klen = key_at(msg + i, len - i);
        if (klen == 0 || n >= max)
            return -1;
        LogField *f = &fields[n++];
        f->key = msg + i;
        f->key_len = klen;
        i += klen + 1;
        if (i < len && msg[i] == '"') {
            size_t j = i + 1;
            for (;;) {
                if (j >= len)
                    return -1; /* unterminated */
                if (msg[j] == '\\' && j + 1 < len) {
                    j += 2;
                    continue;
                }
                if (msg[j] == '"' && closes(msg, len, j))
                    break;
                j++;
            }
            f->val = msg + i + 1;
            f->val_len = j - i - 1;
            f->quoted = true;
            i = j + 1;
        } else {
            size_t j = i;
            while (j < len && msg[j] != ' ')
                j++;
            f->val = msg + i;
            f->val_len = j - i;
            f->quoted = false;
            i = j;
        }
        while (i < len && msg[i] == ' ')
            i++;
    }
    return n;
}

/* ---------------------------------------------------------------- rendering */

#define TAIL 4 /* room always kept for the closing quote, brace and newline */

typedef struct Out {
    char *p;
    size_t len, cap;
    bool full;
} Out;

/* Append s[0..n) if it fits with reserve bytes to spare; else mark the output full. */
static bool put(Out *o, const char *s, size_t n, size_t reserve)
{
    if (o->full || o->len + n + reserve > o->cap) {
        o->full = true;
        return false;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    return true;
}

/* The closing bytes, for which TAIL was kept. */
static void put_tail(Out *o, const char *s)
{
    size_t n = strlen(s);
    if (o->len + n <= o->cap) {
        memcpy(o->p + o->len, s, n);
        o->len += n;
    }
}

static bool json_number(const char *s, size_t n)
{
    size_t i = 0;
    if (n == 0 || n > 24)
        return false;
    if (s[i] == '-')
        i++;
    if (i < n && s[i] == '0')
        i++;
    else if (i < n && s[i] >= '1' && s[i] <= '9')
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    else
        return false;
    if (i < n && s[i] == '.') {
        size_t d = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return false;
    }
    return i == n;
}

static bool bare_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c >= 0x7f || c == '"' || c == '=' || c == '\\')
            return false;
    }
    return true;
}

/* Write a value's characters, escaped for the format, without quotes. escapes: the value
 * holds logfmt escapes (\" and \\) to resolve first. Stops when the output is full. */
static void put_escaped(Out *o, LogFormat fmt, const char *s, size_t n, bool escapes)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;
    while (i < n && !o->full) {
        unsigned char c = (unsigned char)s[i];
        size_t step = 1;
        if (escapes && c == '\\' && i + 1 < n && (s[i + 1] == '"' || s[i + 1] == '\\')) {
            c = (unsigned char)s[i + 1];
            step = 2;
        }
        char e[8];
        if (c == '"' || c == '\\') {
            e[0] = '\\';
            e[1] = (char)c;
            put(o, e, 2, TAIL);
        } else if (c == '\n' || c == '\r' || c == '\t') {
            e[0] = '\\';
            e[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
            put(o, e, 2, TAIL);
        } else if ((c < 0x20 && c != 0) || c == 0x7f) {
            /* JSON \u00NN, logfmt \xNN */
            bool json = fmt == LOG_FORMAT_JSON;
            size_t k = json ? 4 : 2;
            memcpy(e, json ? "\\u00" : "\\x", k);
            e[k] = hex[c >> 4];
            e[k + 1] = hex[c & 15];
            put(o, e, k + 2, TAIL);
        } else if (c < 0x80 && c != 0) {
            e[0] = (char)c;
            put(o, e, 1, TAIL);
        } else {
            size_t cl = utf8_char_len(s + i, n - i);
            if (cl == 0) {
                put(o, UTF8_REPLACEMENT, UTF8_REPLACEMENT_LEN, TAIL);
            } else {
                put(o, s + i, cl, TAIL);
                step = cl;
            }
        }
        i += step;
    }
}

/* One field: key (safe characters only), value as described at log_render. */
static void put_field(Out *o, LogFormat fmt, bool first, const char *key, size_t klen,
                      const char *val, size_t vlen, bool quoted, bool escapes)
{
    if (o->full)
        return;
    if (fmt == LOG_FORMAT_JSON) {
        bool num = !quoted && json_number(val, vlen);
        /* key and the shortest value, or the whole number, must fit before it is begun */
        size_t need = klen + 5 + (num ? vlen : 2);
        if (o->len + need + TAIL > o->cap) {
            o->full = true;
            return;
        }
        put(o, first ? "\"" : ",\"", first ? 1 : 2, 0);
        put(o, key, klen, 0);
        if (num) {
            put(o, "\":", 2, 0);
            put(o, val, vlen, 0);
            return;
        }
        put(o, "\":\"", 3, 0);
        put_escaped(o, fmt, val, vlen, escapes);
        put_tail(o, "\"");
        return;
    }
    bool bare = !quoted && bare_ok(val, vlen);
    if (o->len + klen + 4 + TAIL > o->cap) {
        o->full = true;
        return;
    }
    put(o, " ", 1, 0);
    put(o, key, klen, 0);
    put(o, bare ? "=" : "=\"", bare ? 1 : 2, 0);
    if (bare) {
        size_t room = o->cap - o->len - TAIL;
        put(o, val, vlen < room ? vlen : room, 0);
        if (vlen > room)
            o->full = true;
        return;
    }
    put_escaped(o, fmt, val, vlen, escapes);
    put_tail(o, "\"");
}

size_t log_render(char *out, size_t cap, LogFormat format, const char *ts, const char *level,
                  const char *msg, size_t len)
{
    Out o = {out, 0, cap, false};
    LogField fields[LOG_FIELDS_MAX];
    int n = log_split(msg, len, fields, LOG_FIELDS_MAX);
    bool json = format == LOG_FORMAT_JSON;
    size_t tl = strnlen(ts, 40), ll = strnlen(level, 16);
    if (json) {
        put(&o, "{", 1, 0);
        put_field(&o, format, true, "ts", 2, ts, tl, true, false);
        put_field(&o, format, false, "level", 5, level, ll, true, false);
    } else {
        put(&o, "ts=", 3, 0);
        put(&o, ts, tl, TAIL);
        put(&o, " level=", 7, TAIL);
        put(&o, level, ll, TAIL);
    }
    if (n < 0)
        put_field(&o, format, false, "msg", 3, msg, len, true, false);
    for (int i = 0; i < n; i++)
        put_field(&o, format, false, fields[i].key, fields[i].key_len, fields[i].val,
                  fields[i].val_len, fields[i].quoted, fields[i].quoted);
    o.full = false;
    put_tail(&o, json ? "}\n" : "\n");
    return o.len;
}

/* ---------------------------------------------------------------- set-up */

bool log_level_parse(const char *name, LogLevel *out)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0) {
            *out = (LogLevel)i;
            return true;
        }
    if (strcmp(name, "warning") == 0) {
        *out = LOG_WARN;
        return true;
    }
    return false;
}

bool log_format_parse(const char *name, LogFormat *out)
{
    if (strcmp(name, "logfmt") == 0)
        *out = LOG_FORMAT_LOGFMT;
    else if (strcmp(name, "json") == 0)
        *out = LOG_FORMAT_JSON;
    else
        return false;
    return true;
}

static int open_log(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

bool log_file_check(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) {
            errno = EISDIR;
            return false;
        }
        return access(path, W_OK) == 0;
    }
    if (errno != ENOENT)
        return false;
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    if (stat(dir, &sb) != 0)
        return false; /* errno: the directory is missing (ENOENT) or cannot be reached */
    if (!S_ISDIR(sb.st_mode)) {
        errno = ENOTDIR;
        return false;
    }
    return access(dir, W_OK | X_OK) == 0;
}

bool log_setup(LogFormat format, const char *path, char *err, size_t errlen)
{
    L.format = format;
    if (path == NULL) {
        log_close();
        return true;
    }
    char *copy = strdup(path);
    int fd = copy ? open_log(path) : -1;
    if (fd < 0) {
        snprintf(err, errlen, "cannot open the log file %s: %s", path,
                 copy ? strerror(errno) : "out of memory");
        free(copy);
        return false;
    }
    log_close();
    L.fd = fd;
    L.path = copy;
    return true;
}

bool log_reopen(void)
{
    if (L.path == NULL)
        return true;
    int fd = open_log(L.path);
    if (fd < 0) {
        int e = errno;
        log_warn("event=log_reopen_failed file=\"%s\" error=\"%s\" detail=\"still writing to the "
                 "old file\"",
                 L.path, strerror(e));
        return false;
    }
    close(L.fd);
    L.fd = fd;
    log_info("event=log_reopened file=\"%s\"", L.path);
    return true;
}

void log_close(void)
{
    if (L.fd >= 0)
        close(L.fd);
    L.fd = -1;
    free(L.path);
    L.path = NULL;
}

bool log_status_ok(void)
{
    return isatty(STDERR_FILENO) && (L.fd >= 0 || L.format == LOG_FORMAT_LOGFMT);
}

bool log_has_file(void)
{
    return L.fd >= 0;
}

int log_status_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 80;
}

/* ---------------------------------------------------------------- writing */

static void write_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to tell */
        }
        size_t left = (size_t)w;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
}

#define CLEAR_LINE "\r\033[K"

void log_status(const char *text)
{
    struct iovec iov[3];
    int n = 0;
    if (text == NULL) {
        if (!L.status_shown)
            return;
        L.status_shown = false;
        L.status[0] = '\0';
        iov[n++] = (struct iovec){.iov_base = (void *)CLEAR_LINE, .iov_len = 4};
    } else {
        size_t len = strnlen(text, STATUS_MAX - 1);
        memcpy(L.status, text, len);
        L.status[len] = '\0';
        L.status_shown = true;
        /* text first, then clear what a longer previous line left: no blank flash */
        iov[n++] = (struct iovec){.iov_base = (void *)"\r", .iov_len = 1};
        iov[n++] = (struct iovec){.iov_base = L.status, .iov_len = len};
        iov[n++] = (struct iovec){.iov_base = (void *)"\033[K", .iov_len = 3};
    }
    write_all(STDERR_FILENO, iov, n);
}

static void timestamp(char *ts, size_t cap)
{
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    if (gmtime_r(&now.tv_sec, &tm) == NULL) {
        snprintf(ts, cap, "1970-01-01T00:00:00.000Z");
        return;
    }
    size_t n = strftime(ts, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, cap - n, ".%03dZ", (int)(now.tv_nsec / 1000000));
}

void log_write(LogLevel level, const char *fmt, ...)
{
    char msg[MSG_MAX];
    char line[LINE_MAX_];
    char ts[40];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    size_t len = (size_t)m < sizeof msg ? (size_t)m : sizeof msg - 1;
    timestamp(ts, sizeof ts);
    size_t n = log_render(line, sizeof line, L.format, ts, level_names[level], msg, len);

    struct iovec iov[4];
    int k = 0;
    int fd = L.fd >= 0 ? L.fd : STDERR_FILENO;
    bool over_status = fd == STDERR_FILENO && L.status_shown;
    if (over_status)
        iov[k++] = (struct iovec){.iov_base = (void *)CLEAR_LINE, .iov_len = 4};
    iov[k++] = (struct iovec){.iov_base = line, .iov_len = n};
    if (over_status) {
        iov[k++] = (struct iovec){.iov_base = L.status, .iov_len = strlen(L.status)};
        iov[k++] = (struct iovec){.iov_base = (void *)"\033[K", .iov_len = 3};
    }
    write_all(fd, iov, k);
}
