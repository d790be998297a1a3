/*
 * server.h: the HTTP front door (docs/openapi.yaml) on libmicrohttpd. It parses requests,
 * authenticates bearer tokens, enforces body limits and maps veil_err to HTTP; the
 * meaning of every request lives in libveil.
 */
#ifndef VL_SERVER_H
#define VL_SERVER_H

#include <signal.h>

#include "veil/veil.h"

/* Serves `v` on `listen` ("127.0.0.1:8470") until *stop becomes non-zero, then stops
 * accepting, lets in-flight requests finish, and returns 0 (1 if it could not start, with a
 * message on stderr). */
int vl_server_run(veil_vault *v, const char *listen, volatile sig_atomic_t *stop);

#endif
