/* Small shared macros: checked results and a few helpers every module may use. */
#ifndef PGENRICH_COMPAT_H
#define PGENRICH_COMPAT_H

#define WUR                    __attribute__((warn_unused_result))
#define PRINTF_LIKE(fmt, args) __attribute__((format(printf, fmt, args)))
#define ARRAY_LEN(a)           (sizeof(a) / sizeof((a)[0]))

#endif
