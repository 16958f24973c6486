/* batchwire: the wire format of API.md section 2, batch lookups. Builds the POST body for
 * a set of IDs and reads a batch answer back into one item per asked ID, matched by `id`
 * whatever the order, each mapped with the provider's mapping as a single answer would be.
 * Pure: no I/O, no clock. */
#ifndef PGENRICH_BATCHWIRE_H
#define PGENRICH_BATCHWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include "buf.h"
#include "compat.h"
#include "provider.h"

#define BATCHWIRE_JOB_MAX 128 /* bytes of a job id, without the NUL */
#define BATCHWIRE_ERR_MAX 128 /* bytes of an item's or an answer's reason, with the NUL */

/* One asked ID: bytes borrowed from the caller for the call's duration. */
typedef struct BatchId {
    const char *id;
    size_t len;
} BatchId;

/* Append {"ids":["ID",...],"select":"id,label,location"}. Every ID is sent as a JSON
 * string, as the contract's example has it, numeric keys included (the answer may give
 * them back as numbers): '"', '\\' and control characters are escaped, other bytes pass as
 * they are (IDs come from PostgreSQL text, valid UTF-8). All or nothing: false on the
 * buffer's cap, out as it was. */
bool batchwire_body(Buf *out, const BatchId *ids, size_t n) WUR;

typedef enum BatchItemKind {
    BI_MISSING, /* no result for this ID in the answer: transient for it */
    BI_FOUND,   /* row holds the mapped values */
    BI_MISS,    /* the entity has no location */
    BI_BAD,     /* the element is not a valid entity: err says why */
    BI_ERROR    /* {"id":..,"error":{"status":N}}: status holds N (100-599) */
} BatchItemKind;

typedef struct BatchItem {
    BatchItemKind kind;
    long status;                 /* BI_ERROR */
    ProviderRow row;             /* BI_FOUND; free with batchwire_items_free */
    char err[BATCHWIRE_ERR_MAX]; /* BI_BAD: a short one-line reason; else "" */
} BatchItem;

typedef struct BatchTally {
    size_t found, misses, bad, errors, missing;
    size_t unasked;      /* results whose id was not asked: ignored */
    size_t duplicates;   /* results for an ID already answered: the last one wins */
    size_t unidentified; /* elements without a usable id (not an object, or id neither a
                            string nor an integer): ignored */
} BatchTally;

/* Read a 200 batch answer: body (len bytes, not NUL-terminated) must be one JSON object
 * (strict JSON, at most max_depth + 2 levels deep: each result gets max_depth, as a single
 * answer does) with a "results" array. items must have n entries, parallel to ids; each is
 * overwritten (never freed) on entry and filled: an element matches the asked ID whose
 * bytes equal its id when the id is a JSON string, or whose text is the decimal form of
 * its id when that is a JSON integer (or an integral number below 2^53), as single lookups
 * take an id "as a JSON string or number". An element with an "error" object is BI_ERROR
 * when its status is an integer 100-599, else BI_BAD; any other element is mapped with m
 * under provider_map's rules (strict UTF-8, types, ranges). Several asked IDs with the same
 * bytes all take the element. Returns false (every item BI_MISSING, err set to a short
 * reason) when the body is not such an object; true otherwise, with t counting what was
 * seen. Release the items with batchwire_items_free whatever the result. */
bool batchwire_parse(const ProviderMap *m, const char *body, size_t len, int max_depth,
                     const BatchId *ids, size_t n, BatchItem *items, BatchTally *t, char *err,
                     size_t errlen) WUR;

/* Read a 202 answer {"job":"ID","status":...}: the job id (a JSON string of 1 to
 * BATCHWIRE_JOB_MAX bytes, printable ASCII) is copied NUL-terminated into job (cap bytes,
 * at least BATCHWIRE_JOB_MAX + 1). False when there is none. */
bool batchwire_job(const char *body, size_t len, char *job, size_t cap) WUR;

/* Append the poll URL: tmpl with every "{job}" replaced by the job id percent-encoded
 * (provider_encode_id). All or nothing, false on the cap. */
bool batchwire_poll_url(Buf *out, const char *tmpl, const char *job) WUR;

/* Release the rows of n items; harmless on items already released or never filled. */
void batchwire_items_free(BatchItem *items, size_t n);

#endif
