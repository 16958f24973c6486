/* Small shared macros: checked results and a few helpers every module may use. */
#ifndef PGENRICH_COMPAT_H
#define PGENRICH_COMPAT_H

#define WUR                    __attribute__((warn_unused_result))
#define PRINTF_LIKE(fmt, args) __attribute__((format(printf, fmt, args)))
#define ARRAY_LEN(a)           (sizeof(a) / sizeof((a)[0]))

/* Hot-path objects (lookups, socket watchers) are kept on free lists for reuse, except
 * under AddressSanitizer: there every one is freed, so that a use after "free" still
 * shows up as one. */
#if defined(__SANITIZE_ADDRESS__)
#define REUSE_OBJECTS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REUSE_OBJECTS 0
#endif
#endif
#ifndef REUSE_OBJECTS
#define REUSE_OBJECTS 1
#endif

#endif
