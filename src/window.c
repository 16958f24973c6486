/* window: pages of IDs, oldest first, each keeping its PGresult alive so that IDs are not
 * copied; the checkpoint watermark over their sequence numbers; and the parked IDs that
 * outlived their page. */
#include "window.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "log.h"

#define WINDOW_PAGES 8 /* pages of IDs held at once (in flight or unsettled) */

/* At most this many unsettled IDs may hold a page back from being released, and at most
 * PARK_MAX IDs are parked at once: the window stays the memory bound. */
#define PARK_PAGE_MAX(page_size) ((page_size) / 50 + 4)
#define PARK_MAX                 4096

struct WinPage {
    PGresult *res;
    int n;
    int settled;
    uint64_t first_seq;
    WinPage *next;
};

struct Window {
    int page_size;
    bool paging_offset;
    long long start_offset;
    Ckpt ckpt;
    WinPage *head, *tail; /* oldest first */
    WinPage *disp_page;   /* next fresh ID: disp_page row disp_row */
    int disp_row;
    size_t window_ids;
    size_t window_cap;
    uint64_t next_seq;
    bool source_ended;
    char *released_key; /* last key of the newest page released */
    WinSlot *taken;     /* slots on a page */
    WinSlot *parked_head, *parked_tail;
    size_t parked_count;
};

Window *window_new(int page_size, bool paging_offset, long long start_offset, size_t min_ids)
{
    Window *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->page_size = page_size;
    w->paging_offset = paging_offset;
    w->start_offset = start_offset;
    w->window_cap = (size_t)page_size * WINDOW_PAGES;
    if (min_ids + 2 * (size_t)page_size > w->window_cap)
        w->window_cap = min_ids + 2 * (size_t)page_size;
    if (!ckpt_init(&w->ckpt, 0, w->window_cap)) {
        free(w);
        return NULL;
    }
    return w;
}

void window_free(Window *w)
{
    if (w == NULL)
        return;
    while (w->head) {
        WinPage *p = w->head;
        w->head = p->next;
        PQclear(p->res);
        free(p);
    }
    ckpt_free(&w->ckpt);
    free(w->released_key);
    free(w);
}

bool window_add_page(Window *w, PGresult *res)
{
    int n = PQntuples(res);
    WinPage *p = calloc(1, sizeof *p);
    if (p == NULL) {
        PQclear(res);
        return false;
    }
    p->res = res;
    p->n = n;
    p->first_seq = w->next_seq;
    w->next_seq += (uint64_t)n;
    w->window_ids += (size_t)n;
    if (w->tail)
        w->tail->next = p;
    else
        w->head = p;
    w->tail = p;
    if (w->disp_page == NULL) {
        w->disp_page = p;
        w->disp_row = 0;
    }
    log_debug("event=page rows=%d window_ids=%zu", n, w->window_ids);
    return true;
}

void window_end(Window *w)
{
    w->source_ended = true;
}

bool window_ended(const Window *w)
{
    return w->source_ended;
}

bool window_wants_page(const Window *w)
{
    if (w->window_ids + (size_t)w->page_size > w->window_cap)
        return false;
    /* Read one page ahead of dispatch, no more: a page not yet dispatched is already
     * waiting behind the current one. The window's extra room is for pages held back by
     * slow IDs, so memory does not grow with the size of the source. */
    return w->disp_page == NULL || w->disp_page == w->tail;
}

bool window_has_fresh(const Window *w)
{
    return w->disp_page != NULL &&
           ckpt_in_window(&w->ckpt, w->disp_page->first_seq + (uint64_t)w->disp_row);
}

void window_take(Window *w, WinSlot *slot)
{
    slot->page = w->disp_page;
    slot->row = w->disp_row;
    slot->seq = w->disp_page->first_seq + (uint64_t)w->disp_row;
    slot->prev = NULL;
    slot->next = w->taken;
    if (w->taken)
        w->taken->prev = slot;
    w->taken = slot;
    if (++w->disp_row == w->disp_page->n) {
        w->disp_page = w->disp_page->next;
        w->disp_row = 0;
    }
}

const char *window_id(const WinSlot *slot, int *len)
{
    if (slot->page == NULL) {
        *len = slot->id_len;
        return slot->id;
    }
    *len = PQgetlength(slot->page->res, slot->row, 0);
    return PQgetvalue(slot->page->res, slot->row, 0);
}

void window_settle(Window *w, WinSlot *slot)
{
    if (slot->page == NULL) /* a parked ID was counted when it was parked */
        return;
    if (!ckpt_settle(&w->ckpt, slot->seq))
        log_error("event=bug detail=\"settled twice or outside the window\" seq=%llu",
                  (unsigned long long)slot->seq);
    slot->page->settled++;
}

void window_drop(Window *w, WinSlot *slot)
{
    if (slot->page == NULL) {
        if (slot->prev)
            slot->prev->next = slot->next;
        else
            w->parked_head = slot->next;
        if (slot->next)
            slot->next->prev = slot->prev;
        else
            w->parked_tail = slot->prev;
        w->parked_count--;
        free(slot->id);
        free(slot->prev_key);
    } else {
        if (slot->prev)
            slot->prev->next = slot->next;
        else
            w->taken = slot->next;
        if (slot->next)
            slot->next->prev = slot->prev;
    }
    slot->prev = slot->next = NULL;
}

bool window_release(Window *w)
{
    while (w->head && w->head->settled == w->head->n && w->head != w->disp_page) {
        WinPage *p = w->head;
        char *key = strdup(PQgetvalue(p->res, p->n - 1, 0));
        if (key == NULL)
            return false;
        free(w->released_key);
        w->released_key = key;
        w->head = p->next;
        if (w->head == NULL)
            w->tail = NULL;
        w->window_ids -= (size_t)p->n;
        PQclear(p->res);
        free(p);
    }
    return true;
}

/* Give the unsettled IDs of the head page their own copy of their ID (and of the key before
 * each, for the checkpoint), so that the page can be released. */
static bool park_head_page(Window *w)
{
    WinPage *p = w->head;
    for (WinSlot *l = w->taken, *next; l; l = next) {
        next = l->next;
        if (l->page != p)
            continue;
        int len = PQgetlength(p->res, l->row, 0);
        const char *prev = l->row > 0 ? PQgetvalue(p->res, l->row - 1, 0) : w->released_key;
        l->id = malloc((size_t)len + 1);
        l->prev_key = prev ? strdup(prev) : NULL;
        if (l->id == NULL || (prev && l->prev_key == NULL)) {
            free(l->id);
            free(l->prev_key);
            l->id = l->prev_key = NULL;
            return false;
        }
        memcpy(l->id, PQgetvalue(p->res, l->row, 0), (size_t)len + 1);
        l->id_len = len;
        if (!ckpt_settle(&w->ckpt, l->seq))
            log_error("event=bug detail=\"parked a settled lookup\" seq=%llu",
                      (unsigned long long)l->seq);
        p->settled++;
        window_drop(w, l); /* off the taken list, while it is still on the page */
        l->page = NULL;
        /* Insert by seq: the IDs of one page come in any order, pages in order. */
        WinSlot *after = w->parked_tail;
        while (after && after->seq > l->seq)
            after = after->prev;
        l->prev = after;
        l->next = after ? after->next : w->parked_head;
        if (l->next)
            l->next->prev = l;
        else
            w->parked_tail = l;
        if (after)
            after->next = l;
        else
            w->parked_head = l;
        w->parked_count++;
    }
    return true;
}

/* Fresh IDs are blocked by the window while its oldest pages are held back by a few slow
 * IDs (a long Retry-After, a hung request): park those few and release their pages, so
 * lookups go on. The checkpoint stays before the oldest parked ID. */
bool window_park(Window *w, bool *parked)
{
    size_t limit = PARK_PAGE_MAX((size_t)w->page_size);
    *parked = false;
    while (w->head && w->head != w->disp_page) {
        bool blocked =
            w->disp_page != NULL
                ? !window_has_fresh(w)
                : !w->source_ended && w->window_ids + (size_t)w->page_size > w->window_cap;
        size_t unsettled = (size_t)(w->head->n - w->head->settled);
        if (!blocked || unsettled > limit || w->parked_count + unsettled > PARK_MAX)
            return true;
        if (!park_head_page(w))
            return false;
        *parked = true;
        log_debug("event=parked ids=%zu parked=%zu", unsettled, w->parked_count);
        if (!window_release(w))
            return false;
    }
    return true;
}

char *window_position(const Window *w)
{
    uint64_t low = ckpt_low(&w->ckpt);
    char num[32];
    const WinSlot *pk = w->parked_head;
    if (pk != NULL && pk->seq < low) {
        /* The oldest parked ID holds the position back. */
        if (w->paging_offset) {
            snprintf(num, sizeof num, "%lld", w->start_offset + (long long)pk->seq);
            return pk->seq ? strdup(num) : NULL;
        }
        return pk->prev_key ? strdup(pk->prev_key) : NULL;
    }
    if (w->paging_offset) {
        snprintf(num, sizeof num, "%lld", w->start_offset + (long long)low);
        return low ? strdup(num) : NULL;
    }
    if (low == 0)
        return NULL;
    uint64_t seq = low - 1;
    for (const WinPage *p = w->head; p; p = p->next)
        if (seq >= p->first_seq && seq < p->first_seq + (uint64_t)p->n)
            return strdup(PQgetvalue(p->res, (int)(seq - p->first_seq), 0));
    return w->released_key ? strdup(w->released_key) : NULL;
}

uint64_t window_settled(const Window *w)
{
    return ckpt_low(&w->ckpt);
}

bool window_drained(const Window *w)
{
    return w->source_ended && w->head == NULL && w->parked_head == NULL;
}
