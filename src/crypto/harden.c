/*
 * harden.c: veil_harden_process, what a program holding veil's keys does to its own
 * process so that the keys cannot leave it through a core file or a debugger.
 *
 * Two layers keep keys out of dumps. Key memory itself is vl_secret_alloc'd (sodium_malloc:
 * locked, between guard pages, marked MADV_DONTDUMP), always, whatever the program does.
 * This file adds the process-wide layer for everything else a core would hold (documents,
 * tokens, what a library left in freed memory): no dumps at all. It changes the whole
 * process, so libveil never calls it by itself; `veil` calls it before opening a vault,
 * and an embedding program may.
 */
#include <errno.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "util/status.h"

veil_err veil_harden_process(veil_status *st)
{
    const struct rlimit none = {0, 0};
    vl_status_clear(st);
    /* Lower the limit first: once the process is not dumpable it could no longer write a
     * core anyway, but a limit of 0 also holds for its children. */
    if (setrlimit(RLIMIT_CORE, &none) != 0) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL,
                             "cannot set the core file size limit to 0: %s", strerror(errno));
    }
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 || prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL,
                             "cannot make the process non-dumpable: %s", strerror(errno));
    }
    return VEIL_OK;
}
