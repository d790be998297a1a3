/*
 * server.h: the HTTP front door (docs/openapi.yaml) on libmicrohttpd. It parses requests,
 * authenticates bearer tokens, enforces body, memory, connection, time and rate limits and
 * maps veil_err to HTTP; the meaning of every request lives in libveil.
 */
#ifndef VL_SERVER_H
#define VL_SERVER_H

#include <signal.h>
#include <sys/socket.h>

#include "veil/veil.h"

struct vl_server;

/* Serves `v` on `listen` ("127.0.0.1:8470") until *stop becomes non-zero, then stops
 * accepting, lets in-flight requests finish, and returns 0 (1 if it could not start, with a
 * message on stderr). */
int vl_server_run(veil_vault *v, const char *listen, volatile sig_atomic_t *stop);

/* The pieces of vl_server_run. vl_server_start listens on `listen` with a pool of threads;
 * NULL (and a message on stderr) when it cannot. */
struct vl_server *vl_server_start(veil_vault *v, const char *listen);

/* A server with no listening socket and no threads of its own, for a harness that drives
 * the real request handler: it hands over connected sockets with vl_server_add_connection
 * (which takes ownership of `fd`, also on failure) and turns the event loop, without
 * blocking, with vl_server_poll. */
struct vl_server *vl_server_start_external(veil_vault *v);
int vl_server_add_connection(struct vl_server *s, int fd, const struct sockaddr *addr,
                             socklen_t addrlen);
void vl_server_poll(struct vl_server *s);
/* Open connections and requests in flight (for a harness waiting for both to end). */
size_t vl_server_connections(struct vl_server *s);
long vl_server_inflight(struct vl_server *s);

/* Stops accepting, lets the requests in flight finish (up to half a minute), stops the
 * daemon and frees everything. Accepts NULL. */
void vl_server_stop(struct vl_server *s);

#endif
