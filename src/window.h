/* window: the scheduler's pages of source IDs. Each ID gets a sequence number in read
 * order; a taken ID is a slot until it settles; a page is released once its IDs are settled
 * and the pages before it are gone; a few slow IDs that hold a page back are parked with
 * their own copy of the ID so the page can go. Gives the checkpoint position: the key (or
 * row count) just below the oldest unsettled ID. */
#ifndef PGENRICH_WINDOW_H
#define PGENRICH_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <libpq-fe.h>
#include "compat.h"

typedef struct Window Window;
typedef struct WinPage WinPage;

/* One ID taken from the window, embedded in its user (a lookup). The fields are the
 * window's: read them only through window_id. */
typedef struct WinSlot WinSlot;
struct WinSlot {
    WinPage *page; /* NULL once parked */
    int row;
    uint64_t seq;
    /* Parked: its own copy of the ID and of the key just before it (the checkpoint cannot
     * pass it); NULL prev_key: nothing comes before it in this run. */
    char *id;
    int id_len;
    char *prev_key;
    WinSlot *prev, *next; /* the taken slots on pages, or the parked ones (ascending seq) */
};

/* An empty window for pages of page_size IDs (>= 1). paging_offset: positions are row
 * counts from start_offset (rows already settled), else keys. The window holds
 * 8 pages, or room for min_ids unsettled IDs and two pages more when that is
 * larger (batch providers: every call in flight full, and a full pending batch). Returns
 * NULL when out of memory. Free with window_free. */
Window *window_new(int page_size, bool paging_offset, long long start_offset, size_t min_ids) WUR;

/* Frees the pages still held. Every slot must have been dropped (window_drop) before.
 * NULL is fine. */
void window_free(Window *w);

/* Add a page from the source: res holds at least one row with the key in column 0, and is
 * owned by the window from the call. Returns false when out of memory (res is cleared). */
bool window_add_page(Window *w, PGresult *res) WUR;

/* The source has no more pages; window_ended tells it from then on. */
void window_end(Window *w);
bool window_ended(const Window *w);

/* Whether the next page should be read now: it fits in the window, and no page read
 * earlier is still waiting to be dispatched. */
bool window_wants_page(const Window *w);

/* Whether a fresh ID is waiting and its sequence number is inside the checkpoint's
 * window, so it may be taken. */
bool window_has_fresh(const Window *w);

/* Take the next fresh ID (window_has_fresh said yes, or at least one ID is waiting) into
 * slot, which must stay where it is until window_drop. */
void window_take(Window *w, WinSlot *slot);

/* The slot's ID and its length: borrowed, valid until window_drop. */
const char *window_id(const WinSlot *slot, int *len);

/* The slot's outcome is settled (call once, then window_drop, then window_release). */
void window_settle(Window *w, WinSlot *slot);

/* Forget the slot, settled or abandoned (an abandoned ID keeps the checkpoint before it). */
void window_drop(Window *w, WinSlot *slot);

/* Release the oldest pages whose IDs are all settled. Returns false when out of memory. */
bool window_release(Window *w) WUR;

/* While fresh IDs are blocked by the window and its oldest page is held back by only a
 * few unsettled IDs, park those IDs and release the page. *parked tells whether any page
 * was. Returns false when out of memory (some IDs may be parked). */
bool window_park(Window *w, bool *parked) WUR;

/* The checkpoint position for everything settled so far, or NULL if nothing is (or out of
 * memory). Caller owns the result; free with free(). */
char *window_position(const Window *w);

/* IDs settled in read order (the checkpoint's low watermark). */
uint64_t window_settled(const Window *w);

/* The source has ended and no page or parked ID is left. */
bool window_drained(const Window *w);

#endif
