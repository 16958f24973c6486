/* Replay runner: feeds files (or every file in the directories, and in their
 * subdirectories) to LLVMFuzzerTestOneInput, so that any compiler can replay a fuzz corpus
 * under ctest. Each input gets its own exact-size allocation so that ASan and valgrind see
 * over-reads. Exits 1 if a path cannot be read. */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* How deep below a named directory inputs are still looked for. */
#define MAX_DEPTH 3

static bool replay_file(const char *path, size_t *count)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data = NULL;
    size_t size = 0, got;
    bool ok = false;
    long end;

    errno = 0;
    if (!f)
        goto done;
    if (fseek(f, 0, SEEK_END) != 0 || (end = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        goto done;
    size = (size_t)end;
    data = malloc(size ? size : 1);
    if (!data)
        goto done;
    got = fread(data, 1, size, f);
    if (got != size || ferror(f))
        goto done;
    LLVMFuzzerTestOneInput(data, size);
    (*count)++;
    ok = true;
done:
    if (!ok)
        fprintf(stderr, "replay: cannot read %s: %s\n", path, strerror(errno ? errno : EIO));
    free(data);
    if (f)
        fclose(f);
    return ok;
}

static int skip_dots(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

static bool replay_path(const char *path, int depth, size_t *count)
{
    struct stat st;
    struct dirent **list = NULL;
    bool ok = true;
    int n;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return false;
    }
    if (!S_ISDIR(st.st_mode))
        return S_ISREG(st.st_mode) ? replay_file(path, count) : true;
    if (depth > MAX_DEPTH)
        return true;
    /* Sorted, so that a run is reproducible. */
    n = scandir(path, &list, skip_dots, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return false;
    }
    for (int i = 0; i < n; i++) {
        size_t len = strlen(path) + strlen(list[i]->d_name) + 2;
        char *child = malloc(len);
        if (!child) {
            ok = false;
        } else {
            snprintf(child, len, "%s/%s", path, list[i]->d_name);
            if (!replay_path(child, depth + 1, count))
                ok = false;
            free(child);
        }
        free(list[i]);
    }
    free(list);
    return ok;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    bool ok = true;

    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (!replay_path(argv[i], 0, &count))
            ok = false;
    }
    printf("replayed %zu inputs\n", count);
    return ok ? 0 : 1;
}
