/* shape: whether existing tables can take the sink's statements (the upserts into the
 * target, the failure ledger and the checkpoints), judged from what the catalog says about
 * them, so that a table made by hand is refused at start-up instead of at the first flush.
 * Pure: the caller reads the catalog (db_check_shape) and quotes identifiers. */
#ifndef PGENRICH_SHAPE_H
#define PGENRICH_SHAPE_H

#include <stdbool.h>
#include <stddef.h>

typedef enum ShapeKind { SHAPE_TARGET, SHAPE_FAILURES, SHAPE_CHECKPOINTS, SHAPE_NKINDS } ShapeKind;

/* One column as the catalog describes it. Strings are borrowed. */
typedef struct ShapeColumn {
    const char *name;     /* attname */
    const char *type;     /* format_type, for messages: "character varying(20)" */
    char category;        /* pg_type.typcategory of the base type (of a domain) */
    bool is_integer;      /* the base type is smallint, integer or bigint */
    bool not_null;        /* attnotnull */
    bool has_default;     /* a DEFAULT, an identity or a generation expression */
    bool generated;       /* GENERATED ALWAYS AS (...) STORED */
    bool identity_always; /* GENERATED ALWAYS AS IDENTITY */
} ShapeColumn;

/* One table. relkind is pg_class.relkind, '\0' when the table does not exist. The key
 * is the conflict target of the table's upsert: (id), (job, id) or (job). */
typedef struct ShapeTable {
    const char *qname;          /* the table's name, quoted as an identifier */
    char relkind;               /* 'r' table, 'p' partitioned table, 'v' view, ... */
    bool has_pk;                /* any primary key, on whatever columns */
    bool has_key;               /* a unique index ON CONFLICT can infer for the key */
    const char *deferrable_key; /* a DEFERRABLE constraint on exactly the key, or NULL */
    bool deferrable_is_pk;      /* ... and it is the primary key */
    const ShapeColumn *cols;    /* in attnum order */
    size_t ncols;
} ShapeTable;

/* Quote ident as an SQL identifier into a new malloc'd string (NULL: out of memory). */
typedef char *(*shape_quote_fn)(void *ud, const char *ident);

/* Check the three tables (indexed by ShapeKind) against the statements of the sink:
 * every column it writes exists with a type its values can be assigned to, is not
 * generated, may be NULL where the sink may write NULL, has a default where the sink
 * relies on one; there is a unique index ON CONFLICT can use; no other column is NOT NULL
 * without a default. key_type is the source key's type, for the suggested DDL of a
 * missing id. Returns the number of problems found; when there is any, msg holds one line
 * naming the first with the DDL that fixes it and how many more there are. */
size_t shape_check(const ShapeTable tables[SHAPE_NKINDS], const char *key_type,
                   shape_quote_fn quote, void *ud, char *msg, size_t msglen);

#endif
